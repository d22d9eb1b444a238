"""Feedback and content gaps: pure functions over counts and question texts.

- ``deflection_rate``: share of questions closed by a knowledge-base answer without a
  person. The app counts both numbers; this only does the arithmetic and the checks.
- ``helpfulness``: the Wilson lower bound of "was this helpful?" votes, so an article with
  2 of 2 votes does not outrank one with 95 of 100.
- ``gap_report``: groups low-confidence questions into topics editors should write about.
  Questions are normalized like search queries (folded, stopwords dropped, stemmed per
  detected language); two questions join a group when they share two stems, or one when
  either has at most two. Stems that occur in more than half of many questions ("city")
  are ignored for joining. Groups are labeled by their most common stems and sorted by
  size, so the biggest unanswered need comes first.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from knowledge_base.text import analyze, detect_language


def deflection_rate(self_served: int, total: int) -> float:
    """``self_served / total`` (0.0 when there were no questions)."""
    if self_served < 0 or total < 0 or self_served > total:
        raise ValueError("need 0 <= self_served <= total")
    return 0.0 if total == 0 else self_served / total


def helpfulness(helpful: int, not_helpful: int, z: float = 1.96) -> float:
    """Wilson score lower bound of the share of helpful votes (0.0 with no votes)."""
    n = helpful + not_helpful
    if n <= 0:
        return 0.0
    p = helpful / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


@dataclass(frozen=True)
class Gap:
    """A group of similar unanswered questions."""

    label: str
    count: int
    terms: list[str]
    examples: list[str]


def _normalize(question: str, lang: str | None) -> frozenset[str]:
    language = lang or detect_language(question)[0]
    return frozenset(analyze(question, language))


def gap_report(
    questions: Iterable[str],
    lang: str | None = None,
    min_count: int = 1,
    max_examples: int = 3,
) -> list[Gap]:
    """Low-confidence questions grouped by shared stemmed terms, biggest group first."""
    texts = [q.strip() for q in questions if q and q.strip()]
    term_sets = [_normalize(q, lang) for q in texts]
    df = Counter(t for terms in term_sets for t in terms)
    too_common = {t for t, c in df.items() if len(texts) >= 10 and c > len(texts) / 2}
    keys = [terms - too_common for terms in term_sets]

    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            shared = len(keys[i] & keys[j])
            if shared >= 2 or (shared == 1 and min(len(keys[i]), len(keys[j])) <= 2):
                parent[find(i)] = find(j)

    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(find(i), []).append(i)
    gaps = []
    for members in groups.values():
        if len(members) < min_count:
            continue
        counts = Counter(t for i in members for t in keys[i])
        top_terms = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:4]]
        examples = list(dict.fromkeys(texts[i] for i in members))[:max_examples]
        gaps.append(Gap(" ".join(top_terms[:3]), len(members), top_terms, examples))
    gaps.sort(key=lambda g: (-g.count, g.label))
    return gaps

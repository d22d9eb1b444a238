"""Text analysis shared by indexing and querying: normalization, tokens, stems, synonyms.

Decisions:

- Text is NFKC-normalized, lower-cased and stripped of diacritics *before* stemming, so
  a resident typing "inscripcion" on a phone without accents matches "inscripción".
  Both documents and queries go through the same path, which is what matters.
- Stems come from the Snowball stemmers (``snowballstemmer``, pinned): English and
  Spanish. Stems are cached because the pure-Python stemmers cost ~20 µs per word.
- Chinese has no spaces; a run of Han characters becomes its character unigrams and
  bigrams (no dictionary to maintain, robust to new words). Latin words and numbers
  inside Chinese text ("SNAP", "311") are tokenized like English.
- Stopwords are small hand lists of function words and question words ("how do I",
  "cómo puedo", "怎么"), which carry no topic in residents' questions.
- Synonyms are phrase groups per language for government jargon (SSN, DMV, SNAP/EBT/food
  stamps, 311, ...). They are applied to queries only (query expansion), never baked into
  the index, so editors can change the list without re-indexing.
- Spanish questions about articles that exist only in English are bridged: a small
  Spanish-to-English glossary (``BRIDGE_ES_EN``) turns the concepts they mention into an
  English query, used when the Spanish index answers weakly.
- Language detection for queries is a heuristic: any Han characters -> zh; otherwise
  Spanish marker words and accented letters against English marker words. The search
  index breaks ties with its own vocabulary (see ``SearchIndex.detect_language``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

SUPPORTED_LANGUAGES = ("en", "es", "zh")

_STEMMERS = {
    "en": snowballstemmer.stemmer("english"),
    "es": snowballstemmer.stemmer("spanish"),
}

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_HAN}]+|[a-z0-9]+(?:'[a-z]+)?")
_HAN_RE = re.compile(rf"[{_HAN}]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        """a about an and any are as at be been being but by can could did do does doing
        for from get got had has have having he her here hi hello his how i i'm if in
        into is it it's its just me my myself need no not now of on or our out please
        she should so some than thank thanks that the their them then there these they
        this those to too up us was we were what when where which who why will with
        would you your yours want wanna know tell help im ive dont cant
        """.split()
    ),
    "es": frozenset(
        """a al algo algun alguna alguno ante como con cual cuando de del desde donde
        el ella en entre era es esa ese eso esta estoy este esto fue ha hay hola la las
        le les lo los me mi mis muy necesito no nos o para pero por puedo que quiero se
        si sin sobre su sus te tengo ti tu tus un una uno unos y ya yo gracias favor
        hacer hago saber quisiera podria debo
        """.split()
    ),
    "zh": frozenset(
        """的 了 吗 呢 吧 啊 我 你 他 她 是 在 有 和 与 要 想 请 怎么 怎样 如何 什么 哪里
        哪儿 可以 能 我的 我要 我想 请问 一下 问 谢谢 你好 么 么办 怎 样 为 在哪 哪 里
        """.split()
    ),
}

_ES_MARKERS = frozenset(
    """de la el que y en los las mi mis como donde para por una un del se puedo quiero
    necesito es esta cuando hay con al sobre mas tengo cual cuanto cuesta hacer si
    puede pagar solicitar renovar""".split()
)
_EN_MARKERS = frozenset(
    """the my how do i to is can what where when for of a and get need does it my
    you your with about have am are renew pay apply""".split()
)
_ES_CHARS = re.compile(r"[áéíóúñ¿¡ü]")


def fold(text: str) -> str:
    """NFKC, lower case, diacritics removed (Han characters are left as they are)."""
    text = unicodedata.normalize("NFKC", text).lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def clean_query(text: str) -> str:
    """Control characters removed and whitespace collapsed; everything else is plain text."""
    return " ".join(_CONTROL_RE.sub(" ", text).split())


def words(text: str) -> list[str]:
    """Folded surface tokens: Latin words, numbers and whole Han runs (not yet split)."""
    return _TOKEN_RE.findall(fold(text))


def is_han(token: str) -> bool:
    return bool(_HAN_RE.match(token))


def han_grams(run: str) -> list[str]:
    """Unigrams then bigrams of a run of Han characters."""
    grams = list(run)
    grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


@lru_cache(maxsize=200_000)
def stem(word: str, lang: str) -> str:
    """The stem of one folded word; English stems for languages without a stemmer."""
    stemmer = _STEMMERS.get(lang) or _STEMMERS["en"]
    return stemmer.stemWord(word)


def analyze(text: str, lang: str) -> list[str]:
    """Index terms of ``text``: stopwords dropped, words stemmed, Han runs split to grams."""
    terms: list[str] = []
    stop = STOPWORDS.get(lang, STOPWORDS["en"])
    zh_stop = STOPWORDS["zh"]
    for token in words(text):
        if is_han(token):
            terms.extend(g for g in han_grams(token) if g not in zh_stop)
        elif token not in stop and not (lang == "zh" and token in STOPWORDS["en"]):
            terms.append(stem(token, lang))
    return terms


def detect_language(text: str) -> tuple[str, float]:
    """A best guess at the language of a short query and a rough margin (0 = a tie).

    Han characters decide Chinese. Otherwise Spanish markers (words and letters such as
    ñ, ¿, á) are weighed against English markers.
    """
    if _HAN_RE.search(text):
        han = len(_HAN_RE.findall(text))
        latin = len(re.findall(r"[A-Za-z]", text))
        if han * 3 >= latin:
            return "zh", 1.0
    lowered = text.lower()
    tokens = words(text)
    es = sum(1 for t in tokens if t in _ES_MARKERS) + 1.5 * len(_ES_CHARS.findall(lowered))
    en = sum(1 for t in tokens if t in _EN_MARKERS)
    if es > en:
        return "es", (es - en) / (es + en)
    if en > es:
        return "en", (en - es) / (es + en)
    return "en", 0.0


# Phrase groups: any phrase in a query brings in the others as weaker extra terms.
SYNONYMS: dict[str, list[list[str]]] = {
    "en": [
        ["ssn", "social security number", "social security card"],
        ["dmv", "motor vehicles", "driver license", "drivers license", "driving licence"],
        ["snap", "food stamps", "food benefits", "ebt", "food assistance", "calfresh"],
        ["311", "city hotline", "city services line", "non emergency"],
        ["unemployment", "jobless", "laid off", "lost my job", "ui benefits"],
        ["trash", "garbage", "rubbish", "refuse", "waste"],
        ["bulk", "furniture", "couch", "sofa", "mattress", "appliance"],
        ["pothole", "potholes", "road damage", "hole in the road", "street repair"],
        ["parking ticket", "parking citation", "parking fine"],
        ["water bill", "water utility", "water payment"],
        ["permit", "building permit", "construction permit", "renovation"],
        ["register to vote", "voter registration", "voting", "elections"],
        ["rent", "rental assistance", "eviction", "housing help"],
        ["noise", "loud music", "barking", "party next door"],
        ["business license", "business permit", "open a business", "start a business"],
        ["clinic", "health center", "vaccine", "vaccination", "covid"],
        ["library card", "borrow books"],
        ["property tax", "real estate tax", "home tax"],
        ["passport", "travel document"],
        ["expedited", "urgent", "rush", "fast", "quickly", "asap"],
    ],
    "es": [
        ["ssn", "numero de seguro social", "tarjeta de seguro social"],
        ["dmv", "licencia de conducir", "licencia de manejo", "vehiculos motorizados"],
        [
            "snap",
            "cupones de alimentos",
            "estampillas de comida",
            "ebt",
            "ayuda alimentaria",
            "beneficios de alimentos",
            "food stamps",
        ],
        ["311", "linea de la ciudad"],
        ["desempleo", "me despidieron", "perdi mi trabajo", "sin trabajo"],
        ["basura", "desechos", "residuos", "recoleccion"],
        ["muebles", "sofa", "colchon", "electrodomestico", "voluminosos"],
        ["bache", "baches", "hoyo en la calle", "hueco en la calle"],
        ["multa de estacionamiento", "boleta de estacionamiento", "infraccion de estacionamiento"],
        ["factura del agua", "recibo del agua", "cuenta del agua"],
        ["permiso de construccion", "permiso de obra", "remodelacion"],
        ["registrarme para votar", "inscripcion de votantes", "votar", "elecciones"],
        ["renta", "alquiler", "desalojo", "ayuda con la renta"],
        ["ruido", "musica alta", "ladridos", "fiesta"],
        ["licencia comercial", "licencia de negocio", "abrir un negocio"],
        ["clinica", "centro de salud", "vacuna", "vacunas", "covid"],
        ["tarjeta de biblioteca", "biblioteca"],
        ["impuesto predial", "impuesto a la propiedad", "impuestos de propiedad"],
        ["urgente", "rapido", "acelerado", "expedito"],
        ["renovar", "renuevo", "renueva", "renuevan", "renovacion"],
        ["solicitar", "aplicar", "pedir", "tramitar"],
    ],
    "zh": [
        ["社会安全号码", "社安号", "ssn", "社安卡"],
        ["食品券", "snap", "ebt", "食物补助"],
        ["护照", "旅行证件"],
        ["垃圾", "废物"],
        ["房租", "租金", "租房补助"],
    ],
}


def _phrase_tokens(phrase: str) -> tuple[str, ...]:
    return tuple(words(phrase))


_SYNONYM_TOKENS: dict[str, list[list[tuple[str, ...]]]] = {
    lang: [[_phrase_tokens(p) for p in group] for group in groups]
    for lang, groups in SYNONYMS.items()
}


def _contains(haystack: list[str], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    if n == 0:
        return False
    if n == 1 and is_han(needle[0]):
        return any(needle[0] in h for h in haystack)
    return any(tuple(haystack[i : i + n]) == needle for i in range(len(haystack) - n + 1))


def synonym_expansions(query: str, lang: str) -> list[str]:
    """Phrases of every synonym group that the query touches, minus those already in it."""
    tokens = words(query)
    out: list[str] = []
    for group in _SYNONYM_TOKENS.get(lang, []):
        present = [p for p in group if _contains(tokens, p)]
        if present:
            out.extend(" ".join(p) for p in group if p not in present)
    return out


# Spanish phrases -> English query words, for questions about articles that exist only in
# English: when the Spanish index answers weakly, the English index is searched with these.
BRIDGE_ES_EN: list[tuple[list[str], str]] = [
    (["licencia de conducir", "licencia de manejo", "dmv", "vehiculos"], "driver license DMV"),
    (["ruido", "musica alta", "ladra", "ladridos", "fiesta", "vecinos"], "noise complaint"),
    (["licencia comercial", "negocio", "empresa"], "business license"),
    (["biblioteca", "libros"], "library card"),
    (["311", "telefono de la ciudad", "numero de la ciudad"], "311 contact city"),
    (
        ["permiso de construccion", "permiso de obra", "remodelacion", "construir"],
        "building permit",
    ),
    (["pagar impuesto", "pago del impuesto", "pagar el impuesto"], "pay property tax"),
    (["pasaporte urgente", "pasaporte rapido", "urgente", "viajo"], "expedited passport"),
    (["renta", "alquiler", "desalojo", "desalojar", "casero"], "rent eviction"),
    (["seguro social"], "social security card"),
    (["vacuna", "clinica", "gripe"], "clinic vaccine"),
]


def bridge_to_english(query: str) -> str:
    """English words for the Spanish concepts a query mentions ("" when none)."""
    tokens = words(query)
    out = [
        en
        for phrases, en in BRIDGE_ES_EN
        if any(_contains(tokens, _phrase_tokens(p)) for p in phrases)
    ]
    return " ".join(out)

"""World-facts QA: short factual questions about countries, with checkable answers.

Four attribute types: ``capital`` ("What is the capital of France?"), ``continent`` ("Which
continent is Kenya in?"), ``demonym`` ("What is the demonym for people from Peru?") and
``language`` ("What is the official language of Brazil?").

Provenance
----------
Facts come from the JSON files shipped in the ``countryinfo`` package (PyPI, version 1.0.1 when
this was written; ``countryinfo.CountryInfo.all()``), read at run time: nothing is downloaded and
nothing is committed as data. The package stores languages as ISO 639-1 codes; their English
names are the table ``LANGUAGE_NAMES`` in this module. Curation, all in tables below: stale values
corrected (``_FIXES``: Kazakhstan's capital is Astana again since 2022; Filipino is co-official in
the Philippines), entities left out entirely (``_EXCLUDED_ENTITIES``: dissolved states, duplicate
entries, uninhabited territories), and per attribute the countries whose value is missing,
contested or ambiguous skipped (``_SKIP``: e.g. transcontinental countries for ``continent``).
Accepted answers (``aliases``) add spelling variants and other seats of government for capitals,
"America" for the Americas, every listed official language, and noun forms of demonyms.

The build is deterministic: the same installed package gives the same examples, sorted by ``id``.
The two few-shot examples of every attribute (``SHOTS``) are excluded from the data set.

Splits
------
``load_world_facts`` splits every attribute separately (stratified by attribute): each example is
ranked by ``sha256(f"{seed}:{id}")``; the first 40 % (rounded) of an attribute's ranking form the
``"calibration"`` split, the rest the ``"test"`` split. The rank depends on the example's own id
only, so adding or removing a country moves at most one other example (at the 40 % boundary).
``limit`` takes, per attribute, the top of that same ranking, spreading the quota evenly over the
attributes (so a small demo still covers every attribute, and a larger limit extends a smaller one).

Measured with the embedded default pair
---------------------------------------
SmolLM2-135M-Instruct Q4_1 (small) and Gemma-3-270M base Q4_K_M (large), loaded from their GGUF
files with transformers in fp32 on CPU, prompts from :func:`few_shot_prompt` (no chat template),
greedy, at most 8 new tokens, cut at the first newline, scored with :func:`is_correct`. "L>S" is the
share the large model gets right and the small one wrong; "AUROC" is how well the small model's
first-token margin (p_top1 - p_top2 at the first generated step) separates its right answers from
its wrong ones (0.5 = no signal). n = 55 per attribute: the first 25 of the calibration ranking
(``load_world_facts("all", limit=...)``) plus ``load_world_facts("test", limit=...)`` with 30 per
attribute. The measuring script is not part of the package.

=================  ====  =====  =====  =====  =====  ========================================
attribute            n   small  large   L>S   AUROC  decision
=================  ====  =====  =====  =====  =====  ========================================
capital              55   0.25   0.64   0.40   0.78  kept (hard)
continent            55   0.89   0.65   0.04   0.72  kept (easy; small beats large)
demonym              55   0.58   0.56   0.07   0.81  kept (medium)
language             55   0.67   0.84   0.18   0.80  kept (medium)
4 kept, pooled      220   0.60   0.67   0.17   0.75
tld (".fr")          55   0.25   0.42   0.20   0.74  dropped: margins on another scale (small
                                                     confidently wrong); pooled AUROC -> 0.63
currency             25   0.32   0.40   0.12   0.53  dropped: first token is the adjective
                                                     copied from the question, no signal
subregion            25   0.16   0.32   0.32   0.44  dropped: no signal, small near floor
calling code         25   0.00   0.16   0.16    --   dropped: both near 0, first token "+"
=================  ====  =====  =====  =====  =====  ========================================

On the 220 pooled questions, answering with the small model when its margin is >= 0.3 and
deferring otherwise sends 53 % to the large model and scores 0.69 (in-sample threshold; small alone
0.60, large alone 0.67, either-right oracle 0.77). Currency with bare-unit shots ("Yen", "Peso") was
no better (small 0.24, large 0.32, AUROC 0.58). Speed: ~0.27 s/query small, ~0.46 s/query large with
one torch thread; two threads on the shared 2-core machine were several times slower.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cascade_core.errors import ConfigurationError

__all__ = [
    "ATTRIBUTES",
    "DIFFICULTY",
    "SHOTS",
    "SPLITS",
    "QAExample",
    "build_world_facts",
    "few_shot_prompt",
    "is_correct",
    "load_world_facts",
    "normalize_answer",
    "write_jsonl",
]


@dataclass(frozen=True)
class QAExample:
    """One question with its gold answer and every accepted answer.

    ``aliases`` always contains ``answer`` itself. ``id`` is ``"<attribute>/<country-slug>"`` and
    stable across builds.
    """

    id: str
    question: str
    answer: str
    aliases: tuple[str, ...]
    attribute: str
    difficulty: str
    country: str

    def to_dict(self) -> dict[str, Any]:
        """The example as a plain dict (``aliases`` as a list)."""
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data


# ---------------------------------------------------------------------------------------------
# Attributes, question templates, difficulty, few-shot examples
# ---------------------------------------------------------------------------------------------

ATTRIBUTES: tuple[str, ...] = ("capital", "continent", "demonym", "language")
"""The attribute types in the data set, sorted."""

DIFFICULTY: Mapping[str, str] = {
    "continent": "easy",
    "demonym": "medium",
    "language": "medium",
    "capital": "hard",
}
"""Difficulty for the small model: measured accuracy >= 0.75 easy, >= 0.45 medium, else hard."""

SPLITS: tuple[str, ...] = ("calibration", "test", "all")
"""Allowed ``split`` values of :func:`load_world_facts`."""

CALIBRATION_FRACTION = 0.4

_TEMPLATES: Mapping[str, str] = {
    "capital": "What is the capital of {country}?",
    "continent": "Which continent is {country} in?",
    "language": "What is the official language of {country}?",
    "demonym": "What is the demonym for people from {country}?",
}
_LANGUAGE_TEMPLATE_MANY = "What is one of the official languages of {country}?"

SHOTS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "capital": (("france", "Paris"), ("japan", "Tokyo")),
    "continent": (("france", "Europe"), ("brazil", "South America")),
    "language": (("germany", "German"), ("brazil", "Portuguese")),
    "demonym": (("netherlands", "Dutch"), ("brazil", "Brazilian")),
}
"""Per attribute, the two fixed few-shot examples as (countryinfo key, answer); excluded from the data."""

# ---------------------------------------------------------------------------------------------
# Curation tables
# ---------------------------------------------------------------------------------------------

# Entities that are not a current, inhabited country or territory, or duplicate another entry.
_EXCLUDED_ENTITIES = frozenset(
    {
        "antarctica",
        "antilles néerlandaises",  # dissolved 2010
        "serbia and montenegro",  # dissolved 2006
        "burma",  # duplicate of "myanmar"
        "palestine, state of",  # duplicate of "palestine"
        "holy see (vatican city state)",  # duplicate of "vatican city state"
        "scotland",  # constituent country, no ISO code
        "wales",
        "bouvet island",
        "heard island and mcdonald islands",
        "united states minor outlying islands",
        "french southern and antarctic lands",
        "south georgia",
        "british indian ocean territory",
    }
)

# Per attribute, countries whose value is contested, ambiguous or stale in the package.
_SKIP: Mapping[str, frozenset[str]] = {
    "capital": frozenset(
        {
            "hong kong",  # "City of Victoria" is not a capital in current usage
            "palestine",  # contested
            "tokelau",  # rotating administrative centre
            "israel",  # contested
            "western sahara",  # disputed territory
        }
    ),
    "continent": frozenset(
        {
            # transcontinental or commonly counted on another continent
            "armenia",
            "azerbaijan",
            "cyprus",
            "egypt",
            "georgia",
            "greenland",
            "kazakhstan",
            "russia",
            "turkey",
            "western sahara",
        }
    ),
    "language": frozenset({"western sahara", "palestine"}),
    "demonym": frozenset(
        {
            "palestine",
            "western sahara",
            "vatican city state",  # package: "Vaticanian"
            "northern mariana islands",  # package: "American"
        }
    ),
}

# Corrections of stale package values: (country, field) -> value.
_FIXES: Mapping[tuple[str, str], Any] = {
    ("kazakhstan", "capital"): "Astana",  # renamed back from Nur-Sultan in 2022
    ("philippines", "languages"): ["fil", "en"],  # Filipino is co-official (package: en only)
}

# Extra accepted capitals (spelling variants, other seats of government).
_CAPITAL_ALIASES: Mapping[str, tuple[str, ...]] = {
    "bolivia": ("La Paz",),
    "south africa": ("Cape Town", "Bloemfontein"),
    "united states": ("Washington",),
    "ukraine": ("Kiev",),
    "kazakhstan": ("Nur-Sultan",),
    "myanmar": ("Nay Pyi Taw", "Naypyitaw"),
    "kiribati": ("Tarawa",),
    "palau": ("Melekeok",),
    "swaziland": ("Mbabane",),
    "sri lanka": ("Sri Jayawardenepura Kotte", "Kotte"),
    "vatican city state": ("Vatican",),
    "saint helena": ("Jamestown",),
    "french polynesia": ("Papeete",),
    "mongolia": ("Ulan Bator",),
    "india": ("Delhi",),
    "guam": ("Agana",),
    "san marino": ("San Marino",),
    "kuwait": ("Kuwait",),
}

# Extra accepted demonyms: spelling variants and the noun where the package gives an adjective.
_DEMONYM_ALIASES: Mapping[str, tuple[str, ...]] = {
    "argentina": ("Argentine", "Argentinian"),
    "botswana": ("Batswana", "Botswanan"),
    "cape verde": ("Cape Verdean",),
    "comoros": ("Comorian",),
    "denmark": ("Dane",),
    "ecuador": ("Ecuadorian",),
    "el salvador": ("Salvadorean",),
    "finland": ("Finn",),
    "france": ("Frenchman", "Frenchwoman"),
    "guadeloupe": ("Guadeloupean",),
    "guinea-bissau": ("Bissau-Guinean",),
    "hong kong": ("Hongkonger", "Hong Konger"),
    "iceland": ("Icelandic",),
    "ireland": ("Irishman", "Irishwoman"),
    "kazakhstan": ("Kazakh",),
    "kyrgyzstan": ("Kyrgyz", "Kyrgyzstani"),
    "laos": ("Lao",),
    "lesotho": ("Basotho",),
    "luxembourg": ("Luxembourgish",),
    "macau": ("Macanese",),
    "maldives": ("Maldivian",),
    "monaco": ("Monacan",),
    "nepal": ("Nepali",),
    "philippines": ("Philippine",),
    "poland": ("Pole",),
    "saint kitts and nevis": ("Kittitian", "Kittian"),
    "slovakia": ("Slovakian",),
    "slovenia": ("Slovenian",),
    "spain": ("Spaniard",),
    "suriname": ("Surinamese",),
    "sweden": ("Swede",),
    "tajikistan": ("Tajik", "Tajikistani"),
    "turkey": ("Turk",),
    "united kingdom": ("Briton", "Brit"),
    "uzbekistan": ("Uzbek",),
}

# Country names as they read in a question (article, no "X, Y" catalogue order).
_DISPLAY_NAMES: Mapping[str, str] = {
    "virgin islands, british": "the British Virgin Islands",
    "virgin islands, u.s.": "the United States Virgin Islands",
    "saint martin (french part)": "Saint Martin",
    "sint maarten (dutch part)": "Sint Maarten",
    "vatican city state": "Vatican City",
    "the bahamas": "the Bahamas",
    "the gambia": "the Gambia",
}
_THE_PREFIXES = ("united ", "republic ", "democratic ", "federated ", "central african ", "isle ")
_THE_NAMES = frozenset(
    {
        "czech republic",
        "dominican republic",
        "netherlands",
        "philippines",
        "maldives",
        "comoros",
        "seychelles",
    }
)

_CONTINENT_ALIASES: Mapping[str, tuple[str, ...]] = {
    "Americas": ("America",),  # also matches "North America", "South America", "Central America"
    "Oceania": ("Australia", "Australasia"),
}

# ISO 639 code (as the package spells it) -> English name, extra aliases.
LANGUAGE_NAMES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "af": ("Afrikaans", ()),
    "am": ("Amharic", ()),
    "ar": ("Arabic", ()),
    "ay": ("Aymara", ()),
    "az": ("Azerbaijani", ("Azeri",)),
    "be": ("Belarusian", ()),
    "bg": ("Bulgarian", ()),
    "bi": ("Bislama", ()),
    "bn": ("Bengali", ("Bangla",)),
    "bs": ("Bosnian", ()),
    "ca": ("Catalan", ()),
    "ch": ("Chamorro", ()),
    "cnr": ("Montenegrin", ()),
    "cs": ("Czech", ()),
    "da": ("Danish", ()),
    "de": ("German", ()),
    "dv": ("Dhivehi", ("Maldivian", "Divehi")),
    "dz": ("Dzongkha", ()),
    "el": ("Greek", ()),
    "en": ("English", ()),
    "es": ("Spanish", ("Castilian",)),
    "et": ("Estonian", ()),
    "fa": ("Persian", ("Farsi",)),
    "ff": ("Fula", ("Fulani", "Fulfulde")),
    "fi": ("Finnish", ()),
    "fil": ("Filipino", ("Tagalog",)),
    "fj": ("Fijian", ()),
    "fo": ("Faroese", ()),
    "fr": ("French", ()),
    "ga": ("Irish", ("Irish Gaelic",)),
    "gn": ("Guaraní", ()),
    "gv": ("Manx", ()),
    "he": ("Hebrew", ()),
    "hi": ("Hindi", ()),
    "hr": ("Croatian", ()),
    "ht": ("Haitian Creole", ()),
    "hu": ("Hungarian", ()),
    "hy": ("Armenian", ()),
    "id": ("Indonesian", ("Bahasa Indonesia",)),
    "is": ("Icelandic", ()),
    "it": ("Italian", ()),
    "ja": ("Japanese", ()),
    "ka": ("Georgian", ()),
    "kg": ("Kongo", ("Kikongo",)),
    "kk": ("Kazakh", ()),
    "kl": ("Greenlandic", ("Kalaallisut",)),
    "km": ("Khmer", ()),
    "ko": ("Korean", ()),
    "ku": ("Kurdish", ()),
    "ky": ("Kyrgyz", ("Kirghiz",)),
    "la": ("Latin", ()),
    "lb": ("Luxembourgish", ()),
    "ln": ("Lingala", ()),
    "lo": ("Lao", ("Laotian",)),
    "lt": ("Lithuanian", ()),
    "lu": ("Luba-Katanga", ("Tshiluba",)),
    "lv": ("Latvian", ()),
    "mg": ("Malagasy", ()),
    "mh": ("Marshallese", ()),
    "mi": ("Māori", ()),
    "mk": ("Macedonian", ()),
    "mn": ("Mongolian", ()),
    "ms": ("Malay", ()),
    "mt": ("Maltese", ()),
    "my": ("Burmese", ()),
    "na": ("Nauruan", ()),
    "nb": ("Norwegian Bokmål", ("Bokmål",)),
    "nd": ("Northern Ndebele", ("Ndebele",)),
    "ne": ("Nepali", ("Nepalese",)),
    "nl": ("Dutch", ()),
    "nn": ("Norwegian Nynorsk", ("Nynorsk",)),
    "no": ("Norwegian", ()),
    "nr": ("Southern Ndebele", ("Ndebele",)),
    "ny": ("Chichewa", ("Chewa", "Nyanja")),
    "oc": ("Occitan", ()),
    "pa": ("Papiamento", ()),  # the package uses "pa" for Aruba's Papiamento
    "pl": ("Polish", ()),
    "ps": ("Pashto", ()),
    "pt": ("Portuguese", ()),
    "qu": ("Quechua", ()),
    "rn": ("Kirundi", ("Rundi",)),
    "ro": ("Romanian", ("Moldovan",)),
    "rs": ("Serbian", ()),  # the package's (non-standard) code for Serbia
    "ru": ("Russian", ()),
    "rw": ("Kinyarwanda", ()),
    "sg": ("Sango", ()),
    "si": ("Sinhala", ("Sinhalese",)),
    "sk": ("Slovak", ()),
    "sl": ("Slovene", ("Slovenian",)),
    "sm": ("Samoan", ()),
    "sn": ("Shona", ()),
    "so": ("Somali", ()),
    "sq": ("Albanian", ()),
    "sr": ("Serbian", ()),
    "ss": ("Swazi", ("Swati", "siSwati")),
    "st": ("Sesotho", ("Sotho",)),
    "sv": ("Swedish", ()),
    "sw": ("Swahili", ("Kiswahili",)),
    "ta": ("Tamil", ()),
    "tg": ("Tajik", ()),
    "th": ("Thai", ()),
    "ti": ("Tigrinya", ()),
    "tk": ("Turkmen", ()),
    "tn": ("Tswana", ("Setswana",)),
    "to": ("Tongan", ()),
    "tr": ("Turkish", ()),
    "ts": ("Tsonga", ()),
    "uk": ("Ukrainian", ()),
    "ur": ("Urdu", ()),
    "uz": ("Uzbek", ()),
    "ve": ("Venda", ()),
    "vi": ("Vietnamese", ()),
    "xh": ("Xhosa", ()),
    "zh": ("Chinese", ("Mandarin",)),
    "zu": ("Zulu", ()),
}


# ---------------------------------------------------------------------------------------------
# Normalisation and scoring
# ---------------------------------------------------------------------------------------------

# Letters that NFKD does not decompose into base letter + combining mark.
_LETTER_FOLDS = str.maketrans(
    {"đ": "d", "ð": "d", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "þ": "th", "ı": "i"}
)
_APOSTROPHES = frozenset("'’ʼʻ`´")


def _tokens(text: str, *, join_apostrophes: bool) -> tuple[str, ...]:
    text = unicodedata.normalize("NFKD", text.casefold()).translate(_LETTER_FOLDS)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("M"):  # combining accent
            continue
        if ch in _APOSTROPHES or (join_apostrophes and ch in "-."):
            out.append("" if join_apostrophes else " ")
        elif cat[0] in "LN" and cat != "Lm":
            out.append(ch)
        else:
            out.append(" ")
    tokens = "".join(out).split()
    return tuple("saint" if t == "st" else t for t in tokens)


def normalize_answer(text: str) -> str:
    """Casefold, strip accents, turn punctuation into spaces, collapse whitespace.

    ``"St. John's"`` → ``"saint john s"``; ``"Bogotá"`` → ``"bogota"``; ``"+33"`` → ``"33"``.
    (The abbreviation "st" is read as "saint".)
    """
    return " ".join(_tokens(text, join_apostrophes=False))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    if n == 0:
        return False
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def is_correct(prediction: str, example: QAExample) -> bool:
    """Whether ``prediction`` answers ``example``.

    Only the first non-empty line of the prediction counts. Both sides are normalised (casefold,
    accents stripped, punctuation removed, whitespace collapsed); the prediction is right when any
    alias occurs in it as a whole-word sequence, so "Paris, France." answers "Paris" but "Parish"
    does not, and "+331" does not answer "+33". Apostrophes and hyphens are compared both as word
    breaks and as nothing ("N'Djamena" = "Ndjamena", "Port-au-Prince" = "Port au Prince").
    """
    lines = [line for line in prediction.strip().splitlines() if line.strip()]
    if not lines:
        return False
    first = lines[0]
    for join in (False, True):
        pred = _tokens(first, join_apostrophes=join)
        if any(_contains(pred, _tokens(alias, join_apostrophes=join)) for alias in example.aliases):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _slug(key: str) -> str:
    text = unicodedata.normalize("NFKD", key.casefold()).translate(_LETTER_FOLDS)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def _display_name(key: str, name: str) -> str:
    if key in _DISPLAY_NAMES:
        return _DISPLAY_NAMES[key]
    low = name.casefold()
    if low in _THE_NAMES or low.startswith(_THE_PREFIXES) or low.endswith(" islands"):
        return "the " + name
    return name


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for item in items:
        norm = normalize_answer(item)
        if item and norm and norm not in seen:
            seen.add(norm)
            out.append(item)
    return tuple(out)


def _answers(attribute: str, key: str, data: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """Gold answer and extra aliases of one attribute of one country, or None to skip it."""
    if attribute == "capital":
        capital = data.get("capital")
        if isinstance(capital, list):
            capital = capital[0] if len(capital) == 1 else None
        if not capital or "/" in capital:
            return None
        return capital, _CAPITAL_ALIASES.get(key, ())
    if attribute == "continent":
        region = data.get("region")
        if region not in ("Africa", "Americas", "Asia", "Europe", "Oceania"):
            return None
        return region, _CONTINENT_ALIASES.get(region, ())
    if attribute == "language":
        codes = data.get("languages") or []
        if not codes or any(code not in LANGUAGE_NAMES for code in codes):
            return None
        names: list[str] = []
        for code in codes:
            name, extra = LANGUAGE_NAMES[code]
            names += [name, *extra]
        return names[0], tuple(names[1:])
    if attribute == "demonym":
        demonym = data.get("demonym")
        if not demonym:
            return None
        parts = [p.strip() for p in re.split(r"[,/]", demonym) if p.strip()]
        name = str(data.get("name", ""))
        if not parts or any(normalize_answer(p) == normalize_answer(name) for p in parts):
            return None  # the package repeats the country name where it has no demonym
        return parts[0], (*parts[1:], *_DEMONYM_ALIASES.get(key, ()))
    raise AssertionError(attribute)  # pragma: no cover


def _question(attribute: str, country: str, data: Mapping[str, Any]) -> str:
    if attribute == "language" and len(data.get("languages") or []) > 1:
        template = _LANGUAGE_TEMPLATE_MANY
    else:
        template = _TEMPLATES[attribute]
    return template.format(country=country)


def _countries() -> dict[str, dict[str, Any]]:
    from countryinfo import CountryInfo

    raw = CountryInfo.all()
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(raw):
        if key in _EXCLUDED_ENTITIES or not raw[key].get("name"):
            continue
        data = dict(raw[key])
        for (country, field), value in _FIXES.items():
            if country == key:
                data[field] = value
        out[key] = data
    return out


def _shot_ids() -> frozenset[str]:
    return frozenset(f"{attr}/{_slug(key)}" for attr, shots in SHOTS.items() for key, _ in shots)


@functools.lru_cache(maxsize=1)
def _build() -> tuple[QAExample, ...]:
    countries = _countries()
    shot_ids = _shot_ids()
    examples: list[QAExample] = []
    for attribute in ATTRIBUTES:
        skip = _SKIP.get(attribute, frozenset())
        for key, data in countries.items():
            example_id = f"{attribute}/{_slug(key)}"
            if key in skip or example_id in shot_ids:
                continue
            found = _answers(attribute, key, data)
            if found is None:
                continue
            answer, extra = found
            country = _display_name(key, str(data["name"]))
            examples.append(
                QAExample(
                    id=example_id,
                    question=_question(attribute, country, data),
                    answer=answer,
                    aliases=_dedupe((answer, *extra)),
                    attribute=attribute,
                    difficulty=DIFFICULTY[attribute],
                    country=str(data["name"]),
                )
            )
    examples.sort(key=lambda ex: ex.id)
    return tuple(examples)


def build_world_facts() -> list[QAExample]:
    """Every example of every attribute, sorted by ``id`` (deterministic; shots excluded)."""
    return list(_build())


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


@functools.cache
def _shot_block(attribute: str) -> str:
    countries = _countries()
    lines = []
    for key, answer in SHOTS[attribute]:
        data = countries[key]
        question = _question(attribute, _display_name(key, str(data["name"])), data)
        lines.append(f"Q: {question}\nA: {answer}\n\n")
    return "".join(lines)


def few_shot_prompt(example: QAExample) -> str:
    """A 2-shot completion prompt: ``"Q: ...\\nA: ...\\n\\nQ: ...\\nA: ...\\n\\nQ: <question>\\nA:"``.

    The two shots are fixed per attribute (``SHOTS``) and are not in the data set. The model is
    meant to continue after ``"A:"`` and stop at the newline.
    """
    if example.attribute not in SHOTS:
        raise ConfigurationError(
            f"no few-shot examples for attribute {example.attribute!r}; allowed: {', '.join(ATTRIBUTES)}"
        )
    return f"{_shot_block(example.attribute)}Q: {example.question}\nA:"


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def _rank_key(seed: int, example: QAExample) -> str:
    return hashlib.sha256(f"{seed}:{example.id}".encode()).hexdigest()


def _check_attributes(attributes: str | Iterable[str] | None) -> tuple[str, ...]:
    if attributes is None:
        return ATTRIBUTES
    chosen = (attributes,) if isinstance(attributes, str) else tuple(attributes)
    unknown = [a for a in chosen if a not in ATTRIBUTES]
    if unknown or not chosen:
        raise ConfigurationError(
            f"unknown attribute(s) {unknown!r}; allowed: {', '.join(ATTRIBUTES)}"
            if unknown
            else f"attributes must not be empty; allowed: {', '.join(ATTRIBUTES)}"
        )
    return tuple(sorted(set(chosen)))


def _quotas(sizes: Mapping[str, int], limit: int) -> dict[str, int]:
    """Spread ``limit`` as evenly as possible over the attributes, capped by their sizes."""
    quotas = {a: 0 for a in sizes}
    remaining = min(limit, sum(sizes.values()))
    while remaining > 0:
        open_attrs = [a for a in sorted(sizes) if quotas[a] < sizes[a]]
        share, extra = divmod(remaining, len(open_attrs))
        for i, a in enumerate(open_attrs):
            take = min(share + (1 if i < extra else 0), sizes[a] - quotas[a])
            quotas[a] += take
            remaining -= take
    return quotas


def load_world_facts(
    split: str = "test",
    *,
    seed: int = 0,
    attributes: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> list[QAExample]:
    """One split of the world-facts data, sorted by ``id``.

    ``split`` is ``"calibration"`` (40 % of each attribute), ``"test"`` (the other 60 %) or
    ``"all"``; the assignment is a fixed function of ``seed`` and each example's id (see the module
    docstring). ``attributes`` restricts to some attribute types (default: all). ``limit`` keeps a
    deterministic subset of at most ``limit`` examples, spread evenly over the attributes.

    Raises:
        ConfigurationError: unknown split or attribute, or a negative limit.
    """
    if split not in SPLITS:
        raise ConfigurationError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    chosen = _check_attributes(attributes)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigurationError(f"limit must be a non-negative integer or None, got {limit!r}")

    by_attr: dict[str, list[QAExample]] = {a: [] for a in chosen}
    for example in _build():
        if example.attribute in by_attr:
            by_attr[example.attribute].append(example)

    selected: dict[str, list[QAExample]] = {}
    for attribute, items in by_attr.items():
        ranked = sorted(items, key=lambda ex: _rank_key(seed, ex))
        n_cal = round(CALIBRATION_FRACTION * len(ranked))
        if split == "calibration":
            selected[attribute] = ranked[:n_cal]
        elif split == "test":
            selected[attribute] = ranked[n_cal:]
        else:
            selected[attribute] = ranked
    if limit is not None:
        quotas = _quotas({a: len(v) for a, v in selected.items()}, limit)
        selected = {a: v[: quotas[a]] for a, v in selected.items()}
    return sorted((ex for items in selected.values() for ex in items), key=lambda ex: ex.id)


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def write_jsonl(examples: Iterable[QAExample], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line: id, prompt (:func:`few_shot_prompt`), answer, aliases,
    attribute, difficulty. UTF-8, parent directories created. Returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for ex in examples:
            record = {
                "id": ex.id,
                "prompt": few_shot_prompt(ex),
                "answer": ex.answer,
                "aliases": list(ex.aliases),
                "attribute": ex.attribute,
                "difficulty": ex.difficulty,
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out

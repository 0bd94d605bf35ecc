"""World-facts QA: short factual questions about countries, with checkable answers.

Provenance
----------
Facts come from the JSON files shipped in the ``countryinfo`` package (PyPI, version 1.0.1 when this
was written; ``countryinfo.CountryInfo.all()``), read at run time; nothing is downloaded. The
package stores currencies as ISO 4217 codes and languages as ISO 639-1 codes; the English names
for those codes are the tables ``CURRENCY_NAMES`` and ``LANGUAGE_NAMES`` in this module. A few
stale package values are corrected here (``_FIXES``: Kazakhstan's capital is Astana again since
2022, Croatia uses the euro since 2023), a few entities are left out entirely (dissolved states,
duplicate entries, uninhabited territories: ``_EXCLUDED_ENTITIES``), and per attribute, countries
whose value is missing, contested or ambiguous are skipped (``_SKIP``; e.g. transcontinental
countries for the continent question, multi-currency countries for the currency question).

The build is deterministic: the same installed package gives the same examples, sorted by ``id``.
The two few-shot examples of every attribute (``SHOTS``) are excluded from the data set.

Splits
------
``load_world_facts`` splits every attribute separately (stratified by attribute): each example is
ranked by ``sha256(f"{seed}:{id}")``; the first 40 % (rounded) of an attribute's ranking form the
``"calibration"`` split, the rest the ``"test"`` split. Because the rank depends on the example's
own id only, adding or removing one country moves no other example between splits. ``limit``
takes, per attribute, the first examples of that same ranking, spreading the quota evenly over
the attributes (so a small demo still covers every attribute).

Measured with the embedded default pair
---------------------------------------
SmolLM2-135M-Instruct (small) and Gemma-3-270M base (large), both from their GGUF files, 2-shot
completion prompts from :func:`few_shot_prompt`, greedy decoding, 8 new tokens, stop at newline,
scored with :func:`is_correct`. Margin AUROC = how well the small model's first-token probability
margin (p_top1 - p_top2 at the first generated step) ranks its correct answers above its wrong
ones (0.5 = no signal). 25 questions per attribute drawn with ``load_world_facts("all", limit=...)``
(measuring script not part of the package):

MEASURED_TABLE_PLACEHOLDER

Attributes kept in the data set and their difficulty (by the measured accuracy of the pair):
see ``ATTRIBUTES`` and ``DIFFICULTY``.
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

ATTRIBUTES: tuple[str, ...] = (
    "calling_code",
    "capital",
    "continent",
    "currency",
    "demonym",
    "language",
    "subregion",
    "tld",
)
"""The attribute types in the data set, sorted."""

DIFFICULTY: Mapping[str, str] = {
    "capital": "easy",
    "continent": "easy",
    "demonym": "easy",
    "currency": "medium",
    "language": "medium",
    "tld": "medium",
    "subregion": "hard",
    "calling_code": "hard",
}
"""Difficulty of each attribute, from the measured accuracy of the embedded pair."""

SPLITS: tuple[str, ...] = ("calibration", "test", "all")
"""Allowed ``split`` values of :func:`load_world_facts`."""

CALIBRATION_FRACTION = 0.4

_TEMPLATES: Mapping[str, str] = {
    "capital": "What is the capital of {country}?",
    "continent": "Which continent is {country} in?",
    "subregion": "Which region of the world is {country} in?",
    "currency": "What is the currency of {country}?",
    "language": "What is the official language of {country}?",
    "calling_code": "What is the international calling code of {country}?",
    "demonym": "What is the demonym for people from {country}?",
    "tld": "What is the internet country code top-level domain of {country}?",
}
_LANGUAGE_TEMPLATE_MANY = "What is one of the official languages of {country}?"

SHOTS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "capital": (("france", "Paris"), ("japan", "Tokyo")),
    "continent": (("france", "Europe"), ("brazil", "South America")),
    "subregion": (("germany", "Western Europe"), ("kenya", "Eastern Africa")),
    "currency": (("japan", "Japanese yen"), ("mexico", "Mexican peso")),
    "language": (("germany", "German"), ("brazil", "Portuguese")),
    "calling_code": (("france", "+33"), ("japan", "+81")),
    "demonym": (("netherlands", "Dutch"), ("brazil", "Brazilian")),
    "tld": (("germany", ".de"), ("japan", ".jp")),
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
    "subregion": frozenset({"western sahara", "palestine"}),
    "currency": frozenset({"zimbabwe", "palestine", "western sahara"}),
    "language": frozenset({"western sahara", "palestine"}),
    "calling_code": frozenset({"palestine", "western sahara"}),
    "demonym": frozenset({"palestine", "western sahara"}),
    "tld": frozenset({"western sahara"}),
}

# Corrections of stale package values: (country, field) -> value.
_FIXES: Mapping[tuple[str, str], Any] = {
    ("kazakhstan", "capital"): "Astana",  # renamed back from Nur-Sultan in 2022
    ("croatia", "currencies"): ["EUR"],  # euro since 2023 (package: HRK)
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

# ISO 4217 code -> English name, extra aliases (the last word is added automatically when unique).
CURRENCY_NAMES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "AED": ("UAE dirham", ("Emirati dirham", "United Arab Emirates dirham")),
    "AFN": ("Afghan afghani", ()),
    "ALL": ("Albanian lek", ()),
    "AMD": ("Armenian dram", ()),
    "AOA": ("Angolan kwanza", ()),
    "ARS": ("Argentine peso", ("Argentinian peso",)),
    "AUD": ("Australian dollar", ()),
    "AWG": ("Aruban florin", ()),
    "AZN": ("Azerbaijani manat", ()),
    "BAM": ("Bosnia and Herzegovina convertible mark", ("convertible mark", "Bosnian mark")),
    "BBD": ("Barbadian dollar", ("Barbados dollar",)),
    "BDT": ("Bangladeshi taka", ()),
    "BGN": ("Bulgarian lev", ()),
    "BHD": ("Bahraini dinar", ()),
    "BIF": ("Burundian franc", ()),
    "BMD": ("Bermudian dollar", ("Bermuda dollar",)),
    "BND": ("Brunei dollar", ()),
    "BRL": ("Brazilian real", ()),
    "BSD": ("Bahamian dollar", ()),
    "BWP": ("Botswana pula", ()),
    "BYR": ("Belarusian ruble", ("Belarusian rouble",)),
    "BZD": ("Belize dollar", ()),
    "CAD": ("Canadian dollar", ()),
    "CDF": ("Congolese franc", ()),
    "CHF": ("Swiss franc", ()),
    "CNY": ("Chinese yuan", ("renminbi", "RMB")),
    "COP": ("Colombian peso", ()),
    "CRC": ("Costa Rican colón", ()),
    "CVE": ("Cape Verdean escudo", ()),
    "CZK": ("Czech koruna", ("Czech crown",)),
    "DJF": ("Djiboutian franc", ()),
    "DKK": ("Danish krone", ("Danish crown",)),
    "DOP": ("Dominican peso", ()),
    "DZD": ("Algerian dinar", ()),
    "EGP": ("Egyptian pound", ()),
    "ERN": ("Eritrean nakfa", ()),
    "ETB": ("Ethiopian birr", ()),
    "EUR": ("Euro", ()),
    "FJD": ("Fijian dollar", ("Fiji dollar",)),
    "FKP": ("Falkland Islands pound", ()),
    "GBP": ("Pound sterling", ("British pound", "sterling")),
    "GEL": ("Georgian lari", ()),
    "GHS": ("Ghanaian cedi", ()),
    "GIP": ("Gibraltar pound", ()),
    "GMD": ("Gambian dalasi", ()),
    "GNF": ("Guinean franc", ()),
    "GTQ": ("Guatemalan quetzal", ()),
    "GYD": ("Guyanese dollar", ()),
    "HKD": ("Hong Kong dollar", ()),
    "HNL": ("Honduran lempira", ()),
    "HUF": ("Hungarian forint", ()),
    "IDR": ("Indonesian rupiah", ()),
    "ILS": ("Israeli new shekel", ("new shekel",)),
    "INR": ("Indian rupee", ()),
    "IQD": ("Iraqi dinar", ()),
    "IRR": ("Iranian rial", ()),
    "ISK": ("Icelandic króna", ("Icelandic crown",)),
    "JMD": ("Jamaican dollar", ()),
    "JOD": ("Jordanian dinar", ()),
    "JPY": ("Japanese yen", ()),
    "KES": ("Kenyan shilling", ()),
    "KGS": ("Kyrgyzstani som", ("Kyrgyz som",)),
    "KHR": ("Cambodian riel", ()),
    "KMF": ("Comorian franc", ()),
    "KPW": ("North Korean won", ()),
    "KRW": ("South Korean won", ()),
    "KWD": ("Kuwaiti dinar", ()),
    "KYD": ("Cayman Islands dollar", ()),
    "KZT": ("Kazakhstani tenge", ()),
    "LAK": ("Lao kip", ("Laotian kip",)),
    "LBP": ("Lebanese pound", ()),
    "LKR": ("Sri Lankan rupee", ()),
    "LRD": ("Liberian dollar", ()),
    "LYD": ("Libyan dinar", ()),
    "MAD": ("Moroccan dirham", ()),
    "MDL": ("Moldovan leu", ()),
    "MGA": ("Malagasy ariary", ()),
    "MKD": ("Macedonian denar", ()),
    "MMK": ("Burmese kyat", ("Myanmar kyat",)),
    "MNT": ("Mongolian tögrög", ("tugrik", "Mongolian tugrik")),
    "MOP": ("Macanese pataca", ()),
    "MRO": ("Mauritanian ouguiya", ()),
    "MUR": ("Mauritian rupee", ()),
    "MVR": ("Maldivian rufiyaa", ()),
    "MWK": ("Malawian kwacha", ()),
    "MXN": ("Mexican peso", ()),
    "MYR": ("Malaysian ringgit", ()),
    "MZN": ("Mozambican metical", ()),
    "NGN": ("Nigerian naira", ()),
    "NIO": ("Nicaraguan córdoba", ()),
    "NOK": ("Norwegian krone", ("Norwegian crown",)),
    "NPR": ("Nepalese rupee", ("Nepali rupee",)),
    "NZD": ("New Zealand dollar", ()),
    "OMR": ("Omani rial", ()),
    "PEN": ("Peruvian sol", ()),
    "PGK": ("Papua New Guinean kina", ()),
    "PHP": ("Philippine peso", ("Filipino peso",)),
    "PKR": ("Pakistani rupee", ()),
    "PLN": ("Polish złoty", ()),
    "PYG": ("Paraguayan guaraní", ()),
    "QAR": ("Qatari riyal", ()),
    "RON": ("Romanian leu", ()),
    "RSD": ("Serbian dinar", ()),
    "RUB": ("Russian ruble", ("Russian rouble", "rouble")),
    "RWF": ("Rwandan franc", ()),
    "SAR": ("Saudi riyal", ("Saudi Arabian riyal",)),
    "SBD": ("Solomon Islands dollar", ()),
    "SCR": ("Seychellois rupee", ()),
    "SDG": ("Sudanese pound", ()),
    "SEK": ("Swedish krona", ("Swedish crown",)),
    "SGD": ("Singapore dollar", ()),
    "SHP": ("Saint Helena pound", ()),
    "SLL": ("Sierra Leonean leone", ()),
    "SOS": ("Somali shilling", ()),
    "SRD": ("Surinamese dollar", ()),
    "SSP": ("South Sudanese pound", ()),
    "STD": ("São Tomé and Príncipe dobra", ()),
    "SYP": ("Syrian pound", ()),
    "SZL": ("Swazi lilangeni", ()),
    "THB": ("Thai baht", ()),
    "TJS": ("Tajikistani somoni", ()),
    "TMT": ("Turkmenistan manat", ("Turkmen manat",)),
    "TND": ("Tunisian dinar", ()),
    "TOP": ("Tongan paʻanga", ()),
    "TRY": ("Turkish lira", ()),
    "TTD": ("Trinidad and Tobago dollar", ()),
    "TWD": ("New Taiwan dollar", ("Taiwan dollar", "Taiwanese dollar")),
    "TZS": ("Tanzanian shilling", ()),
    "UAH": ("Ukrainian hryvnia", ()),
    "UGX": ("Ugandan shilling", ()),
    "USD": ("United States dollar", ("US dollar", "U.S. dollar", "American dollar")),
    "UZS": ("Uzbekistani som", ("Uzbek som",)),
    "VEF": ("Venezuelan bolívar", ()),
    "VND": ("Vietnamese đồng", ()),
    "VUV": ("Vanuatu vatu", ()),
    "WST": ("Samoan tālā", ()),
    "XAF": ("Central African CFA franc", ("CFA franc",)),
    "XCD": ("East Caribbean dollar", ("Eastern Caribbean dollar",)),
    "XOF": ("West African CFA franc", ("CFA franc",)),
    "XPF": ("CFP franc", ("Pacific franc",)),
    "YER": ("Yemeni rial", ()),
    "ZAR": ("South African rand", ()),
    "ZMK": ("Zambian kwacha", ()),
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

_SUBREGION_ALIASES: Mapping[str, tuple[str, ...]] = {
    "Western Asia": ("Middle East",),
    "Australia and New Zealand": ("Australasia",),
    "Middle Africa": ("Central Africa",),
    "Northern America": ("North America",),
    "South-eastern Asia": ("Southeast Asia", "South East Asia"),
}
_DIRECTION_SHORT = {"Western": "West", "Eastern": "East", "Northern": "North", "Southern": "South"}

# ---------------------------------------------------------------------------------------------
# Normalisation and scoring
# ---------------------------------------------------------------------------------------------

# Letters that NFKD does not decompose into base letter + combining mark.
_LETTER_FOLDS = str.maketrans({"đ": "d", "ð": "d", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "þ": "th", "ı": "i"})
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


@functools.lru_cache(maxsize=1)
def _currency_last_words() -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, _ in CURRENCY_NAMES.values():
        last = name.split()[-1]
        counts[normalize_answer(last)] = counts.get(normalize_answer(last), 0) + 1
    return counts


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
    if attribute == "subregion":
        sub = data.get("intermediateregion") or data.get("subregion")
        if not sub or sub in ("Channel Islands", "Sub-Saharan Africa", "Latin America and the Caribbean"):
            return None
        sub = "South-eastern Asia" if sub == "South-Eastern Asia" else sub
        extra = list(_SUBREGION_ALIASES.get(sub, ()))
        first, _, rest = sub.partition(" ")
        if first in _DIRECTION_SHORT:
            extra.append(f"{_DIRECTION_SHORT[first]} {rest}")
        return sub, tuple(extra)
    if attribute == "currency":
        codes = data.get("currencies") or []
        if len(codes) != 1 or codes[0] not in CURRENCY_NAMES:
            return None
        name, extra = CURRENCY_NAMES[codes[0]]
        last = name.split()[-1]
        bare = (last,) if " " in name and _currency_last_words()[normalize_answer(last)] == 1 else ()
        return name, (*extra, *bare, codes[0])
    if attribute == "language":
        codes = data.get("languages") or []
        if not codes or any(code not in LANGUAGE_NAMES for code in codes):
            return None
        names: list[str] = []
        for code in codes:
            name, extra = LANGUAGE_NAMES[code]
            names += [name, *extra]
        return names[0], tuple(names[1:])
    if attribute == "calling_code":
        codes = data.get("callingCodes") or []
        if len(codes) != 1 or not codes[0].isdigit():
            return None
        code = codes[0]
        if code.startswith("1") and len(code) > 1:  # NANP area code, "+1" would also be right
            return None
        return "+" + code, ()
    if attribute == "demonym":
        demonym = data.get("demonym")
        if not demonym:
            return None
        parts = [p.strip() for p in re.split(r"[,/]", demonym) if p.strip()]
        name = str(data.get("name", ""))
        if not parts or any(normalize_answer(p) == normalize_answer(name) for p in parts):
            return None  # the package repeats the country name where it has no demonym
        return parts[0], tuple(parts[1:])
    if attribute == "tld":
        tlds = [t for t in data.get("tld") or [] if re.fullmatch(r"\.[a-z]{2}", t)]
        if len(tlds) != 1:
            return None
        return tlds[0], ()
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


@functools.lru_cache(maxsize=None)
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

"""Curation tables of the world-facts data set (:mod:`cascade_core.evaluation.datasets.world_facts`).

Data, not logic: what the build corrects, leaves out, skips and accepts on top of the ``countryinfo``
package's values. Each table says why in its comment; the module docstring of ``world_facts``
describes the provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CAPITAL_ALIASES",
    "CONTINENT_ALIASES",
    "DEMONYM_ALIASES",
    "DISPLAY_NAMES",
    "EXCLUDED_ENTITIES",
    "FIXES",
    "LANGUAGE_NAMES",
    "SKIP",
    "THE_NAMES",
    "THE_PREFIXES",
]

# Entities that are not a current, inhabited country or territory, or duplicate another entry.
EXCLUDED_ENTITIES = frozenset(
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
SKIP: Mapping[str, frozenset[str]] = {
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
FIXES: Mapping[tuple[str, str], Any] = {
    ("kazakhstan", "capital"): "Astana",  # renamed back from Nur-Sultan in 2022
    ("philippines", "languages"): ["fil", "en"],  # Filipino is co-official (package: en only)
}

# Extra accepted capitals (spelling variants, other seats of government).
CAPITAL_ALIASES: Mapping[str, tuple[str, ...]] = {
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
DEMONYM_ALIASES: Mapping[str, tuple[str, ...]] = {
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
DISPLAY_NAMES: Mapping[str, str] = {
    "virgin islands, british": "the British Virgin Islands",
    "virgin islands, u.s.": "the United States Virgin Islands",
    "saint martin (french part)": "Saint Martin",
    "sint maarten (dutch part)": "Sint Maarten",
    "vatican city state": "Vatican City",
    "the bahamas": "the Bahamas",
    "the gambia": "the Gambia",
}
THE_PREFIXES = ("united ", "republic ", "democratic ", "federated ", "central african ", "isle ")
THE_NAMES = frozenset(
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

CONTINENT_ALIASES: Mapping[str, tuple[str, ...]] = {
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

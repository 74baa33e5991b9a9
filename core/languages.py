"""The one table of the languages citizens can chat in: code, own name, writing direction, browser locale.

The widget's picker, the workshop's columns, the console and the bot's language checks all read it
(served at `GET /api/v1/languages`). Adding a language here also needs its widget texts
(web/i18n/<code>.json) and the bot's texts (core/service_texts.yml, actions/).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1
    name: str  # in the language itself, as a speaker looks for it
    direction: str = "ltr"  # ltr | rtl
    swedish: str = ""  # its Swedish name, for the staff pages written in Swedish
    locale: str | None = None  # the BCP 47 tag browsers format numbers and dates with, where not the code


TABLE: tuple[Language, ...] = (
    Language("sv", "Svenska", swedish="Svenska"), Language("en", "English", swedish="Engelska"),
    Language("ar", "العربية", "rtl", "Arabiska"), Language("so", "Soomaali", swedish="Somaliska"),
    Language("fa", "فارسی", "rtl", "Persiska"), Language("fi", "Suomi", swedish="Finska"),
    Language("ku", "Kurdî", swedish="Kurdiska", locale="ku-Latn"), Language("tr", "Türkçe", swedish="Turkiska"),
    Language("pl", "Polski", swedish="Polska"), Language("uk", "Українська", swedish="Ukrainska"),
    Language("da", "Dansk", swedish="Danska"), Language("no", "Norsk", swedish="Norska", locale="nb"),
)
CODES: tuple[str, ...] = tuple(language.code for language in TABLE)
NAMES: dict[str, str] = {language.code: language.name for language in TABLE}
RTL: frozenset[str] = frozenset(language.code for language in TABLE if language.direction == "rtl")


def direction(code: str) -> str:
    return "rtl" if code in RTL else "ltr"


def public() -> list[dict]:
    """The table as clients read it (`rtl` kept for the workshop's older reader)."""
    return [{**asdict(language), "rtl": language.direction == "rtl"} for language in TABLE]

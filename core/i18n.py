"""The service's own words to citizens, per language, from service_texts.yml."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from core import yaml_loader


@cache
def _catalog() -> dict[str, dict[str, str]]:
    return yaml_loader.load((Path(__file__).with_name("service_texts.yml")).read_text(encoding="utf-8"))


# Read at import, not on first use: that was on the event loop at the worst moment (the first "Rasa is slow"
# turn), 0.45 s with the pure-Python parser while every other citizen waited.
_catalog()


def say(key: str, language: str) -> str:
    texts = _catalog()[key]
    return texts.get(language) or texts["sv"]


def texts(language: str, prefix: str = "") -> dict[str, str]:
    """Every text whose key starts with `prefix`, in `language` (Swedish where it has none)."""
    return {key: values.get(language) or values["sv"] for key, values in _catalog().items() if key.startswith(prefix)}

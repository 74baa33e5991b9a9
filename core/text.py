"""Cleaning citizen text: what every message goes through before it is stored."""

from __future__ import annotations

import unicodedata

_KEEP = {"\n", "\t"}


def clean_message(text: str) -> str:
    """Normalise to NFC and drop control characters (but not newlines); trims surrounding space."""
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch in _KEEP or unicodedata.category(ch) not in ("Cc", "Cs")).strip()

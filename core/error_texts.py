"""Error texts in the reader's language: `detail` stays English (API clients and tests match on it); a
request that sends Accept-Language also gets `message`, the same error in Swedish or English (and each
field error a `text` beside its English `message`).

The Swedish words come from the string table (`error_*` keys of core/service_texts.yml). Each key's
English text is the detail as the code raises it, with {placeholders} where the f-string puts values:
"no municipality with id '{id}'" matches the detail and fills the Swedish text with the same `id`. So the
raising code stays as it is, and a new error gets Swedish by adding one key. A detail without a key gets
its status's Swedish lead-in (`error_status_404`: "hittades inte: {detail}") before the English text.
"""

from __future__ import annotations

import re
import string
from functools import cache

from core.i18n import texts

OFFERED = ("sv", "en")  # the staff pages' languages; the table has every error_* key in both
FALLBACK = "en"  # a reader whose languages are none of these reads the English detail


def preferred_language(accept_language: str | None) -> str | None:
    """The offered language the Accept-Language header ranks highest ("sv-SE" counts as sv; on equal
    q-values the first named wins); English for a header naming none of them; None without a header."""
    if not accept_language or not accept_language.strip():
        return None
    best, best_q = None, 0.0
    for part in accept_language.split(","):
        tag, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        base = tag.lower().split("-")[0]
        if base in OFFERED and q > best_q:
            best, best_q = base, q
    return best or FALLBACK


def _regex(template: str) -> re.Pattern:
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name:
            parts.append(f"(?P<{name}>.+?)")
    return re.compile("".join(parts), re.DOTALL)


@cache
def _patterns() -> list[tuple[str, re.Pattern]]:
    """The English templates, the longest (most specific) first; the status lead-ins match anything."""
    english = {k: v for k, v in texts("en", "error_").items() if not k.startswith("error_status_")}
    ordered = sorted(english.items(), key=lambda kv: -len(re.sub(r"\{\w+\}", "", kv[1])))
    return [(key, _regex(text)) for key, text in ordered]


def translate(text: str, language: str) -> str | None:
    """`text` (an English detail or field message) in `language`, or None if the table has no key for it."""
    for key, pattern in _patterns():
        found = pattern.fullmatch(text)
        if found:
            return texts(language, key)[key].format(**found.groupdict())
    return None


VALUE_ERROR = "Value error, "  # pydantic's lead-in for a validator's ValueError: the rest is the raised text


def field_text(message: str, language: str) -> str:
    """One field's problem for a reader of `language` (the English message where the table has no key)."""
    if language == "en":
        return message
    return translate(message, language) or translate(message.removeprefix(VALUE_ERROR), language) or message


def localised(status: int, detail: str, errors: list[dict], language: str, from_fields: bool) -> str:
    """The error's text for a reader of `language`. `from_fields`: `detail` is the field errors' summary,
    so each field's message is translated on its own ("text: obligatoriskt fält")."""
    if language == "en":
        return detail
    if from_fields:
        parts = [(e.get("field"), field_text(e["message"], language)) for e in errors]
        return "; ".join(f"{field}: {text}" if field else text for field, text in parts)
    found = translate(detail, language)
    if found is not None:
        return found
    lead_in = texts(language, f"error_status_{status}").get(f"error_status_{status}")
    return lead_in.format(detail=detail) if lead_in else detail

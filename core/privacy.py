"""Personal data in free text: find and mask Swedish personal identity numbers, phone numbers,
e-mail addresses and street addresses.

Why: a citizen types such things into a chat. What staff, webmasters, analytics, logs and Rasa see
is the masked text; the citizen alone sees what they typed (see README, "Security and privacy").
Masking errs on the side of masking: a ten-digit order number that happens to look like a phone
number is masked too, while a personnummer is recognised only with a valid date and check digit
(the Luhn sum), so ordinary numbers are not taken for one.

`references` gives keyed digests of the identifiers found, so one citizen's conversations can be
found later (export, erasure) without the identifiers being stored in clear.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass

PERSONNUMMER, PHONE, EMAIL, ADDRESS = "personnummer", "phone", "email", "address"

# What the masked text shows in place of each kind (the staff's language is Swedish).
PLACEHOLDERS = {
    PERSONNUMMER: "[personnummer]",
    PHONE: "[telefonnummer]",
    EMAIL: "[e-post]",
    ADDRESS: "[adress]",
}

# YYMMDD or YYYYMMDD, then - or + (100 years or older) or a space or nothing, then four digits.
_PERSONNUMMER = re.compile(r"(?<![\d+])((?:1[89]|20)?\d{6})([-+ ]?)(\d{4})(?!\d)")

# After a leading 0 or +46/0046 (optionally "(0)"), 7 to 9 digits with spaces, dashes, a slash or an area code in
# brackets in between: 070-123 45 67, 08-123 456 78, 0480-123 45, (08) 12 34 56, +46 (0)70 123 45 67.
_PHONE = re.compile(r"(?<![\w+])(?:(?:\+|00)\s?46[\s-]?(?:\(0\)[\s-]?)?|\(?0)[1-9](?:[\s\-/)]{0,2}\d){5,8}(?!\d)")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")

_STREET_SUFFIXES = (
    "gatan|gata|vägen|väg|gränden|gränd|torget|torg|stigen|stig|allén|allé|backen|backe|leden|stråket|"
    "platsen|kajen|esplanaden|promenaden|ringen|slingan|svängen|liden|hagen|höjden|gärdet|udden|"
    "gatu|vägs"  # rare forms, kept short of ordinary words
)
_WORD = r"[A-ZÅÄÖÉÜa-zåäöéü][A-ZÅÄÖÉÜa-zåäöéü.-]*"
# "Storgatan 12", "Storgatan 12 B", "Drottning Kristinas väg 5", "Lilla Nygatan 3, lgh 1102, 123 45 Ekby".
_ADDRESS = re.compile(
    rf"(?<![\w-])(?:(?:{_WORD})\s+){{0,2}}[A-ZÅÄÖÉÜa-zåäöéü.-]*(?:{_STREET_SUFFIXES})\s+\d{{1,4}}"
    r"(?-i:(?:[A-Za-z]|\s[A-Z])(?![\w@]))?"  # "12B", "12 B"; not "12 i Ekby"
    r"(?:\s*,?\s*(?:lgh|lägenhet)\.?\s*\d{4})?"
    r"(?:\s*,?\s*\d{3}\s?\d{2}(?-i:\s+[A-ZÅÄÖ][a-zåäöé]+(?:[- ][A-ZÅÄÖ][a-zåäöé]+)?)?)?"
    r"(?![\w])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    value: str


def luhn_ok(digits: str) -> bool:
    """The Luhn check of a ten-digit personnummer (the century is not part of the sum)."""
    total = 0
    for i, ch in enumerate(digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def valid_personnummer(text: str) -> bool:
    """A personnummer or samordningsnummer (day + 60) with a real date and a correct check digit."""
    digits = re.sub(r"[-+ ]", "", text)
    if len(digits) not in (10, 12) or not digits.isdigit():
        return False
    if len(digits) == 12 and digits[:2] not in ("18", "19", "20"):
        return False
    ten = digits[-10:]
    month, day = int(ten[2:4]), int(ten[4:6])
    if day > 60:  # samordningsnummer
        day -= 60
    if not 1 <= month <= 12 or day < 1:
        return False
    year = int(digits[:4]) if len(digits) == 12 else 2000  # 2000 is a leap year: 29 February passes
    if day > calendar.monthrange(year, month)[1]:
        return False
    return luhn_ok(ten)


def _personnummer(text: str) -> list[Finding]:
    return [
        Finding(PERSONNUMMER, m.start(), m.end(), m.group(0))
        for m in _PERSONNUMMER.finditer(text)
        if valid_personnummer(m.group(0))
    ]


def _national_number(value: str) -> str:
    """A Swedish phone number's digits without the country code or trunk 0: "070-123 45 67" -> "701234567"."""
    digits = re.sub(r"\D", "", value)
    if value.startswith("+"):
        digits = digits[2:]
    elif digits.startswith("0046"):
        digits = digits[4:]
    else:
        digits = digits[1:]
    return digits.removeprefix("0")  # the "(0)" some write after +46


def _phones(text: str) -> list[Finding]:
    return [
        Finding(PHONE, m.start(), m.end(), m.group(0))
        for m in _PHONE.finditer(text)
        if 7 <= len(_national_number(m.group(0))) <= 9
    ]


def _emails(text: str) -> list[Finding]:
    return [Finding(EMAIL, m.start(), m.end(), m.group(0)) for m in _EMAIL.finditer(text)]


def _addresses(text: str) -> list[Finding]:
    found = []
    for m in _ADDRESS.finditer(text):
        value = m.group(0)
        words = list(re.finditer(r"\S+", value))
        street = next(i for i, w in enumerate(words) if re.match(r"\d", words[i + 1].group(0)))
        first = street  # leading words belong to the name only when capitalised ("Drottning Kristinas väg")
        while first > 0 and words[first - 1].group(0)[:1].isupper():
            first -= 1
        if first == street and re.fullmatch(_STREET_SUFFIXES, words[street].group(0), re.IGNORECASE):
            continue  # "på väg 5 minuter": a bare "väg" is a street only with a name before it
        start = words[first].start()
        found.append(Finding(ADDRESS, m.start() + start, m.end(), value[start:]))
    return found


def find(text: str) -> list[Finding]:
    """Every piece of personal data in `text`, left to right, without overlaps (the earlier and longer
    finding wins; personnummer before phone numbers, which share their digit patterns)."""
    if not text:
        return []
    candidates = _personnummer(text) + _emails(text) + _addresses(text) + _phones(text)
    order = {PERSONNUMMER: 0, EMAIL: 1, ADDRESS: 2, PHONE: 3}
    chosen: list[Finding] = []
    for f in sorted(candidates, key=lambda f: (order[f.kind], f.start)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    return sorted(chosen, key=lambda f: f.start)


def mask(text: str) -> str:
    """`text` with every finding replaced by its placeholder, e.g. "[personnummer]"."""
    findings = find(text)
    if not findings:
        return text
    out, at = [], 0
    for f in findings:
        out.append(text[at : f.start])
        out.append(PLACEHOLDERS[f.kind])
        at = f.end
    out.append(text[at:])
    return "".join(out)


def normalise(finding: Finding) -> str:
    """One spelling per identifier, so a later search finds it however it was typed."""
    if finding.kind == PERSONNUMMER:
        digits = re.sub(r"\D", "", finding.value)
        return digits[-10:]
    if finding.kind == PHONE:
        return _national_number(finding.value)
    if finding.kind == EMAIL:
        return finding.value.lower()
    return re.sub(r"\s+", " ", finding.value.lower()).strip(" ,")


def digest(key: bytes, kind: str, value: str) -> str:
    """A keyed digest of one identifier: finds it again without storing it in clear."""
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def references(key: bytes, text: str) -> list[tuple[str, str]]:
    """(kind, digest) of every identifier in `text` (addresses excluded: too many spellings to find again)."""
    return sorted({(f.kind, digest(key, f.kind, normalise(f))) for f in find(text) if f.kind != ADDRESS})


def identifier_reference(key: bytes, identifier: str) -> tuple[str, str] | None:
    """The (kind, digest) of an identifier someone asks about (a personnummer, phone number or e-mail)."""
    found = [f for f in find(identifier.strip()) if f.kind != ADDRESS]
    if len(found) != 1:
        return None
    return found[0].kind, digest(key, found[0].kind, normalise(found[0]))


class MaskingFilter(logging.Filter):
    """Masks personal data in log records (message and arguments), whichever logger wrote them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logged as it is
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking(*logger_names: str) -> None:
    """Add the masking filter to the handlers of the root logger and of `logger_names` (uvicorn's own)."""
    log_filter = MaskingFilter()
    for name in ("", *logger_names):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(log_filter)

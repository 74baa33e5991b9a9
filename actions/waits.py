"""The estimated wait as citizens say it: "ungefär 1 minut", "about 3 minutes", "حوالي دقيقتين".

Each language's plural rules (CLDR categories) are written out here because the action server
must not depend on the service; the widget follows the same categories with Intl.PluralRules.
"""

from __future__ import annotations

import math

# (less than a minute, {category: "... {n} ..."}) per language; "other" is always present.
_PHRASES: dict[str, tuple[str, dict[str, str]]] = {
    "sv": ("under en minut", {"one": "ungefär 1 minut", "other": "ungefär {n} minuter"}),
    "en": ("less than a minute", {"one": "about 1 minute", "other": "about {n} minutes"}),
    "ar": (
        "أقل من دقيقة",
        {"one": "حوالي دقيقة واحدة", "two": "حوالي دقيقتين", "few": "حوالي {n} دقائق", "other": "حوالي {n} دقيقة"},
    ),
    "so": ("wax ka yar hal daqiiqo", {"one": "qiyaastii 1 daqiiqo", "other": "qiyaastii {n} daqiiqo"}),
    "fa": ("کمتر از یک دقیقه", {"other": "حدود {n} دقیقه"}),
    "fi": ("alle minuutti", {"one": "noin 1 minuutti", "other": "noin {n} minuuttia"}),
    "ku": ("kêmtir ji deqîqeyekê", {"one": "nêzîkî 1 deqîqe", "other": "nêzîkî {n} deqîqe"}),
    "tr": ("bir dakikadan az", {"other": "yaklaşık {n} dakika"}),
    "pl": ("mniej niż minuta", {"one": "około 1 minuty", "other": "około {n} minut"}),
    "uk": (
        "менше хвилини",
        {"one": "приблизно {n} хвилина", "few": "приблизно {n} хвилини", "other": "приблизно {n} хвилин"},
    ),
    "da": ("under et minut", {"one": "cirka 1 minut", "other": "cirka {n} minutter"}),
    "no": ("under ett minutt", {"one": "omtrent 1 minutt", "other": "omtrent {n} minutter"}),
}


def plural_category(language: str, n: int) -> str:
    """The CLDR plural category of a whole number (the categories these phrases use)."""
    if language == "ar":
        if n in (1, 2):
            return "one" if n == 1 else "two"
        return "few" if 3 <= n % 100 <= 10 else "other"
    if language == "uk":
        if n % 10 == 1 and n % 100 != 11:
            return "one"
        return "few" if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14 else "other"
    if language in ("fa", "tr"):
        return "other"
    return "one" if n == 1 else "other"


def wait_phrase(language: str, seconds: float | None) -> str:
    """The wait in whole minutes (rounded up), in the language's words and plural form."""
    under, forms = _PHRASES.get(language) or _PHRASES["sv"]
    if seconds is None or seconds < 60:
        return under
    n = max(1, math.ceil(float(seconds) / 60))
    form = forms.get(plural_category(language, n)) or forms["other"]
    return form.format(n=n)

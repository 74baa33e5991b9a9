"""Supported languages and the names citizens use for them (for `switch_language`)."""

import difflib
import re

SUPPORTED = ("sv", "en", "ar", "so", "fa", "fi", "ku", "tr", "pl", "uk", "da", "no")
DEFAULT = "sv"

# Names shown on the language buttons.
NATIVE_NAMES = {
    "sv": "Svenska",
    "en": "English",
    "ar": "العربية",
    "so": "Soomaali",
    "fa": "فارسی",
    "fi": "Suomi",
    "ku": "Kurdî",
    "tr": "Türkçe",
    "pl": "Polski",
    "uk": "Українська",
    "da": "Dansk",
    "no": "Norsk",
}

# Codes the service or a browser may send for a supported language.
ALIASES = {"nb": "no", "nn": "no", "ckb": "ku", "kmr": "ku", "prs": "fa"}

# Words naming a language, in the supported languages (lower case, with common forms).
NAMES: dict[str, str] = {}
_TABLE = {
    "sv": "svenska svensk swedish svenske svensk svenskt ruotsi ruotsia ruotsiksi ruotsin isveççe "
    "isveç szwedzki szwedzku шведська шведською шведської السويدية السويدي بالسويدية بالسويدي "
    "سوئدی سویدی iswiidhish iswidhish swêdî swedi svenka svenkska",
    "en": "english engelska engelsk engelske englanti englantia englanniksi englannin ingilizce "
    "angielski angielsku англійська англійською англійської الإنجليزية الانجليزية الانجليزي "
    "بالإنجليزية بالانجليزية بالانجليزي بالإنجليزي انگلیسی ingiriis ingiriisi îngilîzî ingilizi "
    "englsh englis engelka engliska",
    "ar": "arabic arabiska arabisk arabisk arabia arabiaksi arapça arabski arabsku арабська "
    "арабською العربية العربي عربي بالعربية بالعربي بالعربيه عربى عربية عربی carabi carabiga "
    "erebî arabiska",
    "so": "somali somaliska somalisk somalia somaliaksi somalice somalijski somalijsku сомалі "
    "الصومالية الصومالي سومالیایی soomaali somaali af-soomaali somalî",
    "fa": "persian farsi persiska persisk persiaksi farsça perski persku перська перською "
    "الفارسية الفارسي بالفارسية فارسی فارسي دری dari farsiga farisî farsî",
    "fi": "finnish finska finsk suomi suomea suomeksi fince fiński fińsku фінська фінською "
    "الفنلندية فنلاندی finishka fînî",
    "ku": "kurdish kurdiska kurdisk kurdi kurdî kurmancî kurmanji sorani kurdiksi kürtçe kurdyjski "
    "kurdyjsku курдська курдською الكردية الكردي بالكردية کوردی کردی kurdiga",
    "tr": "turkish turkiska turkisk turkki turkkia turkiksi türkçe turkce turecki "
    "turecku турецька турецькою التركية التركي بالتركية ترکی turkiga tirkî",
    "pl": "polish polska polsk puola puolaa puolaksi lehçe polski polsku польська польською "
    "البولندية لهستانی booland polonî",
    "uk": "ukrainian ukrainska ukrainsk ukraina ukrainaa ukrainaksi ukraynaca ukraiński "
    "ukraińsku українська українською українській украинский الأوكرانية اوکراینی ukraynî",
    "da": "danish danska dansk danske tanska tanskaa tanskaksi danca duński duńsku данська "
    "данською الدنماركية دانمارکی danmarkî",
    "no": "norwegian norska norsk norske bokmål bokmal norja norjaa norjaksi norveççe norweski "
    "norwesku норвезька норвезькою النرويجية نروژی norwêcî",
}
for _code, _words in _TABLE.items():
    for _word in _words.split():
        NAMES[_word] = _code


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Names of languages the bot does not speak (so "kan vi prata tyska" is not misread).
UNSUPPORTED_NAMES = _words(
    "german tyska tysk saksa saksaksi almanca niemiecki niemiecku німецька الألمانية آلمانی "
    "french franska fransk ranska ranskaksi fransızca francuski по-французьки الفرنسية فرانسوی "
    "spanish spanska spansk espanja ispanyolca hiszpański الإسبانية اسپانیایی "
    "russian ryska russisk venäjä rusça rosyjski російська الروسية روسی "
    "tigrinya tigrinja amharic amhariska chinese kinesiska japanese japanska"
)

_WORD = re.compile(r"[\w'’-]+", re.UNICODE)


def normalize(code: str | None) -> str | None:
    """Maps a language code (any case, with region) to a supported code, or None."""
    if not code or not isinstance(code, str):
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    base = ALIASES.get(base, base)
    return base if base in SUPPORTED else None


def find_target_language(text: str) -> str | None:
    """The supported language named in `text` ("kan vi prata engelska?" -> "en"), or None.

    Exact names first, then close misspellings (difflib ratio >= 0.8, words of 5+ letters).
    """
    words = [w.lower() for w in _WORD.findall(text or "")]
    for word in words:
        if word in NAMES:
            return NAMES[word]
    candidates = list(NAMES)
    for word in words:
        if len(word) < 5 or word in UNSUPPORTED_NAMES:
            continue
        match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.8)
        if match:
            return NAMES[match[0]]
    return None


def names_unsupported_language(text: str) -> bool:
    """True if the text names a language the bot does not speak."""
    return any(w.lower() in UNSUPPORTED_NAMES for w in _WORD.findall(text or ""))

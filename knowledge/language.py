"""Language of a (short) citizen message, as an ISO 639-1 code ("no" for Norwegian).

Statistical detectors are unreliable on 2-5 words, so evidence is combined: the script decides
first (Arabic script: Arabic, Persian, Sorani Kurdish or Urdu by their own letters; Cyrillic:
Ukrainian or Russian; Ethiopic: Tigrinya), then for Latin script a seeded langdetect, telltale
letters (å, ø, ş, ł, ñ, ß ...), common function words, the knowledge base's own vocabulary per
language, and the session language as a prior, so "ok" keeps the session language.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from langdetect import DetectorFactory, detector_factory
from langdetect.lang_detect_exception import LangDetectException

DEFAULT = "sv"

_WORD = re.compile(r"[^\W\d_]+")


def _w(text: str) -> set[str]:
    return set(text.split())


# Function words and very common chat words (lower-case, with diacritics).
STOPWORDS: dict[str, set[str]] = {
    "sv": _w(
        "och att det är jag du vi ni hur var vad när vem vilken vilka kan får måste ska min mitt mina "
        "en ett den de på för med till från om inte har hej hejsan tack ja nej också eller mig man "
        "vart varför behöver söka ansöka finns kostar mycket barn kommunen"
    ),
    "en": _w(
        "the a an and is are i you we how where what when who which can may must should my to from "
        "for with in on of not have hi hello thanks thank yes no or me do does need apply much "
        "cost child please"
    ),
    "da": _w(
        "og at det er jeg du vi hvordan hvor hvad hvornår hvem kan må skal min mit mine en et den "
        "på for med til fra om ikke har hej tak ja nej også eller mig hvad jeg ikke søge koster "
        "meget børn kommunen af"
    ),
    "no": _w(
        "og at det er jeg du vi hvordan hvor hva når hvem kan må skal min mitt mine en et den på "
        "for med til fra om ikke har hei takk ja nei også eller meg søke koster mye barn kommunen "
        "av ikkje eg"
    ),
    "de": _w(
        "und ist ich du wir wie wo was wann wer kann muss soll mein meine ein eine der die das "
        "auf für mit zu von nicht habe hallo danke ja nein auch oder mich kostet viel kinder "
        "gemeinde bitte"
    ),
    "fi": _w(
        "ja on minä sinä me miten missä mitä milloin kuka voi voin voinko pitää minun mun ei "
        "kiitos kyllä hei moi tai myös kun kuinka paljon maksaa lapsi lapsen hakea haen "
        "kunta kunnan onko mistä"
    ),
    "so": _w(
        "iyo waa ma maxaa sidee halkee goorma yaa waxaan waxaad kara karaa rabaa ku ka u la "
        "aan ah haa maya mahadsanid salaan ii sida intee lacag canug carruurta degmada"
    ),
    "tr": _w(
        "ve bir bu ne nasıl nerede ne zaman kim ben sen biz için ile mi mı mu mü değil var yok "
        "merhaba teşekkür evet hayır çocuk başvuru ücret kadar nereden"
    ),
    "pl": _w(
        "i jest nie jak gdzie co kiedy kto ja ty my mogę czy można dla z na do od w się mam "
        "dzień dobry dziękuję tak dziecko ile kosztuje gminy proszę"
    ),
    "es": _w(
        "y es yo tú cómo como dónde donde qué que cuándo quién puedo puede para con en de del la el "
        "los las no tengo hola gracias sí también niño cuánto cuesta solicitar por"
    ),
    "fr": _w(
        "et est je tu nous comment où quoi quand qui peux peut pour avec dans de du la le les "
        "pas ai bonjour merci oui non aussi enfant combien coûte demander une un"
    ),
    "ku": _w(
        "û e ez tu em çawa li ku çi kengî kî dikarim dixwazim ji bo bi de ne heye tune silav "
        "spas erê na zarok çend kirê serlêdan min"
    ),
    "nl": _w(
        "en is ik jij wij hoe waar wat wanneer wie kan moet mijn een het de op voor met naar "
        "van niet heb hallo dank ja nee ook kind"
    ),
    "it": _w(
        "e è io tu come dove cosa quando chi posso può per con in di il la non ho ciao grazie "
        "sì anche bambino quanto costa"
    ),
    "pt": _w(
        "e é eu você como onde que quando quem posso pode para com em de do da não tenho olá "
        "obrigado sim também criança quanto custa"
    ),
}

# Letters that point at few languages (Latin script).
LETTERS: dict[str, tuple[str, ...]] = {
    "å": ("sv", "no", "da", "fi"),
    "ä": ("sv", "fi", "de"),
    "ö": ("sv", "fi", "de", "tr"),
    "æ": ("da", "no"),
    "ø": ("da", "no"),
    "ü": ("de", "tr"),
    "ß": ("de",),
    "ş": ("tr", "ku"),
    "ğ": ("tr",),
    "ı": ("tr",),
    "ç": ("tr", "fr", "ku", "pt"),
    "ê": ("ku", "fr", "pt"),
    "î": ("ku", "fr"),
    "û": ("ku", "fr"),
    "ł": ("pl",),
    "ą": ("pl",),
    "ę": ("pl",),
    "ś": ("pl",),
    "ź": ("pl",),
    "ż": ("pl",),
    "ć": ("pl",),
    "ń": ("pl",),
    "ñ": ("es",),
    "¿": ("es",),
    "¡": ("es",),
    "á": ("es", "pt"),
    "í": ("es", "pt"),
    "ó": ("es", "pl", "pt"),
    "ú": ("es", "pt"),
    "è": ("fr", "it"),
    "à": ("fr", "it", "pt"),
    "ã": ("pt",),
    "õ": ("pt",),
    "ë": ("fr", "nl"),
}

# Arabic script: letters used by one language only (or clearly more by it).
_SORANI = set("ڕڵۆێە")
_URDU = set("ٹڈڑںےۓہ")
_PERSIAN = set("پچژگیک")  # Persian (and Sorani/Urdu) forms; Arabic uses ي ك
_ARABIC = set("يكةىأإؤئ")
_ARABIC_WORDS = {"هل", "في", "من", "كيف", "أين", "اين", "متى", "ما", "ماذا", "على", "الى", "إلى", "عن", "أريد", "اريد"}
_PERSIAN_WORDS = {"است", "می", "را", "چطور", "کجا", "چه", "کی", "من", "برای", "آیا", "چگونه", "میخواهم", "هست"}

_UK_WORDS = {"як", "що", "де", "коли", "чи", "мені", "можна", "хочу", "дитина", "дитячий", "заяву", "подати"}
_RU_WORDS = {"как", "что", "где", "когда", "ли", "мне", "можно", "хочу", "ребенок", "детский", "это", "подать"}

DECISIVE_EVIDENCE, DECISIVE_MARGIN = 3.0, 2.0
LANGDETECT_TRIALS = 3  # langdetect's default is 7 random trials; 3 are as accurate on our dev set


@functools.cache
def _detector_factory(languages: tuple[str, ...]) -> DetectorFactory:
    """langdetect with only the profiles of `languages`: its cost is a pure-Python loop over every
    loaded language per n-gram, and the 14 we weigh for Latin script are a quarter of its 55."""
    folder = Path(detector_factory.PROFILES_DIRECTORY)
    factory = DetectorFactory()
    factory.load_json_profile(
        [(folder / lang).read_text(encoding="utf-8") for lang in languages if (folder / lang).exists()]
    )
    factory.set_seed(0)
    return factory


def detect_langs(text: str, languages: tuple[str, ...]) -> list:
    """langdetect's ranked guesses among `languages`, with fewer trials."""
    detector = _detector_factory(languages).create()
    detector.n_trial = LANGDETECT_TRIALS
    detector.append(text)
    return detector.get_probabilities()


LATIN_LANGS = ("sv", "en", "so", "fi", "tr", "pl", "da", "no", "de", "es", "fr", "ku", "nl", "it", "pt")


def _script(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        script = name.split(" ", 1)[0] if name else "UNKNOWN"
        if script in (
            "LATIN",
            "ARABIC",
            "CYRILLIC",
            "ETHIOPIC",
            "GREEK",
            "HEBREW",
            "DEVANAGARI",
            "THAI",
            "HANGUL",
            "HIRAGANA",
            "KATAKANA",
            "CJK",
            "GEORGIAN",
            "ARMENIAN",
            "BENGALI",
            "TAMIL",
        ):
            counts[script] = counts.get(script, 0) + 1
        else:
            counts["OTHER"] = counts.get("OTHER", 0) + 1
    return counts


_SIMPLE_SCRIPTS = {
    "GREEK": "el",
    "HEBREW": "he",
    "DEVANAGARI": "hi",
    "THAI": "th",
    "HANGUL": "ko",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "CJK": "zh",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy",
    "BENGALI": "bn",
    "TAMIL": "ta",
}


def _arabic_script(text: str, prior: str | None) -> tuple[str, float]:
    chars = set(text)
    tokens = set(_WORD.findall(text))
    if chars & _SORANI:
        return "ku", 0.95
    if chars & _URDU:
        return "ur", 0.9
    fa = sum(text.count(c) for c in _PERSIAN) + 2 * len(tokens & _PERSIAN_WORDS)
    ar = sum(text.count(c) for c in _ARABIC) + 2 * len(tokens & _ARABIC_WORDS) + 2 * text.count("ال")
    if fa > ar:
        return "fa", min(0.97, 0.6 + 0.1 * (fa - ar))
    if ar > fa:
        return "ar", min(0.97, 0.6 + 0.1 * (ar - fa))
    if prior in ("ar", "fa", "ku", "ur"):
        return prior, 0.6
    return "ar", 0.5


def _cyrillic(text: str, prior: str | None) -> tuple[str, float]:
    low = text.lower()
    uk = sum(low.count(c) for c in "іїєґ")
    ru = sum(low.count(c) for c in "ыэъё")
    tokens = set(_WORD.findall(low))
    uk += 2 * len(tokens & _UK_WORDS)
    ru += 2 * len(tokens & _RU_WORDS)
    if uk > ru:
        return "uk", 0.95
    if ru > uk:
        return "ru", 0.95
    if prior in ("uk", "ru"):
        return prior, 0.7
    try:
        guess = next(iter(detect_langs(text, ("uk", "ru"))), None)
    except LangDetectException:
        guess = None
    if guess is not None:
        return guess.lang, round(min(0.9, guess.prob), 3)
    return "uk", 0.55  # the larger group of Cyrillic-script citizens in Swedish municipalities now


def _latin(text: str, prior: str | None, vocabulary: Mapping[str, set[str]] | None) -> tuple[str, float]:
    low = text.lower()
    tokens = _WORD.findall(low)
    scores = dict.fromkeys(LATIN_LANGS, 0.0)
    if not tokens:
        return (prior or DEFAULT), 0.3
    # Function words: each hit is shared among the languages that have the word.
    for tok in tokens:
        owners = [lang for lang, words in STOPWORDS.items() if tok in words]
        for lang in owners:
            scores[lang] += 1.0 / len(owners)
    # The knowledge base's own words (e.g. "bygglov" is only in Swedish entries).
    if vocabulary:
        from knowledge.lexical import fold

        for tok in tokens:
            folded = fold(tok)
            owners = [lang for lang in LATIN_LANGS if folded in vocabulary.get(lang, ())]
            for lang in owners:
                scores[lang] += 0.8 / len(owners)
    for ch, langs in LETTERS.items():
        if ch in low:
            for lang in langs:
                scores[lang] += 0.6 / len(langs)
    evidence = dict(scores)
    n_letters = sum(ch.isalpha() for ch in low)
    if n_letters >= 4 and not _decisive(evidence):
        try:
            weight = min(2.0, n_letters / 20)
            for guess in detect_langs(text, LATIN_LANGS):
                code = "no" if guess.lang == "nn" else guess.lang
                if code in scores:
                    scores[code] += weight * guess.prob
        except LangDetectException:
            pass
    scores[DEFAULT] += 0.15
    if prior in scores:
        scores[prior] += 0.5 if len(tokens) <= 2 else 0.3
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    if top < 0.6 and prior:  # no real evidence ("ok", "??"): keep the conversation's language
        return prior, 0.5
    if best in ("da", "no") and evidence[best] < 0.5:
        # Short Scandinavian text without Danish/Norwegian words or letters: in a Swedish
        # municipality that is Swedish ("bygglov altan").
        return DEFAULT, 0.6
    total = sum(v for v in scores.values() if v > 0) or 1.0
    return best, round(min(0.99, 0.5 * top / total + 0.5 * min(1.0, (top - second) / max(top, 1e-9))), 3)


def _decisive(evidence: dict[str, float]) -> bool:
    """Words and letters alone settle it (several function and knowledge-base words of one
    language, far ahead of the next): langdetect, ~2-12 ms a message, would not change the answer."""
    first, second = sorted(evidence.values(), reverse=True)[:2]
    return first >= DECISIVE_EVIDENCE and first - second >= DECISIVE_MARGIN


def detect_language(
    text: str, prior: str | None = None, vocabulary: Mapping[str, set[str]] | None = None
) -> tuple[str, float]:
    """(ISO 639-1 code, confidence 0..1) of `text`; `prior` is the session's language."""
    counts = _script(text)
    if not counts:
        return (prior or DEFAULT), 0.3
    script = max(counts, key=counts.get)
    if script == "ARABIC":
        return _arabic_script(text, prior)
    if script == "CYRILLIC":
        return _cyrillic(text, prior)
    if script == "ETHIOPIC":
        return ("am", 0.7) if prior == "am" or "ነው" in text else ("ti", 0.85)
    if script in _SIMPLE_SCRIPTS:
        return _SIMPLE_SCRIPTS[script], 0.9
    return _latin(text, prior, vocabulary)

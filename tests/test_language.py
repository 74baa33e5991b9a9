"""Language detection on short, realistic citizen messages."""

from __future__ import annotations

import pytest

from knowledge.language import detect_language

CASES = [
    ("Hur ansöker jag om förskoleplats?", "sv"),
    ("när töms soporna", "sv"),
    ("tack så mycket", "sv"),
    ("bygglov altan??", "sv"),
    ("How do I apply for preschool?", "en"),
    ("when is my bin emptied", "en"),
    ("كيف أسجل طفلي في الروضة؟", "ar"),
    ("متى يتم جمع القمامة", "ar"),
    ("چطور برای مهدکودک ثبت نام کنم؟", "fa"),
    ("زبڵ کەی کۆدەکرێتەوە؟", "ku"),
    ("Sidee baan u codsadaa xanaanada carruurta?", "so"),
    ("Miten haen päiväkotipaikkaa?", "fi"),
    ("Як подати заяву на дитячий садок?", "uk"),
    ("Как подать заявление в детский сад?", "ru"),
    ("ሕፃናት መውዓሊ ከመይ ገይረ ክሓትት እኽእል?", "ti"),
    ("Çöp ne zaman toplanıyor?", "tr"),
    ("Jak złożyć wniosek o przedszkole?", "pl"),
    ("Hvornår bliver mit affald hentet?", "da"),
    ("Når blir søppelet hentet?", "no"),
    ("Wann wird der Müll abgeholt?", "de"),
    ("¿Cómo solicito plaza en la guardería?", "es"),
    ("Comment inscrire mon enfant à la crèche ?", "fr"),
    ("Ez çawa dikarim serlêdana kreşê bikim?", "ku"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_short_messages(text: str, expected: str) -> None:
    assert detect_language(text)[0] == expected


@pytest.mark.parametrize("text", ["ok", "??", "👍", "123"])
def test_no_evidence_keeps_the_session_language(text: str) -> None:
    assert detect_language(text, prior="fi")[0] == "fi"
    assert detect_language(text, prior="ar")[0] == "ar"


def test_prior_resolves_ambiguous_short_message() -> None:
    assert detect_language("ok tack", prior="sv")[0] == "sv"
    assert detect_language("tack", prior="en")[0] == "sv"  # Swedish word, not the prior


def test_vocabulary_of_the_knowledge_base_helps() -> None:
    vocabulary = {"sv": {"bygglov", "altan", "sophamtning"}, "en": {"permit"}}
    lang, conf = detect_language("bygglov altan", prior="en", vocabulary=vocabulary)
    assert lang == "sv" and conf > 0.3


def test_confidence_is_a_probability() -> None:
    for text, _ in CASES:
        assert 0.0 <= detect_language(text)[1] <= 1.0

"""The answer decision on a knowledge base the way a new municipality brings it (issue 13).

Swedish only, one heading-like question per entry and long answers, or answers only: the decision
must still answer a close paraphrase, offer "did you mean" when two entries fit, and hand over
nonsense, and `explain` must say which band and why.
"""

from __future__ import annotations

import pytest

from knowledge.decision import decide, signals
from knowledge.entries import Entry
from knowledge.lexical import reads_as_words
from knowledge.retrieval import Candidate, Retriever

FAQ = [
    (
        "sophamtning",
        "Hämtdagar för hushållsavfall",
        "Kärlen för mat- och restavfall töms varannan vecka i tätorten och var fjärde vecka på landsbygden. "
        "Din hämtdag ser du på Mina sidor, där du också kan få en påminnelse med sms. Ställ ut kärlet senast "
        "klockan sex på morgonen med handtaget utåt mot gatan.",
    ),
    (
        "forskola-ansokan",
        "Ansök om plats i förskola",
        "Du ansöker om förskoleplats i e-tjänsten och loggar in med BankID. Barnet kan börja från ett års "
        "ålder. Ansök helst sex månader innan du behöver platsen; kommunen erbjuder plats inom fyra månader.",
    ),
    (
        "forskola-avgift",
        "Avgifter för förskola",
        "Avgiften för förskola följer maxtaxan och beror på hushållets inkomst. För det första barnet betalar du "
        "tre procent av inkomsten, men högst 1 688 kronor i månaden. Avgiften betalas tolv månader om året.",
    ),
    (
        "bygglov",
        "Behöver jag bygglov?",
        "Om du vill bygga nytt, bygga till eller ändra en byggnad behöver du oftast bygglov. En altan lägre än "
        "1,8 meter kräver inget lov utanför detaljplan. Kontakta en bygglovshandläggare innan du börjar bygga.",
    ),
    (
        "bibliotek",
        "Bibliotekets öppettider",
        "Stadsbiblioteket har öppet måndag till torsdag 10–19, fredag 10–17 och lördag 11–15. Lånekortet är "
        "gratis och du får det i informationsdisken mot legitimation. Lånetiden är fyra veckor.",
    ),
    (
        "hemtjanst",
        "Hemtjänst",
        "Hemtjänst är hjälp för dig som har svårt att klara vardagen på grund av ålder eller sjukdom, till "
        "exempel med dusch, städning och inköp. Du ansöker hos kommunens biståndshandläggare, som gör ett "
        "hembesök. Avgiften beror på din inkomst.",
    ),
    (
        "simhall",
        "Simhallens öppettider och priser",
        "Simhallen har öppet vardagar 6.30–20 och helger 9–17. Vuxna betalar 90 kronor och barn 40 kronor. "
        "Barn under tio år måste bada med en vuxen.",
    ),
    (
        "parkering",
        "Boendeparkering",
        "Du som bor i centrum kan ansöka om boendeparkering. Tillståndet kostar 600 kronor i månaden och gäller "
        "på gatuplatser i ditt område i upp till sju dygn i följd.",
    ),
    (
        "ekonomiskt-bistand",
        "Ekonomiskt bistånd",
        "Ekonomiskt bistånd är en tillfällig hjälp när du inte kan försörja dig på annat sätt. Du ansöker i "
        "e-tjänsten och bifogar kontoutdrag och hyresavi. Om du är arbetslös ska du vara inskriven på "
        "Arbetsförmedlingen.",
    ),
    (
        "snorojning",
        "Snöröjning",
        "Kommunen plogar gator och cykelvägar när det har fallit fem centimeter snö. Huvudgator röjs först. "
        "Som fastighetsägare skottar du själv trottoaren utanför din tomt.",
    ),
]


def build(embedder, settings, tmp_path_factory, with_questions: bool) -> Retriever:
    r = Retriever(embedder, cache_dir=tmp_path_factory.mktemp("decision-cache"), settings=settings)
    r.rebuild([Entry(id=i, questions={"sv": [q]} if with_questions else {}, answer={"sv": a}) for i, q, a in FAQ])
    return r


@pytest.fixture(scope="module")
def one_question(embedder, settings, tmp_path_factory):
    return build(embedder, settings, tmp_path_factory, with_questions=True)


@pytest.fixture(scope="module")
def answers_only(embedder, settings, tmp_path_factory):
    return build(embedder, settings, tmp_path_factory, with_questions=False)


def ask(retriever, settings, text: str, language: str = "sv"):
    """As the knowledge service decides (knowledge/service.py `answer`)."""
    words = reads_as_words(text, language, retriever.vocabulary)
    return decide(retriever.search(text, language=language, top_k=5), language, settings, words=words)


def test_close_paraphrase_is_answered(one_question, settings):
    d = ask(one_question, settings, "Vilken dag hämtas hushållsavfallet?")
    assert d.decision == "answer", d.explain
    assert d.candidates[0].entry.id == "sophamtning"
    assert d.explain["band"] == "answer" and "P(right" in d.explain["rule"]


def test_ambiguous_message_offers_the_close_entries(one_question, settings):
    d = ask(one_question, settings, "förskola")
    assert d.decision == "clarify", d.explain
    shown = [c.entry.id for c in d.candidates]
    assert {"forskola-ansokan", "forskola-avgift"} <= set(shown) and 2 <= len(shown) <= 3
    assert d.explain["band"] == "clarify" and "candidates to choose from" in d.explain["rule"]


@pytest.mark.parametrize(
    "text", ["asdkjh qwe zzxq", "Vem vann fotbolls-VM 1994?", "Kan du rekommendera ett recept på lasagne?"]
)
def test_nonsense_is_never_answered(one_question, answers_only, settings, text):
    """Known gap: in a ten-entry knowledge base the runners-up score so alike that an off-topic
    question's best entry can stand out by 2 sd, and it gets buttons instead of a handoff
    (the offer floor was fitted on 73-219-entry knowledge bases)."""
    for retriever in (one_question, answers_only):
        d = ask(retriever, settings, text)
        assert d.decision != "answer", d.explain
        if d.decision == "handoff":
            assert d.candidates == [] and ("nothing plausible" in d.explain["rule"] or "no word" in d.explain["rule"])


@pytest.mark.parametrize("text", ["asdkjh qwe zzxq", "qwfp zxcvb", "hjkl asdasd"])
def test_a_keyboard_mash_is_handed_over_not_offered(one_question, answers_only, settings, text):
    """Its nearest entries stand out by chance (seed: "asdkjh qwe zzxq" was offered at P 0.73)."""
    for retriever in (one_question, answers_only):
        d = ask(retriever, settings, text)
        assert d.decision == "handoff" and d.candidates == [], d.explain
        assert d.explain["rule"] == "no word of the message is a known word"


@pytest.mark.parametrize(
    "text,language",
    [
        ("förskola", "sv"),
        ("bygglov altan", "sv"),
        ("ok", "sv"),
        ("Biyo ma lihin guriga", "so"),
        ("garbage truck", "en"),
    ],
)
def test_real_words_are_never_taken_for_a_mash(one_question, text, language):
    assert reads_as_words(text, language, one_question.vocabulary)


def test_answers_only_entries_are_answered_or_offered(answers_only, settings):
    for text, gold in [
        ("Hur mycket kostar det att bada för ett barn?", "simhall"),
        ("Min pappa behöver hjälp hemma med att duscha", "hemtjanst"),
        ("När har biblioteket öppet på lördag?", "bibliotek"),
    ]:
        d = ask(answers_only, settings, text)
        assert d.decision in ("answer", "clarify"), (text, d.explain)
        assert gold in [c.entry.id for c in d.candidates[:3]], (text, d.explain)


def test_other_language_against_swedish_only_entries_is_not_handed_over(one_question, settings):
    d = ask(one_question, settings, "How do I apply for a preschool place for my daughter?", language="en")
    assert d.decision in ("answer", "clarify"), d.explain
    assert "forskola-ansokan" in [c.entry.id for c in d.candidates]
    assert d.explain["signals"]["cross_language"] == 1.0
    assert d.answer_language == "sv" and d.notice  # only a Swedish answer: the citizen is told


def test_explain_names_the_signals_and_probabilities(answers_only, settings):
    e = ask(answers_only, settings, "När har biblioteket öppet på lördag?").explain
    assert e["band"] == "answer" and set(e["signals"]) == {"score", "margin", "lead", "cross_language"}
    assert {"probability", "score_probability", "standout_probability", "offer_probability"} <= set(e)
    assert e["candidates"][0]["id"] == "bibliotek" and "lead" in e["candidates"][0]


def candidate(entry_id: str, score: float, lead: float | None = None) -> Candidate:
    raw = {} if lead is None else {"lead": lead}
    return Candidate(Entry(id=entry_id, answer={"sv": "Svar."}), score, score, 0.0, "", "q", "sv", raw=raw)


def test_no_candidates_hand_over(settings):
    d = decide([], "sv", settings)
    assert d.decision == "handoff" and d.explain["band"] == "handoff"


def test_a_standout_answers_where_raw_scores_run_low(settings):
    """Answers-only and cross-language cosines run lower; a clear standout is still answered."""
    low = [candidate("a", 0.78, lead=9.0), candidate("b", 0.70, lead=1.0), candidate("c", 0.69, lead=0.8)]
    d = decide(low, "sv", settings)
    assert d.decision == "answer" and "standing out" in d.explain["rule"], d.explain
    flat = [candidate("a", 0.78, lead=1.2), candidate("b", 0.779, lead=1.1), candidate("c", 0.77, lead=1.0)]
    assert decide(flat, "sv", settings).decision == "handoff"


def test_tiny_knowledge_base_without_a_lead_still_decides(settings):
    """With fewer than three entries there is no field to stand out from: score and margin decide."""
    assert signals([candidate("a", 0.95), candidate("b", 0.75)], "sv")["lead"] == 0.0
    assert decide([candidate("a", 0.95), candidate("b", 0.75)], "sv", settings).decision == "answer"

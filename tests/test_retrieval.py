"""Retrieval and decision on a small knowledge base built here (independent of the seed content)."""

from __future__ import annotations

import threading
import time

import pytest

from knowledge.decision import decide
from knowledge.entries import Entry
from knowledge.retrieval import Retriever
from knowledge.settings import load_retrieval_settings

ENTRIES = [
    Entry(
        id="waste-collection",
        url="https://www.ekby.se/avfall",
        questions={
            "sv": ["När hämtas soporna?", "Vilken dag töms soptunnan?", "sophämtning schema"],
            "en": ["When is my bin emptied?"],
            "ar": ["متى يتم جمع القمامة؟"],
        },
        answer={
            "sv": "Soporna hämtas varannan vecka. Du ser din hämtdag i appen Ekby Avfall.",
            "en": "Bins are emptied every other week. See your day in the Ekby Avfall app.",
            "ar": "يتم جمع القمامة كل أسبوعين. يمكنك رؤية يوم الجمع في تطبيق Ekby Avfall.",
        },
    ),
    Entry(
        id="preschool-apply",
        questions={
            "sv": ["Hur söker jag förskoleplats?", "ansöka om plats i förskola"],
            "en": ["How do I apply for preschool?"],
            "ar": ["كيف أسجل طفلي في الروضة؟"],
        },
        answer={
            "sv": "Du ansöker om förskoleplats i e-tjänsten senast fyra månader innan du behöver platsen.",
            "en": "Apply for a preschool place in the e-service at least four months ahead.",
            "ar": "قدّم طلب مكان في الروضة عبر الخدمة الإلكترونية قبل أربعة أشهر على الأقل.",
        },
    ),
    Entry(
        id="preschool-fee",
        questions={
            "sv": ["Vad kostar förskolan?", "avgift för förskola", "maxtaxa förskola"],
            "en": ["How much does preschool cost?"],
        },
        answer={
            "sv": "Avgiften för förskola följer maxtaxan och beror på hushållets inkomst.",
            "en": "The preschool fee follows the maximum fee and depends on household income.",
        },
    ),
    Entry(
        id="building-permit",
        questions={
            "sv": ["Behöver jag bygglov för altan?", "bygglov för att bygga ut huset"],
            "en": ["Do I need a building permit?"],
        },
        answer={
            "sv": "En altan lägre än 1,2 meter och minst 4,5 meter från tomtgränsen kräver inte bygglov.",
            "en": "A deck lower than 1.2 metres and 4.5 metres from the boundary needs no permit.",
        },
    ),
    Entry(
        id="parking-permit-disabled",
        questions={
            "sv": ["Hur får jag parkeringstillstånd för rörelsehindrade?"],
            "en": ["How do I get a disabled parking permit?"],
        },
        answer={
            "sv": "Ansök om parkeringstillstånd för rörelsehindrade med ett läkarintyg i e-tjänsten.",
            "en": "Apply for a disabled parking permit with a medical certificate in the e-service.",
        },
    ),
    Entry(
        id="library-hours",
        questions={"sv": ["När har biblioteket öppet?", "bibliotekets öppettider"], "en": ["Library opening hours"]},
        answer={
            "sv": "Stadsbiblioteket har öppet vardagar 10-19 och lördagar 11-15.",
            "en": "The main library is open weekdays 10-19 and Saturdays 11-15.",
        },
    ),
    Entry(
        id="financial-aid",
        questions={
            "sv": ["Hur ansöker jag om ekonomiskt bistånd?", "försörjningsstöd ansökan"],
            "en": ["How do I apply for financial assistance?"],
        },
        answer={
            "sv": "Du ansöker om ekonomiskt bistånd hos socialtjänsten, i e-tjänsten eller på telefon.",
            "en": "Apply for financial assistance from social services, online or by phone.",
        },
    ),
]


@pytest.fixture(scope="module")
def retriever(embedder, settings, tmp_path_factory):
    r = Retriever(embedder, cache_dir=tmp_path_factory.mktemp("cache"), settings=settings)
    r.rebuild(ENTRIES)
    return r


def ask(retriever, settings, text: str, language: str = "sv"):
    return decide(retriever.search(text, language=language, top_k=5), language, settings)


def test_swedish_question_is_answered(retriever, settings):
    d = ask(retriever, settings, "Vilken dag hämtas soporna hos mig?")
    assert d.decision == "answer", d.explain
    assert d.candidates[0].entry.id == "waste-collection"
    assert d.answers(1)[0]["language"] == "sv" and d.notice is None


def test_misspelt_question_is_answered(retriever, settings):
    d = ask(retriever, settings, "hur söker jag forskoleplats")
    assert d.decision == "answer", d.explain
    assert d.candidates[0].entry.id == "preschool-apply"
    d = ask(retriever, settings, "behöver jag bygglv för altanen")
    assert d.candidates[0].entry.id == "building-permit"


def test_arabic_question_gets_the_arabic_answer(retriever, settings):
    d = ask(retriever, settings, "متى تأتي شاحنة القمامة؟", language="ar")
    assert d.decision == "answer", d.explain
    top = d.answers(1)[0]
    assert top["id"] == "waste-collection" and top["language"] == "ar"
    assert "أسبوعين" in top["text"]


def test_missing_language_falls_back_to_swedish_with_notice(retriever, settings):
    cands = retriever.search("كم تكلفة الروضة؟", language="ar", top_k=5)
    assert cands[0].entry.id in ("preschool-fee", "preschool-apply")
    fee = next(c for c in cands if c.entry.id == "preschool-fee")  # has no Arabic text
    d = decide([fee, *[c for c in cands if c is not fee]], "ar", settings)
    if d.decision != "handoff":
        assert d.answer_language == "sv" and d.notice and "السويدية" in d.notice
        assert d.answers(1)[0]["language"] == "sv"


@pytest.mark.parametrize(
    "text", ["Vem vann fotbolls-VM 1994?", "asdkjh qwe zzxq", "Kan du rekommendera ett recept på lasagne?"]
)
def test_out_of_scope_is_handed_off(retriever, settings, text):
    d = ask(retriever, settings, text)
    assert d.decision == "handoff", d.explain
    assert d.explain["rule"]


def test_close_entries_give_clarify(retriever, settings):
    d = ask(retriever, settings, "förskola")
    assert d.decision == "clarify", d.explain
    ids = {c.entry.id for c in d.candidates}
    assert {"preschool-apply", "preschool-fee"} <= ids and 2 <= len(d.candidates) <= 3


def test_municipalities_are_separate(embedder, settings):
    r = Retriever(embedder, settings=settings)
    other = Entry(
        id="waste-collection",
        municipality="other",
        answer={"sv": "I Annanby hämtas soporna varje vecka."},
        questions={"sv": ["När hämtas soporna?"]},
    )
    r.rebuild([ENTRIES[0], other])
    assert "Annanby" in r.search("När hämtas soporna?", municipality="other")[0].entry.answer["sv"]
    assert "varannan" in r.search("När hämtas soporna?")[0].entry.answer["sv"]
    assert r.search("När hämtas soporna?", municipality="nowhere") == []


def test_upsert_and_remove_are_searchable_at_once(embedder, settings):
    r = Retriever(embedder, settings=settings)
    r.rebuild(ENTRIES)
    new = Entry(
        id="dog-license",
        questions={"sv": ["Måste jag registrera min hund?"]},
        answer={"sv": "Alla hundar ska registreras hos Jordbruksverket och vara id-märkta."},
    )
    t = time.perf_counter()
    r.upsert(new)
    assert time.perf_counter() - t < 1.0
    assert r.search("registrera hunden")[0].entry.id == "dog-license"
    changed = Entry(
        id="dog-license", questions={"sv": ["Vad kostar hundskatt?"]}, answer={"sv": "Ekby tar ingen hundskatt."}
    )
    r.upsert(changed)
    hit = r.search("hundskatt")[0]
    assert hit.entry.id == "dog-license" and "ingen hundskatt" in hit.entry.answer["sv"]
    assert len(r.entries()) == len(ENTRIES) + 1
    assert r.remove("default", "dog-license")
    assert all(c.entry.id != "dog-license" for c in r.search("hundskatt registrera hund", top_k=10))
    assert not r.remove("default", "dog-license")


def test_search_runs_concurrently_with_upserts(embedder, settings):
    r = Retriever(embedder, settings=settings)
    r.rebuild(ENTRIES)
    errors: list[BaseException] = []

    def searching():
        try:
            for _ in range(15):
                assert r.search("När hämtas soporna?")[0].entry.id == "waste-collection"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searching) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(15):
        r.upsert(Entry(id=f"extra-{i}", answer={"sv": f"Tillfällig information nummer {i} om gatubelysning."}))
        if i % 3 == 0:
            r.remove("default", f"extra-{i}")
    for t in threads:
        t.join()
    assert not errors


def test_vector_cache_makes_second_build_fast(embedder, settings, tmp_path):
    class Counting:
        def __init__(self, inner):
            self.inner, self.path, self.calls = inner, inner.path, 0

        def encode_queries(self, texts):
            self.calls += len(texts)
            return self.inner.encode_queries(texts)

        def encode_passages(self, texts):
            self.calls += len(texts)
            return self.inner.encode_passages(texts)

    first = Counting(embedder)
    Retriever(first, cache_dir=tmp_path, settings=settings).rebuild(ENTRIES)
    assert first.calls > 0
    second = Counting(embedder)
    r = Retriever(second, cache_dir=tmp_path, settings=settings)
    t = time.perf_counter()
    r.rebuild(ENTRIES)
    assert second.calls == 0 and time.perf_counter() - t < 1.0
    assert r.search("När hämtas soporna?")[0].entry.id == "waste-collection"


def test_settings_come_from_yaml_and_env(tmp_path):
    f = tmp_path / "retrieval.yml"
    f.write_text("answer_probability: 0.7\ncentroid_weight: 0.5\n")
    s = load_retrieval_settings(
        env={"KOMMUNCHATT_RETRIEVAL_SETTINGS": str(f), "KOMMUNCHATT_RETRIEVAL_OFFER_PROBABILITY": "0.6"}
    )
    assert (s.answer_probability, s.centroid_weight, s.offer_probability) == (0.7, 0.5, 0.6)
    f.write_text("answer_probabilty: 0.7\n")  # a misspelt name is an error, not silently ignored
    with pytest.raises(ValueError, match="answer_probabilty"):
        load_retrieval_settings(f, env={})

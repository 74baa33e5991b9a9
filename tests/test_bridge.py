"""The translation memory (knowledge/bridge.py): messages in a language a Swedish-only knowledge base
has no text in are also asked through a Swedish pivot made from the seed's parallel questions.

The knowledge base and the messages are written here (not the bench's); the memory is the product's
seed, as in the service. The model is multilingual-e5-small without the municipal adapter
(knowledge/adaptation.py): the adapter learned the same seed wordings the memory holds, so with it
these fifteen headings are mostly found without the memory (14 of 18 messages, 15 with it) and the
mechanism would be measured by one message. The bench measures the two together.
"""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.bridge import TranslationMemory
from knowledge.entries import Entry
from knowledge.retrieval import Retriever
from knowledge.settings import load_retrieval_settings

# A new municipality's knowledge base: Swedish only, one heading-style question per entry, with
# neighbours close enough to be confused across languages.
KB = {
    "school-transport": ("Skolskjuts", "Elever med lång väg till skolan kan få skolskjuts."),
    "adult-education": ("Vuxenutbildning och komvux", "På komvux läser du kurser på gymnasial nivå."),
    "school-absence": ("Frånvaro och sjukanmälan i skolan", "Vårdnadshavare sjukanmäler eleven i appen."),
    "child-concern": ("Orosanmälan om barn", "Är ett barn illa behandlat, anmäl till socialtjänsten."),
    "school-choice": ("Val av grundskola", "Du väljer skola i e-tjänsten och kan önska tre skolor."),
    "moving-register": ("Flytta till kommunen", "När du flyttar anmäler du din nya adress till Skatteverket."),
    "boil-water": ("Kokningsrekommendation för dricksvatten", "Vatten som du dricker ska kokas i minst en minut."),
    "market-trade": ("Torghandel", "För att sälja varor på torget behövs tillstånd."),
    "home-care": ("Hemtjänst", "Hemtjänst är hjälp i hemmet för dig som har svårt att klara vardagen."),
    "day-activity": ("Dagverksamhet och stöd till anhöriga", "Dagverksamhet vid demens; avlösning för anhöriga."),
    "civil-wedding": ("Borgerlig vigsel", "Kommunens vigselförrättare viger par i stadshuset på fredagar."),
    "premises-rental": ("Hyra lokal", "Föreningar och privatpersoner kan hyra kommunens lokaler för möten och fester."),
    "bulky-waste": ("Grovavfall", "Grovavfall som möbler lämnar du på återvinningscentralen eller beställer hämtning."),
    "water-leak": ("Vattenläcka och vattenavbrott", "Inget vatten eller en läcka: ring felanmälan."),
    "flooded-basement": ("Översvämning i källaren", "Kommer det in vatten i källaren, kontakta ditt försäkringsbolag."),
}
ENTRIES = [Entry(id=k, questions={"sv": [q]}, answer={"sv": a}) for k, (q, a) in KB.items()]

MESSAGES = [  # (language, message, right entry)
    ("so", "Ilmahaygu wuxuu u baahan yahay gaadiid dugsiga, sideen u codsadaa?", "school-transport"),
    ("so", "Sideen u bartaa koorsooyinka dadka waaweyn?", "adult-education"),
    ("fa", "چطور غیبت فرزندم را به مدرسه اطلاع بدهم؟", "school-absence"),
    ("fa", "چطور مدرسه فرزندم را انتخاب کنم؟", "school-choice"),
    ("fi", "Pitääkö vesi keittää ennen juomista?", "boil-water"),
    ("fi", "Miten saan kotipalvelua äidilleni?", "home-care"),
    ("en", "Can I choose which school my child goes to?", "school-choice"),
    ("en", "How do I book a civil wedding?", "civil-wedding"),
    ("en", "How do I get rid of an old sofa?", "bulky-waste"),
    ("en", "There is no water coming from my tap", "water-leak"),
    ("en", "My mother needs help at home every day", "home-care"),
    ("ar", "كيف أبلغ عن غياب طفلي عن المدرسة؟", "school-absence"),
    ("ar", "أين أتخلص من الأثاث القديم؟", "bulky-waste"),
    ("uk", "Як записатися на курси для дорослих?", "adult-education"),
    ("uk", "Як замовити шкільне таксі для дитини?", "school-transport"),
    ("so", "Biyo ma jiraan gurigayga", "water-leak"),
    ("fi", "Kellarissa on vettä, mitä teen?", "flooded-basement"),
    ("ar", "كيف أحجز حفل زواج مدني؟", "civil-wedding"),
]


@pytest.fixture(scope="module")
def embedder(plain_model_path):
    """The plain model (see the module's docstring)."""
    from knowledge.embedding import Embedder

    return Embedder(plain_model_path)


@pytest.fixture(scope="module")
def bridged(embedder, settings):
    r = Retriever(embedder, settings=settings)
    r.rebuild(ENTRIES)
    return r


@pytest.fixture(scope="module")
def unbridged(embedder, settings):
    r = Retriever(embedder, settings=settings.replace(bridge=False))
    r.rebuild(ENTRIES)
    return r


def right_first(retriever: Retriever) -> int:
    return sum(retriever.search(text, language=lang, top_k=3)[0].entry.id == gold for lang, text, gold in MESSAGES)


def test_memory_is_the_seed_in_seven_languages(bridged):
    memory = bridged.translation_memory()
    assert memory is not None and {"sv", "en", "ar", "so", "fa", "fi", "uk"} <= memory.languages
    assert len(memory) > 1000


def test_other_languages_rank_better_through_the_bridge(bridged, unbridged):
    # 13 and 8 of 18 on the 2-core machine (2026-12-03; 14 with the "max" fusion, which costs
    # other knowledge bases far more: knowledge/settings.py)
    with_bridge, without = right_first(bridged), right_first(unbridged)
    assert with_bridge >= 2 * len(MESSAGES) // 3, (with_bridge, without)
    assert with_bridge >= without + 4, (with_bridge, without)


def test_bridge_scores_show_in_the_signals_and_only_across_languages(bridged, unbridged):
    finnish = "Pitääkö vesi keittää ennen juomista?"
    cands = bridged.search(finnish, language="fi", top_k=3)
    assert cands[0].entry.id == "boil-water" and "bridge" in cands[0].signals()
    plain = {c.entry.id: c.score for c in unbridged.search(finnish, language="fi", top_k=10)}
    assert cands[0].score > plain["boil-water"] + 0.02  # the pivot is a Swedish question: a same-language score
    swedish = bridged.search("Måste vattnet kokas?", language="sv", top_k=3)
    assert swedish[0].entry.id == "boil-water" and all("bridge" not in c.raw for c in swedish)
    assert "paraphrase" in swedish[0].raw  # in the knowledge base's own language: a paraphrase
    assert all("bridge" not in c.raw for c in unbridged.search(finnish, language="fi"))


def test_a_knowledge_base_with_text_in_the_language_is_searched_as_before(embedder, settings):
    # One entry in Finnish: pivot scores (a same-language scale) of the others would crowd it out.
    finnish = Entry(
        id="boil-water",
        questions={"sv": ["Kokningsrekommendation"], "fi": ["Pitääkö juomavesi keittää?"]},
        answer={"sv": "Koka vattnet i en minut.", "fi": "Keitä vesi minuutin ajan."},
    )
    entries = [finnish, *(e for e in ENTRIES if e.id != "boil-water")]
    scores = []
    for bridge in (True, False):
        r = Retriever(embedder, settings=settings.replace(bridge=bridge, paraphrase=False, borrow=False))
        r.rebuild(entries)
        cands = r.search("Pitääkö vesi keittää ennen juomista?", language="fi", top_k=15)
        assert cands[0].entry.id == "boil-water" and not any("bridge" in c.raw for c in cands)
        scores.append([c.score for c in cands])
    assert scores[0] == pytest.approx(scores[1])


def toy_memory() -> TranslationMemory:
    """Three entries in two languages, with vectors chosen by hand (no model)."""
    axes = {"water": 0, "school": 1, "waste": 2}
    entries = [Entry(id=k, answer={}, questions={"so": [f"so {k}"], "sv": [f"sv {k}", f"sv {k} 2"]}) for k in axes]

    def encode(texts: list[tuple[str, str]]) -> np.ndarray:
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, (lang, text) in enumerate(texts):
            out[i, axes[text.split()[1]]] = 1.0
            out[i, 3] = 0.5 if lang == "so" else -0.5  # the language direction
        return out

    return TranslationMemory(entries, encode)


def test_pivot_is_the_swedish_side_of_the_nearest_entries():
    s = load_retrieval_settings(env={})
    memory = toy_memory()
    q = np.array([1.0, 0.1, 0.0, 0.5], dtype=np.float32)  # Somali, about water
    p = memory.pivot(q, "so", s, "sv", 0.5)
    assert p is not None and p.entries[0] == "water"
    assert p.vector[0] > 0.8 and p.vector[3] < 0  # Swedish, about water
    assert memory.pivot(q, "so", s, "sv", 0.999) is None  # nothing close enough
    assert memory.pivot(q, "de", s, "sv", 0.5) is None  # no German in the memory
    assert memory.pivot(q, "so", s, "de", 0.5) is None  # ... nor as the target
    same = memory.pivot(q, "so", s, "so", 0.5)  # a paraphrase: the memory's own Somali wording
    assert same is not None and same.entries[0] == "water" and same.vector[3] > 0


def test_the_memory_takes_vectors_the_index_cache_already_has(tmp_path):
    """A first start encodes the seed's questions for the knowledge base; the translation memory is the
    same texts and copies their vectors instead of encoding them again (once: a second start copies none)."""
    from knowledge.retrieval import VectorCache, share_cached

    index, memory = VectorCache(tmp_path / "index", "m"), VectorCache(tmp_path / "memory", "m")
    keys = [index.key("query", t) for t in ("Hur söker jag bygglov?", "När hämtas soporna?", "okänd")]
    index.put(keys[:2], np.eye(2, 4, dtype=np.float32))
    assert share_cached(index, memory, keys) == 2
    found, vecs = VectorCache(tmp_path / "memory", "m").lookup(keys)
    assert found.tolist() == [True, True, False]
    np.testing.assert_array_equal(vecs, np.eye(2, 4, dtype=np.float32))
    assert share_cached(index, memory, keys) == 0


SWEDISH = [  # a citizen's own wording of what the headings above are about
    ("Min son har flera mil till skolan, kan han åka taxi dit?", "school-transport"),
    ("Jag vill plugga in gymnasiet som vuxen", "adult-education"),
    ("Dottern är sjuk idag, hur meddelar jag skolan?", "school-absence"),
    ("Grannens barn far illa, vem ringer jag?", "child-concern"),
    ("Kan vi själva bestämma vilken skola barnen går i?", "school-choice"),
    ("Vi har köpt hus här, vad behöver vi göra när vi flyttar in?", "moving-register"),
    ("Kan man dricka kranvattnet just nu?", "boil-water"),
    ("Får jag sälja grönsaker på torget?", "market-trade"),
    ("Pappa klarar inte att städa och handla själv längre", "home-care"),
    ("Min man har demens, finns det något för honom på dagtid?", "day-activity"),
    ("Vi vill gifta oss men inte i kyrkan", "civil-wedding"),
    ("Var kan jag hyra en sal till ett kalas?", "premises-rental"),
    ("Hur blir jag av med en gammal soffa?", "bulky-waste"),
    ("Det kommer inget vatten ur kranen", "water-leak"),
    ("Det står vatten i källaren efter regnet", "flooded-basement"),
]


def test_a_citizens_own_wording_ranks_at_least_as_well_through_a_paraphrase(bridged, embedder, settings):
    """A Swedish message is also scored by the memory's Swedish wordings of the nearest municipal
    question (`paraphrase`): never worse here, and the signal shows in explain."""
    plain = Retriever(embedder, settings=settings.replace(paraphrase=False))
    plain.rebuild(ENTRIES)

    def first(retriever: Retriever) -> int:
        return sum(retriever.search(text, language="sv", top_k=3)[0].entry.id == gold for text, gold in SWEDISH)

    with_paraphrase, without = first(bridged), first(plain)
    assert with_paraphrase >= without and with_paraphrase >= len(SWEDISH) - 3, (with_paraphrase, without)
    assert any("paraphrase" in c.raw for c in bridged.search(SWEDISH[0][0], language="sv"))


def test_a_memory_without_an_intent_never_pivots_to_it():
    """`without` (the seed-halves protocol): the left-out entries' questions are gone, in every language."""
    s = load_retrieval_settings(env={})
    memory = toy_memory().without({"water"})
    q = np.array([1.0, 0.1, 0.0, 0.5], dtype=np.float32)  # Somali, about water
    p = memory.pivot(q, "so", s, "sv", -1.0)
    assert p is not None and "water" not in p.entries and p.vector[0] < 0.5
    assert len(memory) == len(toy_memory()) - 3


def test_entries_borrow_the_wordings_of_their_intent_from_the_memory(bridged, embedder, settings):
    """An entry whose heading and answer match a memory entry's is also found by that entry's
    question variants (`borrow_*`): never worse here in any language, and shown in explain."""
    plain = Retriever(embedder, settings=settings.replace(borrow=False))
    plain.rebuild(ENTRIES)
    asked = [*MESSAGES, *(("sv", text, gold) for text, gold in SWEDISH)]

    def first(retriever: Retriever) -> int:
        return sum(retriever.search(text, language=lang, top_k=3)[0].entry.id == gold for lang, text, gold in asked)

    borrowing, without = first(bridged), first(plain)
    assert borrowing >= without, (borrowing, without)
    lent = [c for lang, text, _ in asked for c in bridged.search(text, language=lang, top_k=3) if "borrowed" in c.raw]
    assert lent and all(c.raw["borrowed"] > 0.5 for c in lent)
    assert not any("borrowed" in c.raw for _, text, _ in asked for c in plain.search(text, top_k=3))


def test_answers_only_entries_and_the_seed_itself_borrow_nothing(embedder, settings):
    """Borrowing needs the entry's own question (an answers-only entry's passage cosines are on
    another scale) and a knowledge base with few wordings per entry (the seed has its own)."""
    answers_only = [Entry(id=e.id, answer=e.answer) for e in ENTRIES]
    r = Retriever(embedder, settings=settings)
    r.rebuild(answers_only)
    assert not any("borrowed" in c.raw for _, text, _ in MESSAGES for c in r.search(text, top_k=3))
    many = [Entry(id=k, answer={"sv": a}, questions={"sv": [f"{q} {i}" for i in range(8)]}) for k, (q, a) in KB.items()]
    r = Retriever(embedder, settings=settings)
    r.rebuild(many)
    assert not any("borrowed" in c.raw for text, _ in SWEDISH for c in r.search(text, language="sv", top_k=3))

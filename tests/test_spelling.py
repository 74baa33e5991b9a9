"""Spelling correction before dense encoding: real words stay, misspellings become real words."""

from __future__ import annotations

import pytest

from knowledge.lexical import SpellCorrector

KB_TEXT = [
    "Hur ansöker jag om förskoleplats?",
    "Sophämtningen sker varannan vecka. Bygglov söker du i e-tjänsten.",
    "Journalinformationen kan du läsa i appen.",
    "Hemtjänst och omsorg för flyktingar från Ukraina. Om vårdnadsöverflyttning.",
]


@pytest.fixture(scope="module")
def speller() -> SpellCorrector:
    s = SpellCorrector()
    for text in KB_TEXT:
        s.learn(text)
    return s


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("forskoleplats", "förskoleplats"),  # diacritics back (knowledge-base word)
        ("förskolplats", "förskoleplats"),  # one letter missing
        ("bygglv", "bygglov"),
        ("jounalinfrmationen", "journalinformationen"),  # two edits in a long word
        ("kjag", "jag"),  # a short word, into a very common one
        ("overklagande", "överklagande"),  # a general word written without diacritics
        ("kmsorg", "omsorg"),  # looks like a compound ("km" + "sorg") but is one typo from a KB word
        ("iag", "jag"),  # a rare dictionary word one edit from a far commoner one
        ("md", "med"),  # ... also of two letters
        ("vårdnadasövegrflyttinng", "vårdnadsöverflyttning"),  # three edits in a very long word
        ("tolkhjlp", "tolkhjälp"),  # a typo in the second part of a compound of known words
        ("servcieinsatser", "serviceinsatser"),  # ... in the first part; the compound is in no dictionary
        ("dokmurentationsregler", "dokumentationsregler"),  # two edits in a long first part, joined by an s
        ("vråd", "vård"),  # diacritics as typed break a tie in edits ("vad" is commoner)
        ("stöv", "stöd"),  # ... "stor" too
    ],
)
def test_misspellings_are_corrected(speller, typed, meant):
    assert speller.correct(f"hej {typed} tack", "sv")[0] == f"hej {meant} tack"


@pytest.mark.parametrize(
    "word",
    [
        "gåvor",  # a real word the knowledge base does not use (was "gator")
        "sot",  # soot, spelt as meant (was "söt")
        "anställds",  # an inflection of a known word
        "sopbilen",  # a compound of known words
        "köplats",  # a compound starting with a short common word (was "kopplats")
        "tv",  # a common two-letter word
        "pm",  # ... and a less common one, still too common to be a typo
    ],
)
def test_real_words_are_kept(speller, word):
    assert speller.correct(f"om {word} idag", "sv") == (f"om {word} idag", [])


def test_names_in_mid_sentence_are_kept(speller):
    assert speller.correct("Jag heter Waran och bor här", "sv")[0] == "Jag heter Waran och bor här"


def test_a_misspelt_name_becomes_the_knowledge_base_name(speller):
    assert speller.correct("Jag kommer från Ukrajna", "sv")[0] == "Jag kommer från Ukraina"


def test_stray_tokenizer_pieces_do_not_make_a_swedish_typo_a_word():
    s = SpellCorrector(lexicon=frozenset({"vsem"}))  # a Czech piece of the e5 vocabulary, folded
    s.learn(KB_TEXT[0])
    assert s.correct("vsem kan", "sv")[0] == "vem kan"
    assert s.correct("vsem", "cs")[0] == "vsem"  # no Czech dictionary: the tokenizer's word counts


def test_without_a_general_dictionary_only_the_knowledge_base_counts():
    s = SpellCorrector(general=False)
    s.learn(KB_TEXT[0])
    assert s.correct("forskoleplats kjag", "sv")[0] == "förskoleplats kjag"  # short words left alone


def test_a_word_learnt_later_is_a_correction_target():
    s = SpellCorrector()
    s.learn(KB_TEXT[0])
    assert s.correct("ekbykorett", "sv")[0] == "ekbykorett"  # builds the pools without the word
    s.learn("Ekbykortet ger rabatt i simhallen.")
    assert s.correct("ekbykorett", "sv")[0] == "ekbykortet"


def test_a_corrected_word_keeps_its_capitals(speller):
    """The encoder is cased: a corrected first word must not lose its capital."""
    assert speller.correct("Ansoker jag om forskoleplats?", "sv")[0] == "Ansöker jag om förskoleplats?"
    assert speller.correct("BYGGLV för altan", "sv")[0] == "BYGGLOV för altan"


def test_the_form_in_the_query_language_wins():
    """A Swedish typo of "för" must not become the English "for" the translations use more often."""
    s = SpellCorrector()
    s.learn("Avgiften för hemtjänst.")
    s.learn("The fee for home care. Apply for a permit. Wait for the answer.")
    assert s.correct("avgift fö hemtjänst", "sv")[0] == "avgift för hemtjänst"
    assert s.correct("fee fo home care", "en")[0] == "fee for home care"


def test_every_speller_shares_the_general_dictionarys_candidate_words():
    """A shared contact centre has a speller per municipality: each kept its own copy of the general
    dictionary's ~100k candidate words (~1.7 MB a municipality once citizens misspelt in sv and en)."""
    a, b = SpellCorrector(), SpellCorrector()
    a.learn("Hur ansöker jag om förskoleplats")
    b.learn("Var hämtas soporna")
    assert a.correct("hur ansoker jag om forskoleplts", "sv")[0] == "hur ansöker jag om förskoleplats"
    assert b.correct("var hamtas sopornna", "sv")[0] == "var hämtas soporna"
    shared_a, shared_b = a._pools("sv", a._dictionary("sv"))[1], b._pools("sv", b._dictionary("sv"))[1]
    assert shared_a is shared_b
    assert "forskoleplats" not in {w for words in shared_a.values() for w in words}  # a's own words stay a's
    assert b.correct("forskoleplts", "sv")[0] != "förskoleplats"


def test_the_general_dictionary_answers_as_dicts_would_and_loads_from_disk(tmp_path):
    """Sorted byte arrays searched by bisection, saved and memory-mapped: the same answers as the
    dicts they replaced (exact form, folded form's commonest spelling, known words)."""
    from knowledge.lexical import GeneralDictionary, fold

    ranked = [("för", 6.5), ("for", 5.0), ("söt", 4.1), ("sot", 3.0), ("överklagande", 3.2), ("å", 5.5), ("ü", 1.0)]
    exact = dict(ranked)
    folded: dict[str, tuple[str, float]] = {}
    for w, z in ranked:
        folded.setdefault(fold(w), (w, z))
    built = GeneralDictionary(ranked)
    built.save(tmp_path / "sv")
    for d in (built, GeneralDictionary.load(tmp_path / "sv")):
        for w in ["för", "for", "sot", "söt", "overklagande", "a", "u", "x", "", "ö" * 40]:
            assert d.exact_zipf(w) == pytest.approx(exact.get(w, 0.0))
            assert d.zipf(w) == pytest.approx(folded[w][1] if w in folded else 0.0)
            assert d.surface(w) == (folded[w][0] if w in folded else None)
        assert sorted(d.known(3.0)) == sorted(f for f, (_, z) in folded.items() if z >= 3.0)
    assert not GeneralDictionary() and GeneralDictionary().zipf("för") == 0.0

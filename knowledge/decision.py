"""The answer decision: answer, ask the citizen to choose (clarify), or hand over to a person.

Answering wrongly is worse than asking or handing over. Calibrated probabilities decide, in three
bands: answer when the best entry is probably right; "did you mean" with up to three buttons when
the right entry is probably among the best three; hand over only when nothing plausible is found.
Raw cosines run lower on a knowledge base with one question per entry, for answers-only entries
and across languages, so besides the seed-fitted rule on score and margin (`bench/retrieval.py
--calibrate`) a second answer model and the offer model weigh how far the best entry stands out
from the rest of the knowledge base, which means the same on any of them; both are fitted on the
dev splits of small knowledge bases (`bench/generalisation.py --fit`); the standout model speaks
only for such knowledge bases (fewer than `standout_max_questions` wordings per entry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from knowledge.retrieval import Candidate
from knowledge.settings import RetrievalSettings

FALLBACK_LANGUAGE = "sv"

# "This answer is only available in Swedish." in the citizen's language.
NOTICES = {
    "en": "This answer is only available in Swedish.",
    "ar": "هذه الإجابة متوفرة باللغة السويدية فقط.",
    "so": "Jawaabtan waxay ku qoran tahay oo keliya luqadda iswiidhishka.",
    "fa": "این پاسخ فقط به زبان سوئدی موجود است.",
    "fi": "Tämä vastaus on saatavilla vain ruotsiksi.",
    "ku": "Ev bersiv tenê bi swêdî heye.",
    "ti": "እዚ መልሲ ብቋንቋ ሽወደን ጥራይ እዩ ዘሎ።",
    "tr": "Bu yanıt yalnızca İsveççe olarak mevcuttur.",
    "pl": "Ta odpowiedź jest dostępna tylko po szwedzku.",
    "uk": "Ця відповідь доступна лише шведською мовою.",
    "ru": "Этот ответ доступен только на шведском языке.",
    "da": "Dette svar findes kun på svensk.",
    "no": "Dette svaret finnes bare på svensk.",
    "de": "Diese Antwort ist nur auf Schwedisch verfügbar.",
    "es": "Esta respuesta solo está disponible en sueco.",
    "fr": "Cette réponse n'est disponible qu'en suédois.",
    "ur": "یہ جواب صرف سویڈش زبان میں دستیاب ہے۔",
}


@dataclass
class Decision:
    decision: str  # answer | clarify | handoff
    confidence: float
    language: str
    answer_language: str
    candidates: list[Candidate]
    notice: str | None = None
    explain: dict = field(default_factory=dict)

    def answers(self, top_k: int | None = None) -> list[dict]:
        out = []
        for c in self.candidates[:top_k]:
            lang = answer_language(c, self.language)
            out.append(
                {
                    "id": c.entry.id,
                    "score": round(c.score, 4),
                    "question": c.entry.first_question(self.language),
                    "text": c.entry.answer[lang],
                    "url": c.entry.url,
                    "language": lang,
                }
            )
        return out

    def to_dict(self, top_k: int | None = None, explain: bool = False) -> dict:
        """The `/api/v1/answer` body (without the detected language, which the caller adds)."""
        limit = {"answer": top_k, "clarify": min(top_k or 3, len(self.candidates)), "handoff": top_k}[self.decision]
        out: dict = {
            "decision": self.decision,
            "confidence": round(self.confidence, 4),
            "answer_language": self.answer_language,
            "answers": self.answers(limit),
        }
        if self.notice:
            out["notice"] = self.notice
        if explain:
            out["explain"] = self.explain
        return out


def answer_language(candidate: Candidate, language: str) -> str:
    answers = candidate.entry.answer
    if language in answers:
        return language
    return FALLBACK_LANGUAGE if FALLBACK_LANGUAGE in answers else next(iter(answers))


def notice_for(language: str, answer_lang: str) -> str | None:
    if answer_lang == language:
        return None
    return NOTICES.get(language, NOTICES["en"]) if answer_lang == FALLBACK_LANGUAGE else None


# The signals both probabilities weigh; each is meant to mean the same on any knowledge base.
SIGNALS = ("score", "margin", "lead", "cross_language")


def signals(candidates: list[Candidate], language: str) -> dict[str, float]:
    """What the decision weighs about the best candidate.

    - score: its fused score; margin: its lead over the runner-up;
    - lead: how far it stands out from the other entries scored for this message, in their standard
      deviations (a message in another language, or against answers only, lowers every cosine
      alike: the lead is what stays); 0 when the knowledge base has fewer than three entries;
    - cross_language: 1 when it has no text in the message's language (cosines across languages
      run lower for the same match).
    """
    top = candidates[0]
    second = candidates[1].score if len(candidates) > 1 else 0.0
    foreign = language not in top.entry.answer and language not in top.entry.questions
    return {"score": top.score, "margin": top.score - second, "lead": top.raw.get("lead", 0.0),
            "cross_language": float(foreign)}


def probability(values: dict[str, float], settings: RetrievalSettings, prefix: str) -> float:
    """A logistic fit over the signals: `prefix` "answer" = P(the best candidate is right),
    "offer" = P(the right one is among the best three). Weights are settings (`<prefix>_w_<signal>`)."""
    z = getattr(settings, f"{prefix}_bias") + sum(getattr(settings, f"{prefix}_w_{k}") * values[k] for k in SIGNALS)
    return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))


THRESHOLDS = ("answer_probability", "standout_probability", "answer_min_margin", "offer_probability",
              "offer_min_score", "standout_max_questions", "clarify_window")


def vouchers(p_score: float, p_standout: float, best: Candidate, s: RetrievalSettings) -> list[str]:
    """Which answer models vouch for the best candidate. Each speaks for the knowledge bases it was
    fitted on: the score rule for any, the standout model for those with few wordings per entry."""
    vouch = []
    if p_score >= s.answer_probability:
        vouch.append(f"P(right | score, margin) {p_score:.3f} >= {s.answer_probability}")
    few_wordings = best.raw.get("wordings", 0.0) < s.standout_max_questions
    if p_standout >= s.standout_probability and few_wordings:
        vouch.append(f"P(right | standing out) {p_standout:.3f} >= {s.standout_probability}")
    return vouch


def decide(candidates: list[Candidate], language: str, settings: RetrievalSettings, words: bool = True) -> Decision:
    """Three bands: answer when the best candidate is probably right; else "did you mean" with up
    to three candidates when the right one is probably among them; else hand over. `words` is
    False for a message of no known word (`lexical.reads_as_words`): the nearest entries of a
    keyboard mash stand out by chance, so it is handed over. `explain` records the band, the
    signals and the rule that fired."""
    s = settings
    if not candidates or not words:
        rule = "no entry matched at all" if not candidates else "no word of the message is a known word"
        return Decision("handoff", 1.0, language, language, [], None,
                        {"band": "handoff", "rule": rule, "candidates": [c.signals() for c in candidates[:5]]})
    values = signals(candidates, language)
    p_score, p_standout = probability(values, s, "answer"), probability(values, s, "standout")
    p_offer = probability(values, s, "offer")
    p_answer = max(p_score, p_standout)
    vouch = vouchers(p_score, p_standout, candidates[0], s)
    explain: dict = {
        "candidates": [c.signals() for c in candidates[:5]],
        "signals": {k: round(v, 4) for k, v in values.items()},
        "probability": round(p_answer, 4),
        "score_probability": round(p_score, 4),
        "standout_probability": round(p_standout, 4),
        "offer_probability": round(p_offer, 4),
        "thresholds": {k: getattr(s, k) for k in THRESHOLDS},
    }
    if candidates[0].query:
        explain["corrected_query"] = candidates[0].query
    top = candidates[0].score
    if vouch and values["margin"] >= s.answer_min_margin:
        rule = f"{' and '.join(vouch)}; margin {values['margin']:.3f} >= {s.answer_min_margin}"
        decision, shown, confidence = "answer", candidates, p_answer
    elif (
        p_offer >= s.offer_probability
        and candidates[0].raw.get("lead", s.offer_min_lead) >= s.offer_min_lead
        and top >= s.offer_min_score
    ):
        shown = [c for c in candidates if c.score >= top - s.clarify_window][: s.clarify_max]
        if len(shown) < 2:
            shown = candidates[:2]  # one weak candidate: ask ("did you mean ...?") rather than assert it
        why = f"margin {values['margin']:.3f} < {s.answer_min_margin}" if vouch else "neither answer model vouches"
        rule = (f"{why} (P(right) {p_score:.3f} / {p_standout:.3f}); P(right among the best three) "
                f"{p_offer:.3f} >= {s.offer_probability}: {len(shown)} candidates to choose from")
        decision, confidence = "clarify", p_offer
    elif p_offer < s.offer_probability:
        rule = f"P(right among the best three) {p_offer:.3f} < {s.offer_probability}: nothing plausible"
        decision, shown, confidence = "handoff", [], 1.0 - p_offer
    elif top < s.offer_min_score:
        rule = f"the best scores {top:.3f} < {s.offer_min_score}: nothing plausible"
        decision, shown, confidence = "handoff", [], 1.0 - p_offer
    else:
        rule = f"the best stands out by {values['lead']:.2f} < {s.offer_min_lead} sd from the rest: nothing plausible"
        decision, shown, confidence = "handoff", [], 1.0 - p_offer
    explain["band"], explain["rule"] = decision, rule
    ans_lang = answer_language(shown[0], language) if shown else language
    return Decision(decision, float(confidence), language, ans_lang, shown,
                    notice_for(language, ans_lang) if shown else None, explain)

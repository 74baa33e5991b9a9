"""The answer decision: answer, ask the citizen to choose (clarify), or hand over to a person.

Answering wrongly is worse than asking or handing over, so `answer` needs both an absolute score
and a clear lead over the next entry; close runners-up become a clarifying question.
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
            out.append({"id": c.entry.id, "score": round(c.score, 4), "question": c.entry.first_question(self.language),
                        "text": c.entry.answer[lang], "url": c.entry.url, "language": lang})
        return out

    def to_dict(self, top_k: int | None = None, explain: bool = False) -> dict:
        """The `/api/v1/answer` body (without the detected language, which the caller adds)."""
        limit = {"answer": top_k, "clarify": min(top_k or 3, len(self.candidates)), "handoff": top_k}[self.decision]
        out: dict = {"decision": self.decision, "confidence": round(self.confidence, 4),
                     "answer_language": self.answer_language, "answers": self.answers(limit)}
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


def answer_probability(top: float, margin: float, settings: RetrievalSettings) -> float:
    """Calibrated P(the top entry is the right one): a logistic fit of score and margin (dev data)."""
    z = settings.answer_bias + settings.answer_w_score * top + settings.answer_w_margin * margin
    return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))


def decide(candidates: list[Candidate], language: str, settings: RetrievalSettings) -> Decision:
    """Answer when the calibrated probability is high; else clarify between the close candidates,
    or hand over when even the best is weak. `explain` records the signals and the rule that fired."""
    s = settings
    top = candidates[0].score if candidates else 0.0
    second = candidates[1].score if len(candidates) > 1 else 0.0
    margin = top - second
    p = answer_probability(top, margin, s) if candidates else 0.0
    explain = {"candidates": [c.signals() for c in candidates[:5]], "top": round(top, 4),
               "margin": round(margin, 4), "probability": round(p, 4),
               "thresholds": {"answer_probability": s.answer_probability, "margin": s.answer_min_margin,
                              "clarify": s.clarify_threshold,
                              "clarify_window": s.clarify_window}}
    if candidates and candidates[0].query:
        explain["corrected_query"] = candidates[0].query
    if not candidates or top < s.clarify_threshold:
        decision, rule, shown = "handoff", f"top score {top:.3f} < clarify threshold {s.clarify_threshold}", []
    elif p >= s.answer_probability and margin >= s.answer_min_margin:
        rule = f"P(right) {p:.3f} >= {s.answer_probability} (score {top:.3f}, margin {margin:.3f})"
        decision, shown = "answer", candidates
    else:
        close = [c for c in candidates if c.score >= top - s.clarify_window][: s.clarify_max]
        if len(close) < 2:
            close = candidates[:2]  # one weak candidate: ask ("did you mean ...?") rather than assert it
        rule = (f"P(right) {p:.3f} < {s.answer_probability} or margin {margin:.3f} < {s.answer_min_margin}: "
                f"{len(close)} candidates to choose from")
        decision, shown = "clarify", close
    explain["rule"] = rule
    confidence = 1.0 - p if decision == "handoff" else p
    ans_lang = answer_language(shown[0], language) if shown else language
    return Decision(decision, float(confidence), language, ans_lang, shown,
                    notice_for(language, ans_lang) if shown else None, explain)

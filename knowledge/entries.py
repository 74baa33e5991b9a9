"""The knowledge entry: one question a municipality answers, in several languages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

DEFAULT_MUNICIPALITY = "default"


@dataclass
class Entry:
    """One FAQ entry. `questions` and `answer` map a language code (ISO 639-1) to text."""

    id: str
    answer: dict[str, str]
    questions: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    url: str | None = None
    review_by: dt.date | None = None
    municipality: str = DEFAULT_MUNICIPALITY

    @property
    def languages(self) -> list[str]:
        """Languages the entry can answer in."""
        return sorted(self.answer)

    def first_question(self, language: str | None = None) -> str:
        """A representative question, in `language` when the entry has one (for buttons)."""
        for lang in (language, "sv", "en", *self.questions):
            if lang and self.questions.get(lang):
                return self.questions[lang][0]
        return next(iter(self.answer.values()))[:80]

    def to_dict(self) -> dict:
        """The public file format (see docs/knowledge-format.md)."""
        out: dict = {"id": self.id}
        if self.tags:
            out["tags"] = list(self.tags)
        if self.url:
            out["url"] = self.url
        if self.review_by:
            out["review_by"] = self.review_by.isoformat()
        if self.questions:
            out["questions"] = {k: list(v) for k, v in self.questions.items()}
        out["answer"] = dict(self.answer)
        return out

"""What the insight and report routes answer: response models for OpenAPI and generated clients.

Models allow extra fields: they name what each answer has at least; nested figures stay plain objects.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Freshness(Open):
    items: list[dict] = Field(description="entries past or near their review date, or marked unhelpful")


class Unanswered(Open):
    groups: list[dict] = Field(description="citizen questions the bot did not answer well, grouped by meaning")
    days: int


class Dashboard(Open):
    days: int
    timezone: str
    conversations: int
    deflected: int
    handed_over: int
    deflection_rate: float | None = None
    per_day: list[dict] = []
    saving: dict = {}


class CostSettings(Open):
    cost_per_call: float
    cost_per_chat: float
    currency: str
    required_languages: list[str]


class ReportSummary(Open):
    from_: str = Field(alias="from")
    to: str
    group_by: str
    timezone: str
    rows: list[dict]


class AgentsReport(Open):
    from_: str = Field(alias="from")
    to: str
    timezone: str
    agents: list[dict]

"""Custom REST input channel used by the Kommunchatt service.

The service posts each citizen message to `/webhooks/kommunchatt/webhook` with a `metadata`
object (detected language, municipality, session language). Rasa's plain REST channel is
registered too, but this one guarantees the metadata reaches the `UserMessage` (and from there
the tracker, where `action_session_slots` reads it) as a plain dict.
"""

from typing import Any

from rasa.core.channels.rest import RestInput
from sanic.request import Request

import bot.speedups  # noqa: F401 - patches Rasa on import (see the module)


class KommunchattInput(RestInput):
    """REST channel named `kommunchatt` that forwards the request's metadata."""

    @classmethod
    def name(cls) -> str:
        """URL prefix: /webhooks/kommunchatt/."""
        return "kommunchatt"

    def get_metadata(self, request: Request) -> dict[str, Any] | None:
        """Returns the `metadata` object of the JSON body (ignored unless it is an object)."""
        body = request.json or {}
        metadata = body.get("metadata")
        return dict(metadata) if isinstance(metadata, dict) else {}

    def _extract_input_channel(self, req: Request) -> str:
        """Always records this channel's name, whatever the body claims."""
        return self.name()

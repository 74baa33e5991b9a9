"""Custom REST input channel used by the Kommunchatt service.

The service posts each citizen message to `/webhooks/kommunchatt/webhook` with a `metadata`
object (detected language, municipality, session language). Rasa's plain REST channel is
registered too, but this one guarantees the metadata reaches the `UserMessage` (and from there
the tracker, where `action_session_slots` reads it) as a plain dict.

The service may have asked Rasa's NLU already (conversations/direct.py: `/model/parse`, to see whether
it can answer a question itself). It then sends that result as `metadata.parse_data`, and the message
is not parsed a second time; the result is taken only for the very same text.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint
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

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        async def parsed_once(message: UserMessage) -> Any:
            parse = (message.metadata or {}).pop("parse_data", None)
            if isinstance(parse, dict) and parse.get("text") == message.text and isinstance(parse.get("intent"), dict):
                message.parse_data = {"entities": [], **parse}
            return await on_new_message(message)

        return super().blueprint(parsed_once)

"""Per-turn overheads of Rasa 3.6 cut where Rasa does the same work again on every call.

1. Rasa 3.6 validates every action server response with `jsonschema.validate`, which re-checks
the (large) events schema itself on each call: about 60 ms per custom action on this machine, two
or three times per turn. The same validation with the validator built once takes ~1 ms.

2. `EndpointConfig.request` opens a new aiohttp session, so a new TCP connection, for every call to
the action server (two or three per turn). Here each endpoint keeps one session per event loop
(keep-alive; the action server's sanic keeps connections open).

3. Every call to the action server carries the whole domain (110 kB of JSON: every response in 12
languages), encoded by Rasa and decoded by rasa_sdk, ~25 ms each way under load. `action_session_slots`
runs on every citizen message and reads only the message's metadata and the slots, so it is called
without it (rasa_sdk then passes `{}`), as Rasa's selective domain would do for an action without
`send_domain`. An action added to ACTIONS_WITHOUT_DOMAIN must not read its `domain` argument.

4. Every event read from the tracker store or an action's answer finds its class by walking every
subclass of `Event` (`all_subclasses`, with an `isabstract` check each): 5-6 % of Rasa's CPU in a turn
(py-spy, bench/README.md). The class found for a type name is kept; an unknown name asks Rasa again.

Imported by the modules Rasa loads at start-up (the custom channel and tracker store).
"""

import asyncio
from typing import Any

import aiohttp
from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event
from rasa.utils.endpoints import EndpointConfig

_validator = None
ACTIONS_WITHOUT_DOMAIN = frozenset({"action_session_slots"})


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """Rasa's own check (same schema, same error message), with a cached validator."""
    global _validator
    if _validator is None:
        schema = self.action_response_format_spec()
        cls = validator_for(schema)
        cls.check_schema(schema)
        _validator = cls(schema)
    error: ValidationError | None = best_match(_validator.iter_errors(result))
    if error is not None:
        error.message += (
            ". Failed to validate Action server response from API, make sure your response from the "
            f"Action endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


RemoteAction._validate_action_result = _validate_action_result


class _KeptSession:
    """`async with` on it yields the endpoint's shared session and leaves it open."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self._session

    async def __aexit__(self, *_exc: object) -> None:
        return None


_new_session = EndpointConfig.session


def _kept_session(self: EndpointConfig) -> Any:
    """The endpoint's session for the running loop (made on first use, again if closed or on another loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # called outside a loop: Rasa's own behaviour
        return _new_session(self)
    session: aiohttp.ClientSession | None = getattr(self, "_kommunchatt_session", None)
    if session is None or session.closed or getattr(self, "_kommunchatt_loop", None) is not loop:
        session = _new_session(self)
        self._kommunchatt_session, self._kommunchatt_loop = session, loop
    return _KeptSession(session)


EndpointConfig.session = _kept_session


_action_call_format = RemoteAction._action_call_format


def _action_call_format_lean(self: RemoteAction, tracker: Any, domain: Any) -> dict[str, Any]:
    """Rasa's request body, without the domain for the actions that never read it."""
    body = _action_call_format(self, tracker, domain)
    if self.name() in ACTIONS_WITHOUT_DOMAIN:
        body.pop("domain", None)
    return body


RemoteAction._action_call_format = _action_call_format_lean


_resolve_by_type = Event.resolve_by_type
_event_classes: dict[str, type] = {}


def _resolve_by_type_kept(type_name: str, default: type | None = None) -> type | None:
    """Rasa's lookup of an event class by its type name, kept once found."""
    found = _event_classes.get(type_name)
    if found is None:
        found = _resolve_by_type(type_name, default)
        if found is not None and found is not default:
            _event_classes[type_name] = found
    return found


Event.resolve_by_type = staticmethod(_resolve_by_type_kept)

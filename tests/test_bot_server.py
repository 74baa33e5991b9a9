"""bot/server.py hands the internal token to Rasa's own argument parser (not the process list)."""

from __future__ import annotations

import argparse
import sys
import types

import pytest

from bot import server


@pytest.mark.parametrize("token", ["-Zk3_generated-token", "plain-token", "--x"])
def test_any_generated_token_reaches_rasa_as_the_auth_token(monkeypatch, token):
    """A token_urlsafe token may start with "-": Rasa then refused to start ("argument -t/--auth-token:
    expected one argument"), seen in a full test run. Parsed as Rasa's parser parses it."""
    seen = {}

    def rasa_main() -> None:
        parser = argparse.ArgumentParser()
        parser.add_argument("command")
        parser.add_argument("-t", "--auth-token")
        parser.add_argument("--enable-api", action="store_true")
        parser.add_argument("--port")
        seen["args"] = parser.parse_args(sys.argv[1:])

    fake = types.ModuleType("rasa.__main__")
    fake.main = rasa_main
    monkeypatch.setitem(sys.modules, "rasa", types.ModuleType("rasa"))
    monkeypatch.setitem(sys.modules, "rasa.__main__", fake)
    monkeypatch.setenv("KOMMUNCHATT_INTERNAL_TOKEN", token)
    monkeypatch.setattr(sys, "argv", ["bot.server", "--port", "5005"])
    server.main()
    assert seen["args"].auth_token == token and seen["args"].port == "5005" and seen["args"].enable_api

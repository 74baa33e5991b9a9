"""No function over 60 lines in the service packages unless its docstring says why ("Long because ...").

The developers' guide asks for small functions; this walks the source (no import, no app) so the rule
is checked on every run, not only in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "knowledge", "conversations", "handoff", "insights", "kommunchatt")
LIMIT = 60
REASON = "Long because"


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of each function or method over LIMIT lines whose docstring gives no reason."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > LIMIT and REASON not in (ast.get_docstring(node) or ""):
                found.append((node.name, lines))
    return found


def test_the_check_sees_a_long_function_and_its_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert long_functions(f"def f():\n{body}\n") == [("f", LIMIT + 1)]
    assert long_functions(f'def f():\n    """Long because a table reads best whole."""\n{body}\n') == []
    assert long_functions("def g():\n    return 1\n") == []


def test_no_function_over_60_lines_without_a_reason():
    offenders = [
        f"{path.relative_to(ROOT)}: {name} ({lines} lines)"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "split these into named steps, or say why in the docstring:\n" + "\n".join(offenders)

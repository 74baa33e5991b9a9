"""The one YAML loader: libyaml's safe loader where PyYAML has it (Debian's and the wheels do), else
the pure-Python one. The translation memory's 6 MB of YAML is parsed at every start: 4.8 s with the
pure-Python parser, a fraction of a second with libyaml."""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """`yaml.safe_load` through `SafeLoader`."""
    return yaml.load(text, Loader=SafeLoader)

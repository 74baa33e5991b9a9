"""Starts the Rasa server with the internal token read from the environment or a file.

`rasa run --auth-token TOKEN` would put the secret in the process list (`ps`, /proc/PID/cmdline,
readable by every user of the machine); this wrapper hands it to Rasa's own command line parser
inside the process instead. Every other argument is passed on as for `rasa run`:

    python -m bot.server --interface 127.0.0.1 --port 5005 --model M --endpoints bot/endpoints.yml ...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def internal_token() -> str:
    """KOMMUNCHATT_INTERNAL_TOKEN, else the file named by KOMMUNCHATT_INTERNAL_TOKEN_FILE."""
    token = os.environ.get("KOMMUNCHATT_INTERNAL_TOKEN", "").strip()
    path = os.environ.get("KOMMUNCHATT_INTERNAL_TOKEN_FILE")
    if not token and path:
        token = Path(path).read_text().strip()
        os.environ["KOMMUNCHATT_INTERNAL_TOKEN"] = token  # bot/endpoints.yml sends it to the action server
    if not token:
        sys.exit(
            "error: set KOMMUNCHATT_INTERNAL_TOKEN or KOMMUNCHATT_INTERNAL_TOKEN_FILE (the secret shared "
            "with the service and the action server)"
        )
    return token


def main() -> None:
    token = internal_token()
    # One argument "--auth-token=TOKEN": a token starting with "-" (1 in 64 of the generated ones)
    # given as its own argument reads to argparse as an option, and Rasa would not start.
    sys.argv = ["rasa", "run", "--enable-api", f"--auth-token={token}", *sys.argv[1:]]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()

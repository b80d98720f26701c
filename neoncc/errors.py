"""One error type for everything a user can get wrong, so every command can print one clear line and exit 1."""

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input from the user: the message names the file (and line/field) and what is wrong."""


def exit_status(action: Callable[[], int | None]) -> int:
    """A command's exit status: its own (0 when it returns None), or 1 after one `error:` line on stderr when
    the user got something wrong."""
    try:
        return action() or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def program_name(default: str) -> str:
    """The name a command was started by: a console script's own (neoncc, neoncc-deploy, ...) or `default`
    (python3 -m ..., deploy.py)."""
    name = sys.argv[0].rsplit("/", 1)[-1] if sys.argv else ""
    return name if name.startswith("neoncc") and not name.endswith(".py") else default

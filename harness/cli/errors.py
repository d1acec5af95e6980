"""How every `mlpbench` command reports bad input: one line on stderr, exit status 2."""

from __future__ import annotations

import sys

PROG = "mlpbench"
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: printed as one line by `fail`, exit status 2."""


def fail(message: str) -> int:
    """Print `mlpbench: error: MESSAGE` to stderr; return the exit status of bad input."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE

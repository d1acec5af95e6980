"""How every `mlpbench` command reports bad input: one line on stderr, exit status 2."""

from __future__ import annotations

import errno
import sys

PROG = "mlpbench"
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: printed as one line by `fail`, exit status 2."""


def fail(message: str) -> int:
    """Print `mlpbench: error: MESSAGE` to stderr; return the exit status of bad input."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _shown(name: object) -> str:
    """A file name as a message shows it: a name too long for the system is also too long
    to read in full."""
    text = str(name)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]} ({len(text)} characters)"


def os_error(exc: OSError, command: str | None = None) -> str:
    """A file system error as one line: which file, what happened, what to do. `run` and
    `sweep` keep every finished run in their folder, so they are continued, not redone."""
    name = exc.filename if exc.filename is not None else exc.filename2
    where = f" {_shown(name)}" if name is not None else ""
    again = "run it again with --resume" if command in ("run", "sweep") else "run it again"
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return f"no space left on the device writing{where}: free space, then {again}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied:{where}: give a file or folder you may read and write"
    if exc.errno == errno.EROFS:
        return f"read-only file system:{where}: choose a folder you may write"
    if exc.errno == errno.ENAMETOOLONG:
        return f"file name too long:{where}: each part of a path may hold at most 255 bytes"
    return f"{exc.strerror or exc}:{where}"

"""A worker's life tied to its suite's, and the life of what a worker started tied to its own.

A suite killed with SIGKILL runs no clean-up, so the kernel has to end its workers: each asks
for SIGKILL when its parent ends (PR_SET_PDEATHSIG). A cold worker's parent is the suite; a
warm worker's is the fork server, which exits when the suite does (multiprocessing's forkserver
reads EOF from the suite), and a rank's is its supervisor.

The runner kills a worker's process group when the run ends, which ends what the variant
started, unless the variant moved it to a session of its own (a daemon). So the worker also
becomes the reaper of every orphan below it (PR_SET_CHILD_SUBREAPER) and kills what is left of
its descendants when it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # no prctl: not Linux
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def die_with_parent(event_fd: int | None) -> None:
    """SIGKILL when the parent ends. A parent that ended before this call sends nothing, so
    then this process exits now: it knows from its event pipe, whose only reader was the
    process that started it (a pid would not tell a warm worker's suite from its server)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if event_fd is not None and _reader_gone(event_fd):
        os._exit(1)


def _reader_gone(fd: int) -> bool:
    """A pipe's write end reports POLLERR once no process holds its read end."""
    poll = select.poll()
    poll.register(fd, 0)
    return any(events & select.POLLERR for _, events in poll.poll(0))


def adopt_orphans() -> None:
    """Orphans of this process' descendants become its children instead of init's."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == me:  # its parent
                found.append(int(stat.parent.name))
    return found


def end_descendants() -> None:
    """Kill and reap every child this process has; each one's own children then become this
    process' (adopt_orphans), until none is left."""
    while children := _children():
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

"""The results folder's housekeeping around a suite: what --force may replace and removes,
task files a killed runner left behind, and worker logs kept to a bounded size."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness.results import storage
from harness.run.config import SuiteError

TASKS_PREFIX = "mlpbench-tasks-"  # then the runner's pid: a killed runner's files are found
LOG_CAP = 4 << 20  # bytes of a worker's output kept in its log


def _contents(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.name != storage.LOCK]


def is_empty(path: Path) -> bool:
    """Nothing in the folder but the lock a suite holds on it."""
    return not _contents(path)


def check_replaceable(path: Path) -> None:
    """--force replaces an earlier suite, but never a folder that is not one."""
    if _contents(path) and not (path / storage.MANIFEST).exists():
        raise SuiteError(f"refusing to overwrite {path}: it is not a results folder")


def clear_results_dir(path: Path) -> None:
    """--force, once the new suite has started cleanly: remove the earlier one (the lock that
    this suite holds stays)."""
    for child in _contents(path):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def remove_stale_task_dirs() -> None:
    """Task files of suites killed with SIGKILL: their folder names the dead runner's pid."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TASKS_PREFIX}*"):
        pid = folder.name[len(TASKS_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def cap_log(path: Path, limit: int = LOG_CAP) -> None:
    """Keep a worker's log under `limit` bytes: its head (how the run started) and its tail
    (how it ended, where a traceback is), with the size of the cut between them. The worker
    appends (O_APPEND), so its next writes land after the cut."""
    try:
        size = path.stat().st_size
        if size <= limit:
            return
        with open(path, "r+b") as f:
            keep = limit // 2 - 200
            f.seek(size - keep)
            tail = f.read(keep)
            marker = f"\n[... {size - 2 * keep:,} bytes of output cut by mlpbench ...]\n"
            f.seek(keep)
            f.write(marker.encode() + tail)
            f.truncate()
    except OSError:
        pass  # a log that cannot be trimmed is still a log

"""The results folder's housekeeping around a suite: what --force may replace and removes,
task files a killed runner left behind, and worker logs kept to a bounded size."""

from __future__ import annotations

import fnmatch
import json
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


# Everything a results folder holds besides its lock and the temporary files of a write cut
# short (storage.TEMPORARY): all of it written by mlpbench (results/README.md).
RESULTS_FILES = frozenset(
    {storage.MANIFEST, storage.STEPS, storage.EPOCHS, storage.SUMMARY, "scaling.json", "logs"}
)


def check_replaceable(path: Path) -> None:
    """--force replaces an earlier suite, but never a folder that is not one: many tools write
    a manifest.json, so it must be mlpbench's, and nothing else may be there."""
    problem = why_not_results(path)
    if problem:
        raise SuiteError(
            f"--force: refusing to delete {path}: {problem}; choose another --out, or empty "
            "the folder yourself"
        )


def why_not_results(path: Path) -> str | None:
    """Why `path` is not recognisably a results folder, or None if it is (or is empty)."""
    contents = _contents(path)
    if not contents:
        return None
    file = path / storage.MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"it is not an mlpbench results folder (no {storage.MANIFEST})"
    except (OSError, ValueError) as exc:
        return f"it is not an mlpbench results folder ({file} cannot be read: {exc})"
    if not (
        isinstance(manifest, dict)
        and isinstance(manifest.get("schema_version"), int)
        and isinstance(manifest.get("runs"), list)
    ):
        return f"it is not an mlpbench results folder ({file} is not mlpbench's manifest)"
    foreign = sorted(
        p.name
        for p in contents
        if p.name not in RESULTS_FILES and not fnmatch.fnmatchcase(p.name, storage.TEMPORARY)
    )
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        return f"it holds {foreign[0]}{more}, which mlpbench did not write"
    return None


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

"""A batch-size sweep: one ordinary suite per batch size, run one after another by the same
runner as `mlpbench run`, into the folder harness/results/sweep.py describes.

This module plans the points, checks --force and --resume, and records each point's exit
status; running a point is the caller's (the CLI runs each as it runs `mlpbench run`).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.results import storage
from harness.results.storage import ResultsError, utc_now
from harness.results.sweep import (
    SCHEMA_VERSION,
    SWEEP,
    is_sweep,
    point_folder,
    read_sweep_folder,
    write_sweep,
)

if TYPE_CHECKING:  # the runner imports pandas; reading a sweep folder needs none of it
    from harness.run.config import RunConfig

# Exit status of an interrupted point: the sweep stops there, and `--resume` continues it.
INTERRUPTED = 130


class SweepError(Exception):
    """A sweep that cannot start as asked; the message says why (exit status 2)."""


@dataclass(frozen=True)
class SweepPlan:
    """What `mlpbench sweep` was asked to do: one run configuration per batch size."""

    out: Path
    points: tuple[RunConfig, ...]  # smallest batch first, each writing to out/bsB
    argv: tuple[str, ...]
    resume: bool
    force: bool

    @property
    def batch_sizes(self) -> list[int]:
        return [p.batch_size for p in self.points]


def plan(config: RunConfig, batch_sizes: Sequence[int]) -> SweepPlan:
    """One point per batch size, otherwise `config` unchanged. A point is never forced: with
    --force the whole sweep folder is replaced before the first point starts."""
    points = tuple(
        replace(config, batch_size=b, out=config.out / point_folder(b), force=False)
        for b in sorted(set(batch_sizes))
    )
    return SweepPlan(config.out, points, config.argv, config.resume, config.force)


def check(plan: SweepPlan) -> None:
    """What the CLI's generic --out checks cannot know: --force replaces only a sweep folder,
    and --resume continues only the same sweep (same batch sizes, every started point
    resumable with these settings). Raises SweepError; writes nothing."""
    from harness.run.config import SuiteError, check_resumable

    out = plan.out
    problem = _why_not_a_sweep(out) if plan.force and out.is_dir() else None
    if problem:
        raise SweepError(
            f"--force: refusing to delete {out}: {problem}; choose another --out, or empty the "
            "folder yourself"
        )
    if not (plan.resume and is_sweep(out)):
        return
    previous = read_sweep_folder(out)
    swept = [b for b, _ in previous.points]
    if swept != plan.batch_sizes:
        raise SweepError(
            f"--resume: {out} swept batch sizes {','.join(map(str, swept))}, not "
            f"{','.join(map(str, plan.batch_sizes))}; use the same --batch-sizes, or --force "
            "to start over"
        )
    for point in plan.points:
        if (point.out / storage.MANIFEST).exists():
            try:
                check_resumable(point, storage.read_manifest(point.out))
            except (SuiteError, ResultsError) as exc:
                raise SweepError(str(exc)) from None


def _why_not_a_sweep(out: Path) -> str | None:
    """Why --force may not delete `out`, or None: it must be empty, or hold a sweep.json of
    mlpbench's and nothing but the results folders that it names."""
    from harness.run.folder import why_not_results

    contents = [p for p in out.iterdir() if p.name != storage.LOCK]
    if not contents:
        return None
    if not is_sweep(out):
        return f"it is not a sweep folder (no {SWEEP})"
    try:
        points = {path.name for _, path in read_sweep_folder(out).points}
    except ResultsError as exc:
        return f"it is not a sweep folder ({exc})"
    foreign = sorted(p.name for p in contents if p.name != SWEEP and p.name not in points)
    if foreign:
        return f"it holds {foreign[0]}, which mlpbench did not write"
    for path in (p for p in contents if p.name in points):
        problem = why_not_results(path) if path.is_dir() else "it is not a folder"
        if problem:
            return f"{path.name}: {problem}"
    return None


def run(plan: SweepPlan, run_point: Callable[[int, RunConfig], int]) -> int:
    """Write sweep.json, then run every point in order with `run_point(index, config)` (which
    returns the suite's exit status) and record each status as it ends. Returns 0 when every
    point returned 0, 130 as soon as one was interrupted (the rest is not started), else 1."""
    if plan.force and plan.out.exists():
        shutil.rmtree(plan.out)  # check() made sure it is a sweep folder
    plan.out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(plan)
    write_sweep(plan.out, manifest)
    entries = {int(entry["batch_size"]): entry for entry in manifest["points"]}
    code = 0
    for index, config in enumerate(plan.points):
        entries[config.batch_size]["exit_status"] = status = run_point(index, config)
        write_sweep(plan.out, manifest)
        if status == INTERRUPTED:
            return INTERRUPTED
        if status != 0:
            code = 1
    manifest["finished"] = utc_now()
    write_sweep(plan.out, manifest)
    return code


def _manifest(plan: SweepPlan) -> dict[str, Any]:
    """A new sweep.json, or the resumed one with this resumption recorded."""
    if plan.resume and is_sweep(plan.out):
        manifest = read_sweep_folder(plan.out).manifest
        manifest["finished"] = None
        resumed = {"time": utc_now(), "command": shlex.join(plan.argv)}
        manifest.setdefault("resumed", []).append(resumed)
        return manifest
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "batch_size_sweep",
        "name": plan.out.name,
        "created": utc_now(),
        "finished": None,
        "command": shlex.join(plan.argv),
        "argv": list(plan.argv),
        "batch_sizes": plan.batch_sizes,
        # exit_status: that point's `run` exit status, null until it has run
        "points": [
            {"batch_size": p.batch_size, "path": point_folder(p.batch_size), "exit_status": None}
            for p in plan.points
        ],
    }

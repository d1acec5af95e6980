"""A batch-size sweep on disk: one ordinary results folder per batch size (`OUT/bs32`, ...),
run one after another by the same runner as `mlpbench run`, and `OUT/sweep.json` naming the
batch sizes and their folders, so that the sweep folder itself is recognizable (reports draw
throughput against batch size from it; results/README.md, "Sweeps").

This module plans the points, checks and writes the sweep folder and reads it back; running a
point is the caller's (the CLI runs each as it runs `mlpbench run`).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.results import storage
from harness.results.storage import ResultsError

if TYPE_CHECKING:  # the runner imports pandas; reading a sweep folder needs none of it
    from harness.run.suite import RunConfig

SWEEP = "sweep.json"
SCHEMA_VERSION = 1
# Exit status of an interrupted point: the sweep stops there, and `--resume` continues it.
INTERRUPTED = 130


class SweepError(Exception):
    """A sweep that cannot start as asked; the message says why (exit status 2)."""


def point_folder(batch_size: int) -> str:
    return f"bs{batch_size}"


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


@dataclass(frozen=True)
class SweepFolder:
    """A sweep folder read back: its sweep.json and where each batch size's results are."""

    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.name)

    @property
    def points(self) -> list[tuple[int, Path]]:
        """(batch size, results folder), smallest batch first."""
        points = self.manifest["points"]
        return sorted((int(p["batch_size"]), self.path / p["path"]) for p in points)


def is_sweep(path: Path) -> bool:
    return (Path(path) / SWEEP).is_file()


def read_sweep(path: Path) -> SweepFolder:
    """Read `path/sweep.json`; raises ResultsError (one line) when it is not a sweep folder."""
    path = Path(path)
    file = path / SWEEP
    manifest = storage.read_versioned_json(path, SWEEP, "sweep", SCHEMA_VERSION)
    points = manifest.get("points")
    if not isinstance(points, list) or not all(
        isinstance(p, dict) and isinstance(p.get("batch_size"), int) and p.get("path")
        for p in points
    ):
        raise ResultsError(f"{file}: 'points' must list {{batch_size, path}} entries")
    return SweepFolder(path, manifest)


def check(plan: SweepPlan) -> None:
    """What the CLI's generic --out checks cannot know: --force replaces only a sweep folder,
    and --resume continues only the same sweep (same batch sizes, every started point
    resumable with these settings). Raises SweepError; writes nothing."""
    from harness.run.suite import SuiteError, check_resumable

    out = plan.out
    if plan.force and out.is_dir() and any(out.iterdir()) and not is_sweep(out):
        raise SweepError(f"refusing to overwrite {out}: it is not a sweep folder (no {SWEEP})")
    if not (plan.resume and is_sweep(out)):
        return
    previous = read_sweep(out)
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


def run(plan: SweepPlan, run_point: Callable[[int, RunConfig], int]) -> int:
    """Write sweep.json, then run every point in order with `run_point(index, config)` (which
    returns the suite's exit status) and record each status as it ends. Returns 0 when every
    point returned 0, 130 as soon as one was interrupted (the rest is not started), else 1."""
    if plan.force and plan.out.exists():
        shutil.rmtree(plan.out)  # check() made sure it is a sweep folder
    plan.out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(plan)
    _write(plan.out, manifest)
    entries = {int(entry["batch_size"]): entry for entry in manifest["points"]}
    code = 0
    for index, config in enumerate(plan.points):
        entries[config.batch_size]["exit_status"] = status = run_point(index, config)
        _write(plan.out, manifest)
        if status == INTERRUPTED:
            return INTERRUPTED
        if status != 0:
            code = 1
    manifest["finished"] = _now()
    _write(plan.out, manifest)
    return code


def _manifest(plan: SweepPlan) -> dict[str, Any]:
    """A new sweep.json, or the resumed one with this resumption recorded."""
    if plan.resume and is_sweep(plan.out):
        manifest = read_sweep(plan.out).manifest
        manifest["finished"] = None
        resumed = {"time": _now(), "command": shlex.join(plan.argv)}
        manifest.setdefault("resumed", []).append(resumed)
        return manifest
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "batch_size_sweep",
        "name": plan.out.name,
        "created": _now(),
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


def _write(out: Path, manifest: dict[str, Any]) -> None:
    storage.write_json(out / SWEEP, manifest)


def _now() -> str:
    from harness.run.suite import utc_now  # the runner's clock format, as in every manifest

    return utc_now()

"""A batch-size sweep on disk: one ordinary results folder per batch size (`OUT/bs32`, ...) and
`OUT/sweep.json` naming the batch sizes and their folders, so that the sweep folder itself is
recognizable (reports draw throughput against batch size from it; results/README.md, "Sweeps").
harness/run/sweep.py runs the points and writes sweep.json through `write_sweep`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.results import storage
from harness.results.storage import ResultsError

SWEEP = "sweep.json"
SCHEMA_VERSION = 1
# What sweep.json's keys must hold where present (results/README.md,
# harness.results.storage.check_json).
SWEEP_SPEC = {
    "name": "text",
    "created": "text",
    "finished": "text",
    "command": "text",
    "batch_sizes": ("list", "whole"),
    "points": ("list", {"batch_size": "whole", "path": "text", "exit_status": "whole"}),
}


def point_folder(batch_size: int) -> str:
    return f"bs{batch_size}"


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


def read_sweep_folder(path: Path) -> SweepFolder:
    """Read `path/sweep.json`, every field a report reads checked for its type; raises
    ResultsError (one line) when it is not a sweep folder."""
    path = Path(path)
    file = path / SWEEP
    manifest = storage.read_versioned_json(path, SWEEP, "sweep", SCHEMA_VERSION)
    points = manifest.get("points")
    if not isinstance(points, list) or not all(
        isinstance(p, dict) and isinstance(p.get("batch_size"), int) and p.get("path")
        for p in points
    ):
        raise ResultsError(f"{file}: 'points' must list {{batch_size, path}} entries")
    storage.check_json(file, manifest, SWEEP_SPEC)
    return SweepFolder(path, manifest)


def write_sweep(out: Path, manifest: dict[str, Any]) -> None:
    storage.write_json(out / SWEEP, manifest)

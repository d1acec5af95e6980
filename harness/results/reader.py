"""One results folder as reports use it: `harness.results.storage.load_results` plus what a report
needs on top: a name, numeric columns even when a CSV is empty, and a row for every run the
manifest knows (a pending or interrupted run is shown, never dropped). A sweep folder is read
as its result sets, one per batch size.

Bad input raises `harness.results.storage.ResultsError`, whose one-line message the commands print
as `mlpbench: error: ...`.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import scores, storage
from harness.results.storage import ResultsError
from harness.results.sweep import SweepFolder, read_sweep_folder

__all__ = ["ResultSet", "ResultsError", "read_results", "read_sweep"]

# Columns that hold text; every other column of the three CSVs is a number (or boolean).
TEXT_COLUMNS = storage.TEXT_COLUMNS


# The reference of every folder written before the manifest named it, or written without
# parity (its NumPy variant still anchors the figures' colours).
REFERENCE_BEFORE_STORED = "numpy_scratch"


@dataclass(frozen=True)
class ResultSet:
    name: str
    path: Path
    manifest: dict[str, Any]
    summary: pd.DataFrame
    epochs: pd.DataFrame
    steps: pd.DataFrame
    # anatomy.csv, empty when the suite did not break its steps down (harness/run/anatomy.py)
    anatomy: pd.DataFrame = field(
        default_factory=lambda: storage.empty_frame(storage.ANATOMY_COLUMNS)
    )

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config") or {}

    @property
    def reference(self) -> str:
        """The variant parity was judged against, as the manifest stores it."""
        return self.config.get("reference") or REFERENCE_BEFORE_STORED

    @property
    def parity_tolerance(self) -> float:
        """The tolerance its parity was judged by, as the manifest stores it."""
        return scores.recorded_tolerance(self.config)

    @property
    def warmup_epochs(self) -> int:
        """The epochs its speed is not judged on, as the manifest stores it."""
        return scores.recorded_warmup(self.config)

    @property
    def environment(self) -> dict[str, Any]:
        return self.manifest.get("environment") or {}


def read_results(path: Path) -> ResultSet:
    path = Path(path)
    _require_folder(path)
    results = storage.load_results(path)
    summary = results.summary
    _check_runs(path, summary, results.manifest)
    _check_rows(path, results.manifest, results.epochs, results.steps)
    return ResultSet(
        name=str(results.manifest.get("name") or path.name),
        path=path,
        manifest=results.manifest,
        summary=_with_manifest_runs(summary, results.manifest),
        epochs=results.epochs,
        steps=results.steps,
        anatomy=results.anatomy,
    )


def _require_folder(path: Path) -> None:
    """A results folder must be a directory; anything else is named for what it is (a link
    loop or a dangling link is not "no such directory")."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            target = os.readlink(path)
            raise ResultsError(
                f"{path} is a broken symlink (to {target}), not a results folder"
            ) from None
        raise ResultsError(f"no such results directory: {path}") from None
    except OSError as exc:
        what = "a symlink loop" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
        raise ResultsError(f"{path} is {what}, not a results folder") from None
    if stat.S_ISREG(mode):
        raise ResultsError(f"{path} is not a results folder: it is a file")
    if not stat.S_ISDIR(mode):
        raise ResultsError(f"{path} is not a results folder: it is not a directory")


def _check_runs(path: Path, summary: pd.DataFrame, manifest: dict[str, Any]) -> None:
    """Refuse a folder with no runs at all, and one whose summary.csv lacks a run that its
    manifest calls finished: the CSVs are written before the manifest, so that file was
    emptied, cut short or replaced, and a report would show the run as ok with no numbers.
    A suite that has only just started (every run pending) is reported as such."""
    file = path / storage.SUMMARY
    held = f"{file} has no rows" if file.exists() else f"{file} is missing"
    runs = manifest.get("runs") or []
    if summary.empty and not runs:
        raise ResultsError(
            f"{path} holds no runs: {held} and its manifest lists none; give a folder that "
            "`mlpbench run` has run something into"
        )
    seen = _keys(summary)
    lost = [
        r
        for r in runs
        if (r.get("status") or "pending") != "pending"
        and (str(r.get("variant")), r.get("seed")) not in seen
    ]
    if not lost:
        return
    counts = pd.Series([str(r.get("status")) for r in lost]).value_counts()
    listed = ", ".join(f"{n} {status}" for status, n in counts.items())
    fix = "restore the file, or run the suite again into a new folder"
    if summary.empty:
        raise ResultsError(
            f"{path} holds no runs: {held}, though its manifest lists {len(lost)} finished "
            f"({listed}); {fix}"
        )
    first = lost[0]
    raise ResultsError(
        f"{file} has no row for {len(lost)} run(s) its manifest lists as finished ({listed}; "
        f"the first: {first.get('variant')} seed {first.get('seed')}); {fix}"
    )


def _check_rows(
    path: Path, manifest: dict[str, Any], epochs: pd.DataFrame, steps: pd.DataFrame
) -> None:
    """Refuse epochs.csv or steps.csv short of a run its manifest calls ok: an ok run has a
    row for each of its epochs in both, and as many steps in every epoch (one batch order
    each). Cut on a row boundary, a file reads cleanly and a report would draw part of a
    curve as if it were all of it."""
    planned = (manifest.get("config") or {}).get("epochs")
    if not isinstance(planned, int):
        return
    ok = [
        (str(r.get("variant")), r.get("seed"))
        for r in manifest.get("runs") or []
        if r.get("status") == "ok"
    ]
    for name, frame in ((storage.EPOCHS, epochs), (storage.STEPS, steps)):
        per_epoch = frame.groupby(["variant", "seed", "epoch"]).size()
        for variant, seed in ok:
            try:
                counts = per_epoch.loc[(variant, seed)]
            except KeyError:
                counts = pd.Series(dtype=int)
            if list(counts.index) == list(range(1, planned + 1)) and counts.nunique() == 1:
                continue
            raise ResultsError(
                f"{path / name} holds {int(counts.sum())} row(s) over {len(counts)} epoch(s) "
                f"for {variant} seed {seed}, which its manifest lists as ok after {planned} "
                f"epochs: the file was cut short; {storage.CUT_SHORT}"
            )


def _keys(summary: pd.DataFrame) -> set[tuple[str, int]]:
    """The (variant, seed) of every row."""
    pairs = zip(summary["variant"], summary["seed"], strict=True)
    return {(v, int(s)) for v, s in pairs if pd.notna(s)}


def _with_manifest_runs(summary: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """Add the manifest's runs that have no summary row yet."""
    seen = _keys(summary)
    extra = [
        {
            "variant": str(r.get("variant")),
            "seed": r.get("seed"),
            "status": r.get("status") or "pending",
            "error": r.get("error"),
            "device": r.get("device"),
        }
        for r in manifest.get("runs") or []
        if (str(r.get("variant")), r.get("seed")) not in seen
    ]
    if not extra:
        return summary
    added = storage.typed(pd.DataFrame(extra).reindex(columns=summary.columns))
    return pd.concat([summary, added], ignore_index=True)


def read_sweep(path: Path) -> tuple[SweepFolder, list[tuple[int, ResultSet]]]:
    """A sweep folder and the result set of every batch size that has started (a sweep
    interrupted before its last point still reports the points it has)."""
    folder = read_sweep_folder(path)
    points = [
        (size, read_results(sub))
        for size, sub in folder.points
        if (sub / storage.MANIFEST).exists()
    ]
    if not points:
        raise ResultsError(f"sweep {path} has no results yet: no batch size has started")
    return folder, points

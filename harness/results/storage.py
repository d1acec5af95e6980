"""A results folder on disk: written atomically, read back by the runner (`--resume`) and by
reports. The schema is documented in results/README.md; this module is its single source of
column names."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
STEPS = "steps.csv"
EPOCHS = "epochs.csv"
SUMMARY = "summary.csv"
# Where each variant's step goes, part by part (harness/run/anatomy.py); only in a suite run
# with --anatomy, or written by `mlpbench anatomy`.
ANATOMY = "anatomy.csv"
LOCK = ".lock"  # held by the one suite writing the folder
TEMPORARY = ".*.tmp"  # a write cut short by a kill (see _write_atomic)

STEPS_COLUMNS = ["variant", "seed", "epoch", "step", "loss"]


def output_loss_columns(manifest: dict[str, Any]) -> list[str]:
    """steps.csv's columns after `loss` (the total) for a task with several outputs: each
    output's own loss, `<output>_loss`, in the order the manifest's config lists them."""
    return [f"{o}_loss" for o in (manifest.get("config") or {}).get("outputs") or []]


EPOCHS_COLUMNS = [
    "variant",
    "seed",
    "epoch",
    "train_loss",
    "test_loss",
    "test_accuracy",
    "seconds",
    "samples_per_second",
    "foreign_cpu_seconds",
    "own_cpu_seconds",
    "idle_cpu_seconds",
    "window_start",
    "window_end",
]
SUMMARY_COLUMNS = [
    "variant",
    "seed",
    "status",
    "error",
    "api_level",
    "device",
    "level",
    "rung",
    "jit_compile",
    "steps_per_execution",
    "test_accuracy",
    "test_loss",
    "samples_per_second",
    "first_step_seconds",
    "peak_rss_mb",
    "epochs_to_target",
    "seconds_to_target",
    "params",
    "loc",
    "source_sha256",
    "parity_max_abs_diff",
    "parity_pass",
    "parity_steps_within",
    "seed_band_gap",
    "learning_pass",
    "foreign_cpu",
    "foreign_cpu_se",
    "noisy",
    "underused_windows",
    "cores_used",
    "slowed_windows",
    "contended",
    "attempts",
    "flops_per_sample",
    "gemm_fraction",
    "floor_fraction",
    "harness_overhead",
]
# One row per (variant, batch size, part of harness.measure.anatomy.PARTS): seconds per step of
# the part, the step's wall time while profiled, the share of it the parts measured, the same
# steps' time unprofiled (just before), the steps profiled and how the parts were obtained.
ANATOMY_COLUMNS = [
    "variant",
    "batch_size",
    "part",
    "seconds_per_step",
    "step_seconds",
    "coverage",
    "unprofiled_step_seconds",
    "steps",
    "method",
]
# Integer and boolean columns that may hold missing values: read them as pandas' nullable
# dtypes so that a failed run's empty cell does not turn the whole column into floats.
_NULLABLE = {
    "epochs_to_target": "Int64",
    "params": "Int64",
    "loc": "Int64",
    "parity_pass": "boolean",
    "learning_pass": "boolean",
    "rung": "Int64",
    "noisy": "boolean",
    "underused_windows": "Int64",
    "slowed_windows": "Int64",
    "contended": "boolean",
    "attempts": "Int64",
    "parity_steps_within": "Int64",
    "jit_compile": "boolean",
    "steps_per_execution": "Int64",
    "batch_size": "Int64",
    "steps": "Int64",
}

# What a run can end as (a manifest's runs, summary.csv's status): any other is refused on reading.
# inexpressible: the variant's API cannot express the task's model (its reason is the error);
# a finding, not a failure.
STATUSES = ("ok", "failed", "timeout", "diverged", "pending", "inexpressible")
NOT_FAILED = ("ok", "inexpressible")  # the statuses of a suite that exits 0
# Columns added after folders of this schema were first written: a folder without them reads
# with them empty (their measurement did not exist yet), rather than failing.
LATER_COLUMNS = {
    "foreign_cpu_seconds", "window_start", "window_end", "level", "rung", "foreign_cpu",
    "seed_band_gap", "learning_pass",
    "foreign_cpu_se", "noisy", "contended", "attempts", "harness_overhead",
    "own_cpu_seconds", "idle_cpu_seconds", "underused_windows", "cores_used", "slowed_windows",
    "gemm_fraction", "floor_fraction", "jit_compile", "steps_per_execution",
}  # fmt: skip
# Columns read under their new name from a folder written before the rename. roofline_fraction
# was the fraction of the GEMM-only floor; beside the whole step's (floor_fraction) its old
# name would not say which floor it is.
RENAMED_COLUMNS = {"roofline_fraction": "gemm_fraction"}


def utc_now() -> str:
    """The clock of every time a manifest records."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ResultsError(Exception):
    """A folder that is not a readable results folder; the message says why."""


@dataclass(frozen=True)
class Results:
    path: Path
    manifest: dict[str, Any]
    steps: pd.DataFrame
    epochs: pd.DataFrame
    summary: pd.DataFrame
    # empty in a folder without anatomy.csv (a suite run without --anatomy, or before it existed)
    anatomy: pd.DataFrame = field(default_factory=lambda: empty_frame(ANATOMY_COLUMNS))

    @property
    def runs(self) -> pd.DataFrame:
        """The manifest's per-run records as a table."""
        return pd.DataFrame(self.manifest.get("runs", []))


def empty_frame(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would hide results


def _write_atomic(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename: a reader (or a crash)
    sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            # a failed write names no file, or the temporary one: name the file being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    _write_atomic(path, lambda f: json.dump(data, f, indent=2, allow_nan=True))


def write_csv(path: Path, frame: pd.DataFrame, columns: list[str], digits: int = 9) -> None:
    """`digits` significant digits: 9 give back every float32 exactly, 17 every float64."""
    frame = frame.reindex(columns=columns)
    _write_atomic(path, lambda f: frame.to_csv(f, index=False, float_format=f"%.{digits}g"))


class FolderBusy(ResultsError):
    """Another suite is writing the folder."""


def lock_folder(path: Path, clean: bool = True) -> int:
    """Hold `path` for one writing suite until this process ends (or the returned descriptor
    is closed): a second run into the same --out is refused instead of overwriting the first.
    Also removes what a write cut short by a kill left behind, which only a holder may do."""
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise FolderBusy(
            f"{path} is being written by another mlpbench run (pid {owner}); wait for it to "
            "end or choose another --out"
        ) from None
    if clean:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        for leftover in path.glob(TEMPORARY):
            leftover.unlink(missing_ok=True)
    return fd


def check_not_busy(path: Path) -> None:
    """Raises FolderBusy if a suite holds `path` now (a look, not a hold)."""
    if (path / LOCK).exists():
        os.close(lock_folder(path, clean=False))


def save_results(results: Results) -> None:
    """The CSVs first, the manifest last: the manifest says which runs are complete, so a
    crash between the two leaves at worst rows that `--resume` discards."""
    results.path.mkdir(parents=True, exist_ok=True)
    # The raw rows keep every digit, so summary.csv is reproduced from them exactly
    # (harness.results.scores.summarize): two runs' losses differ by ~1e-7 in float32 and
    # ~1e-16 in float64, below 9 digits of a loss. The summary, read by people, keeps 9 in
    # float32.
    float64 = (results.manifest.get("config") or {}).get("dtype") == "float64"
    steps_columns = STEPS_COLUMNS + output_loss_columns(results.manifest)
    write_csv(results.path / STEPS, results.steps, steps_columns, 17)
    write_csv(results.path / EPOCHS, results.epochs, EPOCHS_COLUMNS, 17)
    write_csv(results.path / SUMMARY, results.summary, SUMMARY_COLUMNS, 17 if float64 else 9)
    write_json(results.path / MANIFEST, results.manifest)


def read_versioned_json(folder: Path, name: str, kind: str, version: int) -> dict[str, Any]:
    """`folder/name`, a JSON object with `schema_version == version`; ResultsError (one line)
    otherwise. `kind` names the folder in the message ("results", "sweep")."""
    file = Path(folder) / name
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{folder} is not a {kind} folder: no {name}") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"cannot read {file}: {exc}") from None
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != version:
        raise ResultsError(f"{file} has schema_version {found!r}; this mlpbench reads {version}")
    return data


def read_manifest(path: Path) -> dict[str, Any]:
    manifest = read_versioned_json(path, MANIFEST, "results", SCHEMA_VERSION)
    check_json(Path(path) / MANIFEST, manifest, MANIFEST_SPEC)
    return manifest


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        return empty_frame(columns)
    try:
        frame = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))
        _require_whole_rows(path)
    except pd.errors.EmptyDataError:
        return empty_frame(columns)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"cannot read {path}: {exc}") from None
    frame = frame.rename(
        columns={
            old: new
            for old, new in RENAMED_COLUMNS.items()
            if old in frame.columns and new in columns and new not in frame.columns
        }
    )
    for c in LATER_COLUMNS.intersection(columns).difference(frame.columns):
        frame[c] = pd.NA
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks columns {', '.join(missing)}")
    # in the schema's order, whatever the order of the file (a later column is added last)
    frame = frame[columns + [c for c in frame.columns if c not in columns]]
    for column in frame.columns.intersection(columns).difference(TEXT_COLUMNS):
        frame[column] = _column(path, frame, column)
    _require_keys(path, frame, columns)
    return typed(frame.astype({c: t for c, t in _NULLABLE.items() if c in frame.columns}))


def _require_whole_rows(path: Path) -> None:
    """Every CSV this module writes ends with a newline: one that does not was cut mid-row,
    and its last row, read as it is, would hold a wrong number rather than none."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
            raise ResultsError(f"{path} ends mid-row: the file was cut short; {CUT_SHORT}")


# What to do about a file cut short (by a full disk, a copy stopped half way).
CUT_SHORT = "restore it, or run the suite again into a new folder"


def load_results(path: str | Path) -> Results:
    """Read a results folder written by `mlpbench run` (finished or not)."""
    path = Path(path)
    manifest = read_manifest(path)
    return Results(
        path=path,
        manifest=manifest,
        steps=_read_csv(path / STEPS, STEPS_COLUMNS + output_loss_columns(manifest)),
        epochs=_read_csv(path / EPOCHS, EPOCHS_COLUMNS),
        summary=_read_csv(path / SUMMARY, SUMMARY_COLUMNS),
        anatomy=_read_csv(path / ANATOMY, ANATOMY_COLUMNS),
    )


def read_anatomy(path: Path) -> pd.DataFrame:
    """anatomy.csv of the results folder `path`; empty if it has none."""
    return _read_csv(Path(path) / ANATOMY, ANATOMY_COLUMNS)


def write_anatomy(path: Path, frame: pd.DataFrame) -> None:
    """anatomy.csv in the results folder `path`, every digit kept."""
    write_csv(Path(path) / ANATOMY, frame, ANATOMY_COLUMNS, 17)


# Reading checks: a damaged or hand-edited folder is refused with one line naming the file, the
# field and what it holds, instead of failing later, deep in a report, with a traceback.

# The CSV columns that hold text; every other column holds numbers (booleans in _NULLABLE's).
TEXT_COLUMNS = (
    "variant", "status", "error", "api_level", "device", "level", "source_sha256", "part", "method"
)  # fmt: skip
# Columns that say which run (epoch, step) a row belongs to: never empty.
KEY_COLUMNS = {"variant", "seed", "status", "epoch", "step", "part", "batch_size"}
# Number columns that hold whole numbers.
WHOLE_COLUMNS = {"seed", "epoch", "step"} | {c for c, t in _NULLABLE.items() if t == "Int64"}
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
DAMAGED = "correct it, or run the suite again into a new folder"


def _column(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    """`frame[column]` as numbers (or booleans); ResultsError at the first cell that is not."""
    values = frame[column]
    if _NULLABLE.get(column) == "boolean":
        if pd.api.types.is_bool_dtype(values):
            return values
        text = values.map(lambda v: str(v).strip().lower(), na_action="ignore")
        parsed, expected = text.map(_BOOLEANS).astype(object), "True or False"
        bad = values.notna() & parsed.isna()
    else:
        parsed = (
            values
            if pd.api.types.is_numeric_dtype(values)
            else pd.to_numeric(values, errors="coerce")
        )
        bad, expected = values.notna() & parsed.isna(), "a number"
        if column in WHOLE_COLUMNS and not bad.any():
            finite = parsed.astype(float)
            bad = parsed.notna() & ~(np.isfinite(finite) & (finite % 1 == 0))
            expected = "a whole number"
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        row = frame.iloc[i]
        # the run the row belongs to; anatomy.csv's rows name a variant and a batch size
        which = f"seed {row['seed']}" if "seed" in row else f"batch size {row.get('batch_size')}"
        run = f" ({row['variant']} {which})" if column != "seed" else ""
        raise ResultsError(
            f"{path}, row {i + 1}{run}: {column} is {_short(values.iloc[i])}, not {expected}; "
            f"{DAMAGED}"
        )
    return parsed


def _require_keys(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    """Every row names its run (and its epoch and step): an empty key cell is refused."""
    for column in KEY_COLUMNS.intersection(columns):
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise ResultsError(f"{path}, row {i + 1}: {column} is empty; {DAMAGED}")
    if "status" in frame.columns:
        unknown = ~frame["status"].astype(str).str.strip().isin(STATUSES)
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            raise ResultsError(
                f"{path}, row {i + 1}: status is {_short(frame['status'].iloc[i])}, not one of "
                f"{', '.join(STATUSES)}; {DAMAGED}"
            )


def _short(value: object) -> str:
    """A cell as a message shows it: text quoted, a number as written, at most 40 characters."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# What the manifest's keys must hold, where they are present (results/README.md): a kind
# ("text", "number", "whole", "boolean", "object", "list"; null is always allowed: the runner
# writes it for what was not measured), a dict of an object's keys, ("list", spec) for a list
# of items, ("map", spec) for an object whose every value follows spec.
RUN_SPEC = {
    "variant": "text",
    "seed": "whole",
    "status": "text",
    "error": "text",
    "device": "text",
    "api_level": "text",
    "level": "text",
    "rung": "whole",
    "attempts": "whole",
    "started": "text",
    "wall_seconds": "number",
    "first_step_seconds": "number",
    "import_seconds": "number",
    "build_seconds": "number",
    "peak_rss_mb": "number",
    "params": "whole",
    "jit_compile": "boolean",
    "steps_per_execution": "whole",
    "task_fingerprint": "text",
    "log": "text",
}
MANIFEST_SPEC = {
    "name": "text",
    "created": "text",
    "finished": "text",
    "command": "text",
    "argv": "list",
    "resumed": "list",
    "config": {
        "variants": "list",
        "dataset": "text",
        "epochs": "whole",
        "batch_size": "whole",
        "optimizer": "object",
        "hidden": "list",
        "seeds": "list",
        "device": "text",
        "parity": "boolean",
        "target_accuracy": "number",
        "jobs": "whole",
        "underused_threshold": "number",
        "slowed_threshold": "number",
    },
    "environment": "object",
    "tasks": ("map", {"fingerprint": "text", "n_train": "whole", "n_test": "whole"}),
    "calibration": {
        "peak_gflops": "number",
        "flops_per_sample": "number",
        "bandwidth_gbs": "number",
        "step_bytes": {
            "batch_size": "whole",
            "per_sample": ("map", "number"),
            "per_step": ("map", "number"),
        },
    },
    "overhead": {
        "ratio_median": "number",
        "ratio_spread": ("map", "number"),
        "rounds": "whole",
    },
    "timeline": "list",
    "isolation": "object",
    "runs": ("list", RUN_SPEC),
}
_KINDS = {
    "text": ((str,), "text"),
    "number": ((int, float), "a number"),
    "whole": ((int,), "a whole number"),
    "boolean": ((bool,), "true or false"),
    "object": ((dict,), "an object"),
    "list": ((list,), "a list"),
}


def check_json(file: Path, value: Any, spec: Any, where: str = "") -> None:
    """ResultsError (one line, naming the field) where `value` does not follow `spec`."""
    if value is None:
        return
    if isinstance(spec, str):
        types, expected = _KINDS[spec]
        if isinstance(value, types) and (spec == "boolean" or not isinstance(value, bool)):
            return
    elif isinstance(spec, dict):
        expected = "an object"
        if isinstance(value, dict):
            for key, sub in spec.items():
                check_json(file, value.get(key), sub, f"{where}.{key}" if where else key)
            return
    else:
        how, item = spec
        expected = "a list" if how == "list" else "an object"
        if isinstance(value, list if how == "list" else dict):
            pairs = enumerate(value) if how == "list" else value.items()
            for key, sub in pairs:
                check_json(
                    file, sub, item, f"{where}[{key!r}]" if how == "map" else f"{where}[{key}]"
                )
            return
    raise ResultsError(f"{file}: {where} is {_json_kind(value)}, expected {expected}; {DAMAGED}")


def _json_kind(value: Any) -> str:
    """A JSON value in words, with the value itself when it is short: text "oops"."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        shown = json.dumps(value)
        return "text " + (shown if len(shown) <= 40 else shown[:36] + '..."')
    return f"the number {value}"


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Text as str, seeds as nullable ints, and numbers as numbers even in an empty or
    all-missing column (an empty CSV reads as object columns)."""
    frame = frame.copy()
    for column in frame.columns:
        if column == "seed":
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
        elif column == "variant":
            frame[column] = frame[column].astype(str)
        elif column not in TEXT_COLUMNS and not (
            pd.api.types.is_numeric_dtype(frame[column])
            or pd.api.types.is_bool_dtype(frame[column])
        ):  # only in an empty CSV: _column refuses a cell that is not a number
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame

"""Hostile input, third round: gates that must not pass on no data, folders that cannot be
read or written, names and values a new user types. Each case once failed; each must now end
in one line saying what is wrong and how to fix it (exit 2), or in the gate's honest verdict."""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.cli.errors import os_error

from .test_bench_gate import assert_one_line_error as assert_gate_error
from .test_cli import ENV, MLPBENCH, ROOT, assert_one_line_error, mlpbench
from .test_compare import SMALL_A, SMALL_B

BASELINE = ROOT / "tests" / "benchmarks" / "baseline" / "short.json"


# -- bench-compare: a benchmark with no valid timings is bad input, not "same" ----------------


def _bench_file(tmp_path: Path, name: str, change) -> Path:
    data = json.loads(BASELINE.read_text())
    change(data["benchmarks"][0])
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


NO_TIMINGS = {
    "empty data": lambda b: b["stats"].__setitem__("data", []),
    "all NaN": lambda b: b["stats"].__setitem__("data", [math.nan] * 20),
    "stats null": lambda b: b.__setitem__("stats", None),
    "text timings": lambda b: b["stats"].__setitem__("data", ["a", "b"]),
    "negative timings": lambda b: b["stats"].__setitem__("data", [-t for t in b["stats"]["data"]]),
    "base_seconds empty": lambda b: b["extra_info"].__setitem__("base_seconds", []),
}


@pytest.mark.parametrize("damage", list(NO_TIMINGS))
def test_bench_compare_refuses_a_benchmark_with_no_valid_timings(damage, tmp_path):
    """Once judged "same" (or "faster", or a ValueError traceback): a gate passed on no data."""
    new = _bench_file(tmp_path, "new.json", NO_TIMINGS[damage])
    name = json.loads(new.read_text())["benchmarks"][0]["name"]
    files = [str(new)] if damage.startswith("base_seconds") else [str(BASELINE), str(new)]
    result = mlpbench("bench-compare", *files)
    assert_gate_error(result, f"{new}: benchmark {name}")
    assert "no valid timings" in result.stderr


# -- compare: nothing compared is not "no variant is slower" ----------------------------------


def _results_copy(tmp_path: Path, name: str, summary_change=None, runs_change=None) -> Path:
    """A copy of the small_a fixture with its summary.csv and manifest runs edited."""
    folder = tmp_path / name
    shutil.copytree(SMALL_A, folder)
    if summary_change:
        frame = pd.read_csv(folder / "summary.csv", dtype=str, keep_default_na=False)
        summary_change(frame)
        frame.to_csv(folder / "summary.csv", index=False)
    if runs_change:
        manifest = json.loads((folder / "manifest.json").read_text())
        for run in manifest["runs"]:
            runs_change(run)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _all_noisy(frame: pd.DataFrame) -> None:
    frame["noisy"] = "True"


def _all_failed(frame: pd.DataFrame) -> None:
    frame["status"] = "failed"
    frame["error"] = "failed: RuntimeError: boom"


def _run_failed(run: dict) -> None:
    run.update(status="failed", error="failed: RuntimeError: boom")


def test_compare_fails_when_b_finished_nothing_and_a_was_all_noisy(tmp_path):
    """Once 'no data' for every variant, 'no variant is slower', exit 0."""
    a = _results_copy(tmp_path, "a", _all_noisy)
    b = _results_copy(tmp_path, "b", _all_failed, _run_failed)
    result = mlpbench("compare", str(a), str(b))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no variant is slower" not in result.stdout
    assert "with no finished run in B" in result.stdout


def test_compare_with_nothing_comparable_is_exit_2(tmp_path):
    """Both sides finished but every run of A was noisy: nothing was compared, so the gate
    cannot say 'not slower'."""
    a = _results_copy(tmp_path, "a", _all_noisy)
    result = mlpbench("compare", str(a), str(SMALL_A))
    assert_one_line_error(result)
    assert "nothing to compare" in result.stderr and "noisy" in result.stderr


def test_compare_of_sets_sharing_no_variant_is_exit_2(tmp_path):
    a = _results_copy(tmp_path, "a")
    for name in ("summary.csv", "epochs.csv", "steps.csv"):
        frame = pd.read_csv(a / name, dtype=str, keep_default_na=False)
        frame["variant"] = "other_" + frame["variant"]
        frame.to_csv(a / name, index=False)
    manifest = json.loads((a / "manifest.json").read_text())
    for run in manifest["runs"]:
        run["variant"] = "other_" + run["variant"]
    (a / "manifest.json").write_text(json.dumps(manifest))
    result = mlpbench("compare", str(a), str(SMALL_A))
    assert_one_line_error(result)
    assert "share no variant" in result.stderr


# -- a CSV cut short, in a folder whose manifest says every run finished ----------------------


def _cut(folder: Path, name: str, keep) -> Path:
    """Keep what `keep(text)` returns of folder/name."""
    file = folder / name
    file.write_text(keep(file.read_text()))
    return file


TRUNCATIONS = {
    # the last run's last epoch loses its last two steps
    "steps.csv on a row boundary": ("steps.csv", lambda t: "".join(t.splitlines(True)[:-2])),
    # the last run's last epoch entirely
    "steps.csv on an epoch boundary": ("steps.csv", lambda t: "".join(t.splitlines(True)[:-4])),
    "steps.csv mid-row": ("steps.csv", lambda t: t[:-5]),
    "epochs.csv with only its header": ("epochs.csv", lambda t: t.splitlines(True)[0]),
    "epochs.csv mid-row": ("epochs.csv", lambda t: t[:-7]),
}


@pytest.mark.parametrize("case", list(TRUNCATIONS))
@pytest.mark.parametrize("command", ["report", "export-tensorboard"])
def test_a_csv_cut_short_is_named(case, command, tmp_path):
    """Once a report of partial curves, exit 0."""
    name, keep = TRUNCATIONS[case]
    folder = _results_copy(tmp_path, "cut")
    file = _cut(folder, name, keep)
    out = str(tmp_path / "out")
    args = (
        ["report", str(folder), "--out", out]
        if command == "report"
        else [command, str(folder), out]
    )
    result = mlpbench(*args)
    assert_one_line_error(result)
    assert str(file) in result.stderr and "cut short" in result.stderr


# -- the file system says no: a full disk, a folder we may not read or write, a long name -----

RUN = ["run", "--variants", "numpy_scratch", "--hidden", "8", "--epochs", "2", "--no-calibrate"]


def test_a_file_system_error_is_one_line_naming_the_file_and_the_fix():
    """The mechanism every command shares (harness/cli/main.py): an OSError, one line."""
    full = OSError(errno.ENOSPC, "No space left on device", "out/steps.csv")
    assert os_error(full, "run") == (
        "no space left on the device writing out/steps.csv: free space, then run it again "
        "with --resume"
    )
    assert "then run it again" in os_error(full, "report")
    denied = os_error(PermissionError(errno.EACCES, "Permission denied", "r/manifest.json"))
    assert denied.startswith("permission denied: r/manifest.json:")
    long = os_error(OSError(errno.ENAMETOOLONG, "File name too long", "x" * 300))
    assert "(300 characters)" in long and len(long) < 200


def _mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")


@pytest.mark.system
def test_a_full_disk_mid_run_is_one_line_and_resume_finishes_it(tmp_path):
    """Once a 70-line chained 'OSError: [Errno 28]' traceback, exit 1."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "200k")
    try:
        out = disk / "r"
        small = [*RUN, "--batch-size", "8", "--epochs", "3", "--seeds", "0,1,2,3"]
        result = mlpbench(*small, "--out", str(out))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("mlpbench: error: no space left on the device writing ")
        assert last.endswith("free space, then run it again with --resume")
        assert not list(out.glob(".*.tmp"))  # no half-written file left behind
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        resumed = mlpbench(*small, "--out", str(out), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert "4 of 4 runs ok" in resumed.stderr + resumed.stdout
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def _without_file_permission_override() -> None:
    """In the child: root loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (chmod binds it
    then, as it binds any other user); for others this changes nothing."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(99)


def mlpbench_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*MLPBENCH, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        preexec_fn=_without_file_permission_override,
    )
    if result.returncode == 99:
        pytest.skip("cannot drop root's file permission override here")
    return result


def _locked(path: Path, mode: int) -> Path:
    path.chmod(mode)
    return path


def _read_only_folder(tmp_path: Path) -> Path:
    (tmp_path / "ro").mkdir()
    return _locked(tmp_path / "ro", 0o555)


READERS = {
    "report": lambda folder, tmp: ["report", str(folder), "--out", str(tmp / "report")],
    "compare": lambda folder, tmp: ["compare", str(SMALL_A), str(folder)],
    "export-tensorboard": lambda folder, tmp: ["export-tensorboard", str(folder), str(tmp / "tb")],
}


@pytest.mark.parametrize("command", list(READERS))
def test_an_unreadable_results_folder_is_one_line(command, tmp_path):
    """Once a PermissionError traceback from report, compare and export-tensorboard."""
    folder = _locked(_results_copy(tmp_path, "r"), 0o000)
    try:
        result = mlpbench_unprivileged(*READERS[command](folder, tmp_path))
        assert_one_line_error(result)
        assert str(folder) in result.stderr
    finally:
        folder.chmod(0o755)


WRITERS = {
    "export-tensorboard": lambda ro: ["export-tensorboard", str(SMALL_A), str(ro / "tb")],
    "compare --html": lambda ro: ["compare", str(SMALL_A), str(SMALL_A), "--html", str(ro / "c")],
    "report": lambda ro: ["report", str(SMALL_A), "--out", str(ro / "report")],
}


@pytest.mark.parametrize("command", list(WRITERS))
def test_an_unwritable_output_folder_is_one_line(command, tmp_path):
    parent = _read_only_folder(tmp_path)
    try:
        result = mlpbench_unprivileged(*WRITERS[command](parent))
        assert_one_line_error(result)
        assert str(parent) in result.stderr
    finally:
        parent.chmod(0o755)


@pytest.mark.system  # the unreadable and unwritable folders above share the mechanism
@pytest.mark.parametrize("case", ["new --out", "--force", "--resume with its .lock unwritable"])
def test_run_into_a_folder_it_may_not_write_is_one_line(case, tmp_path):
    """Once a PermissionError traceback, from the folder's check or its lock."""
    if case == "new --out":
        parent = _read_only_folder(tmp_path)
        out, extra = parent / "r", []
    elif case == "--force":
        out = _results_copy(tmp_path, "r")
        parent, extra = _locked(out, 0o000), ["--force"]
    else:
        out = tmp_path / "r"
        assert mlpbench(*RUN, "--seeds", "0", "--out", str(out)).returncode == 0
        parent, extra = _locked(out / ".lock", 0o444), ["--resume"]
    try:
        result = mlpbench_unprivileged(*RUN, "--seeds", "0,1", "--out", str(out), *extra)
        assert_one_line_error(result)
        assert "permission denied" in result.stderr.lower() and str(parent) in result.stderr
    finally:
        parent.chmod(0o755)


LONG_NAMES = {
    "run --out": lambda out: [*RUN, "--seeds", "0", "--out", str(out)],
    "report --out": lambda out: ["report", str(SMALL_A), "--out", str(out)],
    "export-tensorboard": lambda out: ["export-tensorboard", str(SMALL_A), str(out)],
    "report of it": lambda out: ["report", str(out)],
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.system) if c == "run --out" else c for c in LONG_NAMES],
)
def test_a_name_too_long_is_one_line(case, tmp_path):
    """Once 'OSError: File name too long', a traceback."""
    result = mlpbench(*LONG_NAMES[case](tmp_path / ("r" * 300)))
    assert_one_line_error(result)
    assert "too long" in result.stderr


# -- values a new user types: one line saying what is wrong and what to write instead ---------

TYPED = {
    "as-written seed above 2**32-1": (
        [*RUN, "--mode", "as-written", "--seeds", "0,4294967296"],
        "--seeds: 4294967296 is above 4294967295",
    ),
    "empty --seeds": ([*RUN, "--seeds", ""], "argument --seeds: is empty: write e.g. 0,1,2"),
    "empty --batch-sizes": (
        ["sweep", "--batch-sizes", ""],
        "argument --batch-sizes: is empty: write e.g. 32,128,512",
    ),
    "empty --variants": (
        ["run", "--variants", ""],
        "--variants '' selects no variant: name some (see `mlpbench list`) or all",
    ),
    "negative --threshold": (
        ["compare", str(SMALL_A), str(SMALL_A), "--threshold", "-5%"],
        "argument --threshold: threshold '-5%' is negative",
    ),
    "run --out ''": ([*RUN, "--out", ""], "argument --out: is empty: give a path"),
    "report --out ''": (["report", str(SMALL_A), "--out", ""], "argument --out: is empty"),
    "export-tensorboard into ''": (
        ["export-tensorboard", str(SMALL_A), ""],
        "argument dir: is empty",
    ),
    "compare --html ''": (
        ["compare", str(SMALL_A), str(SMALL_A), "--html", ""],
        "argument --html: is empty",
    ),
}


@pytest.mark.parametrize("case", list(TYPED))
def test_a_typed_value_is_refused_with_what_to_write(case, tmp_path):
    """Once: as-written seeds failed in every worker (exit 1); '' wrote into the current folder
    or read '. already exists'; --seeds '' suggested the --hidden example; --variants '' gave
    no fix; --threshold -5% read 'expected one argument'."""
    args, message = TYPED[case]
    result = subprocess.run(  # from an empty folder: '' once meant it
        [*MLPBENCH, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ENV
    )
    assert_one_line_error(result)
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


@pytest.mark.parametrize("html", ["a folder", "under a file"])
def test_compare_html_is_checked_before_the_comparison(html, tmp_path):
    """Once checked after the table was printed, exit 2 hiding the regression's exit 1."""
    (tmp_path / "file").write_text("x")
    path = tmp_path if html == "a folder" else tmp_path / "file" / "c.html"
    result = mlpbench("compare", str(SMALL_A), str(SMALL_B), "--html", str(path))
    assert_one_line_error(result)
    assert result.stdout == ""  # refused before any comparison was printed


# -- export-tensorboard into a folder it already exported to ----------------------------------


def test_exporting_again_replaces_the_earlier_event_files_and_says_so(tmp_path):
    """Once a second event file per run: TensorBoard drew every curve twice."""
    out = tmp_path / "tb"
    first = mlpbench("export-tensorboard", str(SMALL_A), str(out))
    assert first.returncode == 0, first.stderr
    mine = out / "notes.txt"  # not an event file: never ours to delete
    mine.write_text("keep")
    again = mlpbench("export-tensorboard", str(SMALL_A), str(out))
    assert again.returncode == 0, again.stderr
    runs = [p for p in out.glob("*/seed*") if p.is_dir()]
    assert runs and all(len(list(run.glob("events.out.tfevents.*"))) == 1 for run in runs)
    assert f"replaced the event files of {len(runs)} earlier runs" in again.stdout
    assert mine.read_text() == "keep"


# -- the memory check: what to change, and against which limit --------------------------------


def test_too_many_processes_at_once_advises_fewer_jobs_or_workers(tmp_path):
    """Once 'use fewer --epochs, --seeds, variants or a smaller --hidden' for --workers 999."""
    result = mlpbench(
        "run", "--variants", "tf2_multiworker", "--workers", "999", "--seeds", "0",
        "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert_one_line_error(result)
    assert "999 worker processes at once" in result.stderr and "--jobs" in result.stderr
    assert "--epochs" not in result.stderr


def _under_ulimit_v(kib: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"ulimit -v {kib} && exec {shlex.join([*MLPBENCH, *args])}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_ulimit_v_is_named_as_a_per_process_limit(tmp_path):
    """Once 'this suite needs about 1.0 GiB of memory and 1.0 GiB is free'."""
    result = _under_ulimit_v(1_000_000, *RUN, "--variants", "tf2_function", "--seeds", "0",
                             "--out", str(tmp_path / "r"))  # fmt: skip
    assert_one_line_error(result)
    assert "`ulimit -v` allows each process" in result.stderr


@pytest.mark.system
def test_a_numpy_run_is_not_refused_for_workers_jobs_or_a_ulimit_it_fits_in(tmp_path):
    """Once refused as needing 1,001.6 GiB (--workers 999, --jobs 1000: one NumPy run is one
    process), and as needing 1.0 GiB under `ulimit -v 1000000` (TensorFlow's share)."""
    args = [*RUN, "--no-parity", "--seeds", "0", "--epochs", "1"]
    result = mlpbench(*args, "--workers", "999", "--jobs", "1000", "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    result = _under_ulimit_v(1_000_000, *args, "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr


# -- --variant: the import check says why, has a time limit, and never loses the suite's own --
# modules to a user's folder

USER_MODULES = {
    "ex0.py": "import os\nos._exit(0)\n",
    "ex3.py": "raise SystemExit(3)\n",
    "interrupt.py": "raise KeyboardInterrupt\n",
    "hang.py": "import time\ntime.sleep(600)\n",
    "net.py": (
        "from variants.numpy_scratch import NumpyScratch\n\n\n"
        "class Net(NumpyScratch):\n"
        "    def build(self, spec, optimizer, init_weights):  # takes no as_written\n"
        "        super().build(spec, optimizer, init_weights)\n"
    ),
}


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A user's project: their package `uv`, and a package of their own named `harness`."""
    (tmp_path / "uv").mkdir()
    (tmp_path / "uv" / "__init__.py").write_text("")
    for name, text in USER_MODULES.items():
        (tmp_path / "uv" / name).write_text(text)
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "__init__.py").write_text('raise ImportError("the user\'s own")\n')
    return tmp_path


def mlpbench_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLPBENCH, *args], cwd=folder, capture_output=True, text=True, timeout=120, env=ENV
    )


IMPORT_ENDINGS = {
    "ex0": "exited with status 0 before answering (os._exit or sys.exit when imported?)",
    "ex3": "exited with status 3 (sys.exit when imported?)",
    "interrupt": "was killed by SIGINT: KeyboardInterrupt",
    "hang": "took longer than 30 s and was stopped",
}


@pytest.mark.parametrize(
    "module",
    [pytest.param(m, marks=pytest.mark.system) if m == "hang" else m for m in IMPORT_ENDINGS],
)
def test_a_variant_whose_import_ends_the_check_says_how(module, user_folder):
    """Once 'cannot check uv.x:X (status 0/3/-2)' with no reason, or a hang with no limit."""
    result = mlpbench_in(
        user_folder, *RUN, "--variant", f"uv.{module}:X", "--timeout", "2", "--out", "r"
    )
    assert_one_line_error(result)
    assert f"--variant uv.{module}:X: importing it {IMPORT_ENDINGS[module]}" in result.stderr


def test_a_users_harness_package_does_not_stand_in_for_the_suites(user_folder):
    """Once the check (and every worker) imported the user's `harness`: an opaque status.
    The class is imported and checked; the as-written refusal proves the check answered."""
    result = mlpbench_in(user_folder, "run", "--variant", "uv.net:Net", "--mode", "as-written")
    assert_one_line_error(result)
    assert "uv.net:Net cannot run in --mode as-written" in result.stderr


@pytest.mark.system
def test_a_suite_runs_from_a_folder_holding_its_own_harness_package(user_folder):
    result = mlpbench_in(user_folder, *RUN, "--seeds", "0", "--out", "r")
    assert result.returncode == 0, result.stderr
    assert "1 of 1 runs ok" in result.stderr + result.stdout

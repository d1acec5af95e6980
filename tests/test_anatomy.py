"""The step's anatomy: a profiled step split into GEMMs, other math, the update, XLA kernels and
the rest (harness/measure/anatomy.py, harness/run/anatomy.py), stored in anatomy.csv and drawn
by the report beside the floor.

The breakdown is checked against variants given a known extra cost in one part
(tests/anatomy_variants.py, tests/anatomy_numpy_variants.py): it must move that part, and
more than any other."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.measure import anatomy, roofline
from harness.results import storage

from .test_cli import ROOT, mlpbench

FIXTURES = Path(__file__).parent / "fixtures" / "results"
MEASURED = ("gemm", "other_math", "optimizer", "xla_fused")


# -- the arithmetic: parts are unions with priorities, never more than the step ----------------


def test_overlapping_parts_never_exceed_the_window():
    """Ops on two threads overlap: each span counts once, for the first part in PRIORITY."""
    ps = 10**9  # one millisecond in picoseconds
    trace = anatomy.Trace(window=(0, 10 * ps))
    trace.add("gemm", 0, 4 * ps, "MatMul")
    trace.add("gemm", 2 * ps, 5 * ps, "MatMul")  # overlaps the first: 0-5 ms of GEMM
    trace.add("optimizer", 4 * ps, 7 * ps, "ResourceApplyAdam")  # 1 ms under a GEMM
    trace.add("other_math", 0, 8 * ps, "AddV2")  # under both, but for 7-8 ms
    trace.add("other_math", 9 * ps, 12 * ps, "Relu")  # half outside the window
    parts = anatomy.parts_of(trace, steps=2)["parts"]
    assert parts["gemm"] == pytest.approx(5e-3 / 2)
    assert parts["optimizer"] == pytest.approx(2e-3 / 2)
    assert parts["other_math"] == pytest.approx(2e-3 / 2)  # 7-8 and 9-10 ms
    assert parts["rest"] == pytest.approx(1e-3 / 2)  # 8-9 ms: nothing ran
    assert sum(parts.values()) == pytest.approx(10e-3 / 2)
    assert anatomy.parts_of(trace, steps=2)["coverage"] == pytest.approx(0.9)
    # an event around the whole call is no op of its steps: it is left out, not made a part
    trace.add("other_math", -ps, 11 * ps, "unclosed")
    assert anatomy.parts_of(trace, steps=2)["parts"] == parts


def test_op_names_as_traces_carry_them_fall_in_their_parts():
    """Names and types as TensorFlow 2.21's profiler writes them (seen in real traces)."""
    cases = {
        ("Adam/update_param0/ResourceApplyAdam", "ResourceApplyAdam"): "optimizer",  # TF1
        ("StatefulPartitionedCall/adam/Sub_2", "Sub"): "optimizer",  # Keras 3 fit
        ("while/body/_1/while/StatefulPartitionedCall/adam/Sqrt", "Sqrt"): "optimizer",
        ("StatefulPartitionedCall/gradient_tape/sequential_1/dense_1/MatMul", "MatMul"): "gemm",
        ("StatefulPartitionedCall/sequential_1/dense_1/Relu", "_FusedMatMul"): "gemm",
        ("gradients/Relu_grad/ReluGrad", "ReluGrad"): "other_math",
        ("while/body/_1/while/StatefulPartitionedCall/AssignVariableOp", "AssignVariableOp"): (
            "other_math"  # a plain assign outside the optimizer's scope
        ),
        ("AssignSubVariableOp", "AssignSubVariableOp"): "optimizer",  # eager: no scope
        ("AssignVariableOp", "AssignVariableOp"): "other_math",  # eager: a reset, no update
        ("StatefulPartitionedCall", "StatefulPartitionedCall"): None,  # holds the others
        ("IteratorGetNext", "IteratorGetNext"): None,  # input feeding: the rest
    }
    for (name, op_type), part in cases.items():
        assert anatomy.op_category(name, op_type) == part, (name, op_type)
    assert anatomy.xla_kernel_category("MatMul_1.4") == "gemm"
    assert anatomy.xla_kernel_category("matmul.2") == "gemm"
    assert anatomy.xla_kernel_category("multiply_add_fusion.3") == "xla_fused"


def test_a_kernel_is_an_xla_kernel_only_inside_a_run_of_the_xla_runtime():
    """Runs nest (a loop's body inside the loop's run); a kernel outside every run is none."""
    runs = anatomy.Spans([(0, 10), (2, 3), (20, 30)])
    assert runs.hold(4, 9) and runs.hold(2, 3) and runs.hold(21, 29)
    assert not runs.hold(9, 11) and not runs.hold(15, 16) and not runs.hold(-1, 1)


def test_the_numpy_path_is_chosen_by_the_variant_not_by_what_the_process_imported():
    """TensorFlow imported by another variant into the same process must not send the NumPy
    reference to a profiler that cannot see it (its parts would all be `rest`)."""
    import tensorflow  # noqa: F401  (as a TF variant before it would have)

    from harness.run.anatomy import uses_tensorflow
    from tests.anatomy_numpy_variants import HeavyUpdateNumpy
    from tests.anatomy_variants import HeavyUpdateTF
    from variants.keras_fit_fast import KerasFitJIT
    from variants.numpy_scratch import NumpyScratch
    from variants.tf1_graph import TF1Graph

    assert not uses_tensorflow(NumpyScratch) and not uses_tensorflow(HeavyUpdateNumpy)
    assert uses_tensorflow(TF1Graph) and uses_tensorflow(KerasFitJIT)
    assert uses_tensorflow(HeavyUpdateTF)


# -- real profiles: a known extra cost moves its own part ------------------------------------


def _task(hidden: tuple[int, ...]):
    from harness.datasets import load
    from harness.task import make_task

    return make_task(load("digits"), hidden, 2, 0)


def _medians(
    names: list[str], hidden: tuple[int, ...], rounds: int, env: dict | None = None
) -> dict[str, dict]:
    """Each variant's breakdown over `rounds` rounds, interleaved so that load drifting over
    the test moves all alike; the median of each part. With `env`, each breakdown runs in a
    process of its own (`python -m harness.run.anatomy`) with those variables set."""
    from harness.run.anatomy import measure
    from variants.base import Adam

    task = _task(hidden)
    seen: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(rounds):
        for name in names:
            if env is None:
                result = measure(name, task, 128, Adam(), steps=None)
            else:
                argv = ["--variant", name, "--hidden", ",".join(map(str, hidden)), "--steps", "0"]
                done = subprocess.run(
                    [sys.executable, "-m", "harness.run.anatomy", *argv],
                    capture_output=True, text=True, timeout=120, cwd=ROOT,
                    env={**os.environ, **env},
                )  # fmt: skip
                assert done.returncode == 0, done.stderr[-2000:]
                result = json.loads(done.stdout)
            _check_within_step(result)
            seen[name].append(result)
    return {
        n: {p: statistics.median(r["parts"][p] for r in rs) for p in anatomy.PARTS}
        for n, rs in seen.items()
    }


def _check_within_step(result: dict) -> None:
    parts = result["parts"]
    assert all(v >= 0 for v in parts.values()), parts
    assert sum(parts[p] for p in MEASURED) <= result["step_seconds"] * (1 + 1e-9)
    assert sum(parts.values()) == pytest.approx(result["step_seconds"], rel=1e-9)
    assert 0 < result["coverage"] <= 1
    assert 0 < result["unprofiled_step_seconds"]


def _moved_most(base: dict, changed: dict, part: str, at_least: float) -> None:
    deltas = {p: changed[p] - base[p] for p in anatomy.PARTS}
    others = {p: abs(d) for p, d in deltas.items() if p != part}
    assert deltas[part] >= at_least, deltas
    assert deltas[part] > 2 * max(others.values()), deltas


@pytest.mark.system  # a profiled run per cost: the sleep test stands for them in `make test`
@pytest.mark.serial
def test_an_extra_update_pass_moves_the_optimizer_part():
    from tests import anatomy_variants as av

    medians = _medians(
        ["variants.tf2_tape:TF2Function", "tests.anatomy_variants:HeavyUpdateTF"], (512, 256), 3
    )
    base, heavy = medians.values()
    # 30 more passes over 164k weights: 30 x ~4 MB read and written per step at the least
    assert av.EXTRA_PASSES == 30
    _moved_most(base, heavy, "optimizer", at_least=base["optimizer"])


@pytest.mark.serial
def test_sleeping_in_python_moves_the_rest():
    from tests import anatomy_variants as av

    medians = _medians(
        ["variants.tf2_tape:TF2Function", "tests.anatomy_variants:SleepyTF"], (64, 32), 3
    )
    base, sleepy = medians.values()
    _moved_most(base, sleepy, "rest", at_least=0.8 * av.SLEEP)


@pytest.mark.system  # a profiled run per cost: the sleep test stands for them in `make test`
@pytest.mark.serial
def test_numpy_breakdown_moves_the_update_and_the_rest():
    """The NumPy path (cProfile and GEMMs timed alone) on the same two costs."""
    from tests import anatomy_numpy_variants as an

    names = [
        "numpy_scratch",
        "tests.anatomy_numpy_variants:HeavyUpdateNumpy",
        "tests.anatomy_numpy_variants:SleepyNumpy",
    ]
    # OpenBLAS' threads, when another process takes a core, slow a GEMM many-fold at random
    # (tens of ms on this task): on one thread its time is steady enough to see a part move
    single = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    base, heavy, sleepy = _medians(names, (256, 128), 3, env=single).values()
    assert base["xla_fused"] == 0 and base["gemm"] > 0
    _moved_most(base, heavy, "optimizer", at_least=base["optimizer"])
    _moved_most(base, sleepy, "rest", at_least=0.8 * an.SLEEP)


@pytest.mark.system  # a profiled run per cost: the sleep test stands for them in `make test`
@pytest.mark.serial
def test_an_xla_step_is_split_into_its_dots_and_fused_kernels():
    from harness.run.anatomy import measure
    from variants.base import Adam

    result = measure("tf2_epoch_function_xla", _task((64, 32)), 128, Adam(), steps=None)
    _check_within_step(result)
    assert result["parts"]["gemm"] > 0 and result["parts"]["xla_fused"] > 0
    # every op of the step is in the cluster: no unfused update is left outside
    assert result["parts"]["optimizer"] == 0
    assert "XLA dot" in result["top_ops"]


# -- stored, read back, drawn ----------------------------------------------------------------


def _with_anatomy(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A copy of the small fixture suite with a calibration and an anatomy.csv."""
    from harness.run.anatomy import rows

    folder = tmp_path / "suite"
    shutil.copytree(FIXTURES / "small_a", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    spec_bytes = roofline.step_bytes(
        __import__("variants.base", fromlist=["ModelSpec"]).ModelSpec(64, (32,), 10), 128, "adam"
    )
    manifest["calibration"].update(bandwidth_gbs=10.0, step_bytes=spec_bytes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    results = []
    for variant, parts in (
        ("numpy_scratch", (1e-4, 5e-5, 2e-5, 0.0, 1e-5)),
        ("tf2_function", (1e-4, 1e-4, 3e-4, 0.0, 9e-4)),
    ):
        for batch in (128, 512):
            values = dict(zip(anatomy.PARTS, (p * batch / 128 for p in parts), strict=True))
            results.append(
                {
                    "variant": variant,
                    "batch_size": batch,
                    "steps": 4,
                    "parts": values,
                    "step_seconds": sum(values.values()),
                    "coverage": 1 - values["rest"] / sum(values.values()),
                    "unprofiled_step_seconds": 0.8 * sum(values.values()),
                    "method": 'test rows, a method\'s name with a comma, and "quotes"',
                }
            )
    frame = pd.DataFrame([r for result in results for r in rows(result)])
    storage.write_anatomy(folder, frame)
    return folder, frame


def test_anatomy_csv_round_trips(tmp_path):
    folder, frame = _with_anatomy(tmp_path)
    read = storage.load_results(folder).anatomy
    assert list(read.columns) == storage.ANATOMY_COLUMNS
    assert len(read) == len(frame) == 2 * 2 * len(anatomy.PARTS)
    assert read["method"].iloc[0] == frame["method"].iloc[0]
    assert np.array_equal(read["seconds_per_step"].to_numpy(float), frame["seconds_per_step"])
    assert str(read["batch_size"].dtype) == "Int64"
    # a folder without it reads, with no rows
    assert storage.load_results(FIXTURES / "small_a").anatomy.empty


def test_a_damaged_anatomy_csv_is_refused_in_one_line(tmp_path):
    folder, frame = _with_anatomy(tmp_path)
    frame["seconds_per_step"] = frame["seconds_per_step"].astype(object)
    frame.loc[3, "seconds_per_step"] = "fast"
    frame.to_csv(folder / storage.ANATOMY, index=False)
    with pytest.raises(storage.ResultsError, match=r"anatomy.csv, row 4.*seconds_per_step"):
        storage.load_results(folder)


def test_the_report_draws_the_bars_beside_the_floor_and_names_the_costliest_part(tmp_path):
    from harness.cli.report import build_report
    from harness.report.data import anatomy_table
    from harness.results.reader import read_results

    folder, _ = _with_anatomy(tmp_path)
    table = anatomy_table(read_results(folder))
    floor = roofline.floor_parts(512, 14460, 40.0, read_results(folder).manifest["calibration"]
                                 ["step_bytes"], 10.0)  # fmt: skip
    row = table[(table["variant"] == "tf2_function") & (table["batch_size"] == 512)].iloc[0]
    assert row["floor_gemm"] == pytest.approx(floor["gemm"])
    assert row["floor_optimizer"] == pytest.approx(floor["optimizer"])
    page = build_report([folder], tmp_path / "report").read_text()
    assert (tmp_path / "report" / "step_anatomy.png").stat().st_size > 10_000
    assert "step_anatomy.png" in page and "Step anatomy" in page
    # tf2_function's rest (0.9 ms per step at batch 128) is its costliest part over the floor;
    # numpy_scratch's GEMMs (0.1 ms against a floor of 0.046 ms)
    sentence = r"{} takes [\d.]+ ms per step profiled \([\d.]+ ms unprofiled\) against a floor of "
    sentence += r"[\d.]+ ms; its costliest "
    sentence += r"part over its floor is {}"
    assert re.search(sentence.format("tf2_function", "rest"), page)
    assert re.search(sentence.format("numpy_scratch", "GEMMs"), page)
    # without anatomy.csv, no figure and no sentence
    plain = build_report([FIXTURES / "small_a"], tmp_path / "plain").read_text()
    assert "step_anatomy.png" not in plain and "Step anatomy" not in plain


# -- the commands -----------------------------------------------------------------------------


def test_the_anatomy_command_refuses_bad_input_in_one_line(tmp_path):
    for args, message in (
        (["--variants", "nope"], "unknown variant 'nope'"),
        (["--variants", "tf2_multiworker"], "is distributed"),
        (["--variants", "numpy_scratch", "--dataset", "cifar"], "unknown dataset"),
        (["--variants", "numpy_scratch", "--batch-sizes", "0"], "--batch-sizes"),
    ):
        result = mlpbench("anatomy", *args, "--out", str(tmp_path / "a"))
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.system
def test_a_suite_with_anatomy_stores_and_reports_it(tmp_path):
    out = tmp_path / "suite"
    args = ["--variants", "numpy_scratch,tf2_function", "--hidden", "16", "--epochs", "2"]
    result = mlpbench("run", *args, "--seeds", "0", "--anatomy", "--out", str(out), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    read = storage.load_results(out)
    assert set(read.anatomy["variant"]) == {"numpy_scratch", "tf2_function"}
    assert set(read.anatomy["part"]) == set(anatomy.PARTS)
    assert (read.anatomy["batch_size"] == 128).all()
    for _, rows in read.anatomy.groupby("variant"):
        assert rows["seconds_per_step"].sum() == pytest.approx(rows["step_seconds"].iloc[0])
    # the anatomy ran after every timed window, on the timeline the isolation check reads
    timeline = [t for t in read.manifest["timeline"] if t["activity"] == "harness.run.anatomy"]
    windows = read.epochs["window_end"].max()
    assert len(timeline) == 2 and min(t["start"] for t in timeline) > windows
    page = mlpbench("report", str(out), "--out", str(tmp_path / "report"))
    assert page.returncode == 0, page.stderr
    assert (tmp_path / "report" / "step_anatomy.png").exists()

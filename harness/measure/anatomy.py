"""Where a training step's time goes, part by part: a profiler's trace of a few steady steps
split into GEMMs, other math, the optimizer's update, compiled (XLA) kernels and the rest.

Parsing and categorising only; running a variant under the profiler is harness/run/anatomy.py.

Parts, each in seconds per step:
  gemm        matrix products: TF ops MatMul, _FusedMatMul, BatchMatMul*; inside an XLA
              cluster the kernels named after a dot (`matmul.2`, `MatMul_1.4`, `dot.3`)
  optimizer   the update: ResourceApply* kernels, and every op under the optimizer's name scope
              (Keras 3 `adam/...`, tf.compat.v1 `Adam/update_param0/...`); in eager code, where
              ops carry no scope, the variable increments (AssignAdd/AssignSubVariableOp) only
  xla_fused   the rest of an XLA cluster's run (CpuExecutable::ExecuteAsyncOnStream): its other
              kernels (`multiply_add_fusion.3`, `copy.2`), in which XLA fuses the elementwise
              math and the update together so that a trace cannot split them, and the cluster's
              own runtime between its kernels
  other_math  every other TF op: bias adds, ReLU and its gradient, the loss, reductions
  rest        the step's wall time that none of the above covers: Python, framework dispatch,
              host syncs, input feeding (tf.data's threads, host-to-tensor copies)

Ops of a step overlap in time on several threads (the executor runs independent ops at once), so
each part is the union of its intervals, less whatever a part before it in PRIORITY already
covers: the measured parts together are the union of every interval, which never exceeds the
step's wall time, and `rest` is what is left, never below 0. `coverage` is the measured share.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

PARTS = ("gemm", "other_math", "optimizer", "xla_fused", "rest")
# A time span claimed by two parts counts for the first: a GEMM that runs while an update runs
# on the other core is GEMM time; the step would not be shorter without the update.
PRIORITY = ("gemm", "optimizer", "xla_fused", "other_math")
LABELS = {
    "gemm": "GEMMs",
    "other_math": "other math",
    "optimizer": "optimizer update",
    "xla_fused": "XLA cluster beyond its GEMMs (fused math + update, runtime)",
    "rest": "rest (Python, dispatch, syncs, input)",
}
# The trace event the runner puts around the profiled call: the step's wall time, in the
# profiler's own clock.
WINDOW = "mlpbench_anatomy_window"

GEMM_TYPES = re.compile(r"^(MatMul|_FusedMatMul|BatchMatMul\w*|_MklMatMul|_MklFusedMatMul)$")
XLA_GEMM = re.compile(r"^(matmul|dot|batchmatmul|einsum|_fusedmatmul)", re.IGNORECASE)
OPTIMIZER_TYPES = re.compile(r"^(ResourceApply|ResourceSparseApply|Apply)\w*$")
# An update adds to or subtracts from its variables; a plain assign sets one (a metric's reset,
# loaded weights), which is no update.
VARIABLE_UPDATES = ("AssignAddVariableOp", "AssignSubVariableOp")
# Name-scope components that mark an optimizer's ops: Keras' optimizers name their scope after
# the class in lower case, tf.compat.v1's after the class (`Adam`, `GradientDescent`) with an
# `update_<variable>` scope per variable.
OPTIMIZER_SCOPES = re.compile(
    r"^(adam|adamw|sgd|momentum|rmsprop|adagrad|adadelta|adamax|nadam|ftrl|lion|"
    r"gradientdescent|optimizer|update_.+)(_\d+)?$",
    re.IGNORECASE,
)
# Ops that hold other ops (their time is their callees') or feed input: not math.
CONTAINER_TYPES = re.compile(
    r"^(While|StatelessWhile|If|StatelessIf|Case|StatelessCase|PartitionedCall|"
    r"StatefulPartitionedCall|XlaLaunch\w*|_Xla\w*|__inference\w*|__forward\w*|__backward\w*|"
    r"\w*Dataset\w*|\w*Iterator\w*|Optional\w*|_EagerConst|_Send|_Recv|_HostSend|_HostRecv|"
    r"NoOp)$"
)
# What the XLA:CPU runtime runs its compiled kernels under; its other events are bookkeeping.
XLA_EXECUTOR = "ThunkExecutor::Execute"
# One run of a compiled cluster, from the TF op that launches it to its end.
XLA_CLUSTER = "CpuExecutable::ExecuteAsyncOnStream"
EAGER_PREFIX = "EagerLocalExecute: "


def op_category(name: str, op_type: str) -> str | None:
    """The part of a TensorFlow op from its full name (with scopes) and type; None if it is no
    part of the step's math (a function call, input feeding)."""
    if not op_type or CONTAINER_TYPES.match(op_type):
        return None
    if GEMM_TYPES.match(op_type):
        return "gemm"
    if OPTIMIZER_TYPES.match(op_type):
        return "optimizer"
    scopes = name.split("/")[:-1]
    if any(OPTIMIZER_SCOPES.match(s) for s in scopes):
        return "optimizer"
    if not scopes and op_type in VARIABLE_UPDATES:
        # an eager op carries no scope: a variable's increment in a training step is the update
        return "optimizer"
    return "other_math"


def xla_kernel_category(name: str) -> str:
    """The part of a kernel an XLA cluster ran (named after its HLO instruction)."""
    return "gemm" if XLA_GEMM.match(name) else "xla_fused"


Interval = tuple[int, int]  # picoseconds, in the trace's clock


@dataclass
class Trace:
    """A trace reduced to what the breakdown needs: the window and each part's intervals."""

    window: Interval
    intervals: dict[str, list[Interval]] = field(default_factory=dict)
    ops: dict[str, float] = field(default_factory=dict)  # seconds per op type, for inspection

    def add(self, part: str, start: int, end: int, label: str) -> None:
        self.intervals.setdefault(part, []).append((start, end))
        self.ops[label] = self.ops.get(label, 0.0) + (end - start) / 1e12


def read_xspace(logdir: str | Path) -> Any:
    """The newest XSpace (`*.xplane.pb`) the TensorFlow profiler wrote under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(Path(logdir).rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise ValueError(f"the profiler wrote no *.xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
    return space


def trace_of(space: Any) -> Trace:
    """Every op and XLA kernel event of the host plane, categorised, within the window event."""
    plane = next((p for p in space.planes if p.name == "/host:CPU"), None)
    if plane is None:
        raise ValueError("the trace has no /host:CPU plane")
    metadata = plane.event_metadata
    lines = []
    window: Interval | None = None
    for line in plane.lines:
        base = line.timestamp_ns * 1000
        events = []
        for e in line.events:
            start = base + e.offset_ps
            events.append((start, start + e.duration_ps, metadata[e.metadata_id]))
            if metadata[e.metadata_id].name == WINDOW:
                window = (start, start + e.duration_ps)
        lines.append((line.name, events))
    if window is None:
        raise ValueError(f"the trace has no {WINDOW} event")
    trace = Trace(window=window)
    for line_name, events in lines:
        if line_name.startswith("tf_data"):
            continue  # tf.data's threads prepare the input: the rest
        executors = Spans((s, t) for s, t, m in events if m.name == XLA_EXECUTOR)
        for start, end, meta in events:
            if meta.name == XLA_CLUSTER:
                # the whole run of a compiled cluster: what its kernels do not cover of it is
                # still the cluster's (its runtime, kernels too small to trace), not Python's
                trace.add("xla_fused", start, end, "XLA cluster (beyond its kernels)")
                continue
            found = _categorise(meta.name, meta.display_name, start, end, executors)
            if found:
                part, label = found
                trace.add(part, start, end, label)
    return trace


def _categorise(
    name: str, display: str, start: int, end: int, executors: Spans
) -> tuple[str, str] | None:
    if name.startswith(EAGER_PREFIX):  # an op run eagerly, on the calling thread
        op_type = name[len(EAGER_PREFIX) :].strip()
        part = op_category(op_type, op_type)
        return (part, op_type) if part else None
    if "::" in name or name.startswith("end: "):
        return None  # the runtime's own bookkeeping
    if ":" in name:  # a graph op: "scope/name:Type", its type also the display name
        op_name, _, op_type = name.rpartition(":")
        part = op_category(op_name, display or op_type)
        return (part, display or op_type) if part else None
    if " " not in name and executors.hold(start, end):  # a kernel the XLA runtime ran
        part = xla_kernel_category(name)
        return part, "XLA " + ("dot" if part == "gemm" else "kernel")
    return None


class Spans:
    """Intervals of one thread (possibly nested), asked whether one holds a given interval: in
    O(log n), as a trace of a whole epoch holds thousands of runs and tens of thousands of
    kernels per thread."""

    def __init__(self, spans: Iterable[Interval]) -> None:
        ordered = sorted(spans)
        self.starts = [s for s, _ in ordered]
        self.reach = list(accumulate((e for _, e in ordered), max))  # latest end so far

    def hold(self, start: int, end: int) -> bool:
        i = bisect_right(self.starts, start)  # the spans that began at or before `start`
        return i > 0 and self.reach[i - 1] >= end


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[list[int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def length(intervals: Iterable[Interval]) -> int:
    return sum(e - s for s, e in intervals)


def parts_of(trace: Trace, steps: int) -> dict[str, Any]:
    """Seconds per step of each part: the union of its intervals within the window, less what
    the parts before it in PRIORITY cover; `rest` is the window's remainder."""
    w0, w1 = trace.window
    wall = (w1 - w0) / 1e12
    covered: list[Interval] = []
    parts: dict[str, float] = {}
    for part in PRIORITY:
        # An event that began before the profiled call and ended after it is no op of its
        # steps (seen once: an eager op's event stretched over a whole window, likely one the
        # profiler closed only when it stopped); it would hide the rest behind one part.
        clipped = [
            (max(s, w0), min(e, w1))
            for s, e in trace.intervals.get(part, [])
            if not (s <= w0 and e >= w1)
        ]
        clipped = [(s, e) for s, e in clipped if e > s]
        before = length(covered)
        covered = merged(covered + clipped)
        parts[part] = (length(covered) - before) / 1e12 / steps
    measured = length(covered) / 1e12
    parts["rest"] = max(wall - measured, 0.0) / steps
    return {
        "step_seconds": wall / steps,
        "parts": parts,
        "coverage": measured / wall if wall > 0 else float("nan"),
    }


def numpy_parts(wall: float, steps: int, math: float, update: float, gemm: float) -> dict[str, Any]:
    """The breakdown of a variant without a framework profiler, from seconds over `steps`:
    `wall` the profiled call, `math` the variant's own per-step functions (cProfile cumulative
    time), `update` its optimizer function's, `gemm` the step's GEMM shapes timed alone. GEMM
    time is an estimate from a separate timing, so it is capped at the math it is part of."""
    math = min(math, wall)
    update = min(update, math)
    gemm = min(gemm, math - update)
    parts = {
        "gemm": gemm / steps,
        "other_math": (math - update - gemm) / steps,
        "optimizer": update / steps,
        "xla_fused": 0.0,
        "rest": (wall - math) / steps,
    }
    return {"step_seconds": wall / steps, "parts": parts, "coverage": math / wall}


def over_floor(parts: Mapping[str, float], floor: Mapping[str, float]) -> dict[str, float]:
    """Each part's seconds per step over its share of the floor: GEMMs against the GEMM floor,
    the update against the optimizer's bytes, other math against the rest of the bytes, and
    the rest against nothing (the floor has no Python)."""
    compiled = parts.get("xla_fused", 0.0)
    return {
        "gemm": parts.get("gemm", 0.0) - floor["gemm"],
        "optimizer": parts.get("optimizer", 0.0) - floor["optimizer"],
        "other_math": parts.get("other_math", 0.0) - floor["other_math"],
        # fused math and update together, against both their floors
        **({"xla_fused": compiled - floor["optimizer"] - floor["other_math"]} if compiled else {}),
        "rest": parts.get("rest", 0.0),
    }

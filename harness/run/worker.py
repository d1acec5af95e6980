"""Runs ONE (variant, seed) in a process of its own and streams what happens as JSON lines.

    python -m harness.run.worker '<WorkerConfig as JSON>'
    python -m harness.run.worker --check package.module:Class [...]

A fresh process per run means TensorFlow's global state, graph mode, thread pools and memory
never carry over from one variant to the next. TensorFlow is imported only if the variant's
module imports it, so the NumPy reference runs without it.

Events, one JSON object per line, written to the file descriptor `event_fd` (stdout if none):
  {"event": "start", "api_level", "device", "params", "import_seconds", "build_seconds",
   "jit_compile", "steps_per_execution" (a Keras variant's model only)}
  {"event": "epoch", "epoch", "losses": [...], "seconds", "train_loss", "test_loss",
   "test_accuracy", "foreign_cpu_seconds", "own_cpu_seconds", "idle_cpu_seconds", "window",
   "first_step_seconds" (epoch 1 only), "output_losses": {output: [...]} (a task with
   several outputs: each one's loss of every step; "losses" holds the total)}
  {"event": "done" | "diverged" | "error" | "inexpressible", "peak_rss_mb",
   "tensorflow": {...} | null, ...}: the last one; `done` adds "task_fingerprint"; `diverged`
   adds "epoch", "step", "loss"; `error` adds "error" (the exception's last line; the
   traceback goes to stderr, the log); `inexpressible` adds "error", the variant's reason
   (variants/base.py NotExpressible).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import resource
import sys
import time
import traceback
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np

import variants
from harness.measure import noise
from harness.results import scores
from harness.run import affinity, lifetime
from harness.task import Task, input_rows
from variants.base import AsWritten, NotExpressible, optimizer_from_dict


def as_written(seed: int, ablate: str | None) -> AsWritten:
    """What an as-written run of `seed` leaves to the variant, with `ablate` handed back
    (the initializer is handed back by giving `init_weights`, not by a field)."""
    return AsWritten(
        seed=seed,
        shuffle=ablate != "batch_order",
        optimizer_defaults=ablate != "optimizer",
        own_dtype=ablate != "dtype",
    )


def follows_as_written(cls: type) -> bool:
    """Whether a variant class can run in as-written mode: its build takes `as_written`."""
    try:
        return "as_written" in inspect.signature(cls.build).parameters
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class WorkerConfig:
    task_path: str  # a Task saved with Task.save
    variant: str  # the name results use
    variant_path: str  # "module:Class"
    optimizer: dict[str, Any]  # optimizer_to_dict
    batch_size: int
    epochs: int
    device: str  # "cpu" or "gpu"
    spawn_time: float | None = None  # time.time() when the parent started this process
    workers: int = 1  # replicas of a distributed variant (`mlpbench run --workers`)
    event_fd: int | None = None
    mode: str = "controlled"  # one of MODES
    ablate: str | None = None  # as-written only: one of ABLATIONS, handed back to the harness
    # harness/run/affinity.py: "round-robin" places every thread on a CPU of its own before each
    # timed window (single-process variants: the ranks of a cluster share the CPUs)
    thread_affinity: str = "none"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class Diverged(Exception):
    """A training loss became NaN or inf."""


class ProtocolError(Exception):
    """The variant broke the contract of variants/base.py."""


def peak_rss_mb() -> float:
    """This process' peak resident memory. VmHWM belongs to the current address space;
    getrusage's ru_maxrss would also count the parent's memory at fork time."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Events:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, event: str, **data: Any) -> None:
        self.stream.write(json.dumps({"event": event, **data}) + "\n")
        self.stream.flush()  # the runner shows progress live and keeps what came before a crash


def _step_losses(returned: Any, n: int, batch_size: int, outputs: int = 0) -> np.ndarray:
    """The losses of every step, (steps,); or (steps, 1 + outputs) for a task whose `outputs`
    outputs have losses of their own: the total, then each output's."""
    raw = np.asarray(returned)
    if raw.dtype.kind not in "fiu":  # e.g. None: not a loss that became NaN, a broken contract
        first = repr(raw.flat[0])[:40] if raw.size else "nothing"
        raise ProtocolError(
            f"train_epoch returned {first} where a loss should be (dtype {raw.dtype}); "
            "expected one float per batch"
        )
    expected = math.ceil(n / batch_size)
    shape = (expected, 1 + outputs) if outputs else (expected,)
    if raw.size != math.prod(shape) or (outputs and raw.shape != shape):
        what = f"{raw.size} losses" if not outputs else f"losses of shape {raw.shape}"
        each = "" if not outputs else f" x (the total and {outputs} outputs' losses)"
        raise ProtocolError(
            f"train_epoch returned {what} for {n} samples in batches of "
            f"{batch_size}; expected {expected}{each}"
        )
    return raw.astype(np.float64).reshape(shape)


def _check_finite(losses: np.ndarray, epoch: int, first_step: int) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        i = int(bad[0])
        raise Diverged(epoch, first_step + i, float(losses[i]))


def _device_scope(device: str) -> tuple[str, contextlib.AbstractContextManager[Any]]:
    """Where the variant runs. NumPy runs on the CPU whatever was asked; TensorFlow on CPU
    has its GPUs hidden by the runner (CUDA_VISIBLE_DEVICES=-1)."""
    if "tensorflow" not in sys.modules:
        return "cpu", contextlib.nullcontext()
    import tensorflow as tf

    if device == "gpu":
        if not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("--device gpu: TensorFlow sees no GPU in this process")
        return "gpu:0", tf.device("/GPU:0")
    return "cpu", tf.device("/CPU:0")


class Window:
    """The timed part of an epoch: only `train_epoch` calls, ending with the losses in host
    memory (one sync, so that work a framework left queued is inside the window), plus the
    CPU time the rest of the machine used meanwhile, the worker's own (all its threads) and
    the time the machine's CPUs stood idle (harness/measure/noise.py)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.foreign: float | None = 0.0
        self.own = 0.0
        self.idle: float | None = 0.0
        self.start: float | None = None
        self.end = 0.0

    def time(self, train_epoch: Any, *args: Any) -> np.ndarray:
        before = noise.read()
        t0 = time.perf_counter()
        losses = np.asarray(train_epoch(*args))
        t1 = time.perf_counter()
        after = noise.read()
        self.seconds += t1 - t0
        self.foreign = _added(self.foreign, noise.foreign_seconds(before, after))
        self.own += noise.own_seconds(before, after)
        self.idle = _added(self.idle, noise.idle_seconds(before, after))
        # perf_counter is CLOCK_MONOTONIC: one clock for every process of the suite
        self.start = t0 if self.start is None else self.start
        self.end = t1
        return losses

    def facts(self) -> dict[str, Any]:
        def ticks(value: float | None) -> float | None:  # 10 ms: more digits would be noise
            return None if value is None else round(value, 6)

        return {
            "foreign_cpu_seconds": ticks(self.foreign),
            "own_cpu_seconds": ticks(self.own),
            "idle_cpu_seconds": ticks(self.idle),
            "window": [self.start, self.end],
        }


def _added(total: float | None, part: float | None) -> float | None:
    """A window's total over its calls: unknown if any call's reading was."""
    return None if total is None or part is None else total + part


def train(config: WorkerConfig, events: Events, started: float) -> dict[str, Any]:
    """Build, then train epoch by epoch, timing only `train_epoch`. Returns the final event."""
    t0 = time.perf_counter()
    cls = variants.load(config.variant_path)  # imports TensorFlow if the variant does
    import_seconds = time.perf_counter() - t0 + _preloaded_seconds()
    task = Task.load(Path(config.task_path))
    optimizer = optimizer_from_dict(config.optimizer)
    if getattr(cls, "distributed", False):
        # its strategy places every op on its replicas' devices, and must be created before
        # TensorFlow initialises (which `tf.device` would do)
        device, scope = config.device, contextlib.nullcontext()
    else:
        device, scope = _device_scope(config.device)
    bs, n = config.batch_size, len(task.x_train)
    outputs = len(task.spec.outputs)  # outputs with losses of their own, beside the total
    step = 1  # global number of the next step
    own = as_written(task.seed, config.ablate) if config.mode == "as-written" else None
    if own is not None and not follows_as_written(cls):
        raise ProtocolError(
            f"{config.variant} cannot run in --mode as-written: its build takes no `as_written`"
        )
    # as written, the variant orders its own batches: it gets the data in the dataset's order
    own_order = own is not None and own.shuffle
    with scope:
        t0 = time.perf_counter()
        variant = _instantiate(cls, config.workers)
        if own is None:
            variant.build(task.spec, optimizer, task.init_weights)
        else:
            init = task.init_weights if config.ablate == "initializer" else None
            variant.build(task.spec, optimizer, init, as_written=own)
        events.emit(
            "start",
            api_level=getattr(cls, "api_level", None),
            level=getattr(cls, "level", None),
            rung=getattr(cls, "rung", None),
            device=device,
            params=task.spec.param_count,
            import_seconds=import_seconds,
            build_seconds=time.perf_counter() - t0,
            **keras_compiled(variant),
        )
        pin = config.thread_affinity == "round-robin" and not getattr(cls, "distributed", False)
        for epoch in range(1, config.epochs + 1):
            if pin:  # outside the window: threads started since are placed too
                affinity.pin_threads()
            if own_order:
                x, y = task.spec.inputs(task.x_train), task.y_train
            else:
                x, y = task.epoch_data(epoch - 1)  # reordering is the harness' work: not timed
            extra: dict[str, Any] = {}
            if epoch == 1 and not own_order:
                # The first batch alone, then the rest: the same training as one call, but the
                # end of step 1 is observable. Time from process start: imports, build, tracing.
                window = Window()
                first, rest = slice(None, bs), slice(bs, None)
                returned = window.time(variant.train_epoch, input_rows(x, first), y[first], bs)
                extra["first_step_seconds"] = time.time() - started
                losses = _step_losses(returned, min(n, bs), bs, outputs)
                if pin:  # the frameworks start their thread pools in the first step
                    affinity.pin_threads()
                if n > bs and np.all(np.isfinite(losses)):
                    returned = window.time(variant.train_epoch, input_rows(x, rest), y[rest], bs)
                    losses = np.concatenate([losses, _step_losses(returned, n - bs, bs, outputs)])
            else:
                window = Window()
                returned = window.time(variant.train_epoch, x, y, bs)
                losses = _step_losses(returned, n, bs, outputs)
            seconds = window.seconds
            extra.update(window.facts())
            if outputs:  # the total is the loss; each output's beside it
                names = task.spec.outputs
                extra["output_losses"] = {o: losses[:, 1 + i].tolist() for i, o in enumerate(names)}
                losses = losses[:, 0]
            try:
                _check_finite(losses, epoch, step)
            except Diverged:
                events.emit("epoch", epoch=epoch, losses=losses.tolist(), seconds=seconds, **extra)
                raise
            # evaluation: not timed
            logits = _checked_logits(variant.predict(task.test_inputs()), task)
            events.emit(
                "epoch",
                epoch=epoch,
                losses=losses.tolist(),
                seconds=seconds,
                train_loss=scores.epoch_train_loss(losses, n, bs),
                test_loss=scores.cross_entropy(logits, task.y_test),
                test_accuracy=scores.accuracy(logits, task.y_test),
                **extra,
            )
            step += losses.size
    _check_weights(variant.get_weights(), task)
    # hashed after training, so it also proves the variant left the task's arrays unchanged
    return {"event": "done", "task_fingerprint": task.fingerprint()}


KERAS_PACKAGES = ("keras", "tf_keras")


def keras_compiled(variant: Any) -> dict[str, Any]:
    """What a Keras variant's compiled model will run, read from the model after `build`: XLA
    or not (`jit_compile` as Keras resolved it: "auto" is False on a machine with no GPU) and
    the steps per call of its train function (`steps_per_execution`). The model is the
    variant's `model` attribute, or the variant itself when it subclasses a Keras model; other
    variants give {}. Reading them costs no timed time: it happens before the first window."""
    for candidate in (getattr(variant, "model", None), variant):
        packages = {c.__module__.partition(".")[0] for c in type(candidate).__mro__}
        if candidate is None or not packages.intersection(KERAS_PACKAGES):
            continue
        facts: dict[str, Any] = {}
        try:
            facts["jit_compile"] = bool(candidate.jit_compile)
        except Exception:  # a fact we could not read is left empty, never a failed run
            pass
        try:
            # Keras 3 keeps an int; tf_keras a variable
            facts["steps_per_execution"] = int(np.asarray(candidate.steps_per_execution))
        except Exception:
            pass
        return facts
    return {}


def _checked_logits(returned: Any, task: Task) -> np.ndarray:
    """`predict` as the protocol says: (n, num_classes) floats, all finite (variants/base.py)."""
    logits = np.asarray(returned)
    expected = (len(task.x_test), task.spec.num_classes)
    if logits.shape != expected or logits.dtype.kind != "f":
        raise ProtocolError(
            f"predict returned an array of shape {logits.shape} and dtype {logits.dtype}; "
            f"expected floats of shape {expected}"
        )
    if not np.isfinite(logits).all():
        raise ProtocolError(
            f"predict returned {int((~np.isfinite(logits)).sum())} non-finite logits"
        )
    return logits


def _check_weights(returned: Any, task: Task) -> None:
    """`get_weights` as the protocol says: finite arrays in `spec.weight_shapes` order, and in
    `spec.dtype` when that is not the default float32."""
    weights = [np.asarray(w) for w in returned]
    shapes = [w.shape for w in weights]
    if shapes != [tuple(s) for s in task.spec.weight_shapes]:
        raise ProtocolError(
            f"get_weights returned shapes {shapes}; expected {task.spec.weight_shapes}"
        )
    if not all(w.dtype.kind == "f" and np.isfinite(w).all() for w in weights):
        raise ProtocolError("get_weights returned non-finite or non-float weights")
    dtypes = sorted({str(w.dtype) for w in weights} - {task.spec.dtype})
    if task.spec.dtype != "float32" and dtypes:  # float32 runs have always taken any float
        raise ProtocolError(
            f"get_weights returned {', '.join(dtypes)} weights; this run trains in "
            f"{task.spec.dtype} (spec.dtype)"
        )


def _instantiate(cls: type, workers: int) -> Any:
    """A variant that holds every replica in its one process learns how many from its
    constructor; one that runs as N processes learns it from TF_CONFIG (harness/run/cluster.py)."""
    if getattr(cls, "in_one_process", False):
        return cls(replicas=workers)
    return cls()


def run(config: WorkerConfig, events: Events) -> int:
    started = config.spawn_time if config.spawn_time is not None else _process_start()
    started -= _preloaded_seconds()  # a warm start's first step counts from a cold start
    try:
        end = train(config, events, started)
        code = 0
    except Diverged as exc:
        epoch, step, loss = exc.args
        end = {"event": "diverged", "epoch": epoch, "step": step, "loss": loss}
        code = 3
    except NotExpressible as exc:  # a finding about the API, not a failure of the run
        end = {"event": "inexpressible", "error": " ".join(str(exc).split())}
        code = 0
    except (Exception, SystemExit) as exc:  # a variant's bug must become a recorded result
        traceback.print_exc()  # into the run's log, for whoever debugs it
        end = {"event": "error", "error": _exception_line(exc)}
        code = 1
    kind = end.pop("event")
    events.emit(kind, peak_rss_mb=peak_rss_mb(), tensorflow=_tensorflow_facts(), **end)
    return code


def _tensorflow_facts() -> dict[str, Any] | None:
    """The suite's TensorFlow fingerprint, gathered after training so it costs no timed or
    first-step time; None if this variant did not use TensorFlow."""
    if "tensorflow" not in sys.modules:
        return None
    from harness.measure.environment import tensorflow_runtime

    try:
        return tensorflow_runtime()
    except Exception:  # a fingerprint must never turn a finished run into a failed one
        return None


def _exception_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line, whatever the message holds
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _preloaded_seconds() -> float:
    """The import time a warm-start server paid before forking this process (harness/run/launch.py);
    0 in a cold worker."""
    return getattr(sys.modules.get("harness.run.preload"), "IMPORT_SECONDS", 0.0)


def _process_start() -> float:
    """Wall-clock start of this process from /proc (10 ms resolution), for a worker started
    by hand without `spawn_time`."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def check(paths: list[str]) -> int:
    """Import each `module:Class` and check the protocol; print one JSON line per path with
    the module's file (for line counting) or the error. Exit 0 only if all are usable."""
    ok = True
    for path in paths:
        try:
            cls = variants.load(path)
            module = sys.modules[cls.__module__]
            result = {"path": path, "ok": True, "file": getattr(module, "__file__", None)}
            result["as_written"] = follows_as_written(cls)
        except variants.VariantLoadError as exc:
            result = {"path": path, "ok": False, "error": " ".join(str(exc).split())}
            ok = False
        print(json.dumps(result))
    return 0 if ok else 2


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        return check(argv[1:])
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    config = WorkerConfig.from_json(argv[0])
    lifetime.die_with_parent(config.event_fd)
    lifetime.adopt_orphans()
    try:
        if config.event_fd is None:
            return run(config, Events(sys.stdout))
        # a process the variant starts must not hold the runner's pipe open after this one ends
        os.set_inheritable(config.event_fd, False)
        with os.fdopen(config.event_fd, "w", encoding="utf-8") as stream:
            return run(config, Events(stream))
    finally:
        lifetime.end_descendants()  # what the variant started ends with its run


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

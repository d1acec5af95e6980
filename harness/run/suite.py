"""Plans a suite of (variant, seed) runs, starts a worker process for each, survives whatever
the workers do, and writes the results folder after every run.

One run at a time by default, so that no run's timing is disturbed by another's; `--jobs N`
trades that for speed and is recorded in the manifest.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

import variants
from harness.datasets import Dataset
from harness.measure import environment, learning, noise, roofline, timeline
from harness.measure.loc import SourceInfo
from harness.results import scores, storage
from harness.results.storage import utc_now
from harness.run import cluster
from harness.run.config import RunConfig, SuiteError, check_resumable
from harness.run.folder import (
    TASKS_PREFIX,
    cap_log,
    check_replaceable,
    clear_results_dir,
    is_empty,
    remove_stale_task_dirs,
)
from harness.run.launch import Launcher, uses_framework
from harness.run.process import WorkerProcess
from harness.run.worker import WorkerConfig
from harness.task import Task, in_dtype, make_task, model_spec
from variants.base import optimizer_to_dict

# A resumed suite keeps these runs: both are finished measurements (a divergence is the
# outcome of the settings, and would only repeat). Failed, timed-out and pending runs are
# run again, since a crash, an OOM kill or a timeout may be the machine's fault.
KEEP_ON_RESUME = ("ok", "diverged")
# Timed seconds per backend of the once-per-suite GEMM calibration: medians of 10 samples of
# 0.1 s were within a few per cent of 2 s runs on this task's sizes.
CALIBRATION_SECONDS = 1.0
OVERHEAD_ROUNDS = 9  # ABBA pairs of the reference: a couple of seconds on digits
BAND_SEEDS = 3  # runs of the reference that make its seed band, at least
OVERHEAD_ROUNDS_EACH = 3  # ABBA pairs per variant with --overhead all, on the suite's data
POLL_SECONDS = 0.25  # how often timeouts are checked while waiting for events


@dataclass
class RunRecord:
    """What the manifest says about one (variant, seed); filled in as its worker reports."""

    variant: str
    seed: int
    status: str = "pending"
    error: str | None = None
    device: str | None = None
    api_level: str | None = None
    level: str | None = None  # the API level's family, and this variant's rung on its ladder
    rung: int | None = None
    attempts: int = 0  # runs made of it: more than one when --retry-noisy measured it again
    started: str | None = None
    wall_seconds: float | None = None
    first_step_seconds: float | None = None
    import_seconds: float | None = None  # of the variant's module: TensorFlow's start-up
    build_seconds: float | None = None
    peak_rss_mb: float | None = None
    params: int | None = None
    task_fingerprint: str | None = None
    log: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.variant, self.seed


class Listener(Protocol):
    """Progress display; the runner itself prints nothing."""

    def suite_started(self, total: int, already_done: int) -> None: ...
    def run_started(self, record: RunRecord) -> None: ...
    def epoch_finished(self, record: RunRecord, epoch: int, loss: float, acc: float) -> None: ...
    def run_finished(self, record: RunRecord, summary: dict[str, Any]) -> None: ...
    def note(self, message: str) -> None: ...


class Suite:
    """One `mlpbench run`: plan, prepare (tasks, resume), execute, write."""

    def __init__(
        self,
        config: RunConfig,
        dataset: Dataset,
        sources: dict[str, SourceInfo | None],
        listener: Listener,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.sources = sources
        self.listener = listener
        # Seed-major order: every variant of seed 0, then seed 1... so a slow drift in the
        # machine's load spreads over all variants instead of landing on one.
        self.records = [RunRecord(v, s) for s in config.seeds for v in config.variants]
        self.band_seeds: list[int] = []  # seeds only the reference runs (_add_band_runs)
        self.steps: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.epochs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.manifest: dict[str, Any] = {}
        self.tasks: dict[int, Task] = {}  # they share the dataset's arrays: cheap to keep
        self.spec = model_spec(dataset, config.hidden, config.dtype)
        self.tmp: Path | None = None  # where a seed's task is saved for its workers
        self._lock: int | None = None  # storage.lock_folder's, held from prepare to the end
        self._created = False  # --out did not exist before this suite
        self._started = False  # execute() has replaced (--force) or begun the folder

    # -- preparation ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything before the first worker starts; raises SuiteError on bad input."""
        try:
            self._prepare()
        except MemoryError:
            self._cleanup()
            raise SuiteError(
                "out of memory while preparing the tasks; use a smaller --hidden or dataset"
            ) from None
        except BaseException:
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
            out = self.config.out
            if self._created and not self._started and is_empty(out):
                shutil.rmtree(out, ignore_errors=True)  # made for a suite that never started

    def _open_folder(self) -> None:
        """Create --out if needed and hold it: one suite writes a folder at a time."""
        out = self.config.out
        self._created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            self._lock = storage.lock_folder(out)
        except storage.FolderBusy as exc:
            raise SuiteError(str(exc)) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SuiteError(f"--out {out}: cannot write there ({reason})") from None

    def _prepare(self) -> None:
        out = self.config.out
        self._open_folder()
        previous = None
        if self.config.resume and (out / storage.MANIFEST).exists():
            try:
                previous = storage.load_results(out)
            except storage.ResultsError as exc:
                raise SuiteError(f"--resume: {exc}") from None
            check_resumable(self.config, previous.manifest)
        elif self.config.force:
            check_replaceable(out)  # removed only once this suite has started (execute)

        remove_stale_task_dirs()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{TASKS_PREFIX}{os.getpid()}-"))
        self._data = in_dtype(self.dataset, self.config.dtype)  # once: every seed's task shares it
        tasks = {str(seed): self._make_task(seed) for seed in self.config.seeds}

        if previous is not None:
            self._restore(previous, tasks)
        else:
            self.manifest = {
                "schema_version": storage.SCHEMA_VERSION,
                "name": out.name,
                "created": utc_now(),
                "finished": None,
                "command": shlex.join(self.config.argv),
                "argv": list(self.config.argv),
                "config": self.config.to_manifest(),
                "environment": environment.fingerprint(list(self.config.argv)),
                "tasks": tasks,
                "band_seeds": [],
                "calibration": None,
                "runs": [],
            }
        self.launcher = Launcher(
            self._worker_env(), out / "logs" / "warm-server.log", warm=not self.config.cold_start
        )

    def _make_task(self, seed: int) -> dict[str, Any]:
        """The seed's task, kept for its workers; returns its manifest entry."""
        config = self.config
        task = make_task(self._data, config.hidden, config.epochs, seed, config.dtype)
        self.tasks[seed] = task
        return {
            "fingerprint": task.fingerprint(),
            "n_train": int(len(task.x_train)),
            "n_test": int(len(task.x_test)),
            "input_size": task.spec.input_size,
            "params": task.spec.param_count,
        }

    def _restore(self, previous: storage.Results, tasks: dict[str, Any]) -> None:
        for seed in previous.manifest.get("band_seeds") or []:  # as _add_band_runs left them
            tasks[str(seed)] = self._make_task(int(seed))
            self.records.append(RunRecord(variants.REFERENCE, int(seed)))
            self.band_seeds.append(int(seed))
        for seed, info in tasks.items():
            old = previous.manifest.get("tasks", {}).get(seed, {}).get("fingerprint")
            if old != info["fingerprint"]:
                raise SuiteError(
                    f"--resume: the task for seed {seed} differs from the one in "
                    f"{self.config.out} (data changed?); use --force to start over"
                )
        self.manifest = previous.manifest
        self.manifest["config"] = self.config.to_manifest()
        self.manifest["finished"] = None
        self.manifest.setdefault("resumed", []).append(
            {"time": utc_now(), "command": shlex.join(self.config.argv)}
        )
        old_runs = {(r["variant"], int(r["seed"])): r for r in previous.manifest.get("runs", [])}
        for i, record in enumerate(self.records):
            old = old_runs.get(record.key)
            if old is None or old.get("status") not in KEEP_ON_RESUME:
                continue
            self.records[i] = RunRecord(**{k: old.get(k) for k in asdict(record)})
            for frame, store in ((previous.steps, self.steps), (previous.epochs, self.epochs)):
                mine = frame[(frame["variant"] == record.variant) & (frame["seed"] == record.seed)]
                store[record.key] = mine.to_dict("records")

    # -- execution -----------------------------------------------------------------------------

    def execute(self) -> int:
        """Run every pending run; return the exit status (0 all ok, 1 any failure or parity
        failure, 130 interrupted)."""
        todo = deque(r for r in self.records if r.status not in KEEP_ON_RESUME)
        self.listener.suite_started(len(self.records), len(self.records) - len(todo))
        if self.config.jobs > 1:
            self.listener.note(
                f"--jobs {self.config.jobs}: runs share the CPU, their timings disturb each other"
            )
        events: queue.Queue[tuple[WorkerProcess, dict[str, Any] | None]] = queue.Queue()
        active: dict[int, WorkerProcess] = {}
        try:
            if self.config.force:
                clear_results_dir(self.config.out)  # the earlier suite, now being replaced
            (self.config.out / "logs").mkdir(exist_ok=True)
            self._started = True
            self.save()
            if any(self._warm(r.variant) for r in todo):
                # before the first run, so that its start-up overlaps no timed window
                with self._activity("warm server start"):
                    self.launcher.start_server()
            self._run(todo, events, active)
            if self._add_band_runs(todo):
                self._run(todo, events, active)
            for _ in range(self.config.retry_noisy):
                noisy = [r for r in self.records if r.key in self._noisy_keys()]
                if not noisy:
                    break
                names = ", ".join(f"{r.variant} seed {r.seed}" for r in noisy)
                self.listener.note(f"measuring again what outside load disturbed: {names}")
                todo.extend(noisy)
                self._run(todo, events, active)
            self._calibrate()
            self.manifest["finished"] = utc_now()
        except KeyboardInterrupt:
            return 130
        finally:
            # Interrupted (or a bug here): stop what still runs, so no worker outlives the
            # suite, and keep what finished. Their runs go back to pending.
            for w in active.values():
                w.kill()
                w.process.wait()
                self._reset(w.record)
            self.save()
            self._cleanup()
        failed = any(r.status != "ok" for r in self.records)
        return 1 if failed or self.summary()["learning_pass"].eq(False).any() else 0

    def _run(
        self,
        todo: deque[RunRecord],
        events: queue.Queue[tuple[WorkerProcess, dict[str, Any] | None]],
        active: dict[int, WorkerProcess],
    ) -> None:
        """Start runs from `todo` (up to --jobs at a time) and follow them to their end."""
        while todo or active:
            while todo and len(active) < self.config.jobs:
                worker = self._start(todo.popleft(), events)
                active[id(worker)] = worker
            try:
                worker, event = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                worker, event = None, None
            if worker is not None and event is not None:
                self._on_event(worker, event)
            elif worker is not None:  # its pipe closed: the process is gone or going
                self._reap(worker)
                cap_log(self.config.out / worker.record.log)
                del active[id(worker)]
                self._finish(worker)
                self._drop_task_file(worker.record.seed, todo, active)
            for w in active.values():
                cap_log(self.config.out / w.record.log)
                if not w.timed_out and w.elapsed > self.config.timeout:
                    w.timed_out = True
                    w.kill()

    def _add_band_runs(self, todo: deque[RunRecord]) -> bool:
        """A run that parted from the reference is judged against the band the reference's
        seeds span (scores.seed_band_gap), which needs BAND_SEEDS of them. With fewer asked
        for, the reference alone runs the next unused seeds, only when a run needs the band."""
        summary = self.summary()
        parted = summary["parity_pass"].eq(False).any()
        ran = summary.loc[summary["variant"].eq(variants.REFERENCE), "seed"].nunique()
        if not parted or ran >= BAND_SEEDS:
            return False
        unused = (s for s in itertools.count() if s not in {r.seed for r in self.records})
        seeds = [next(unused) for _ in range(BAND_SEEDS - ran)]
        self.listener.note(
            f"a run parted from {variants.REFERENCE}: it also runs seeds "
            f"{', '.join(map(str, seeds))} to make its seed band"
        )
        for seed in seeds:
            self.manifest["tasks"][str(seed)] = self._make_task(seed)
            self.band_seeds.append(seed)
            self.records.append(record := RunRecord(variants.REFERENCE, seed))
            todo.append(record)
        self.manifest["band_seeds"] = list(self.band_seeds)
        return True

    def _noisy_keys(self) -> set[tuple[str, int]]:
        summary = self.summary()
        noisy = summary[summary["noisy"].eq(True) & summary["status"].eq("ok")]
        return {(v, int(s)) for v, s in zip(noisy["variant"], noisy["seed"], strict=True)}

    @contextlib.contextmanager
    def _activity(self, name: str) -> Iterator[None]:
        """Harness work outside any run, on the timeline the isolation check reads."""
        start = time.perf_counter()  # CLOCK_MONOTONIC, the clock of the workers' windows
        try:
            yield
        finally:
            self.manifest.setdefault("timeline", []).append(
                {"activity": name, "start": start, "end": time.perf_counter()}
            )

    def _warm(self, variant: str) -> bool:
        source = self.sources.get(variant)
        return source is not None and uses_framework(source.imports)

    def _reap(self, worker: WorkerProcess) -> None:
        """Wait for a worker whose pipe closed. One that hangs on its way out (TensorFlow's
        threads at interpreter exit) still answers to the timeout."""
        try:
            worker.process.wait(timeout=max(1.0, self.config.timeout - worker.elapsed))
        except subprocess.TimeoutExpired:
            worker.timed_out = worker.final is None  # a finished run is still a result
            worker.kill()
            worker.process.wait()

    def _reset(self, record: RunRecord) -> None:
        """An interrupted run is not a result: back to pending, its partial rows dropped."""
        fresh = RunRecord(record.variant, record.seed)
        for k, v in asdict(fresh).items():
            setattr(record, k, v)
        self.steps.pop(record.key, None)
        self.epochs.pop(record.key, None)

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # the worker imports user classes the way `python -m` here would: from this folder
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
        if self.config.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = "-1"  # TensorFlow then sees no GPU at all
        return env

    def _start(self, record: RunRecord, events: queue.Queue[Any]) -> WorkerProcess:
        attempts = record.attempts or 0
        self._reset(record)
        record.attempts = attempts + 1
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in record.variant)
        log = self.config.out / "logs" / f"{safe}-seed{record.seed}.log"
        record.log = str(log.relative_to(self.config.out))
        record.started = utc_now()
        self.steps[record.key], self.epochs[record.key] = [], []
        config = WorkerConfig(
            task_path=str(self._task_file(record.seed)),
            variant=record.variant,
            variant_path=self.config.path_of(record.variant),
            optimizer=optimizer_to_dict(self.config.optimizer),
            batch_size=self.config.batch_size,
            epochs=self.config.epochs,
            device=self.config.device,
            workers=self.config.workers,
            mode=self.config.mode,
            ablate=self.config.ablate,
        )
        self.listener.run_started(record)
        warm = self._warm(record.variant)
        launcher: Any = self.launcher
        if self.config.workers > 1 and cluster.layout(config.variant_path) == "ranks":
            # N processes with their supervisor: one worker process to this runner
            launcher = cluster.ClusterLauncher(
                self.launcher.env, self.config.workers, self.config.timeout, self.launcher
            )
        return WorkerProcess(record, config, launcher, warm, log, events)

    def _task_file(self, seed: int) -> Path:
        """The seed's task on disk, saved when its first run starts and deleted after its last
        (`_drop_task_file`): one MNIST task is ~200 MB, so seeds do not pile up."""
        assert self.tmp is not None, "prepare() first"
        path = self.tmp / f"seed{seed}.npz"
        if not path.exists():
            self.tasks[seed].save(path)
        return path

    def _drop_task_file(
        self, seed: int, todo: deque[RunRecord], active: dict[int, WorkerProcess]
    ) -> None:
        still_needed = [r for r in todo if r.seed == seed]
        still_needed += [w.record for w in active.values() if w.record.seed == seed]
        if self.tmp is not None and not still_needed:
            (self.tmp / f"seed{seed}.npz").unlink(missing_ok=True)

    def _on_event(self, worker: WorkerProcess, event: dict[str, Any]) -> None:
        record, kind = worker.record, event.get("event")
        if kind == "start":
            record.api_level = event.get("api_level")
            record.level, record.rung = event.get("level"), event.get("rung")
            record.device = event.get("device")
            record.params = event.get("params")
            record.import_seconds = event.get("import_seconds")
            record.build_seconds = event.get("build_seconds")
        elif kind == "epoch":
            self._add_epoch(record, event)
        elif kind in ("done", "diverged", "error"):
            worker.final = event
            record.peak_rss_mb = event.get("peak_rss_mb")
            if event.get("tensorflow"):
                environment.merge_runtime(self.manifest["environment"], event["tensorflow"])

    def _add_epoch(self, record: RunRecord, event: dict[str, Any]) -> None:
        epoch, losses = int(event["epoch"]), event["losses"]
        steps = self.steps[record.key]
        first = len(steps) + 1
        steps += [
            {"variant": record.variant, "seed": record.seed, "epoch": epoch, "step": first + i,
             "loss": loss}
            for i, loss in enumerate(losses)
        ]  # fmt: skip
        if "first_step_seconds" in event:
            record.first_step_seconds = event["first_step_seconds"]
        if "test_accuracy" not in event:
            return  # a diverged epoch: its steps are kept, it has no evaluation
        n = len(self.dataset.x_train)
        self.epochs[record.key].append(
            {
                "variant": record.variant,
                "seed": record.seed,
                "epoch": epoch,
                "train_loss": event["train_loss"],
                "test_loss": event["test_loss"],
                "test_accuracy": event["test_accuracy"],
                "seconds": event["seconds"],
                "samples_per_second": n / event["seconds"] if event["seconds"] > 0 else None,
                "foreign_cpu_seconds": event.get("foreign_cpu_seconds"),
                "window_start": (event.get("window") or [None, None])[0],
                "window_end": (event.get("window") or [None, None])[1],
            }
        )
        self.listener.epoch_finished(record, epoch, event["train_loss"], event["test_accuracy"])

    def _finish(self, worker: WorkerProcess) -> None:
        record, final = worker.record, worker.final
        record.wall_seconds = round(worker.elapsed, 3)
        record.status, record.error = worker.outcome(self.config.timeout, self.config.out)
        if record.status == "ok" and final is not None:
            record.task_fingerprint = final.get("task_fingerprint")
            expected = self.manifest["tasks"][str(record.seed)]["fingerprint"]
            if record.task_fingerprint != expected:
                record.status = "failed"
                record.error = "the variant changed the arrays of the task it was given"
            elif len(self.epochs[record.key]) != self.config.epochs:
                record.status = "failed"
                done = len(self.epochs[record.key])
                record.error = f"reported {done} epochs, not {self.config.epochs}"
        self.save()
        row = next(r for r in self.summary().to_dict("records") if r["variant"] == record.variant
                   and r["seed"] == record.seed)  # fmt: skip
        self.listener.run_finished(record, row)

    # -- results -------------------------------------------------------------------------------

    def _calibrate(self) -> None:
        """Measurements of the machine and of the harness, once per suite and after every run so
        that they disturb none; a failure only leaves their columns empty.

        calibration: the GEMM roofline at the task's layer sizes (harness/measure/roofline.py).
        overhead: the reference's throughput through the worker against its bare loop
        (harness/run/overhead.py); 1.0 means the harness costs nothing measurable.
        overhead_by_variant: the same for every variant (--overhead all, asked for explicitly:
        measured even with --no-calibrate).
        """
        sizes = ["--hidden", ",".join(map(str, self.config.hidden))]
        sizes += ["--batch-size", str(self.config.batch_size)]
        if self.config.overhead == "all":
            self._overhead_by_variant(sizes)
        if not self.config.calibrate:
            return
        spec = self.manifest["tasks"][str(self.config.seeds[0])]
        if not (self.manifest.get("calibration") or {}).get("peak_gflops"):
            self.listener.note(
                f"calibrating the roofline: {self.config.dtype} GEMM throughput at these sizes"
            )
            argv = ["--input-size", str(spec["input_size"]), *sizes, "--dtype", self.config.dtype]
            argv += ["--min-seconds", str(CALIBRATION_SECONDS)]
            parts = [
                self._measure("harness.measure.roofline", [*argv, "--backends", backend])
                for backend in roofline.BACKENDS
            ]
            failed = [p for p in parts if "error" in p]
            self.manifest["calibration"] = failed[0] if failed else roofline.combine(parts)
        if not (self.manifest.get("overhead") or {}).get("ratio_median"):
            self.listener.note(f"measuring the harness' overhead on {variants.REFERENCE}")
            # on digits whatever the suite's data: the shortest epochs, where the harness'
            # per-epoch work weighs most, and seconds instead of minutes on 60,000 images
            argv = ["--variant", variants.REFERENCE, "--dataset", "digits", *sizes]
            argv += ["--rounds", str(OVERHEAD_ROUNDS), "--epochs", "6"]
            result = self._measure("harness.run.overhead", argv)
            self.manifest["overhead"] = overhead = result.get(variants.REFERENCE, result)
            if overhead.get("ratio_median"):
                q = overhead["ratio_spread"]
                self.listener.note(
                    f"harness/bare throughput of {variants.REFERENCE}: "
                    f"{overhead['ratio_median']:.3f} (IQR {q['q1']:.3f}-{q['q3']:.3f})"
                )

    def _overhead_by_variant(self, sizes: list[str]) -> None:
        """--overhead all: every single-process variant's harness/bare ratio on the suite's
        own data and sizes, each in a process of its own, one after another."""
        done = self.manifest.setdefault("overhead_by_variant", {})
        data = ["--dataset", self.config.dataset]
        data += ["--data-dir", self.config.data_dir] if self.config.data_dir else []
        for name in self.config.variants:
            path = self.config.path_of(name)
            if (done.get(name) or {}).get("ratio_median") or cluster.layout(path) != "single":
                continue
            self.listener.note(f"measuring the harness' overhead on {name}")
            argv = ["--variant", name if name in variants.REGISTRY else path, *data, *sizes]
            argv += ["--rounds", str(OVERHEAD_ROUNDS_EACH), "--epochs", "3"]
            result = self._measure("harness.run.overhead", argv)
            done[name] = next(iter(result.values())) if "error" not in result else result
            if done[name].get("ratio_median"):
                self.listener.note(f"harness/bare of {name}: {done[name]['ratio_median']:.3f}")

    def _measure(self, module: str, argv: list[str]) -> dict[str, Any]:
        """`python -m module argv` (warm if possible), its JSON output or {"error": why}."""
        try:
            with self._activity(module):
                code, stdout = self.launcher.run_module(module, argv, timeout=300)
            if code == 0:
                return json.loads(stdout)
            error = f"{module} exited with status {code}"
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            error = f"{module}: {type(exc).__name__}: {exc}"
        self.listener.note(f"measurement failed: {error}")
        return {"error": error}

    def summary(self) -> pd.DataFrame:
        """One row per run, from the records and the step and epoch rows."""
        calibration = self.manifest.get("calibration") or {}
        reference = {
            r.seed: self._losses(r.key)
            for r in self.records
            if r.variant == variants.REFERENCE and r.status == "ok"
        }
        curves = {seed: self._curve((variants.REFERENCE, seed)) for seed in reference}
        n = len(self.dataset.x_train)
        rows = []
        for r in self.records:
            source = self.sources.get(r.variant)
            row: dict[str, Any] = {
                "variant": r.variant,
                "seed": r.seed,
                "status": r.status,
                "error": r.error,
                "api_level": r.api_level or (source.api_level if source else None),
                "device": r.device,
                "first_step_seconds": r.first_step_seconds,
                "peak_rss_mb": r.peak_rss_mb,
                "params": r.params,
                "loc": source.loc if source else None,
                "source_sha256": source.sha256 if source else None,
                "level": r.level,
                "rung": r.rung,
                "contended": self.config.jobs > 1,
                "attempts": r.attempts,
            }
            epochs = self.epochs.get(r.key, [])
            if r.status == "ok" and epochs:
                acc = [e["test_accuracy"] for e in epochs]
                sec = [e["seconds"] for e in epochs]
                to_target = scores.time_to_target(acc, sec, self.config.target_accuracy)
                row.update(
                    test_accuracy=acc[-1],
                    test_loss=epochs[-1]["test_loss"],
                    samples_per_second=scores.steady_throughput(n, sec),
                    epochs_to_target=to_target[0],
                    seconds_to_target=to_target[1],
                )
                foreign = [e.get("foreign_cpu_seconds") for e in epochs]
                load = noise.assess(
                    [None if pd.isna(f) else f for f in scores.steady(foreign)],
                    scores.steady(sec),
                    threshold=self.config.noisy_threshold,
                )
                if load is not None:
                    row.update(
                        foreign_cpu=load.cores, foreign_cpu_se=load.standard_error, noisy=load.noisy
                    )
            if self.config.parity and r.seed in reference and r.status == "ok":
                losses, tol = self._losses(r.key), self.config.parity_tolerance
                gap = scores.max_abs_diff(losses, reference[r.seed])
                if gap is not None:
                    band_gap = scores.seed_band_gap(
                        self._curve(r.key), curves[r.seed], list(curves.values())
                    )
                    row.update(
                        parity_max_abs_diff=gap,
                        parity_pass=gap < tol,
                        parity_steps_within=scores.steps_within(losses, reference[r.seed], tol),
                        seed_band_gap=band_gap,
                        # exact, or no further from the reference than another seed would be
                        learning_pass=gap < tol or (band_gap is not None and band_gap <= 1.0),
                    )
            measured = (self.manifest.get("overhead_by_variant") or {}).get(r.variant) or {}
            row["harness_overhead"] = measured.get("ratio_median")
            row["flops_per_sample"] = fps = roofline.flops_per_sample(self.spec)
            peak, sps = calibration.get("peak_gflops"), row.get("samples_per_second")
            if peak and sps:
                row["roofline_fraction"] = roofline.roofline_fraction(sps, fps, peak)
            rows.append(row)
        return pd.DataFrame(rows).reindex(columns=storage.SUMMARY_COLUMNS)

    def _curve(self, key: tuple[str, int]) -> np.ndarray:
        """Training loss per epoch (the batch-size weighted mean of its steps)."""
        return np.array([e["train_loss"] for e in self.epochs.get(key, [])], dtype=np.float64)

    def _losses(self, key: tuple[str, int]) -> np.ndarray:
        return np.array([s["loss"] for s in self.steps.get(key, [])], dtype=np.float64)

    def save(self) -> None:
        self.manifest["runs"] = [asdict(r) for r in self.records]
        windows = [
            (e["window_start"], e["window_end"])
            for r in self.records
            for e in self.epochs.get(r.key, [])
            if e.get("window_start") is not None
        ]
        activities = self.manifest.get("timeline", [])
        self.manifest["isolation"] = {
            "timed_windows": len(windows),
            "overlaps": timeline.overlaps(windows, activities),
        }
        summary = self.summary()

        def frame(store: dict[tuple[str, int], list[dict[str, Any]]], cols: list[str]) -> Any:
            # only finished runs: rows of a run still going would look like a short result
            rows = [
                row for r in self.records if r.status != "pending" for row in store.get(r.key, [])
            ]
            return pd.DataFrame(rows, columns=cols) if rows else storage.empty_frame(cols)

        steps = frame(self.steps, storage.STEPS_COLUMNS)
        epochs = frame(self.epochs, storage.EPOCHS_COLUMNS)
        if self.config.mode == "as-written":  # its statistics, which the report reads
            self.manifest["learning"] = learning.learning(
                summary, epochs, steps, self.config.ablate
            )
        storage.save_results(
            storage.Results(
                path=self.config.out,
                manifest=self.manifest,
                steps=steps,
                epochs=epochs,
                summary=summary,
            )
        )

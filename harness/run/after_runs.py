"""What a suite measures of the machine and of the harness itself, after its runs so that it
disturbs none of them, each in a process of its own: the roofline at the task's sizes (GEMM
throughput and memory bandwidth, harness/measure/calibrate.py), the harness' overhead
(harness/run/overhead.py) and, asked for with --anatomy, each variant's step part by part
(harness/run/anatomy.py). Each is an activity on the manifest's timeline, which the isolation
check holds against the timed windows. A failure leaves only its columns empty."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

import variants
from harness.measure import calibrate
from harness.results import storage
from harness.run import cluster
from harness.run.anatomy import rows as anatomy_rows
from harness.run.config import RunConfig
from harness.run.launch import Launcher
from variants.base import optimizer_to_dict

# Timed seconds per backend of the once-per-suite GEMM calibration: medians of 10 samples of
# 0.1 s were within a few per cent of 2 s runs on this task's sizes.
CALIBRATION_SECONDS = 1.0
OVERHEAD_ROUNDS = 9  # ABBA pairs of the reference: a couple of seconds on digits
OVERHEAD_ROUNDS_EACH = 3  # ABBA pairs per variant with --overhead all, on the suite's data


@contextlib.contextmanager
def activity(manifest: dict[str, Any], name: str) -> Iterator[None]:
    """Harness work outside any run, on the timeline the isolation check reads."""
    start = time.perf_counter()  # CLOCK_MONOTONIC, the clock of the workers' windows
    try:
        yield
    finally:
        manifest.setdefault("timeline", []).append(
            {"activity": name, "start": start, "end": time.perf_counter()}
        )


class AfterRuns:
    """The once-per-suite measurements, written into `manifest` (a resumed suite keeps those it
    has: each is measured only while missing)."""

    def __init__(
        self,
        config: RunConfig,
        manifest: dict[str, Any],
        launcher: Launcher,
        note: Callable[[str], None],
    ) -> None:
        self.config = config
        self.manifest = manifest
        self.launcher = launcher
        self.note = note  # the listener's: one line for the user

    def measure(self) -> None:
        """Measurements of the machine and of the harness, once per suite and after every run so
        that they disturb none; a failure only leaves their columns empty.

        calibration: the roofline at the task's layer sizes (harness/measure/calibrate.py): GEMM
        throughput, memory bandwidth and the step's byte model for the suite's optimizer.
        overhead: the reference's throughput through the worker against its bare loop
        (harness/run/overhead.py); 1.0 means the harness costs nothing measurable.
        overhead_by_variant: the same for every variant (--overhead all, asked for explicitly:
        measured even with --no-calibrate).
        """
        sizes = ["--hidden", ",".join(map(str, self.config.hidden))]
        sizes += ["--batch-size", str(self.config.batch_size)]
        if self.config.overhead == "all":
            self._overhead_by_variant(sizes)
        if self.config.anatomy:
            self._anatomy(sizes)
        if not self.config.calibrate:
            return
        spec = self.manifest["tasks"][str(self.config.seeds[0])]
        if not (self.manifest.get("calibration") or {}).get("peak_gflops"):
            self.note(
                f"calibrating the roofline: {self.config.dtype} GEMM throughput at these sizes "
                "and memory bandwidth"
            )
            argv = ["--input-size", str(spec["input_size"]), *sizes, "--dtype", self.config.dtype]
            argv += ["--optimizer", optimizer_to_dict(self.config.optimizer)["kind"]]
            # the step's byte model is the task's (its GEMMs are timed as the MLP chain of the
            # same widths: a throughput of the machine at these sizes)
            argv += [
                "--task",
                self.config.task,
                "--spec-options",
                json.dumps(self.config.spec_options),
            ]
            argv += ["--min-seconds", str(CALIBRATION_SECONDS)]
            parts = [
                self._run_module("harness.measure.calibrate", [*argv, "--backends", backend])
                for backend in calibrate.BACKENDS
            ]
            failed = [p for p in parts if "error" in p]
            self.manifest["calibration"] = failed[0] if failed else calibrate.combine(parts)
        if not (self.manifest.get("overhead") or {}).get("ratio_median"):
            self.note(f"measuring the harness' overhead on {variants.REFERENCE}")
            # on digits whatever the suite's data: the shortest epochs, where the harness'
            # per-epoch work weighs most, and seconds instead of minutes on 60,000 images
            argv = ["--variant", variants.REFERENCE, "--dataset", "digits", *sizes]
            argv += ["--rounds", str(OVERHEAD_ROUNDS), "--epochs", "6", *self._placement()]
            result = self._run_module("harness.run.overhead", argv)
            self.manifest["overhead"] = overhead = result.get(variants.REFERENCE, result)
            if overhead.get("ratio_median"):
                q = overhead["ratio_spread"]
                self.note(
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
            self.note(f"measuring the harness' overhead on {name}")
            argv = ["--variant", name if name in self.config.registry else path, *data, *sizes]
            argv += ["--task", self.config.task]
            argv += ["--rounds", str(OVERHEAD_ROUNDS_EACH), "--epochs", "3", *self._placement()]
            result = self._run_module("harness.run.overhead", argv)
            done[name] = next(iter(result.values())) if "error" not in result else result
            if done[name].get("ratio_median"):
                self.note(f"harness/bare of {name}: {done[name]['ratio_median']:.3f}")

    def _placement(self) -> list[str]:
        """The suite's thread placement, for the overhead's two sides: the harness measured as
        the suite's runs were."""
        return ["--thread-affinity", self.config.thread_affinity]

    def _anatomy(self, sizes: list[str]) -> None:
        """--anatomy: every single-process variant's steady step, part by part, at the suite's
        batch size and on its data, each in a process of its own under the framework's
        profiler, into anatomy.csv (a resumed suite keeps the variants it has)."""
        done = storage.read_anatomy(self.config.out)
        have = set(done["variant"]) if not done.empty else set()
        data = ["--dataset", self.config.dataset, "--dtype", self.config.dtype]
        data += ["--data-dir", self.config.data_dir] if self.config.data_dir else []
        data += ["--optimizer", json.dumps(optimizer_to_dict(self.config.optimizer))]
        data += ["--seed", str(self.config.seeds[0]), "--steps", "0"]  # a whole steady epoch
        frames = [done] if have else []
        for name in self.config.variants:
            path = self.config.path_of(name)
            if name in have or cluster.layout(path) != "single":
                continue
            self.note(f"breaking down the step of {name} under the profiler")
            argv = ["--variant", name if name in self.config.registry else path, *sizes, *data]
            argv += [
                "--task",
                self.config.task,
                "--spec-options",
                json.dumps(self.config.spec_options),
            ]
            # a warm-up epoch, one timed unprofiled and one profiled: each as slow as a run's
            # epochs can be
            result = self._run_module("harness.run.anatomy", argv, 3 * self.config.timeout + 60)
            if "error" in result:
                continue
            frames.append(pd.DataFrame(anatomy_rows(result)))
            storage.write_anatomy(self.config.out, pd.concat(frames, ignore_index=True))

    def _run_module(self, module: str, argv: list[str], timeout: float = 300) -> dict[str, Any]:
        """`python -m module argv` (warm if possible), its JSON output or {"error": why}."""
        try:
            with activity(self.manifest, module):
                code, stdout = self.launcher.run_module(module, argv, timeout=timeout)
            if code == 0:
                return json.loads(stdout)
            error = f"{module} exited with status {code}"
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            error = f"{module}: {type(exc).__name__}: {exc}"
        self.note(f"measurement failed: {error}")
        return {"error": error}

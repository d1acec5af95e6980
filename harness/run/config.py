"""What `mlpbench run` was asked to do, validated, and what a `--resume` may change of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import variants
from harness.measure import cores, noise
from harness.results import scores
from harness.task import spec_options
from variants.base import SPECS, Optimizer, optimizer_to_dict

# controlled: the harness hands every variant the same weights, batch order and optimizer
# constants; as-written: each level does those its own way (variants/base.py AsWritten).
MODES = ("controlled", "as-written")
# What `--ablate` hands back to the harness in an as-written run, one at a time.
ABLATIONS = ("initializer", "batch_order", "optimizer", "dtype")
# Settings that may change between a suite and its `--resume` without changing any result.
# (parity_tolerance follows the dtype, which must not change; the current one judges them all;
# aa_groups follows the variants, which must not change either, and is absent in older suites)
RESUMABLE_CHANGES = (
    "timeout", "jobs", "calibrate", "retry_noisy", "parity_tolerance", "overhead", "aa_groups",
    "parity_prefix_steps",
    "anatomy",
)  # fmt: skip


class SuiteError(Exception):
    """A suite that cannot start as asked (bad input found while planning): exit status 2."""


@dataclass(frozen=True)
class RunConfig:
    """Everything `mlpbench run` was asked to do, validated."""

    variants: tuple[str, ...]  # names as results show them: registry name or module:Class
    variant_paths: tuple[tuple[str, str], ...]  # (name, "module:Class") for each variant
    dataset: str
    data_dir: str | None
    epochs: int
    batch_size: int
    optimizer: Optimizer
    hidden: tuple[int, ...]
    seeds: tuple[int, ...]
    device: str
    parity: bool
    target_accuracy: float
    timeout: float
    jobs: int
    calibrate: bool
    out: Path
    cold_start: bool = False
    resume: bool = False
    force: bool = False
    argv: tuple[str, ...] = ()
    workers: int = 1  # replicas of each distributed variant (harness/run/cluster.py)
    retry_noisy: int = 0  # times a run flagged noisy is measured again
    noisy_threshold: float = noise.NOISY_CORES  # foreign CPU, in cores, that makes a run noisy
    # cores a window left idle that its variant used elsewhere, that make it underused
    underused_threshold: float = cores.UNDERUSED_CORES
    # the band a slowed window is slower than its variant's median by (relative); its CPU time
    # per sample is dearer by at least half of it
    slowed_threshold: float = cores.SLOWED_FRACTION
    overhead: str = "reference"  # whose harness/bare ratio is measured: "reference" or "all"
    anatomy: bool = False  # break each single-process variant's step down after the runs
    dtype: str = "float32"  # of the data, the weights and the training (variants/base.py DTYPES)
    mode: str = "controlled"  # or "as-written": each level its own way (MODES)
    ablate: str | None = None  # as-written: what is handed back to the harness (ABLATIONS)
    # add processes (new seeds) to a variant until its speed's interval is within +-precision
    # (stats.relative_half_width), or `budget` seconds of the suite have passed
    precision: float | None = None
    budget: float | None = None
    # where the worker's threads run (harness/run/affinity.py): "round-robin" or "none"
    thread_affinity: str = "round-robin"
    task: str = "mlp"  # the model family (variants.TASKS, variants.base SPECS)
    task_options: tuple[tuple[str, Any], ...] = ()  # what the family adds (wide-deep: loss_weights)

    @property
    def registry(self) -> dict[str, str]:
        """The task's variants by name."""
        return variants.registry(self.task)

    @property
    def spec_options(self) -> dict[str, Any]:
        """The task's spec options as its manifest stores them: every field the model family
        adds to the MLP's, defaults included (a report reads them from here)."""
        if self.task == "mlp":
            return {}
        # the options' values, defaults filled in, do not depend on the data's sizes
        spec = SPECS[self.task](1, self.hidden, **dict(self.task_options))
        options = spec_options(spec)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}

    @property
    def parity_tolerance(self) -> float:
        return scores.parity_tolerance(self.dtype)

    def path_of(self, variant: str) -> str:
        return dict(self.variant_paths)[variant]

    @property
    def aa_groups(self) -> list[list[str]]:
        """The groups of variants known to compute the same thing (variants.IDENTICAL) that
        this suite runs in full: their differences are its A/A control."""
        chosen = set(self.variants)
        return [list(g) for g in variants.IDENTICAL[self.task] if chosen.issuperset(g)]

    def to_manifest(self) -> dict[str, Any]:
        return {
            "variants": list(self.variants),
            "variant_paths": dict(self.variant_paths),
            "dataset": self.dataset,
            "data_dir": self.data_dir,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": optimizer_to_dict(self.optimizer),
            "hidden": list(self.hidden),
            "seeds": list(self.seeds),
            "device": self.device,
            "parity": self.parity,
            "reference": variants.REFERENCE if self.parity else None,
            "target_accuracy": self.target_accuracy,
            "timeout": self.timeout,
            "jobs": self.jobs,
            "calibrate": self.calibrate,
            "start": "cold" if self.cold_start else "warm",
            "retry_noisy": self.retry_noisy,
            "noisy_threshold": self.noisy_threshold,
            "underused_threshold": self.underused_threshold,
            "slowed_threshold": self.slowed_threshold,
            # only when asked for, so that suites from before the option still resume
            **({"workers": self.workers} if self.workers > 1 else {}),
            **({"overhead": self.overhead} if self.overhead != "reference" else {}),
            **({"anatomy": True} if self.anatomy else {}),
            **({"dtype": self.dtype} if self.dtype != "float32" else {}),
            **({"mode": self.mode} if self.mode != "controlled" else {}),
            **({"ablate": self.ablate} if self.ablate else {}),
            **({"precision": self.precision, "budget": self.budget} if self.precision else {}),
            # where the workers' threads ran: it changes every speed figure (absent: the kernel's
            # placement, in folders from before it was set)
            "thread_affinity": self.thread_affinity,
            # the model family and what it adds to the MLP's spec (the mlp's absent, as before)
            **(
                {
                    "task": self.task,
                    "spec_options": self.spec_options,
                    # outputs with losses of their own: steps.csv has a column for each
                    "outputs": list(SPECS[self.task].outputs),
                }
                if self.task != "mlp"
                else {}
            ),
            # what parity_pass was judged by: reports read it from here
            "parity_tolerance": self.parity_tolerance,
            # the steps a run must match before its parting counts as late (scores.py)
            "parity_prefix_steps": scores.PARITY_PREFIX_STEPS,
            # the epochs speed is not judged on (tracing, compilation): reports read it here
            "warmup_epochs": scores.WARMUP_EPOCHS,
            # which variants are the same computation is a fact of the suite, not of today's
            # code: reports measure the suite's speed resolution from these groups
            "aa_groups": self.aa_groups,
        }


def check_resumable(config: RunConfig, manifest: dict[str, Any]) -> None:
    """A resumed suite must be the same experiment, or its runs would not be comparable."""
    old, new = manifest.get("config", {}), config.to_manifest()
    # the defaults are not stored
    stored_when_not = {
        "workers": 1, "dtype": "float32", "mode": "controlled", "ablate": None, "task": "mlp",
        "thread_affinity": "none",
        "warmup_epochs": scores.WARMUP_EPOCHS, "underused_threshold": cores.UNDERUSED_CORES,
        "slowed_threshold": cores.SLOWED_FRACTION,
    }  # fmt: skip
    old, new = {**stored_when_not, **old}, {**stored_when_not, **new}
    changed = [k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k]]
    if changed:
        k = changed[0]
        raise SuiteError(
            f"--resume: {config.out} was run with {k}={old.get(k)!r}, not {new[k]!r}; "
            "use the same settings, or --force to start over"
        )

"""What the manifest says about one (variant, seed) run, and who hears of its progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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
    # what a Keras variant's model compiled, as Keras resolved it; None for other variants
    jit_compile: bool | None = None
    steps_per_execution: int | None = None
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

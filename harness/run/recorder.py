"""A suite's results while it runs: the run records, their step and epoch rows as the
workers report them, the manifest; scored (harness/results/scores.py) and written
(harness/results/storage.py) after every run, so a killed suite keeps what finished."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from harness.measure import environment, timeline
from harness.results import scores, storage
from harness.run.config import RunConfig
from harness.run.record import Listener, RunRecord


class Recorder:
    def __init__(
        self,
        config: RunConfig,
        records: list[RunRecord],
        sources: dict[str, dict[str, Any] | None],
        listener: Listener,
    ) -> None:
        self.config = config
        self.records = records
        self.sources = sources  # what summary.csv shows of each variant's source
        self.listener = listener
        self.steps: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.epochs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.manifest: dict[str, Any] = {}

    def start(self, record: RunRecord) -> None:
        """A run (again) from its beginning: no rows yet."""
        self.steps[record.key], self.epochs[record.key] = [], []

    def noisy_keys(self) -> set[tuple[str, int]]:
        summary = self.summary()
        noisy = summary[summary["noisy"].eq(True) & summary["status"].eq("ok")]
        return {(v, int(s)) for v, s in zip(noisy["variant"], noisy["seed"], strict=True)}

    def reset(self, record: RunRecord) -> None:
        """An interrupted run is not a result: back to pending, its partial rows dropped."""
        fresh = RunRecord(record.variant, record.seed)
        for k, v in asdict(fresh).items():
            setattr(record, k, v)
        self.steps.pop(record.key, None)
        self.epochs.pop(record.key, None)

    def on_event(self, record: RunRecord, event: dict[str, Any]) -> dict[str, Any] | None:
        """Take one event of `record`'s worker; returns it if it ends the run."""
        kind = event.get("event")
        if kind == "start":
            record.api_level = event.get("api_level")
            record.level, record.rung = event.get("level"), event.get("rung")
            record.device = event.get("device")
            record.params = event.get("params")
            record.jit_compile = event.get("jit_compile")
            record.steps_per_execution = event.get("steps_per_execution")
            record.import_seconds = event.get("import_seconds")
            record.build_seconds = event.get("build_seconds")
        elif kind == "epoch":
            self._add_epoch(record, event)
        elif kind in ("done", "diverged", "error", "inexpressible"):
            record.peak_rss_mb = event.get("peak_rss_mb")
            if event.get("tensorflow"):
                environment.merge_runtime(self.manifest["environment"], event["tensorflow"])
            return event
        return None

    def _add_epoch(self, record: RunRecord, event: dict[str, Any]) -> None:
        epoch, losses = int(event["epoch"]), event["losses"]
        outputs = event.get("output_losses") or {}  # a task with several outputs: each one's
        steps = self.steps[record.key]
        first = len(steps) + 1
        steps += [
            {"variant": record.variant, "seed": record.seed, "epoch": epoch, "step": first + i,
             "loss": loss, **{f"{o}_loss": values[i] for o, values in outputs.items()}}
            for i, loss in enumerate(losses)
        ]  # fmt: skip
        if "first_step_seconds" in event:
            record.first_step_seconds = event["first_step_seconds"]
        if "test_accuracy" not in event:
            return  # a diverged epoch: its steps are kept, it has no evaluation
        n = self.manifest["tasks"][str(record.seed)]["n_train"]
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
                "own_cpu_seconds": event.get("own_cpu_seconds"),
                "idle_cpu_seconds": event.get("idle_cpu_seconds"),
                "window_start": (event.get("window") or [None, None])[0],
                "window_end": (event.get("window") or [None, None])[1],
            }
        )
        self.listener.epoch_finished(record, epoch, event["train_loss"], event["test_accuracy"])

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The step and epoch rows of finished runs, as results store them (the rows of a run
        still going would look like a short result)."""

        def frame(store: dict[tuple[str, int], list[dict[str, Any]]], cols: list[str]) -> Any:
            rows = [
                row for r in self.records if r.status != "pending" for row in store.get(r.key, [])
            ]
            return pd.DataFrame(rows, columns=cols) if rows else storage.empty_frame(cols)

        steps_columns = storage.STEPS_COLUMNS + storage.output_loss_columns(self.manifest)
        return frame(self.steps, steps_columns), frame(self.epochs, storage.EPOCHS_COLUMNS)

    def summary(self) -> pd.DataFrame:
        """One row per run (harness/results/scores.py)."""
        steps, epochs = self.frames()
        runs = [asdict(r) for r in self.records]
        return scores.summarize(self.manifest, runs, steps, epochs, self.sources)

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
        steps, epochs = self.frames()
        summary = scores.summarize(
            self.manifest, self.manifest["runs"], steps, epochs, self.sources
        )
        if self.config.mode == "as-written":  # its statistics, which the report reads
            from harness.measure import learning  # scipy: a second to import, as-written only

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

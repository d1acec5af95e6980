"""Where a suite's TensorFlow runs: the one place that decides a device.

`cpu` hides every GPU from the worker processes (CUDA_VISIBLE_DEVICES=-1), so TensorFlow runs
on the CPU whatever the machine holds; `gpu` leaves the environment as the user set it, and is
refused before a suite starts unless a TensorFlow started in a worker's environment sees a GPU.
The runner itself never imports TensorFlow: `gpus` asks one in a throwaway process. Inside each
worker, harness/run/worker.py (`_device_scope`) places the variant on the device with that
process' own TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

DEVICES = ("cpu", "gpu")


class DeviceError(Exception):
    """The device asked for cannot be used here."""


def worker_env(device: str, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a worker process (and of the warm server workers fork from) that
    runs on `device`: `base`, with this folder on PYTHONPATH (the worker imports user classes
    the way `python -m` here would) and, for cpu, every GPU hidden from TensorFlow."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    env = python_env(base)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"  # TensorFlow then sees no GPU at all
    return env


# The folder that holds the suite's own packages (harness, variants).
SUITE_ROOT = str(Path(__file__).resolve().parents[2])


def python_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` for a Python process that imports a user's classes from this folder: on its
    path after the suite's own packages, so that a folder holding its own `harness` or
    `variants` never stands in for them (and `python -m` does not put it first:
    PYTHONSAFEPATH)."""
    env = dict(base)
    parts = (SUITE_ROOT, os.getcwd(), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in parts if p))
    env["PYTHONSAFEPATH"] = "1"
    return env


def gpus(base: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs TensorFlow sees in a worker's environment for `gpu` (`base`: os.environ),
    asked in a throwaway process. Raises DeviceError if TensorFlow cannot start there."""
    env = worker_env("gpu", os.environ if base is None else base)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    probe = [sys.executable, "-m", "harness.measure.environment"]  # prints one JSON line
    proc = subprocess.run(probe, capture_output=True, text=True, env=env)
    runtime = None
    for line in proc.stdout.splitlines():
        try:
            runtime = json.loads(line)
        except ValueError:
            continue
    if proc.returncode != 0 or not isinstance(runtime, dict):
        raise DeviceError("--device gpu: cannot start TensorFlow to look for a GPU")
    return list(runtime.get("gpus") or [])


def check(device: str, base: Mapping[str, str] | None = None) -> None:
    """Refuse a device the workers could not run on; raises DeviceError saying why."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "gpu" and not gpus(base):
        raise DeviceError("--device gpu: TensorFlow sees no GPU on this machine; use --device cpu")

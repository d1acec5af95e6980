"""The machine fingerprint recorded once per suite.

The runner collects what it can without importing TensorFlow (versions from package metadata,
CPU, threads, git); what only a running TensorFlow knows (build flags, GPUs, thread pools) is
collected by `tensorflow_runtime()` inside a worker that imports TensorFlow anyway, so the
fingerprint costs no extra TensorFlow start-up. `python -m harness.measure.environment` prints the
latter as JSON; the runner uses it to check `--device gpu` before a suite starts.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Environment variables that change how many threads the libraries use, or how TF computes.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
TF_VARS = ("TF_ENABLE_ONEDNN_OPTS", "TF_XLA_FLAGS", "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def fingerprint(argv: list[str]) -> dict[str, Any]:
    """Everything about this machine and checkout that can change a measurement."""
    root = Path(__file__).resolve().parents[2]
    status = _git(root, "status", "--porcelain")
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(affinity) if affinity is not None else None,
        "hostname": socket.gethostname(),
        "git_commit": _git(root, "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "command": shlex.join(argv),
        "threads": {"env": {v: os.environ.get(v) for v in THREAD_VARS}},
        "tf_env": {v: os.environ.get(v) for v in TF_VARS},
        # filled from the first worker that runs TensorFlow; stay null in a NumPy-only suite
        "tf_build": None,
        "gpus": None,
        "xla": None,
    }


def tensorflow_runtime() -> dict[str, Any]:
    """What the TensorFlow of this process says about itself. Imports TensorFlow."""
    import tensorflow as tf

    try:  # private, but the only way to ask whether oneDNN kernels are compiled in
        from tensorflow.python.util import _pywrap_util_port

        onednn_built = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        onednn_built = None
    build = {k: v for k, v in tf.sysconfig.get_build_info().items()}
    build["onednn_built"] = onednn_built
    # unset means on for x86 Linux builds since TF 2.9
    build["onednn_opts"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (on)")
    return {
        "tensorflow": tf.__version__,
        "tf_build": build,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "xla": {
            "auto_jit": tf.config.optimizer.get_jit() or None,
            "TF_XLA_FLAGS": os.environ.get("TF_XLA_FLAGS"),
        },
        "threads": {
            # 0 means "let TensorFlow choose" (one per core)
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }


def merge_runtime(environment: dict[str, Any], runtime: dict[str, Any]) -> None:
    """Complete a runner fingerprint with a worker's TensorFlow runtime facts (once)."""
    if environment.get("tf_build") is not None:
        return
    environment["tf_build"] = runtime["tf_build"]
    environment["gpus"] = runtime["gpus"]
    environment["xla"] = runtime["xla"]
    environment["threads"]["tensorflow"] = runtime["threads"]


if __name__ == "__main__":
    json.dump(tensorflow_runtime(), sys.stdout)
    print()

"""`run` and `sweep` input, checked: the parsed options become a validated RunConfig with its
dataset and variant sources, and the output folder and memory are checked, before any work.

Every check raises UsageError (harness/cli/errors.py): one line, exit status 2. User classes
and --mode as-written are checked by importing them in a throwaway process, so that the runner
never imports TensorFlow; the device is checked by harness/run/device.py.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import variants
from harness import datasets
from harness.cli.errors import PROG, UsageError
from harness.cli.options import DEFAULT_HIDDEN, DEFAULT_TARGET, DEFAULTS, int_list
from harness.measure import loc
from harness.results import storage
from harness.run import device
from variants.base import OPTIMIZERS

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from harness.run.config import RunConfig


def select_variants(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(name, module:Class) in the order asked; the parity reference first when needed."""
    chosen: list[tuple[str, str]] = []
    task = getattr(args, "task", "mlp")
    registry = variants.registry(task)
    spec = args.variants if args.variants is not None else ("" if args.variant else "default")
    names = {"all": list(registry), "default": list(variants.DEFAULT[task])}.get(
        spec.strip(), spec.split(",")
    )
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name not in registry:
            elsewhere = [t for t, r in variants.TASKS.items() if name in r]
            hint = f" (a variant of --task {elsewhere[0]})" if elsewhere else ""
            raise UsageError(
                f"unknown variant {name!r} for --task {task}{hint}: use one of "
                f"{', '.join(registry)}, all or default"
            )
        chosen.append((name, registry[name]))
    for path in args.variant:
        module, _, cls = path.partition(":")
        if not module or not cls:
            raise UsageError(f"--variant {path!r}: expected package.module:Class")
        chosen.append((path, path))
    if not chosen:
        raise UsageError(
            f"--variants {spec!r} selects no variant: name some (see `{PROG} list`) or all, "
            "or give --variant MODULE:CLASS"
        )
    unique = list(dict.fromkeys(chosen))  # a variant named twice runs once
    if args.parity and variants.REFERENCE not in dict(unique):
        unique.insert(0, (variants.REFERENCE, registry[variants.REFERENCE]))
    return unique


def check_output(
    out: Path,
    resume: bool,
    force: bool,
    read: Callable[[Path], object] = storage.read_manifest,
) -> None:
    """The --out folder can be written as asked; `read` checks that a folder to resume is of
    the right kind (a results folder, or for `sweep` a sweep folder)."""
    if resume and force:
        raise UsageError("--resume and --force contradict each other: pick one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file")
    here = Path.cwd().resolve()
    if force and out.is_dir() and (out.resolve() == here or out.resolve() in here.parents):
        raise UsageError(
            f"--out {out} --force would delete the folder you are in; run from another folder"
        )
    if out.is_dir():
        try:
            storage.check_not_busy(out)
        except storage.ResultsError as exc:
            raise UsageError(str(exc)) from None
    contents = out.is_dir() and any(p.name != storage.LOCK for p in out.iterdir())
    if contents and not (resume or force):
        raise UsageError(f"{out} already exists: --resume to continue it, --force to overwrite it")
    if resume and contents:
        try:
            read(out)
        except storage.ResultsError as exc:
            raise UsageError(f"--resume: {exc}") from None


class _CheckEnded(Exception):
    """The throwaway check process ended before answering; the message says how."""


# The import check starts a fresh interpreter that may import TensorFlow and Keras (5-10 s on two
# busy cores), which a run's warm-started worker does not pay within its --timeout: the check gets
# at least this long, so that a short --timeout bounds the runs and not the frameworks' import.
CHECK_MIN_SECONDS = 30.0


def _check(paths: list[str], timeout: float) -> list[dict[str, Any]]:
    """Import the classes at `paths` in a throwaway process, run from here in the environment
    a worker gets (so that a user's class imports the same way, and never in place of the
    suite's own modules); one result per path (harness/run/worker.py `check`). Raises
    _CheckEnded if it ends, or runs past `timeout` seconds (CHECK_MIN_SECONDS at least),
    before answering for each."""
    timeout = max(timeout, CHECK_MIN_SECONDS)
    env = device.python_env(dict(os.environ))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # its own session: a timeout ends whatever a hanging import started, too
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.run.worker", "--check", *paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise _CheckEnded(
            f"importing it took longer than {timeout:g} s and was stopped (the check allows "
            f"--timeout, at least {CHECK_MIN_SECONDS:g} s); a module must not wait or block "
            "when imported"
        ) from None
    parsed = []
    for line in stdout.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    if len(parsed) < len(paths) or proc.returncode not in (0, 2):
        raise _CheckEnded(_how_it_ended(proc.returncode, stderr))
    return parsed


def _how_it_ended(code: int, stderr: str) -> str:
    """Why the check process ended without answering, in words: a module that exits or is
    interrupted when imported leaves only its exit status, and maybe a last line."""
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    if code < 0:
        how = f"was killed by {signal.Signals(-code).name}"
    elif code == 0:
        how = "exited with status 0 before answering (os._exit or sys.exit when imported?)"
    else:
        how = f"exited with status {code}" + ("" if last else " (sys.exit when imported?)")
    return f"importing it {how}" + (f": {last}" if last else "")


def check_user_variants(paths: list[str], timeout: float) -> dict[str, Path]:
    """Import user classes in a throwaway process (they may import TensorFlow, which the
    runner must not) and check the protocol; returns each one's source file."""
    if not paths:
        return {}
    try:
        results = _check(paths, timeout)
    except _CheckEnded as exc:
        raise UsageError(f"--variant {', '.join(paths)}: {exc}") from None
    files = {}
    for r in results:
        if not r.get("ok"):
            raise UsageError(f"--variant {r['path']}: {r['error']}")
        files[r["path"]] = Path(r["file"]) if r.get("file") else None
    return files


def check_as_written(config: RunConfig, named: set[str]) -> RunConfig:
    """--mode as-written runs only variants whose build takes `as_written` (variants/base.py),
    found by importing them in a throwaway process. Those `named` on the command line must;
    those of `all` that cannot are left out with a note."""
    paths = [path for _, path in config.variant_paths]
    try:
        results = _check(paths, config.timeout)
    except _CheckEnded as exc:
        raise UsageError(f"--mode as-written: checking {', '.join(paths)}: {exc}") from None
    if not all(r.get("ok") for r in results):
        bad = next(r for r in results if not r.get("ok"))
        raise UsageError(f"--mode as-written: {bad['path']}: {bad['error']}")
    able = {r["path"] for r in results if r.get("as_written")}
    unable = [name for name, path in config.variant_paths if path not in able]
    if refused := [name for name in unable if name in named]:
        raise UsageError(
            f"{', '.join(refused)} cannot run in --mode as-written (build takes no "
            "as_written); leave them out"
        )
    kept = tuple((name, path) for name, path in config.variant_paths if path in able)
    if not kept:
        raise UsageError("no selected variant can run in --mode as-written")
    if unable:
        print(
            f"{PROG}: left out of --mode as-written (their build takes no as_written): "
            + ", ".join(unable),
            file=sys.stderr,
        )
    return replace(config, variants=tuple(n for n, _ in kept), variant_paths=kept)


def batch_sizes(args: argparse.Namespace) -> tuple[int, ...]:
    """The batch sizes asked for: `run`'s one, or `sweep`'s list as given (the sweep orders
    them, harness.run.sweep.plan)."""
    return tuple(getattr(args, "batch_sizes", None) or (args.batch_size,))


def default_out() -> Path:
    """results/<UTC time to the second>, with -2, -3... for a second suite in that second
    (the folder lock refuses a third started at the very same instant)."""
    base = Path("results") / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


# As written, each level seeds its own generators (NumPy's RandomState, TF's global seed), and
# NumPy's legacy ones take 32 bits only; controlled mode seeds the harness' 64-bit generator.
AS_WRITTEN_SEED_MAX = 2**32 - 1


def make_config(args: argparse.Namespace, argv: list[str]) -> RunConfig:
    from harness.run.config import RunConfig

    mode, ablate = getattr(args, "mode", "controlled"), getattr(args, "ablate", None)
    if ablate and mode != "as-written":
        raise UsageError(
            f"--ablate {ablate} needs --mode as-written: it hands one of a level's own ways "
            "back to the harness"
        )
    if mode == "as-written" and args.dtype != "float32" and ablate != "dtype":
        raise UsageError(
            "--mode as-written trains each level in its own default dtype: "
            f"--dtype {args.dtype} needs --ablate dtype"
        )
    args.parity = args.parity and mode == "controlled"  # as written, no two levels step alike
    chosen = select_variants(args)
    optimizer_cls = OPTIMIZERS[args.optimizer]
    optimizer = optimizer_cls() if args.lr is None else optimizer_cls(lr=args.lr)
    seeds = "as_written_seeds" if mode == "as-written" else "seeds"
    if mode == "as-written" and max(args.seeds or (0,)) > AS_WRITTEN_SEED_MAX:
        raise UsageError(
            f"--seeds: {max(args.seeds)} is above {AS_WRITTEN_SEED_MAX}, the largest seed the "
            "levels' own random generators take in --mode as-written; choose smaller seeds"
        )
    task = getattr(args, "task", "mlp")
    weights = getattr(args, "loss_weights", None)
    if weights is not None and task != "wide-deep":
        raise UsageError("--loss-weights weighs the outputs of --task wide-deep; the mlp has one")
    hidden = args.hidden or DEFAULT_HIDDEN.get(args.dataset, (512, 256))
    out = args.out or default_out()
    return RunConfig(
        variants=tuple(name for name, _ in chosen),
        variant_paths=tuple(chosen),
        dataset=args.dataset,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=batch_sizes(args)[0],  # a sweep sets each point's own (harness.run.sweep.plan)
        optimizer=optimizer,
        hidden=hidden,
        seeds=tuple(dict.fromkeys(args.seeds or int_list(0)(DEFAULTS[seeds]))),
        device=args.device,
        parity=args.parity,
        target_accuracy=args.target_accuracy or DEFAULT_TARGET.get(args.dataset, 0.9),
        timeout=args.timeout,
        jobs=args.jobs,
        calibrate=args.calibrate,
        cold_start=args.cold_start,
        workers=args.workers,
        retry_noisy=args.retry_noisy,
        precision=getattr(args, "precision", None),
        thread_affinity=getattr(args, "thread_affinity", "round-robin"),
        budget=_budget(args),
        overhead=args.overhead,
        anatomy=getattr(args, "anatomy", False),
        dtype=args.dtype,
        mode=mode,
        ablate=ablate,
        task=task,
        task_options=(("loss_weights", weights),) if weights is not None else (),
        out=out,
        resume=args.resume,
        force=args.force,
        argv=(PROG, *argv),
    )


DEFAULT_BUDGET = 600.0  # seconds: --precision without --budget


def _budget(args: argparse.Namespace) -> float | None:
    budget, precision = getattr(args, "budget", None), getattr(args, "precision", None)
    if budget is not None and precision is None:
        raise UsageError("--budget bounds the processes --precision adds: give --precision too")
    return (budget or DEFAULT_BUDGET) if precision is not None else None


@dataclass(frozen=True)
class Validated:
    """A suite's input once every check passed: what `Suite` needs besides a listener."""

    config: RunConfig
    dataset: Dataset
    sources: dict[str, loc.SourceInfo | None]


def check_memory(config: RunConfig, dataset: Dataset, batch_size: int) -> None:
    """Refuse a suite the machine cannot hold before any of it starts."""
    from harness.run import cluster, memory

    runs = len(config.variants) * len(config.seeds)
    # A distributed variant's run is --workers processes, every other run one. A user's class
    # is counted as distributed and as importing TensorFlow: reading its source would import
    # its package here, before the throwaway import check.
    listed = [path for name, path in config.variant_paths if name in config.registry]
    user = len(listed) < len(config.variant_paths)
    distributed = user or any(cluster.layout(path) == "ranks" for path in listed)
    shape = memory.Shape(
        n_train=len(dataset.x_train),
        n_test=len(dataset.x_test),
        input_size=int(dataset.x_train.shape[1]),
        hidden=config.hidden,
        num_classes=dataset.num_classes,
        batch_size=batch_size,
        epochs=config.epochs,
        runs=runs,
        processes=min(config.jobs, runs) * (config.workers if distributed else 1),
        dtype=config.dtype,
        framework=user or not all(map(_numpy_only, listed)),
    )
    try:
        memory.check(shape)
    except memory.MemoryBudgetError as exc:
        raise UsageError(str(exc)) from None


def _numpy_only(variant_path: str) -> bool:
    """Whether the module of "module:Class" imports nothing but NumPy, the contract and the
    standard library, read from its source (never imported: it may import TensorFlow)."""
    try:
        spec = find_spec(variant_path.partition(":")[0])
        tree = ast.parse(Path(spec.origin).read_text()) if spec and spec.origin else None
    except (ImportError, OSError, SyntaxError, ValueError):
        return False
    if tree is None:
        return False
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return all(
        name in ("numpy", "variants.base") or name.split(".")[0] in sys.stdlib_module_names
        for name in imported
    )


def validate(args: argparse.Namespace) -> Validated:
    """Every check of the run options, shared by `run` and `sweep`; raises UsageError before
    anything is written or started."""
    config = make_config(args, args.argv)
    sources: dict[str, loc.SourceInfo | None] = {}
    user_paths = [path for name, path in config.variant_paths if name not in config.registry]
    for name, path in config.variant_paths:
        if name not in config.registry:
            continue  # a user class: located by the import check below
        sources[name] = loc.source_info(path)
        if sources[name] is None:
            raise UsageError(f"variant {name}: module {path.partition(':')[0]} is not installed")
    try:
        dataset = datasets.load(args.dataset, args.data_dir, download=args.download)
    except datasets.DatasetError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    flag = "--batch-sizes" if getattr(args, "batch_sizes", None) else "--batch-size"
    for size in batch_sizes(args):
        if size > len(dataset.x_train):
            raise UsageError(
                f"{flag}: {size} is larger than the {len(dataset.x_train)} "
                f"training samples of {config.dataset}"
            )
    check_memory(config, dataset, min(batch_sizes(args)))
    for path, file in check_user_variants(user_paths, config.timeout).items():
        sources[path] = loc.source_info(path, file) if file else None
    if config.mode == "as-written":
        listed = args.variants if args.variants and args.variants.strip() != "all" else ""
        named = {n.strip() for n in listed.split(",")} | set(args.variant)
        config = check_as_written(config, named)
    try:
        device.check(config.device)
    except device.DeviceError as exc:
        raise UsageError(str(exc)) from None
    return Validated(config, dataset, sources)

"""`mlpbench`: the command line. Parses and validates, then hands over to the runner.

    mlpbench run --out results/NAME                          one suite, one results folder
    mlpbench sweep --batch-sizes 32,128,512 --out results/NAME   one suite per batch size
    mlpbench report results/NAME                             HTML report (also of a sweep)

Every problem with the input is found before any work starts and reported as one line,
`mlpbench: error: ...`, with exit status 2 (never a traceback). Exit statuses of `run` and
`sweep`: 0 every run ok and every parity check passed, 1 a run failed, timed out or diverged
or a parity check failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import variants
from harness import datasets
from harness.measure import loc
from harness.results import scores, storage
from harness.run.config import ABLATIONS, MODES
from variants.base import DTYPES, OPTIMIZERS

if TYPE_CHECKING:  # the runner imports pandas: only `run` needs it, so it is imported there
    from harness.datasets import Dataset
    from harness.run.config import RunConfig
    from harness.run.suite import Suite

PROG = "mlpbench"
# Defaults sized per dataset: the 8x8 digits need a small network to learn in a few seconds,
# the 784-pixel sets the classic 512-256 MLP. Targets are what that network reaches in 10
# epochs with Adam, so time-to-accuracy is reported by default.
DEFAULT_HIDDEN = {"digits": (64, 32), "fashion-mnist": (512, 256), "mnist": (512, 256)}
DEFAULT_TARGET = {"digits": 0.9, "fashion-mnist": 0.85, "mnist": 0.97}
DEFAULTS = {
    "epochs": 10,
    "sweep_epochs": 3,
    "batch_size": 128,
    "seeds": "0,1,2",
    "as_written_seeds": "0,1,2,3,4,5,6,7,8,9",  # the statistics need 10 seeds or more
    "timeout": 300.0,
}


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block), like every other input error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


# -- argument types: each rejects bad values with a message argparse turns into one line ------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


SEED_MAX = 2**63 - 1  # stored as int64 with the task


def int_list(minimum: int, maximum: int | None = None) -> Any:
    def parse(text: str) -> tuple[int, ...]:
        items = [t.strip() for t in text.split(",")]
        if any(not t for t in items):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item: write e.g. 512,256")
        try:
            values = tuple(int(t) for t in items)
        except ValueError:
            message = f"{text!r} is not a comma-separated list of integers"
            raise argparse.ArgumentTypeError(message) from None
        if min(values) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: each value must be >= {minimum}")
        if maximum is not None and max(values) > maximum:
            raise argparse.ArgumentTypeError(f"{text!r}: each value must be <= {maximum}")
        return values

    return parse


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="One MLP task at every TensorFlow API level: same data, same weights, same "
        "batches; compare what each level costs.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="the variants, their API level and lines of code")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser(
        "run",
        help="run the suite and write a results folder",
        description="Run every (variant, seed) in a fresh process on the same task and write "
        "manifest.json, steps.csv, epochs.csv and summary.csv (results/README.md). The defaults "
        "run the whole comparison on digits. Exit status: 0 all ok, 1 a run failed, timed out, "
        "diverged or failed parity, 2 bad input, 130 interrupted.",
    )
    p.set_defaults(func=cmd_run)
    add_run_options(p, sweep=False)

    p = commands.add_parser(
        "sweep",
        help="run the suite once per batch size: throughput against batch size",
        description="Run the same suite once per batch size, one after another, into "
        "OUT/bs32, OUT/bs128, ... (each an ordinary results folder) and OUT/sweep.json; "
        "`mlpbench report OUT` then draws throughput and the GEMM roofline against batch "
        "size, showing where per-step Python overhead dominates and where a level reaches "
        "the GEMM limit. Takes every option of `run`, with --batch-sizes instead of "
        f"--batch-size and {DEFAULTS['sweep_epochs']} epochs by default. Example: mlpbench "
        "sweep --batch-sizes 32,128,512 --out results/bs-sweep. Exit status as for run: 0 all "
        "ok, 1 some run failed, 2 bad input, 130 interrupted (--resume continues).",
    )
    p.set_defaults(func=cmd_sweep)
    add_run_options(p, sweep=True)

    from harness.cli import report as report_cli  # report, compare, export-tensorboard

    report_cli.register(commands)

    p = commands.add_parser(
        "bench-compare",
        help="the CI gate: is a pytest-benchmark JSON slower than a baseline's? (exit 1 if so)",
        add_help=False,  # its own parser answers --help
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)  # main() hands them to bench_compare
    return parser


def add_run_options(p: argparse.ArgumentParser, *, sweep: bool) -> None:
    """The options of `run`, defined once: `sweep` takes them all, with a list of batch sizes
    in place of one and fewer epochs by default (it measures throughput, not learning)."""
    g = p.add_argument_group("what to run")
    g.add_argument(
        "--variants",
        metavar="all|a,b,...",
        help="registry names (see `mlpbench list`); default: all, or none when --variant is given",
    )
    g.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="also run your own class following variants/base.py:Variant (repeatable); "
        "imported from the current folder or PYTHONPATH",
    )
    g.add_argument("--dataset", choices=datasets.DATASETS, default="digits", help="default: digits")
    g.add_argument("--data-dir", metavar="D", help="folder of the mnist/fashion-mnist files")
    g.add_argument(
        "--download", action="store_true", help="let mnist be fetched with Keras if missing"
    )
    g = p.add_argument_group("training")
    if sweep:
        # Epoch 1 holds tracing; 3 epochs leave two steady-state windows per seed.
        epochs_help = (
            f"default: {DEFAULTS['sweep_epochs']} (only throughput matters here: epoch 1 holds "
            "tracing, epochs 2..N are the timed windows)"
        )
    else:
        epochs_help = f"default: {DEFAULTS['epochs']}"
    g.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULTS["sweep_epochs" if sweep else "epochs"],
        metavar="N",
        help=epochs_help,
    )
    if sweep:
        g.add_argument(
            "--batch-sizes",
            type=int_list(1),
            required=True,
            metavar="B1,B2,...",
            help="one suite per batch size, run smallest first into OUT/bsB (required)",
        )
    else:
        g.add_argument(
            "--batch-size",
            type=positive_int,
            default=DEFAULTS["batch_size"],
            metavar="B",
            help=f"default: {DEFAULTS['batch_size']}",
        )
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam", help="default: adam")
    g.add_argument(
        "--lr",
        type=positive_float,
        metavar="X",
        help="learning rate; default: "
        + ", ".join(f"{name} {cls().lr:g}" for name, cls in OPTIMIZERS.items()),
    )
    g.add_argument(
        "--hidden",
        type=int_list(1),
        metavar="W1,W2,...",
        help="hidden layer widths; default: 64,32 for digits, 512,256 otherwise",
    )
    g.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="the dtype every variant trains in (data, weights, activations, optimizer "
        "state) and the GEMM roofline is measured in; float64 makes parity hold over whole "
        f"runs (tolerance {scores.parity_tolerance('float64'):g}, not "
        f"{scores.parity_tolerance('float32'):g}); default: float32",
    )
    g.add_argument(
        "--seeds",
        type=int_list(0, SEED_MAX),
        metavar="S1,S2,...",
        help="one run per variant per seed (its own weights and batch order); "
        f"default: {DEFAULTS['seeds']}"
        + ("" if sweep else f", or {DEFAULTS['as_written_seeds']} with --mode as-written"),
    )
    if not sweep:
        g.add_argument(
            "--mode",
            choices=MODES,
            default="controlled",
            help="controlled: the harness hands every level the same initial weights, batch "
            "order and optimizer constants, and checks they take the same steps; as-written: "
            "each level initialises, shuffles and sets its optimizer constants its own way "
            "(variants that cannot are left out), and learning is compared by statistics over "
            "seeds (no parity); default: controlled",
        )
        g.add_argument(
            "--ablate",
            choices=ABLATIONS,
            help="with --mode as-written: hand this one back to the harness, as in controlled "
            "mode (initializer: the harness' weights; batch_order: its batch order; optimizer: "
            "its optimizer constants; dtype: --dtype for every level, NumPy included), to trace "
            "a difference to its cause",
        )
    g = p.add_argument_group("measurement")
    g.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where TensorFlow runs (cpu hides the GPUs); default: cpu",
    )
    g.add_argument(
        "--parity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"check every step's loss against {variants.REFERENCE} (added if not selected); "
        "default: on",
    )
    g.add_argument(
        "--target-accuracy",
        type=fraction,
        metavar="A",
        help="test accuracy for time-to-target; default: "
        + ", ".join(f"{name} {target}" for name, target in DEFAULT_TARGET.items()),
    )
    g.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULTS["timeout"],
        metavar="S",
        help=f"seconds per run, from its process' start; default: {DEFAULTS['timeout']:g}",
    )
    g.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="runs at once; above 1 their timings disturb each other (recorded); default: 1",
    )
    g.add_argument(
        "--retry-noisy",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="measure a run again, up to N times, while other processes' CPU during its timed "
        "epochs (foreign CPU, recorded for every run) says it was disturbed; default: 0",
    )
    g.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="data-parallel replicas of the distributed variants: N worker processes on "
        "127.0.0.1 (or N devices of one process); the others run as usual; default: 1",
    )
    g.add_argument(
        "--cold-start",
        action="store_true",
        help="start every run in a fresh interpreter; by default TensorFlow runs are forked "
        "from a process that imported it once (harness/run/launch.py), and its import time is "
        "added back to their first step",
    )
    g.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the GEMM roofline once, after the runs"
        + (" of each batch size (the peak depends on it)" if sweep else "")
        + "; default: on",
    )
    g.add_argument(
        "--overhead",
        choices=("reference", "all"),
        default="reference",
        help="whose harness/bare throughput ratio to measure after the runs: the reference's "
        "on digits (seconds; default), or every single-process variant's on the suite's own "
        "data (minutes)",
    )
    g = p.add_argument_group("output")
    what = "sweep folder (one results folder per batch size inside)" if sweep else "results folder"
    g.add_argument("--out", type=Path, help=f"{what}; default: results/<UTC time>")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT with the same settings: keep its ok and diverged runs, run the rest",
    )
    g.add_argument("--force", action="store_true", help="replace an existing OUT")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlpbench")
    except PackageNotFoundError:
        return "unknown"


# -- list ---------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.cli.progress import make_console

    table = Table()
    for column in ("variant", "API level", "LOC", "class"):
        table.add_column(column, justify="right" if column == "LOC" else "left")
    for name, path in variants.REGISTRY.items():
        info = loc.source_info(path)
        label = f"{name} (reference)" if name == variants.REFERENCE else name
        if info is None:
            table.add_row(label, "[red]module not found[/]", "-", path)
        else:
            table.add_row(label, info.api_level or "?", str(info.loc), path)
    make_console().print(table)
    return 0


# -- run: validation, then the suite ------------------------------------------------------------


def select_variants(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(name, module:Class) in the order asked; the parity reference first when needed."""
    chosen: list[tuple[str, str]] = []
    spec = args.variants if args.variants is not None else ("" if args.variant else "all")
    names = list(variants.REGISTRY) if spec.strip() == "all" else spec.split(",")
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name not in variants.REGISTRY:
            raise UsageError(
                f"unknown variant {name!r}: use one of {', '.join(variants.REGISTRY)} or all"
            )
        chosen.append((name, variants.REGISTRY[name]))
    for path in args.variant:
        module, _, cls = path.partition(":")
        if not module or not cls:
            raise UsageError(f"--variant {path!r}: expected package.module:Class")
        chosen.append((path, path))
    if not chosen:
        raise UsageError("no variants selected")
    unique = list(dict.fromkeys(chosen))  # a variant named twice runs once
    if args.parity and variants.REFERENCE not in dict(unique):
        unique.insert(0, (variants.REFERENCE, variants.REGISTRY[variants.REFERENCE]))
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


def _python_json(args: list[str], env: dict[str, str] | None = None) -> tuple[int, list[Any]]:
    """Run `python ARGS` from here and parse each stdout line as JSON."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    parsed = []
    for line in proc.stdout.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    return proc.returncode, parsed


def check_user_variants(paths: list[str]) -> dict[str, Path]:
    """Import user classes in a throwaway process (they may import TensorFlow, which the
    runner must not) and check the protocol; returns each one's source file."""
    if not paths:
        return {}
    code, results = _python_json(["-m", "harness.run.worker", "--check", *paths])
    files = {}
    for r in results:
        if not r.get("ok"):
            raise UsageError(f"--variant {r['path']}: {r['error']}")
        files[r["path"]] = Path(r["file"]) if r.get("file") else None
    if code != 0 or len(files) != len(paths):
        raise UsageError(f"--variant: cannot check {', '.join(paths)} (status {code})")
    return files


def check_as_written(config: RunConfig, named: set[str]) -> RunConfig:
    """--mode as-written runs only variants whose build takes `as_written` (variants/base.py),
    found by importing them in a throwaway process. Those `named` on the command line must;
    those of `all` that cannot are left out with a note."""
    paths = [path for _, path in config.variant_paths]
    code, results = _python_json(["-m", "harness.run.worker", "--check", *paths])
    able = {r["path"] for r in results if r.get("as_written")}
    if code != 0 or len(results) != len(paths):
        raise UsageError(f"--mode as-written: cannot check {', '.join(paths)} (status {code})")
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


def check_gpu() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    code, results = _python_json(["-m", "harness.measure.environment"], env)
    if code != 0 or not results:
        raise UsageError("--device gpu: cannot start TensorFlow to look for a GPU")
    if not results[-1].get("gpus"):
        raise UsageError("--device gpu: TensorFlow sees no GPU on this machine; use --device cpu")


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
    out = args.out or default_out()
    return RunConfig(
        variants=tuple(name for name, _ in chosen),
        variant_paths=tuple(chosen),
        dataset=args.dataset,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=batch_sizes(args)[0],  # a sweep sets each point's own (harness.run.sweep.plan)
        optimizer=optimizer,
        hidden=args.hidden or DEFAULT_HIDDEN.get(args.dataset, (512, 256)),
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
        overhead=args.overhead,
        dtype=args.dtype,
        mode=mode,
        ablate=ablate,
        out=out,
        resume=args.resume,
        force=args.force,
        argv=(PROG, *argv),
    )


@dataclass(frozen=True)
class Validated:
    """A suite's input once every check passed: what `Suite` needs besides a listener."""

    config: RunConfig
    dataset: Dataset
    sources: dict[str, loc.SourceInfo | None]


def check_memory(config: RunConfig, dataset: Dataset, batch_size: int) -> None:
    """Refuse a suite the machine cannot hold before any of it starts."""
    from harness.run import memory

    shape = memory.Shape(
        n_train=len(dataset.x_train),
        n_test=len(dataset.x_test),
        input_size=int(dataset.x_train.shape[1]),
        hidden=config.hidden,
        num_classes=dataset.num_classes,
        batch_size=batch_size,
        epochs=config.epochs,
        runs=len(config.variants) * len(config.seeds),
        processes=config.jobs * config.workers,
        dtype=config.dtype,
    )
    try:
        memory.check(shape)
    except memory.MemoryBudgetError as exc:
        raise UsageError(str(exc)) from None


def validate(args: argparse.Namespace) -> Validated:
    """Every check of the run options, shared by `run` and `sweep`; raises UsageError before
    anything is written or started."""
    config = make_config(args, args.argv)
    sources: dict[str, loc.SourceInfo | None] = {}
    user_paths = [path for name, path in config.variant_paths if name not in variants.REGISTRY]
    for name, path in config.variant_paths:
        if name not in variants.REGISTRY:
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
    for path, file in check_user_variants(user_paths).items():
        sources[path] = loc.source_info(path, file) if file else None
    if config.mode == "as-written":
        listed = args.variants if args.variants and args.variants.strip() != "all" else ""
        named = {n.strip() for n in listed.split(",")} | set(args.variant)
        config = check_as_written(config, named)
    if config.device == "gpu":
        check_gpu()
    return Validated(config, dataset, sources)


def execute(valid: Validated, config: RunConfig, resume_out: Path | None = None) -> int:
    """Run one suite with a live display and print its table; `config` is `valid.config` or,
    in a sweep, one point of it. `resume_out` is the folder an interrupted user resumes."""
    from harness.cli.progress import RichProgress
    from harness.run.config import SuiteError
    from harness.run.suite import Suite

    progress = RichProgress(config.epochs)
    suite = Suite(config, valid.dataset, valid.sources, progress)
    try:
        suite.prepare()
    except SuiteError as exc:
        raise UsageError(str(exc)) from None
    with progress:
        code = suite.execute()
    report_end(suite, code, resume_out or config.out)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    valid = validate(args)
    config = valid.config
    check_output(config.out, config.resume, config.force)
    return execute(valid, config)


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.results.sweep import read_sweep_folder
    from harness.run import sweep

    valid = validate(args)
    plan = sweep.plan(valid.config, batch_sizes(args))
    check_output(plan.out, plan.resume, plan.force, read=read_sweep_folder)
    for point in plan.points:  # with --resume, a point already started must be resumable
        check_output(point.out, plan.resume, plan.force)
    try:
        sweep.check(plan)
    except sweep.SweepError as exc:
        raise UsageError(str(exc)) from None

    from harness.cli.progress import make_console

    err = make_console(stderr=True)

    def run_point(index: int, config: RunConfig) -> int:
        err.print(
            f"batch size {config.batch_size} ({index + 1} of {len(plan.points)}): {config.out}",
            highlight=False,
            markup=False,
        )
        return execute(valid, config, resume_out=plan.out)

    code = sweep.run(plan, run_point)
    if code != sweep.INTERRUPTED:
        report = shlex.join([PROG, "report", str(plan.out)])
        err.print(
            f"sweep finished: {plan.out}; its report: {report}", highlight=False, markup=False
        )
    return code


def report_end(suite: Suite, code: int, resume_out: Path) -> None:
    from harness.cli.progress import make_console, summary_table

    config, records = suite.config, suite.records
    out, err = make_console(), make_console(stderr=True)
    finished = [r for r in records if r.status != "pending"]
    if finished:
        summary = suite.summary()
        out.print(summary_table(summary[summary["status"] != "pending"], title=str(config.out)))
    if code == 130:
        argv = [a for a in config.argv if a not in ("--force",)]
        if not any(a == "--out" or a.startswith("--out=") for a in argv):
            argv += ["--out", str(resume_out)]
        err.print(
            f"interrupted: {len(finished)} of {len(records)} runs kept in {config.out}; "
            f"finish with: {shlex.join([*argv, '--resume'] if '--resume' not in argv else argv)}",
            highlight=False,
            markup=False,
        )
        return
    bad = [r for r in records if r.status != "ok"]
    summary = suite.summary()
    parity = summary["learning_pass"].eq(False).sum()
    rounding = (summary["parity_pass"].eq(False) & summary["learning_pass"].eq(True)).sum()
    verdict = f"{len(records) - len(bad)} of {len(records)} runs ok"
    if bad:
        verdict += ", " + ", ".join(f"{r.variant} seed {r.seed}: {r.status}" for r in bad[:5])
    if parity:
        verdict += f"; {parity} failed the parity check against {variants.REFERENCE}"
    if rounding:
        verdict += (
            f"; {rounding} parted from {variants.REFERENCE} late but stayed within its seed "
            "band (amplified float32 rounding, not a failure)"
        )
    err.print(f"{verdict}. Results: {config.out}", highlight=False, markup=False)
    for claim in (suite.manifest.get("learning") or {}).get("claims", []):
        answer = {True: "supported", False: "not supported", None: "cannot be answered"}
        p, delta = claim.get("p_value", math.nan), claim.get("cliffs_delta", math.nan)
        err.print(
            f"claim '{claim['claim']}': {answer[claim.get('supported')]}"
            + (
                f" ({claim['a']} vs {claim['b']}, p = {p:.2g}, Cliff's δ = {delta:+.2f})"
                if claim.get("supported") is not None
                else f" ({claim.get('reason')})"
            )
            + f"; why: {PROG} report {config.out}",
            highlight=False,
            markup=False,
        )


def _interrupt_on_sigterm() -> None:
    """A `kill` is handled like Ctrl-C: finished runs are kept."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench-compare"]:  # its own parser, --help included
        from harness.report import bench_compare

        return bench_compare.main(argv[1:], prog=f"{PROG} bench-compare")
    args = build_parser().parse_args(argv)
    args.argv = argv
    _interrupt_on_sigterm()
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `mlpbench` parser: its commands, the options of `run` and `sweep` (defined once), and
the argument types that turn a bad value into one line of error.

Parsing only: what the options mean together is checked in harness/cli/validate.py.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any, NoReturn

import variants
from harness import datasets
from harness.cli import anatomy as anatomy_cli  # anatomy
from harness.cli import report as report_cli  # report, compare, export-tensorboard
from harness.cli.errors import PROG, fail
from harness.results import scores
from harness.run.affinity import MODES as AFFINITY_MODES
from harness.run.config import ABLATIONS, MODES
from harness.run.device import DEVICES
from variants.base import DTYPES, OPTIMIZERS

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


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block), like every other input error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `--threshold -5%` is a (refused) value, not an unknown option: argparse takes only
        # plain negative numbers for values
        self._negative_number_matcher = re.compile(r"^-\d+%?$|^-\d*\.\d+%?$")

    def error(self, message: str) -> NoReturn:
        self.exit(fail(f"{message} (see {self.prog} --help)"))


# -- argument types: each rejects bad values with a message argparse turns into one line ------


def _number(convert: Any, noun: str, rule: str, ok: Any) -> Any:
    """An argparse type: `convert(text)`, refused in one line unless `ok(value)`."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return parse


positive_int = _number(int, "an integer", "positive", lambda v: v > 0)
non_negative_int = _number(int, "an integer", "0 or more", lambda v: v >= 0)
positive_float = _number(
    float, "a number", "a positive number", lambda v: math.isfinite(v) and v > 0
)


def fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


SEED_MAX = 2**63 - 1  # stored as int64 with the task


def int_list(minimum: int, maximum: int | None = None, example: str = "512,256") -> Any:
    def parse(text: str) -> tuple[int, ...]:
        items = [t.strip() for t in text.split(",")]
        if not text.strip():
            raise argparse.ArgumentTypeError(f"is empty: write e.g. {example}")
        if any(not t for t in items):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item: write e.g. {example}")
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
    """Every command and its options; `args.command` names the command (harness/cli/main.py
    runs it)."""
    parser = Parser(
        prog=PROG,
        description="One MLP task at every TensorFlow API level: same data, same weights, same "
        "batches; compare what each level costs.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("list", help="the variants, their API level and lines of code")

    p = commands.add_parser(
        "run",
        help="run the suite and write a results folder",
        description="Run every (variant, seed) in a fresh process on the same task and write "
        "manifest.json, steps.csv, epochs.csv and summary.csv (results/README.md). The defaults "
        "run every level and the three Keras APIs on digits (--variants all adds every rung of "
        "the ladders). Exit status: 0 all ok, 1 a run failed, timed out, "
        "diverged or failed parity, 2 bad input, 130 interrupted.",
    )
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
    add_run_options(p, sweep=True)

    report_cli.register(commands)
    anatomy_cli.register(commands, int_list, non_negative_int, report_cli.path_argument)

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
    _what_to_run(p.add_argument_group("what to run"))
    _training(p.add_argument_group("training"), sweep=sweep)
    _measurement(p.add_argument_group("measurement"), sweep=sweep)
    _output(p.add_argument_group("output"), sweep=sweep)


def loss_weights(text: str) -> tuple[float, float]:
    """`--loss-weights MAIN,AUX`: two non-negative numbers, not both 0."""
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not two numbers: write e.g. 0.9,0.1"
        ) from None
    if len(values) != 2 or not all(math.isfinite(v) and v >= 0 for v in values) or not any(values):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give two weights >= 0, not both 0, main first: e.g. 0.9,0.1"
        )
    return values


def _what_to_run(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--task",
        choices=list(variants.TASKS),
        default="mlp",
        help="the model every variant trains: mlp (a stack of dense layers) or wide-deep (a "
        "wide input beside a deep path, a main and an auxiliary output: "
        "variants/base.py WideDeepSpec); default: mlp",
    )
    g.add_argument(
        "--variants",
        metavar="default|all|a,b,...",
        help="registry names of the task (see `mlpbench list`); all: every rung of every "
        "level; default: every level in the form its guide teaches and the three Keras APIs "
        "(marked in `mlpbench list`), or none when --variant is given",
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


def _training(g: argparse._ArgumentGroup, *, sweep: bool) -> None:
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
            type=int_list(1, example="32,128,512"),
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
        "--loss-weights",
        type=loss_weights,
        metavar="MAIN,AUX",
        help="--task wide-deep: the weights of the main and auxiliary outputs' losses in the "
        "total; default: 0.9,0.1",
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
        type=int_list(0, SEED_MAX, example="0,1,2"),
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


def _measurement(g: argparse._ArgumentGroup, *, sweep: bool) -> None:
    g.add_argument(
        "--device",
        choices=DEVICES,
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
        "--thread-affinity",
        choices=AFFINITY_MODES,
        default="round-robin",
        help="round-robin: before every timed window, each of a worker's threads is placed on a "
        "CPU of its own in turn (harness/run/affinity.py), which keeps multi-threaded variants "
        "at one speed; none: where the kernel puts them; default: round-robin",
    )
    g.add_argument(
        "--precision",
        type=fraction,
        metavar="F",
        help="after the seeds asked for, add processes (new seeds) to each variant whose "
        "throughput interval (two-level bootstrap, 95 %%) is wider than +-F (e.g. 0.05), until "
        "every one is within it or --budget runs out; needs at least 3 processes per variant",
    )
    g.add_argument(
        "--budget",
        type=positive_float,
        metavar="S",
        help="with --precision: seconds from the suite's start after which no process is "
        "added; default: 600",
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
    g.add_argument(
        "--anatomy",
        action="store_true",
        help="after the runs, break every single-process variant's steady step down into "
        "GEMMs, other math, optimizer update and the rest under the framework's profiler, one "
        "process each (off by default: the profiler slows what it watches); into anatomy.csv",
    )


def _output(g: argparse._ArgumentGroup, *, sweep: bool) -> None:
    what = "sweep folder (one results folder per batch size inside)" if sweep else "results folder"
    g.add_argument(
        "--out", type=report_cli.path_argument, help=f"{what}; default: results/<UTC time>"
    )
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

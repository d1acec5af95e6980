"""`mlpbench`: the command line. Each command parses, validates, calls one part and prints.

    mlpbench run --out results/NAME                          one suite, one results folder
    mlpbench sweep --batch-sizes 32,128,512 --out results/NAME   one suite per batch size
    mlpbench report results/NAME                             HTML report (also of a sweep)

Every problem with the input is found before any work starts and reported as one line,
`mlpbench: error: ...`, with exit status 2 (never a traceback). Exit statuses of `run` and
`sweep`: 0 every run ok and every parity check passed, 1 a run failed, timed out or diverged
or a parity check failed, 2 bad input, 130 interrupted.

The parser is harness/cli/options.py, the checks harness/cli/validate.py, the display
harness/cli/progress.py, the commands that read results harness/cli/report.py.
"""

from __future__ import annotations

import argparse
import faulthandler
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import variants
from harness.cli import report as report_cli
from harness.cli.errors import PROG, UsageError, fail
from harness.cli.options import build_parser
from harness.cli.validate import Validated, batch_sizes, check_output, validate
from harness.measure import loc

if TYPE_CHECKING:  # the runner imports pandas: only `run` needs it, so it is imported there
    from harness.run.config import RunConfig


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


def execute(valid: Validated, config: RunConfig, resume_out: Path | None = None) -> int:
    """Run one suite with a live display and print its table; `config` is `valid.config` or,
    in a sweep, one point of it. `resume_out` is the folder an interrupted user resumes."""
    from harness.cli.progress import RichProgress, print_end
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
    print_end(suite, code, resume_out or config.out)
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


COMMANDS = {"list": cmd_list, "run": cmd_run, "sweep": cmd_sweep, **report_cli.COMMANDS}


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
    # `kill -USR1 <pid>` prints where every thread of a suite that seems stuck is, and it goes on
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return int(COMMANDS[args.command](args))
    except UsageError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

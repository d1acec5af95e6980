"""`mlpbench`: the command line. Each command parses, validates, calls one part and prints.

    mlpbench run --out results/NAME                          one suite, one results folder
    mlpbench sweep --batch-sizes 32,128,512 --out results/NAME   one suite per batch size
    mlpbench report results/NAME                             HTML report (also of a sweep)
    mlpbench anatomy --variants a,b --out DIR                each variant's step, part by part

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.errors import PROG, UsageError, fail, os_error

# The rest is imported once Ctrl-C is handled (main): importing it takes seconds (pandas,
# scipy), and a Ctrl-C then would otherwise print the import's traceback.
if TYPE_CHECKING:
    from harness.cli.validate import Validated
    from harness.run.config import RunConfig


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    import variants
    from harness.cli.progress import make_console
    from harness.measure import loc

    for task, registry in variants.TASKS.items():
        table = Table(title=f"--task {task}", title_justify="left")
        for column in ("variant", "API level", "LOC", "class"):
            table.add_column(column, justify="right" if column == "LOC" else "left")
        for name, path in registry.items():
            info = loc.source_info(path)
            marks = ["reference"] if name == variants.REFERENCE else []
            marks += ["default"] if name in variants.DEFAULT[task] else []
            label = f"{name} ({', '.join(marks)})" if marks else name
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
    from harness.cli.validate import check_output, validate

    valid = validate(args)
    config = valid.config
    check_output(config.out, config.resume, config.force)
    return execute(valid, config)


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.cli.validate import batch_sizes, check_output, validate
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


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from harness.cli import anatomy as anatomy_cli
    from harness.cli import report as report_cli

    commands = {"list": cmd_list, "run": cmd_run, "sweep": cmd_sweep, **report_cli.COMMANDS}
    return {**commands, **anatomy_cli.COMMANDS}


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


def interrupt_once(signum: int, frame: Any) -> None:
    """Ctrl-C, and a `kill` handled like it: the command stops and keeps its finished runs.
    Only the first counts: a second (an impatient Ctrl-C, or `timeout` passing on the one it
    got too) would break the shutdown the first began, wherever it landed (in a `finally`, or
    between a lock's acquire and release). Ignored, not handled, from then on: Python puts
    back the default action of a handled SIGINT at exit, which a late one would then take."""
    for number in INTERRUPTS:
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt


def _handle_interrupts() -> None:
    # one the command was started with ignored (a shell's background job ignores SIGINT) stays so
    for number in INTERRUPTS:
        if signal.getsignal(number) != signal.SIG_IGN:
            signal.signal(number, interrupt_once)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _handle_interrupts()
    try:
        return _dispatch(argv)
    except UsageError as exc:
        return fail(str(exc))
    except OSError as exc:  # a full disk, a folder we may not write: one line, not a traceback
        return fail(os_error(exc, argv[0] if argv else None))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["bench-compare"]:  # its own parser, --help included
        from harness.report import bench_compare

        return bench_compare.main(argv[1:], prog=f"{PROG} bench-compare")
    from harness.cli.options import build_parser

    args = build_parser().parse_args(argv)
    args.argv = argv
    # `kill -USR1 <pid>` prints where every thread of a suite that seems stuck is, and it goes on
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    return int(_commands()[args.command](args))


if __name__ == "__main__":
    sys.exit(main())

"""The `report`, `compare` and `export-tensorboard` commands of `mlpbench`.

They read stored results only. Bad input (a missing folder, one that is not a results
folder, an unknown schema version) prints one line `mlpbench: error: ...` and exits 2.
Heavy imports (matplotlib, scipy, tensorboard) happen inside the commands, so importing
this module, which the main CLI does at start-up, stays cheap and never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.cli.errors import fail

EXIT_OK, EXIT_REGRESSION = 0, 1


def probability(text: str) -> float:
    """bench-compare's --alpha type, imported only when given: the gate imports scipy, which
    would otherwise add a second to every `mlpbench` command's start-up."""
    from harness.report.bench_compare import probability as parse

    return parse(text)


def build_report(result_dirs: Sequence[Path], out: Path, *, command: str | None = None) -> Path:
    """Build `out/index.html` and one PNG per figure from the given result folders and
    return the page's path. A sweep folder (harness/results/sweep.py) is reported on its own: its
    sweep section, then the report of its largest batch size. Raises `ResultsError` for
    unusable input."""
    from harness.results import sweep
    from harness.results.reader import ResultsError, read_results, read_sweep

    if not result_dirs:
        raise ResultsError("no results directory given")
    if command is None:
        command = shlex.join(["mlpbench", "report", *map(str, result_dirs), "--out", str(out)])
    out = Path(out)
    sweeps = [Path(p) for p in result_dirs if sweep.is_sweep(Path(p))]
    if sweeps and len(result_dirs) > 1:
        raise ResultsError(f"report the sweep {sweeps[0]} on its own, not with other folders")
    try:
        # every folder is read before the drawing code is imported (matplotlib, scipy: seconds),
        # so that unusable input is refused at once
        read = [read_results(Path(p)) for p in result_dirs] if not sweeps else None
        swept_folders = read_sweep(sweeps[0]) if sweeps else None
        from harness.report import figures, html, learning, task
        from harness.report.data import combine, sweep_data
        from harness.report.verdict import at_batch, sweep_verdict, verdict

        if read is not None:
            data = combine(read)
            drawn = figures.draw_all(data, out)
            sections = [learning.section(data.sets), task.section(data)]
            sections += [_scaling_section(Path(p), out) for p in result_dirs]
            page = html.page(
                data, drawn, verdict(data), command, sections=[s for s in sections if s]
            )
        else:
            swept = sweep_data(*swept_folders)
            largest, largest_set = swept.points[-1]
            data = combine([largest_set])
            # one colour per variant on the page
            palette = figures.Palette(swept.labels, largest_set.reference)
            section = html.sweep_section(
                swept,
                figures.draw_sweep(swept, out, palette),
                shlex.join(["mlpbench", "report", str(swept.points[0][1].path)]),
            )
            page = html.page(
                data,
                figures.draw_all(data, out, palette),
                sweep_verdict(swept) + at_batch(verdict(data), largest),
                command,
                title=f"mlpbench report: {swept.folder.name}, batch-size sweep",
                subtitle=html.sweep_subtitle(swept, data),
                sections=[section],
            )
        index = out / "index.html"
        index.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot write the report to {out}: {exc}") from exc
    return index


def _scaling_section(folder: Path, out: Path) -> str | None:
    """The data-parallel scaling a folder stores (`python -m harness.run.scaling --out`)."""
    from harness.report import html, scaling

    if not (folder / "scaling.json").exists():
        return None
    try:
        data = scaling.load(folder)
    except scaling.ScalingReportError as exc:
        from harness.results.reader import ResultsError

        raise ResultsError(str(exc)) from None
    png = out / "scaling.png"
    out.mkdir(parents=True, exist_ok=True)
    scaling.figure(data, png)
    return html.scaling_section(scaling.text(data), png)


def path_argument(text: str) -> Path:
    """A file or folder argument: an empty one would mean the current folder, written into
    (or refused as 'already exists') when the user meant to name one."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a path, e.g. results/NAME")
    return Path(text)


def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05. A bare number above 1 is refused rather than guessed at."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid threshold {text!r}: write a percentage like 5% or a fraction like 0.05"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"threshold {text!r} is negative: it is the slowdown that fails, e.g. 5% or 0.05"
        )
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"threshold {text!r} is outside 0..100 %: write 5% or 0.05 for five percent"
        )
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's commands and their options to the `mlpbench` parser; `COMMANDS` runs
    them."""
    p = subparsers.add_parser(
        "report",
        help="build an HTML/PNG report from stored results",
        description="Build index.html and one PNG per figure from one or more result "
        "folders. Nothing is re-run. Variants present in several folders are labeled "
        "'variant @ folder'. A sweep folder (`mlpbench sweep`) is reported on its own: "
        "throughput and the GEMM roofline against batch size, then the report of its "
        "largest batch size.",
    )
    p.add_argument(
        "results", nargs="+", type=path_argument, help="results/NAME folder(s), or one sweep"
    )
    p.add_argument("--out", type=path_argument, help="output folder (default: reports/NAME)")

    p = subparsers.add_parser(
        "compare",
        help="compare two result sets, fail on a significant slowdown",
        description="Per variant, B against A: throughput (ratio of medians with a two-level "
        "bootstrap interval over seeds and their epoch windows, Mann-Whitney U on per-seed "
        "medians), accuracy and first-step time. Exits 1 when a variant got slower: the "
        "whole interval below 1 - threshold and beyond the folders' A/A resolution; or has "
        "no finished run in B; 2 on bad input, and when no variant could be compared (none "
        "shared, or none with undisturbed runs in both).",
    )
    p.add_argument("a", type=path_argument, help="baseline results folder")
    p.add_argument("b", type=path_argument, help="results folder to compare with the baseline")
    p.add_argument(
        "--threshold",
        type=parse_threshold,
        default=0.05,
        help="slowdown that counts as a regression, e.g. 5%% or 0.05 (default 5%%)",
    )
    p.add_argument(
        "--alpha",
        type=probability,
        default=0.05,
        help="1 - the confidence of the throughput interval (default 0.05: 95 %%)",
    )
    p.add_argument("--html", type=path_argument, metavar="FILE", help="also write an HTML page")

    p = subparsers.add_parser(
        "export-tensorboard",
        help="write every run's curves as TensorBoard event files",
        description="One TensorBoard run per variant and seed (DIR/variant/seedN) with the "
        "per-step loss and the per-epoch losses, accuracy and throughput. Open with "
        "`tensorboard --logdir DIR`.",
    )
    p.add_argument("results", type=path_argument, help="results/NAME folder")
    p.add_argument("dir", type=path_argument, help="output log directory")


def _results_error(exc: Exception, *paths: Path) -> int:
    """A sweep folder where one results folder is expected: name one of its folders."""
    from harness.results import sweep
    from harness.results.storage import ResultsError

    for path in paths:
        if sweep.is_sweep(path):
            try:
                example = sweep.read_sweep_folder(path).points[-1][1]
            except ResultsError:
                break
            return fail(f"{path} is a sweep folder: give one of its folders, e.g. {example}")
    return fail(str(exc))


def _invoked(args: argparse.Namespace) -> str:
    """The command line as typed, for the page's 'reproduce' section (the main CLI keeps
    its arguments in `args.argv`)."""
    argv = getattr(args, "argv", None)
    return shlex.join(["mlpbench", *(sys.argv[1:] if argv is None else argv)])


def _report(args: argparse.Namespace) -> int:
    from harness.results.storage import ResultsError

    out = args.out or Path("reports") / args.results[0].name
    try:
        index = build_report(args.results, out, command=_invoked(args))
    except ResultsError as exc:
        return fail(str(exc))
    print(f"report: {index}")
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from harness.report import compare
    from harness.results.storage import ResultsError

    # checked first: refused after the table, it would hide the comparison's own exit status
    if args.html and (problem := _unwritable(args.html)):
        return fail(f"--html {args.html}: {problem}")
    try:
        result = compare.compare_dirs(args.a, args.b, threshold=args.threshold, alpha=args.alpha)
        compare.print_table(result)
        if args.html:
            compare.write_html(result, args.html)
    except ResultsError as exc:
        return _results_error(exc, args.a, args.b)
    except OSError as exc:
        return fail(f"cannot write {args.html}: {exc}")
    return EXIT_REGRESSION if result.regressions else EXIT_OK


def _unwritable(file: Path) -> str | None:
    """Why `file` cannot be written (None if it can), found without writing anything."""
    if file.is_dir():
        return f"is a folder: give a file name, e.g. {file / 'compare.html'}"
    if file.exists():
        return None if os.access(file, os.W_OK) else "permission denied"
    folder = file.absolute().parent
    while not folder.exists():  # the folders write_html would create
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder} (permission denied)"
    return None


def _export_tensorboard(args: argparse.Namespace) -> int:
    from harness.report import tensorboard
    from harness.results.storage import ResultsError

    exported = {p.parent for p in args.dir.glob(f"*/*/{tensorboard.EVENTS}")}
    try:
        runs = tensorboard.export(args.results, args.dir)
    except ResultsError as exc:
        return _results_error(exc, args.results)
    except OSError as exc:
        return fail(f"cannot write to {args.dir}: {exc}")
    print(f"wrote {len(runs)} TensorBoard runs to {args.dir}: tensorboard --logdir {args.dir}")
    if replaced := exported.intersection(runs):
        print(f"replaced the event files of {len(replaced)} earlier runs (an earlier export)")
    return EXIT_OK


COMMANDS = {"report": _report, "compare": _compare, "export-tensorboard": _export_tensorboard}

"""The report page: one self-contained HTML file (figures embedded as data URIs, no network,
opens from disk). Every string that came from results or the command line goes through
`html.escape` or `DataFrame.to_html(escape=True)`; nothing from outside is trusted."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.data import (
    ReportData,
    SweepData,
    format_number,
    ladder,
    resolution,
    variant_table,
)
from harness.report.verdict import Finding
from harness.results.storage import NOT_FAILED, STATUSES

FAILED_STATUSES = tuple(s for s in STATUSES if s not in NOT_FAILED)
# Cells holding only a number, a range or a ratio ("1,234", "4.8e-07", "5 – 9", "0.68×"):
# right-aligned so digits line up.
NUMBER_CELL = re.compile(r"<td>([-+]?[\d,.]+(?:e[-+]?\d+)?(?: – [\d,.]+)?×?)</td>")
# Cells of prose (an error message): wide enough not to wrap after every word.
LONG_CELL = re.compile(r"<td>([^<]{40,})</td>")

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d1d1f; margin: 0 auto; max-width: 1120px; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin-bottom: 0.1em; }
h2 { border-bottom: 2px solid #e3e3e8; padding-bottom: 4px; margin-top: 2em; }
.sub { color: #666; margin-top: 0; }
.verdict { background: #f5f7fb; border-left: 4px solid #3b6fd8; padding: 10px 18px;
           border-radius: 4px; }
.verdict li { margin: 6px 0; }
.verdict b { color: #23437f; }
figure { margin: 1.4em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e6e6ea; text-align: left;
         vertical-align: top; max-width: 28em; overflow-wrap: break-word; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.long { min-width: 16em; }
th { background: #f0f0f4; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafafc; }
td.status-bad { color: #b00020; font-weight: 600; }
tr:has(td.status-bad) { background: #fff1f1 !important; }
table.kv td { text-align: left; }
pre { background: #f4f4f6; padding: 10px 12px; border-radius: 4px; white-space: pre-wrap;
      overflow-wrap: anywhere; }
footer { color: #888; font-size: 0.85em; margin-top: 3em; }
"""


def page(
    data: ReportData,
    figures: Sequence[tuple[str, str, Path]],
    findings: Sequence[Finding],
    report_command: str,
    *,
    title: str | None = None,
    subtitle: str | None = None,
    sections: Sequence[str] = (),
) -> str:
    """The whole page as a string; figures are embedded and also linked by file name.
    `sections` (HTML, escaped already, e.g. `sweep_section`) go between the verdict and the
    figures of `data`."""
    names = ", ".join(s.name for s in data.sets)
    aa = _resolution_line(data)
    body = [
        f'<p class="sub">{escape(subtitle or _subtitle(data))}</p>',
        '<h2 id="verdict">Verdict</h2>',
        _verdict(findings),
        *sections,
        '<h2 id="figures">Figures</h2>',
        "<p>Only finished runs are drawn; failed runs are listed in the tables below. "
        "Each variant keeps its colour in every figure.</p>",
        *(_figure(h, c, p) for h, c, p in figures),
        *_ladder_section(data, aa),
        '<h2 id="variants">Per variant</h2>',
        "<p>Means with the half-width of the 95 % t-interval over seeds; medians and "
        "interquartile ranges over the steady-state epoch windows.</p>",
        aa,
        table(formatted(variant_table(data)), "variants"),
        '<h2 id="runs">Every run (summary.csv)</h2>',
        "<p>One row per variant and seed, every column of summary.csv; runs that did not "
        "finish are marked with their status and reason.</p>",
        table(formatted(_runs_frame(data)), "runs"),
        '<h2 id="reproduce">Reproduce</h2>',
        *(_set_section(s.name, s.manifest, len(data.sets) > 1) for s in data.sets),
        "<h3>This report</h3>",
        f"<pre>{escape(report_command)}</pre>",
    ]
    return document(title or f"mlpbench report: {names}", body)


def scaling_section(text: str, png: Path) -> str:
    """Data-parallel scaling: measured on loopback, the fitted model and its projection, with
    the assumptions as the measurement wrote them (escaped, shown as written)."""
    return "".join(
        [
            '<h2 id="scaling">Data-parallel scaling</h2>',
            _figure(
                "Throughput against workers",
                "Measured on this machine's loopback, and projected by the fitted model for the "
                "stated networks.",
                png,
            ),
            f"<pre>{escape(text)}</pre>",
        ]
    )


def _resolution_line(data: ReportData) -> str:
    """The suite's A/A resolution, shown beside every speed table."""
    return (
        f'<p class="resolution"><b>A/A resolution:</b> {escape(resolution(data).describe())}. '
        "A speed difference whose interval holds 1 or a difference within it is not "
        "resolved.</p>"
    )


def _ladder_section(data: ReportData, aa: str) -> list[str]:
    rungs = ladder(data)
    if rungs.empty:
        return []
    return [
        '<h2 id="ladder">Cost ladder</h2>',
        "<p>Per level, its rungs from the form tutorials teach to the fastest it allows; "
        "speed-up: the median throughput over the rung above it in the table, with a 95 % "
        "two-level bootstrap interval (processes, then each process' epoch windows: a process "
        "is the unit of replication); resolved: the whole interval lies beyond 1 and beyond "
        "the A/A resolution. Runs flagged noisy and windows flagged underused or slowed are "
        "left out.</p>",
        aa,
        table(formatted(rungs), "ladder"),
    ]


def sweep_section(
    sweep: SweepData, figures: Sequence[tuple[str, str, Path]], report_command: str
) -> str:
    """The batch-size sweep: its figures, throughput and roofline fraction per batch size,
    and what each batch size's folder holds; says that the page goes on with the largest."""
    sizes = sweep.batch_sizes
    folders = ", ".join(s.path.name for _, s in sweep.points)
    largest, largest_set = sweep.points[-1]
    parts = [
        '<h2 id="sweep">Batch-size sweep</h2>',
        f"<p>The same suite at batch sizes {escape(', '.join(map(str, sizes)))}, run one after "
        f"another into one ordinary results folder each ({escape(folders)}). Throughput is the "
        "median over the steady-state epoch windows of every seed, as in the Throughput "
        "figure of a single report.</p>",
        *(_figure(h, c, p) for h, c, p in figures),
        "<h3>Training samples per second (median) per batch size</h3>",
        table(formatted(_sweep_throughput_frame(sweep)), "sweep-throughput"),
        '<p class="resolution"><b>A/A resolution</b> per batch size: '
        + escape("; ".join(f"{b}: {r.describe()}" for b, r in sweep.resolutions.items()))
        + ".</p>",
    ]
    if sweep.table["fraction"].notna().any():
        parts += [
            "<h3>Fraction of the GEMM roofline per batch size</h3>",
            table(formatted(_by_batch_size(sweep, "fraction")), "sweep-roofline"),
        ]
    parts += [
        "<h3>Batch sizes</h3>",
        table(formatted(_points_frame(sweep)), "sweep-points"),
        "<p>The command that ran the sweep:</p>",
        f"<pre>{escape(str(sweep.folder.manifest.get('command', '')))}</pre>",
        f"<p>The rest of this page is the ordinary report of the largest batch size, "
        f"{largest} (folder {escape(largest_set.path.name)}). Each batch size can be "
        f"reported on its own, e.g. <code>{escape(report_command)}</code>.</p>",
    ]
    return "\n".join(parts)


def sweep_subtitle(sweep: SweepData, data: ReportData) -> str:
    sizes = ", ".join(map(str, sweep.batch_sizes))
    return f"{sweep.folder.name}: batch sizes {sizes}; in detail below, {_subtitle(data)}"


def _by_batch_size(sweep: SweepData, column: str) -> pd.DataFrame:
    wide = sweep.pivot(column)
    wide.columns = [f"batch {b}" for b in wide.columns]
    return wide.rename_axis("variant").reset_index()


def _sweep_throughput_frame(sweep: SweepData) -> pd.DataFrame:
    """Median samples/s per variant and batch size, the gain from the smallest batch to the
    largest, and the roofline as a last row when it was calibrated."""
    frame = _by_batch_size(sweep, "median")
    first, last = sweep.batch_sizes[0], sweep.batch_sizes[-1]
    if first != last:
        gain = frame[f"batch {last}"] / frame[f"batch {first}"]
        frame[f"gain {first} → {last}"] = [f"{g:.3g}×" if pd.notna(g) else "" for g in gain]
    roof = sweep.roofline()
    if roof.notna().any():
        row = {"variant": "GEMM roofline", **{f"batch {b}": v for b, v in roof.items()}}
        frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
    return frame


def _points_frame(sweep: SweepData) -> pd.DataFrame:
    """One row per swept batch size: where its results are and how its suite ended."""
    results = dict(sweep.points)
    rows = []
    for entry in sweep.folder.manifest.get("points", []):
        size = int(entry["batch_size"])
        result_set = results.get(size)
        summary = result_set.summary if result_set is not None else None
        calibration = (result_set.manifest.get("calibration") or {}) if result_set else {}
        status = entry.get("exit_status")
        rows.append(
            {
                "batch size": size,
                "folder": entry.get("path"),
                "runs ok": (
                    f"{int((summary['status'] == 'ok').sum())}/{len(summary)}"
                    if summary is not None
                    else "not started"
                ),
                "peak GFLOP/s": calibration.get("peak_gflops"),
                "roofline samples/s": sweep.roofline().get(size),
                "run exit status": "not finished" if status is None else status,
            }
        )
    return pd.DataFrame(rows)


def document(title: str, body: Sequence[str]) -> str:
    """A complete page around `body` (HTML fragments already escaped); `title` is escaped."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        *body,
        f"<footer>Built {escape(_now())} from stored results only; nothing was re-run.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _subtitle(data: ReportData) -> str:
    items = []
    for s in data.sets:
        c = s.config
        opt = c.get("optimizer") or {}
        opt_text = ", ".join(f"{k}={v}" for k, v in opt.items()) if isinstance(opt, dict) else opt
        items.append(
            f"{s.name}: {c.get('dataset', '?')}, {c.get('epochs', '?')} epochs, batch "
            f"{c.get('batch_size', '?')}, hidden {c.get('hidden', '?')}, optimizer "
            f"({opt_text}), seeds {c.get('seeds', '?')}, device {c.get('device', '?')}, "
            f"run {s.manifest.get('created', '?')}"
        )
    return " | ".join(items)


def _verdict(findings: Iterable[Finding]) -> str:
    items = "".join(f"<li><b>{escape(f.topic)}.</b> {escape(f.sentence)}</li>" for f in findings)
    return f'<ul class="verdict">{items}</ul>'


def _figure(heading: str, caption: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    anchor = escape(path.stem)
    return (
        f'<figure id="fig-{anchor}"><h3>{escape(heading)}</h3>'
        f'<img src="data:image/png;base64,{data}" alt="{escape(heading)}">'
        f'<figcaption>{escape(caption)} <a href="{escape(path.name)}">PNG</a></figcaption>'
        "</figure>"
    )


def _runs_frame(data: ReportData) -> pd.DataFrame:
    # summary.csv's columns (of every set, in order), without the ones `combine` added.
    columns = [c for c in data.summary.columns if c not in ("label", "set", "block")]
    frame = data.summary.copy()
    frame["variant"] = frame["label"]  # the unique label, "name @ set" when combined
    return frame[columns]


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text the page shows (numbers via `format_number`)."""
    return frame.astype(object).map(format_number)


def table(frame: pd.DataFrame, table_id: str, bad: Sequence[str] = FAILED_STATUSES) -> str:
    """`frame` as an escaped HTML table; cells whose whole text is one of `bad` are marked."""
    html = frame.to_html(
        index=False, escape=True, na_rep="", border=0, table_id=table_id, classes="data"
    )
    # The cell text was escaped already, so matching a literal word cannot inject markup.
    pattern = "|".join(re.escape(b) for b in bad)
    html = re.sub(rf"<td>({pattern})</td>", r'<td class="status-bad">\1</td>', html)
    html = NUMBER_CELL.sub(r'<td class="num">\1</td>', html)
    html = LONG_CELL.sub(r'<td class="long">\1</td>', html)
    return f'<div class="scroll">{html}</div>'


def _set_section(name: str, manifest: Mapping[str, Any], heading: bool) -> str:
    parts = [f"<h3>Result set {escape(name)}</h3>"] if heading else []
    parts.append("<p>The exact command that produced these results:</p>")
    parts.append(f"<pre>{escape(str(manifest.get('command', '')))}</pre>")
    for title, key in (("Configuration", "config"), ("Environment", "environment")):
        rows = _flatten(manifest.get(key) or {})
        parts.append(f"<h4>{title}</h4>")
        parts.append(_key_values(rows))
    extra = {
        k: manifest.get(k) for k in ("created", "finished", "calibration", "tasks") if k in manifest
    }
    parts.append("<h4>Run, calibration and tasks</h4>")
    parts.append(_key_values(_flatten(extra)))
    return "\n".join(parts)


def _key_values(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<div class="scroll"><table class="kv">{body}</table></div>'


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as dotted keys; lists and scalars as JSON text."""
    if isinstance(obj, Mapping):
        rows: list[tuple[str, str]] = []
        for k, v in obj.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    return [(prefix, obj if isinstance(obj, str) else json.dumps(obj))]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

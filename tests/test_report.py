"""`mlpbench report`: the page and its figures, built from the committed result fixtures
(tests/fixtures/make_results.py), checked for content rather than looks."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from harness.cli.report import build_report
from harness.report.figures import FIGURES
from harness.results import storage
from harness.results.storage import ResultsError

FIXTURES = Path(__file__).parent / "fixtures" / "results"
SMALL_A, SMALL_B = FIXTURES / "small_a", FIXTURES / "small_b"
HOSTILE = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURE_FILES = {
    "loss.png",
    "cost_ladder.png",
    "parity.png",
    "accuracy.png",
    "final_accuracy.png",
    "throughput.png",
    "first_step.png",
    "time_to_target.png",
    "memory.png",
    "loc_vs_throughput.png",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report([SMALL_A], tmp_path_factory.mktemp("report") / "small_a")


@pytest.fixture(scope="module")
def page(report: Path) -> str:
    return report.read_text(encoding="utf-8")


class Tables(HTMLParser):
    """Cell texts of every <table id=...> on the page: {id: [[header...], [row...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.cell_classes: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
            self.cell_classes[self._table] = []
        elif self._table and tag == "tr":
            self.tables[self._table].append([])
            self.cell_classes[self._table].append([])
        elif self._table and tag in ("td", "th"):
            self._cell = []
            self.cell_classes[self._table][-1].append(a.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_tables(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


def assert_png(data: bytes) -> tuple[int, int]:
    """A PNG starts with its signature and an IHDR chunk holding width and height."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100
    return width, height


def test_every_figure_is_a_valid_png_beside_the_page(report: Path) -> None:
    written = {p.name for p in report.parent.glob("*.png")}
    assert written == FIGURE_FILES
    # every figure is drawn, but the outputs' losses of a task with several (the MLP has one
    # output; test_wide_deep_suite.py draws it) and the step anatomy, drawn only from a folder
    # with anatomy.csv (tests/test_anatomy.py)
    assert len(FIGURES) == len(FIGURE_FILES) + 2
    for name in FIGURE_FILES:
        path = report.parent / name
        assert_png(path.read_bytes())
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100


def test_every_figure_is_embedded_and_linked(report: Path, page: str) -> None:
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(FIGURE_FILES)
    for data in embedded:
        assert_png(base64.b64decode(data))
    linked = set(re.findall(r'<a href="([^"]+\.png)">', page))
    assert linked == FIGURE_FILES
    # Self-contained: nothing is fetched from a network.
    assert "http://" not in page and "https://" not in page


def test_every_variant_appears(page: str) -> None:
    summary = pd.read_csv(SMALL_A / "summary.csv")
    for variant in summary["variant"].unique():
        assert escape(variant) in page


def test_hostile_strings_are_escaped(page: str) -> None:
    assert "<script" not in page.lower()
    assert escape(HOSTILE) in page
    # The error message, the variant path and the environment all carried one.
    assert page.count(escape(HOSTILE)) >= 3


def test_run_table_numbers_match_summary_csv(page: str) -> None:
    rows = parse_tables(page).tables["runs"]
    header, body = rows[0], rows[1:]
    summary = pd.read_csv(SMALL_A / "summary.csv", dtype={"error": str})
    # every column of summary.csv, in order, and the later ones it predates (shown empty)
    later = storage.LATER_COLUMNS.difference(summary.columns)
    assert header == [c for c in storage.SUMMARY_COLUMNS if c in summary.columns or c in later]
    assert len(body) == len(summary)  # every run, failed ones included
    for cells, (_, expected) in zip(body, summary.iterrows(), strict=True):
        for column, cell in zip(header, cells, strict=True):
            value = expected.get(column, pd.NA)
            if pd.isna(value):
                assert cell == "", (column, cell)
            elif isinstance(value, str):
                assert cell == value
            elif isinstance(value, bool):
                assert cell == str(value)
            else:
                shown = float(cell.replace(",", ""))
                # Four significant digits, large values to the unit.
                assert shown == pytest.approx(value, rel=5e-4, abs=0.5 if value >= 1000 else 0)


def test_failed_run_is_shown_with_its_reason(page: str) -> None:
    tables = parse_tables(page)
    header, *body = tables.tables["runs"]
    classes = tables.cell_classes["runs"][1:]
    status, error = header.index("status"), header.index("error")
    failed = [(cells, cls) for cells, cls in zip(body, classes, strict=True) if cells[1] == "1"]
    failed = [(c, k) for c, k in failed if c[0] == "keras_sequential"]
    assert len(failed) == 1
    cells, cls = failed[0]
    assert cells[status] == "failed"
    assert cls[status] == "status-bad"
    assert "ValueError: shapes (128, 10) and (64,)" in cells[error]
    assert HOSTILE in cells[error]  # the parser unescaped it: the page held it as text
    # The per-variant table counts it, the verdict names it.
    variants = {r[0]: r for r in tables.tables["variants"][1:]}
    assert variants["keras_sequential"][2] == "2/3"
    assert "keras_sequential seed 1: failed: ValueError" in page


def test_variant_table_matches_the_statistics(page: str) -> None:
    header, *rows = parse_tables(page).tables["variants"]
    by_name = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    summary = pd.read_csv(SMALL_A / "summary.csv")
    ok = summary[summary["status"] == "ok"]
    for variant, group in ok.groupby("variant"):
        row = by_name[variant]
        assert float(row["test accuracy (mean)"]) == pytest.approx(
            group["test_accuracy"].mean(), rel=5e-4
        )
        assert float(row["first step s (median)"]) == pytest.approx(
            group["first_step_seconds"].median(), rel=5e-4
        )
    epochs = pd.read_csv(SMALL_A / "epochs.csv")
    windows = epochs[epochs["epoch"] >= 2].merge(ok[["variant", "seed"]])
    for variant, group in windows.groupby("variant"):
        shown = float(by_name[variant]["samples/s (median)"].replace(",", ""))
        assert shown == pytest.approx(group["samples_per_second"].median(), abs=0.5)


def test_verdict_says_which_test_and_the_numbers(page: str) -> None:
    verdict = page[page.index('id="verdict"') : page.index('id="figures"')]
    assert "Friedman test across 4 variants on 2 seeds shared by all" in verdict
    assert re.search(r"p = 0\.\d+", verdict)
    assert "not significant" in verdict
    assert "numpy_scratch is fastest" in verdict
    assert "Mann-Whitney U" in verdict
    assert "3 of 4 variants" not in verdict  # numpy_scratch is the reference, not compared
    assert "2 of 3 variants matched numpy_scratch" in verdict
    assert escape("mypkg.nets:Net" + HOSTILE) + " (max |Δloss|" in verdict
    # where the trajectories part, from summary.csv's parity_steps_within
    assert "identical for the first 0 steps" in verdict
    assert "The first step" in verdict


def test_environment_and_command_are_shown(page: str) -> None:
    manifest = json.loads((SMALL_A / "manifest.json").read_text())
    assert f"<pre>{escape(manifest['command'])}</pre>" in page
    assert "fixture-host" in page and "2.21.0" in page
    assert "mlpbench report" in page


def test_combined_sets_label_colliding_variants(tmp_path: Path) -> None:
    page = build_report([SMALL_A, SMALL_B], tmp_path / "ab").read_text(encoding="utf-8")
    header, *rows = parse_tables(page).tables["variants"]
    names = [r[0] for r in rows]
    assert "tf2_function @ small_a" in names and "tf2_function @ small_b" in names
    assert len(names) == 8


def test_single_seed_says_no_test_is_possible(tmp_path: Path) -> None:
    one = tmp_path / "one_seed"
    shutil.copytree(SMALL_A, one)
    for name in ("summary.csv", "epochs.csv", "steps.csv"):
        frame = pd.read_csv(one / name)
        frame[frame["seed"] == 0].to_csv(one / name, index=False)
    manifest = json.loads((one / "manifest.json").read_text())
    manifest["runs"] = [r for r in manifest["runs"] if r["seed"] == 0]
    (one / "manifest.json").write_text(json.dumps(manifest))
    page = build_report([one], tmp_path / "out").read_text(encoding="utf-8")
    assert "No significance test is possible" in page
    assert (tmp_path / "out" / "final_accuracy.png").is_file()


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such results directory"):
        build_report([tmp_path / "missing"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="not a results folder"):
        build_report([tmp_path / "empty"], tmp_path / "out")
    future = tmp_path / "future"
    shutil.copytree(SMALL_A, future)
    manifest = json.loads((future / "manifest.json").read_text())
    manifest["schema_version"] = 2
    (future / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsError, match="schema_version 2"):
        build_report([future], tmp_path / "out")


def test_identical_accuracies_need_no_test(tmp_path: Path) -> None:
    # What a parity run really produces: every level ends on the same test predictions.
    same = tmp_path / "same"
    shutil.copytree(SMALL_A, same)
    summary = pd.read_csv(same / "summary.csv")
    ok = summary["status"] == "ok"
    summary.loc[ok, "test_accuracy"] = 0.9 + 0.01 * summary.loc[ok, "seed"]
    summary.to_csv(same / "summary.csv", index=False)
    page = build_report([same], tmp_path / "out").read_text(encoding="utf-8")
    assert "Every variant reached exactly the same final test accuracy in every seed" in page


def test_a_suite_that_just_started_still_reports(tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    manifest = json.loads((SMALL_A / "manifest.json").read_text())
    manifest["finished"] = None
    for run in manifest["runs"]:
        run.update(status="pending", error=None)
    (started / "manifest.json").write_text(json.dumps(manifest))  # no CSV written yet
    page = build_report([started], tmp_path / "out").read_text(encoding="utf-8")
    assert "0 finished, 12 not run yet" in page
    header, *rows = parse_tables(page).tables["runs"]
    assert len(rows) == 12 and {r[header.index("status")] for r in rows} == {"pending"}


def test_verdict_reports_the_measured_harness_overhead(tmp_path: Path) -> None:
    measured = tmp_path / "measured"
    shutil.copytree(SMALL_A, measured)
    manifest = json.loads((measured / "manifest.json").read_text())
    manifest["overhead"] = {
        "variant": "numpy_scratch",
        "ratio_median": 0.987,
        "ratio_spread": {"q1": 0.975, "q3": 1.004},
        "rounds": 9,
    }
    (measured / "manifest.json").write_text(json.dumps(manifest))
    page = build_report([measured], tmp_path / "out").read_text(encoding="utf-8")
    assert "bare training loop, in the same process: 0.987, quartiles 0.975-1.004 over 9" in page
    # without a measurement there is no such sentence
    assert "bare training loop" not in build_report([SMALL_A], tmp_path / "plain").read_text()


def test_parity_is_judged_by_the_tolerance_and_reference_the_manifest_stores(tmp_path):
    """An old folder is judged by what it was run with, not by today's constants: the same
    differences pass at 1e-5 (float32's) and fail at 1e-9 (a float64 folder's)."""
    from harness.report.data import combine
    from harness.report.verdict import verdict
    from harness.results.reader import read_results

    def parity_text(folder: Path) -> str:
        findings = verdict(combine([read_results(folder)]))
        return next(f.sentence for f in findings if f.topic == "Parity")

    strict = tmp_path / "strict"
    shutil.copytree(SMALL_A, strict)
    manifest = json.loads((strict / "manifest.json").read_text())
    assert "within 1e-05" in parity_text(SMALL_A)
    manifest["config"]["parity_tolerance"] = 1e-9
    (strict / "manifest.json").write_text(json.dumps(manifest))
    text = parity_text(strict)
    assert "did not" in text and "within 1e-05" not in text


def test_the_verdict_names_a_variant_whose_harness_overhead_is_below_two_percent(tmp_path):
    """--overhead all: a ratio under 0.98 is named, all at or above it are said to be."""
    from harness.report.data import combine
    from harness.report.verdict import verdict
    from harness.results.reader import read_results

    def harness_text(ratios: dict[str, float]) -> str:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        shutil.copytree(SMALL_A, folder)
        summary = pd.read_csv(folder / "summary.csv")
        summary["harness_overhead"] = summary["variant"].map(ratios)
        summary.to_csv(folder / "summary.csv", index=False)
        findings = verdict(combine([read_results(folder)]))
        return next(f.sentence for f in findings if f.topic == "Harness")

    variants = pd.read_csv(SMALL_A / "summary.csv")["variant"].unique()
    fine = harness_text(dict.fromkeys(variants, 0.995))
    assert "all at 0.98 or above" in fine
    slow = harness_text({**dict.fromkeys(variants, 0.995), variants[-1]: 0.9})
    assert f"below 0.98: {variants[-1]} 0.900" in slow

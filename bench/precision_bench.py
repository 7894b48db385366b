"""``[model] precision`` on the real SHARP network: peak memory, time and deviation from fp32.

The real network needs ml-sharp, which the project does not depend on, so this takes the path
of a scratch venv holding it (``python -m bench.precision_bench --venv /tmp/sharp-venv``) and
skips with a message and exit status 0 when there is none. The weights are random but of the
real layout (ml-sharp's ``create_predictor``, seeded): enough for memory and for numerical
deviation, which depend on the architecture, not on trained values.

Each precision runs one photo in a fresh process, one after another (never in parallel: the
machine's memory is shared), with the allocator setting the worker gets on Linux; the child
reports its own peak resident size (``ru_maxrss``) and the Gaussians, and this process
compares each half precision with fp32. ``--limit-minutes``
stops a precision that runs too long (fp16 on a CPU without native fp16) and reports the peak
so far, read from ``/proc``; ``--keep DIR`` keeps the checkpoint and figures between runs, so
``--precisions bf16`` today and ``--precisions fp16`` later compare with the same fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PRECISIONS = ("fp32", "fp16", "bf16")
QUANTILES = (50, 90, 99, 100)
WRITE_CHECKPOINT = (
    "import sys, torch\n"
    "from sharp.models import create_predictor, PredictorParams\n"
    "torch.manual_seed(int(sys.argv[2]))\n"
    "torch.save(create_predictor(PredictorParams()).state_dict(), sys.argv[1])\n"
)


def _venv_python(venv: Path) -> Path | None:
    """The venv's interpreter if it can import ml-sharp, else None."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run([str(python), "-c", "import sharp.models"], capture_output=True, timeout=300)
    return python if probe.returncode == 0 else None


def child(precision: str, checkpoint: Path, photo: Path, out: Path) -> dict[str, Any]:
    """One photo through the worker's own loading, inference and unprojection (in the venv)."""
    from sharpmld.worker.decode import load_image
    from sharpmld.worker.geometry import unproject
    from sharpmld.worker.model import load_model
    from sharpmld.worker.pipeline import infer

    start = time.perf_counter()
    loaded = load_model("sharp", checkpoint, "cpu", precision)
    loaded_at = time.perf_counter()
    image = load_image(photo, max_pixels_side=8000)
    g = unproject(infer(loaded, image), image.f_px, image.width, image.height)
    done = time.perf_counter()
    np.savez(out, means=g.means, colors=g.colors, opacities=g.opacities)
    return {
        "precision": precision,
        "load_s": round(loaded_at - start, 2),
        "photo_s": round(done - loaded_at, 2),
        # Linux reports ru_maxrss in KiB: the same high-water mark as /proc's VmHWM.
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20), 3),
    }


def _percentiles(values: np.ndarray) -> list[float]:
    return [float(f"{v:.3g}") for v in np.percentile(values, QUANTILES)]


def deviation(full: Any, half: Any) -> dict[str, list[float]]:
    """Percentiles (p50, p90, p99, max) of the absolute error of positions, colours and
    opacities, and of the relative error of positions (|Δ| / |x|)."""
    dm = np.linalg.norm(half["means"] - full["means"], axis=1)
    return {
        "positions_abs": _percentiles(dm),
        "positions_rel": _percentiles(dm / np.maximum(np.linalg.norm(full["means"], axis=1), 1e-12)),
        "colors_abs": _percentiles(np.abs(half["colors"] - full["colors"]).ravel()),
        "opacities_abs": _percentiles(np.abs(half["opacities"] - full["opacities"])),
    }


def _vmhwm_kib(pid: int) -> int | None:
    """The peak resident size Linux has recorded for ``pid`` so far (``VmHWM``), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_child(
    python: Path, precision: str, folder: Path, env: dict[str, str], limit_s: float
) -> dict[str, Any]:
    """One precision in a fresh process, stopped after ``limit_s`` (0: never) with its peak so
    far, which this process reads from ``/proc`` every 2 s while it runs."""
    out = folder / f"{precision}.npz"
    out.unlink(missing_ok=True)
    args = ["child", precision, str(folder / "random-sharp.pt"), str(folder / "photo.png"), str(out)]
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(python), "-m", "bench.precision_bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = 0
    while True:
        try:
            stdout, stderr = proc.communicate(timeout=2)
            break
        except subprocess.TimeoutExpired:
            seen = max(seen, _vmhwm_kib(proc.pid) or 0)
            if limit_s and time.monotonic() - start > limit_s:
                proc.kill()
                proc.communicate()
                return {
                    "precision": precision,
                    "stopped_after_s": round(time.monotonic() - start),
                    "peak_rss_gib_so_far": round(seen / (1 << 20), 3),
                }
    if proc.returncode != 0:
        return {"precision": precision, "error": stderr.strip().splitlines()[-1:]}
    row: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return row


def run(
    venv: Path, seed: int, side: int, precisions: list[str], limit_s: float, keep: Path | None
) -> dict[str, Any] | None:
    """Each precision in turn; with ``keep``, the checkpoint, photo, Gaussians and rows stay
    there, so precisions measured in separate invocations are compared with the same fp32."""
    python = _venv_python(venv)
    if python is None:
        return None
    with tempfile.TemporaryDirectory(prefix="precision-bench-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        return _run_in(python, folder, seed, side, precisions, limit_s)


def _run_in(
    python: Path, folder: Path, seed: int, side: int, precisions: list[str], limit_s: float
) -> dict[str, Any]:
    from PIL import Image

    from bench.photos import photo as make_photo
    from sharpmld.supervisor.spawn import MMAP_THRESHOLD, MMAP_THRESHOLD_ENV

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if sys.platform == "linux":  # the worker's allocator setting (sharpmld.supervisor.spawn)
        env.setdefault(MMAP_THRESHOLD_ENV, MMAP_THRESHOLD)
    tag = {"seed": seed, "photo": f"{side * 4 // 3}x{side}"}
    rows_file = folder / "rows.json"
    earlier = json.loads(rows_file.read_text()) if rows_file.exists() else {}
    if earlier.get("tag") != tag:
        earlier = {"tag": tag, "rows": {}}
        Image.fromarray(make_photo(side * 4 // 3, side, seed)).save(folder / "photo.png")
        checkpoint = [str(folder / "random-sharp.pt"), str(seed)]
        subprocess.run([str(python), "-c", WRITE_CHECKPOINT, *checkpoint], check=True, env=env)
    rows: dict[str, dict[str, Any]] = earlier["rows"]
    for precision in precisions:
        rows[precision] = run_child(python, precision, folder, env, limit_s)
        rows_file.write_text(json.dumps({"tag": tag, "rows": rows}, indent=2) + "\n")
    full_row = rows.get("fp32", {})
    full = np.load(folder / "fp32.npz") if "peak_rss_gib" in full_row else None
    for precision in PRECISIONS[1:]:
        row = rows.get(precision, {})
        if full is not None and "peak_rss_gib" in row:
            row["ratio_to_fp32"] = round(row["peak_rss_gib"] / full_row["peak_rss_gib"], 3)
            row["deviation"] = deviation(full, np.load(folder / f"{precision}.npz"))
        elif full is not None and "peak_rss_gib_so_far" in row:
            row["ratio_to_fp32_so_far"] = round(row["peak_rss_gib_so_far"] / full_row["peak_rss_gib"], 3)
    return {**tag, "torch": _torch_version(python, env), "quantiles": QUANTILES, "rows": rows}


def _torch_version(python: Path, env: dict[str, str]) -> str:
    probe = [str(python), "-c", "import torch; print(torch.__version__)"]
    return subprocess.run(probe, capture_output=True, text=True, env=env).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["child"]:
        _, precision, checkpoint, photo, out = args
        print(json.dumps(child(precision, Path(checkpoint), Path(photo), Path(out))))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.precision_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--venv", type=Path, required=True, help="a scratch venv with ml-sharp installed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", type=int, default=768, help="height of the synthetic photo")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    parser.add_argument(
        "--precisions", default=",".join(PRECISIONS), help="which to run, in this order (comma-separated)"
    )
    parser.add_argument(
        "--limit-minutes",
        type=float,
        default=0,
        help="stop a precision after this long, keeping its peak so far",
    )
    parser.add_argument(
        "--keep", type=Path, help="a folder for the checkpoint and results, reused across runs"
    )
    ns = parser.parse_args(args)
    precisions = [p for p in ns.precisions.split(",") if p]
    if not set(precisions) <= set(PRECISIONS):
        parser.error(f"--precisions takes {', '.join(PRECISIONS)}")
    results = run(ns.venv, ns.seed, ns.side, precisions, ns.limit_minutes * 60, ns.keep)
    if results is None:
        print(f"precision bench skipped: {ns.venv} has no Python that imports ml-sharp (sharp.models)")
        return 0
    text = json.dumps(results, indent=2)
    print(text)
    if ns.out:
        ns.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

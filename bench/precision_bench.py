"""``[model] precision`` on the real SHARP network: peak memory, time and deviation from fp32.

The real network needs ml-sharp, which the project does not depend on, so this takes the path
of a scratch venv holding it (``python -m bench.precision_bench --venv /tmp/sharp-venv``) and
skips with a message and exit status 0 when there is none. The weights are random but of the
real layout (ml-sharp's ``create_predictor``, seeded): enough for memory and for numerical
deviation, which depend on the architecture, not on trained values.

Each precision runs one photo in a fresh process, one after another (never in parallel: the
machine's memory is shared); the child reports its own peak resident size (``ru_maxrss``) and
the Gaussians, and this process compares each half precision with fp32.
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
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20), 3),
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


def run(venv: Path, seed: int, side: int) -> dict[str, Any] | None:
    python = _venv_python(venv)
    if python is None:
        return None
    from PIL import Image

    from bench.photos import photo as make_photo

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="precision-bench-") as tmp:
        folder = Path(tmp)
        checkpoint, photo = folder / "random-sharp.pt", folder / "photo.png"
        Image.fromarray(make_photo(side * 4 // 3, side, seed)).save(photo)
        subprocess.run([str(python), "-c", WRITE_CHECKPOINT, str(checkpoint), str(seed)], check=True, env=env)
        rows: dict[str, dict[str, Any]] = {}
        for precision in PRECISIONS:
            out = folder / f"{precision}.npz"
            args = ["child", precision, str(checkpoint), str(photo), str(out)]
            proc = subprocess.run(
                [str(python), "-m", "bench.precision_bench", *args], capture_output=True, text=True, env=env
            )
            if proc.returncode != 0:
                rows[precision] = {"precision": precision, "error": proc.stderr.strip().splitlines()[-1:]}
                continue
            rows[precision] = json.loads(proc.stdout.strip().splitlines()[-1])
        full = np.load(folder / "fp32.npz") if "error" not in rows["fp32"] else None
        for precision in PRECISIONS[1:]:
            row = rows[precision]
            if full is not None and "error" not in row:
                row["ratio_to_fp32"] = round(row["peak_rss_gb"] / rows["fp32"]["peak_rss_gb"], 3)
                row["deviation"] = deviation(full, np.load(folder / f"{precision}.npz"))
    return {"seed": seed, "photo": f"{side * 4 // 3}x{side}", "quantiles": QUANTILES, "rows": rows}


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
    ns = parser.parse_args(args)
    results = run(ns.venv, ns.seed, ns.side)
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

"""Targets 2 and 3: writing ``.splat`` and ``.ply`` for a SHARP-sized scene."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

from bench.baseline_formats import splat_per_row, write_ply_conventional, write_splat_per_row
from bench.common import SHARP_GAUSSIANS, Figure, median, timed
from bench.scene import F_PX, HEIGHT, WIDTH, ndc_scene
from sharpmld.core.units import MB
from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import to_vertex_records, write_ply
from sharpmld.formats.splat import RECORD_SIZE, splat_bytes, write_splat
from sharpmld.worker.geometry import unproject

SPLAT_TARGET_SECONDS = 0.6
SPLAT_TARGET_MEMORY = 2.0  # × output size
PLY_TARGET_SECONDS = 0.5


def scene(n: int) -> tuple[Gaussians, SceneMeta]:
    return unproject(ndc_scene(n, seed=1), F_PX, WIDTH, HEIGHT), SceneMeta(F_PX, WIDTH, HEIGHT)


def peak_extra_bytes(fn: object) -> int:
    """Peak bytes allocated (numpy buffers included) while ``fn()`` runs, above the start."""
    assert callable(fn)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


def run_splat(quick: bool) -> list[Figure]:
    n = 20_000 if quick else SHARP_GAUSSIANS
    subset = 1_000 if quick else 20_000
    g, _ = scene(n)
    records = to_vertex_records(g)
    with tempfile.TemporaryDirectory(prefix="bench-splat-") as tmp:
        path = Path(tmp) / "scene.splat"
        runs, _ = timed(lambda: write_splat(path, records), 3 if quick else 7, warmup=1)
        size = path.stat().st_size
        assert size == n * RECORD_SIZE
        encode_runs, _ = timed(lambda: to_vertex_records(g), 3 if quick else 5)
        extra = peak_extra_bytes(lambda: write_splat(path, records))
        part = records[:subset]
        identical = splat_per_row(part) == bytes(splat_bytes(part))
        base_runs, _ = timed(lambda: write_splat_per_row(Path(tmp) / "row.splat", part), 1 if quick else 3)
    value = median(runs)
    base = median(base_runs) * n / subset
    memory_ratio = extra / size
    passed = value <= SPLAT_TARGET_SECONDS and memory_ratio <= SPLAT_TARGET_MEMORY and identical
    return [
        Figure(
            name="splat_write",
            group="splat",
            title=f".splat from the in-memory vertex table, {n:,} Gaussians, incl. write+fsync",
            value=value,
            unit="s",
            baseline=base,
            baseline_label=f"per-row convert.py rules, {subset:,} rows timed, extrapolated ×{n / subset:.1f}",
            ratio=base / value,
            target=f"≤ {SPLAT_TARGET_SECONDS} s, extra memory ≤ {SPLAT_TARGET_MEMORY:g}× output",
            passed=passed,
            runs=runs,
            notes=(
                f"peak extra memory {extra / MB:.1f} MB = {memory_ratio:.2f}× the {size / MB:.1f} MB output; "
                f"byte-identical to the per-row rules on {subset:,} rows: {'yes' if identical else 'NO'}; "
                f"encoding the vertex table (shared with .ply) adds {median(encode_runs):.3f} s"
            ),
            extra={
                "gaussians": n,
                "output_bytes": size,
                "peak_extra_bytes": extra,
                "peak_extra_ratio": memory_ratio,
                "byte_identical_subset": identical,
                "subset_rows": subset,
                "baseline_subset_runs": base_runs,
                "encode_vertex_table_s": median(encode_runs),
            },
        ),
        Figure(
            name="splat_peak_memory",
            group="splat",
            title=".splat write: peak extra memory / output size",
            value=memory_ratio,
            unit="×",
            target=f"≤ {SPLAT_TARGET_MEMORY:g}×",
            passed=memory_ratio <= SPLAT_TARGET_MEMORY,
            ratio=None,
            ratio_label="",
            notes=f"{extra / MB:.1f} MB extra for a {size / MB:.1f} MB file (tracemalloc, numpy buffers)",
            extra={"peak_extra_bytes": extra, "output_bytes": size},
        ),
    ]


def run_ply(quick: bool) -> list[Figure]:
    n = 20_000 if quick else SHARP_GAUSSIANS
    g, meta = scene(n)
    with tempfile.TemporaryDirectory(prefix="bench-ply-") as tmp:
        path, conventional = Path(tmp) / "fast.ply", Path(tmp) / "conventional.ply"
        runs, _ = timed(
            lambda: write_ply(path, to_vertex_records(g), meta, "ml-sharp"), 3 if quick else 7, warmup=1
        )
        records = to_vertex_records(g)
        write_only, _ = timed(lambda: write_ply(path, records, meta, "ml-sharp"), 3 if quick else 5)
        base_runs, _ = timed(lambda: write_ply_conventional(conventional, g, meta), 1 if quick else 3)
        identical = path.read_bytes() == conventional.read_bytes()
        size = path.stat().st_size
    value, base = median(runs), median(base_runs)
    return [
        Figure(
            name="ply_write",
            group="ply",
            title=f".ply from in-memory Gaussians, {n:,} Gaussians, encode + write + fsync",
            value=value,
            unit="s",
            baseline=base,
            baseline_label="ml-sharp save_ply way: list(map(tuple)) + plyfile",
            ratio=base / value,
            target=f"≤ {PLY_TARGET_SECONDS} s",
            passed=value <= PLY_TARGET_SECONDS,
            runs=runs,
            notes=(
                f"{size / MB:.1f} MB; of which writing the encoded table {median(write_only):.3f} s; "
                f"byte-identical to the plyfile file: {'yes' if identical else 'NO'}"
            ),
            extra={
                "gaussians": n,
                "output_bytes": size,
                "write_only_s": median(write_only),
                "baseline_runs": base_runs,
                "byte_identical_to_baseline": identical,
            },
        )
    ]

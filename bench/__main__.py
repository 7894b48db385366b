"""``python -m bench [--quick] [--only NAME[,NAME]] [--out FILE]``: the performance suite.

Runs every benchmark (or the groups named), prints a table of each figure beside its
baseline, the ratio, the target and whether it is met, and writes the same numbers as JSON
(default ``bench/results.json``; ``bench/results-quick.json`` with ``--quick``). With
``--only``, the named groups replace theirs in an existing file of the same mode.
Exit status: 0 when every benchmark ran (targets missed or not), 1 when one crashed, 2 on
bad usage; ``--strict`` also exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO, Figure, background_cores, fmt_value, load_average, machine, wait_for_quiet

GROUPS: dict[str, tuple[str, ...]] = {
    "geometry": ("unproject",),
    "splat": ("splat_write", "splat_peak_memory"),
    "ply": ("ply_write",),
    "pipeline": ("pipeline_job", "pipeline_job_defaults"),
    "worker": ("worker_ready_warm", "worker_peak_rss", "worker_ready_cold", "worker_start_full"),
    "daemon": (
        "claim_latency_p95",
        "claim_latency_spaced_p95",
        "daemon_idle_cpu",
        "daemon_idle_rss",
        "inbox_scan",
        "startup_recovery",
    ),
    "cli": ("cli_help", "cli_status"),
    "web": ("serve_queue_page", "serve_idle_cpu", "serve_idle_rss"),
    "viewer": ("viewer_first_frame", "viewer_loaded", "viewer_orbit_frame"),
    "cluster": (
        "cluster_scaling",
        "cluster_publish_to_start",
        "cluster_commit_to_seen",
        "cluster_down_idle_cpu",
        "cluster_down_idle_rss",
    ),
}
OPT_IN = ("viewer", "cluster")
"""Groups run only when named with ``--only``: the viewer bench installs its peers from npm and
drives the system Chromium on software WebGL, and the cluster bench runs 800 photos of 2 s
through up to 8 workers, which take minutes."""
FIGURES: tuple[str, ...] = tuple(
    name for group, names in GROUPS.items() if group not in OPT_IN for name in names
)
ALL_FIGURES: tuple[str, ...] = tuple(name for names in GROUPS.values() for name in names)


def _runner(group: str) -> Callable[[bool], list[Figure]]:
    """The group's ``run(quick)``, imported only when it runs (torch is slow to import)."""
    if group == "web":
        from bench import serve_bench

        return serve_bench.run
    if group == "geometry":
        from bench import geometry_bench

        return geometry_bench.run
    if group == "splat":
        from bench import formats_bench

        return formats_bench.run_splat
    if group == "ply":
        from bench import formats_bench

        return formats_bench.run_ply
    if group == "pipeline":
        from bench import pipeline_bench

        return pipeline_bench.run
    if group == "worker":
        from bench import worker_bench

        return worker_bench.run
    if group == "daemon":
        from bench import daemon_bench

        return daemon_bench.run
    if group == "viewer":
        from bench import viewer_bench

        return viewer_bench.run
    if group == "cluster":
        from bench import cluster_bench

        return cluster_bench.run
    from bench import cli_bench

    return cli_bench.run


def table(figures: list[dict[str, Any]]) -> str:
    """A Markdown table of the figures, then their notes."""
    rows = [
        "| figure | measured | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for f in figures:
        ratio = "—" if f.get("ratio") is None else f"{f['ratio']:.2f}{f['ratio_label']}".replace("× ×", "×")
        base = fmt_value(f.get("baseline"), f["unit"])
        if f.get("baseline_label"):
            base = f"{base} ({f['baseline_label']})"
        met = {True: "✅ yes", False: "❌ **no**", None: "—"}[f.get("passed")]
        if f.get("error"):
            met = "💥 error"
        rows.append(
            f"| `{f['name']}` {f['title']} | {fmt_value(f['value'], f['unit'])} | {base} | {ratio} | "
            f"{f['target']} | {met} |"
        )
        if f.get("notes") or f.get("error"):
            notes.append(f"- `{f['name']}`: {f.get('error') or f['notes']}")
    return "\n".join([*rows, "", *notes])


def summary(results: dict[str, Any]) -> str:
    m = results["machine"]
    return (
        f"{results['mode']} run, {results['date']}: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, "
        f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}; {results.get('seconds', 0):.0f} s\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole suite in seconds")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"groups: {', '.join(GROUPS)} ({', '.join(OPT_IN)} only when named)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results file (JSON)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        metavar="S",
        help="before each group, wait up to S seconds for other processes to leave the CPUs "
        "(default 120, 0 with --quick)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--show", action="store_true", help="print the table of an existing results file")
    args = parser.parse_args(argv)
    only = [name for item in args.only for name in item.split(",") if name]
    unknown = [name for name in only if name not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    groups = only or [g for g in GROUPS if g not in OPT_IN]
    mode = "quick" if args.quick else "full"
    out = args.out or REPO / "bench" / ("results-quick.json" if args.quick else "results.json")
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 120.0)
    if args.show:
        shown = json.loads(out.read_text())
        print(summary(shown))
        print(table([f for f in shown["figures"].values() if f["group"] in groups]))
        return 0

    started = time.time()
    results: dict[str, Any] = {
        "mode": mode,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": load_average(),
        "figures": {},
    }
    if only and out.exists():
        previous = json.loads(out.read_text())
        if previous.get("mode") == mode:
            results["figures"] = previous.get("figures", {})
    crashed = False
    for group in groups:
        background = wait_for_quiet(quiet_wait) if quiet_wait > 0 else background_cores(0.2)
        t0 = time.perf_counter()
        print(f"[bench] {group} …", file=sys.stderr, flush=True)
        try:
            figures = [f.to_json() for f in _runner(group)(args.quick)]
        except Exception as exc:
            crashed = True
            traceback.print_exc()
            figures = [
                Figure(name, group, name, float("nan"), "", target="", notes="").to_json()
                | {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
                for name in GROUPS[group]
            ]
        seconds = time.perf_counter() - t0
        measured_at = datetime.now(UTC).isoformat(timespec="seconds")
        for f in figures:
            f["measured_at"] = measured_at
            f["group_seconds"] = round(seconds, 1)
            f["background_cores_before"] = round(background, 2)
            results["figures"][f["name"]] = f
        print(f"[bench] {group} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    results["load_average_end"] = load_average()
    results["seconds"] = round(time.time() - started, 1)
    ordered = {name: results["figures"][name] for name in ALL_FIGURES if name in results["figures"]}
    results["figures"] = ordered
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float, allow_nan=True) + "\n")
    print("\n" + summary(results))
    print(table(list(ordered.values())))
    print(f"\nresults written to {out}")
    missed = [f["name"] for f in ordered.values() if f.get("passed") is False]
    if crashed:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())

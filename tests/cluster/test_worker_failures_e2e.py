"""Photos that fail in the real cluster worker: a bad image, and a photo that kills the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sharpmld.cluster.broker import Broker, Settings
from sharpmld.clusterworker.records import FAILED_FILE, LOST_FILE, RESULT_FILE
from tests.cluster.conftest import NatsServer
from tests.cluster.standin import (
    WAIT,
    Worker,
    attempts_of,
    committed_by,
    make_job,
    publish,
    start_workers,
)
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import wait_for

MAGENTA = (255, 0, 255)  # the tiny model kills its own process on it
LOST = "the model worker was lost on the photo; handed back"


def test_a_photo_that_fails_in_the_model_is_committed_with_its_reason(
    cluster_root: Path, nats_server: NatsServer, intake: Broker, workers: list[Worker]
) -> None:
    start_workers(cluster_root, nats_server.url, workers, 1)
    job, _ = make_job(cluster_root, "mixed", 1)
    corpus.write_truncated_jpeg(job / "broken.jpg")
    publish(intake, cluster_root, job)
    wait_for(lambda: committed_by(job, "broken.jpg") and committed_by(job, "img000.png"), 120, "both commits")
    bad = committed_by(job, "broken.jpg")
    failed = json.loads((job / "attempts" / "broken.jpg" / str(bad) / FAILED_FILE).read_text())
    assert failed["code"] == "decode_failed" and failed["message"]
    assert failed["made_by"]["photo"] == "broken.jpg" and failed["made_by"]["host_id"]
    good = committed_by(job, "img000.png")
    assert (job / "attempts" / "img000.png" / str(good) / RESULT_FILE).is_file()
    wait_for(lambda: intake.pending().result(WAIT)["ack_pending"] == 0, 30, "both photos acked")


def test_a_photo_that_kills_the_model_is_never_acked_and_stops_at_max_deliver(
    cluster_root: Path, nats_server: NatsServer, intake: Broker, workers: list[Worker]
) -> None:
    (worker,) = start_workers(cluster_root, nats_server.url, workers, 1)
    poison_job, _ = make_job(cluster_root, "poison", 0)
    rgb = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    rgb[0, 0] = MAGENTA
    corpus.write_png(poison_job / "poison.png", rgb)
    publish(intake, cluster_root, poison_job)  # max_deliver is 5 (cluster_root's configuration)
    wait_for(lambda: len(worker.logged(LOST)) >= 5, 240, lambda: worker.text()[-3000:])
    wait_for(
        lambda: (
            {k: v for k, v in intake.pending().result(WAIT).items() if k != "redelivered"}
            == {"pending": 0, "ack_pending": 0}
        ),
        60,
        lambda: f"the broker to give the photo up: {intake.pending().result(WAIT)}",
    )
    assert committed_by(poison_job, "poison.png") is None
    left = attempts_of(poison_job, "poison.png")
    assert len(left) == 5, "each dead model's attempt says why, for the failure report"
    for name in left:
        assert [p.name for p in (poison_job / "attempts" / "poison.png" / name).iterdir()] == [LOST_FILE]
    job, _ = make_job(cluster_root, "after", 1, seed=3)
    publish(intake, cluster_root, job)  # the worker, its model restarted, goes on
    wait_for(lambda: committed_by(job, "img000.png"), 120, lambda: worker.text()[-3000:])
    assert len(worker.logged(LOST)) == 5
    assert all(line["delivered"] == n for n, line in enumerate(worker.logged(LOST), start=1))


def test_with_the_broker_unbounded_the_workers_give_a_poison_photo_up_after_max_deliver(
    cluster_root: Path, nats_server: NatsServer, checkpoint: Path, workers: list[Worker]
) -> None:
    harness.write_config(cluster_root, checkpoint, cluster={"ack_wait_seconds": 3.0, "max_deliver": 2})
    intake = Broker(Settings(nats_server.url, ack_wait=3.0, max_deliver=-1))  # naks cost nothing
    intake.start().result(WAIT)
    try:
        (worker,) = start_workers(cluster_root, nats_server.url, workers, 1)
        job, _ = make_job(cluster_root, "poison", 0)
        rgb = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
        rgb[0, 0] = MAGENTA
        corpus.write_png(job / "poison.png", rgb)
        publish(intake, cluster_root, job)
        winner = wait_for(lambda: committed_by(job, "poison.png"), 240, lambda: worker.text()[-3000:])
        failed = json.loads((job / "attempts" / "poison.png" / str(winner) / FAILED_FILE).read_text())
        assert failed["code"] == "engine_crash" and "2 times" in failed["message"]
        assert len(worker.logged(LOST)) == 2 and worker.logged("photo given up after killing its workers")
        wait_for(lambda: intake.pending().result(WAIT)["ack_pending"] == 0, 30, "the failure acked")
    finally:
        intake.stop()

"""The cluster worker's loop, stepped by hand on a fake clock with a fake broker and model."""

from __future__ import annotations

import json
import os
from concurrent.futures import Future
from pathlib import Path

from sharpmld.cluster.commit import Attempt, commit_marker, committed
from sharpmld.clusterworker.records import FAILED_FILE, LOST_FILE, RESULT_FILE, write_lost
from sharpmld.clusterworker.status import status_path
from sharpmld.supervisor import supervisor as sv
from tests.clusterworker.fakes import ACK_WAIT, Rig, make_rig

ATTEMPT = f"host1.{os.getpid()}.1"


def warm(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path)
    rig.model.become_ready()
    rig.step()
    return rig


def test_no_photo_is_fetched_before_the_model_is_warm(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.step(1.0)
    assert rig.broker.fetches == []
    rig.model.become_ready()
    rig.step()
    assert len(rig.broker.fetches) == 1


def test_a_photo_is_made_in_its_attempt_folder_and_acked_only_after_the_commit(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    (request,) = rig.model.sent
    folder = job / "attempts" / "img0.png" / ATTEMPT
    assert request.job_dir == str(folder) and folder.is_dir()
    assert request.images[0].src == str(job / "img0.png") and request.formats == ("ply",)
    assert photo.verbs == [] and committed(job, "img0.png") is None
    rig.model.finish_images()
    rig.step()
    assert photo.verbs == ["ack"]
    assert committed(job, "img0.png") == ATTEMPT
    record = json.loads((folder / RESULT_FILE).read_text())
    assert record["source"] == "img0.png" and record["made_by"]["host_id"] == "host1"
    rig.step()
    assert len(rig.broker.fetches) == 2, "the next photo is asked for once this one is answered"


def test_a_won_commit_is_announced_and_the_next_photo_asked_for_in_the_same_step(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    assert rig.broker.notices == []
    rig.model.finish_images()
    rig.step()
    assert photo.verbs == ["ack"] and committed(job, "img0.png") == ATTEMPT
    assert rig.broker.notices == [(job.name, "img0.png")]  # the intake's finisher looks at once
    # No step (a wait of up to a second in run()) between the answer and the next fetch.
    assert rig.worker.held is None and len(rig.broker.fetches) == 2


def test_heartbeats_go_out_every_third_of_ack_wait_while_the_photo_is_held(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    photo = rig.hand_out(rig.task(rig.job()))
    rig.step(ACK_WAIT / 3 - 0.5)
    assert photo.verbs == []
    rig.step(1.0)
    assert photo.verbs == ["in_progress"]
    rig.step(ACK_WAIT / 3)
    assert photo.verbs == ["in_progress"] * 2
    status = json.loads(status_path(rig.root / ".sharpmld", "host1").read_text())
    assert status["current_photo"]["photo"] == "img0.png" and status["last_heartbeat"] is not None
    assert status["model_warm"] is True


def test_a_payload_that_is_no_task_is_terminated(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    photo = rig.hand_out(b"not a task")
    assert photo.verbs == ["term"] and rig.model.sent == []


def test_a_task_with_options_this_worker_does_not_know_is_terminated(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job, colourise=True))
    bad_format = rig.hand_out(rig.task(job, formats=["obj"]))
    assert photo.verbs == ["term"] and bad_format.verbs == ["term"]
    assert rig.model.sent == [] and not (job / "attempts").exists()


def test_a_photo_whose_job_left_working_is_terminated(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    gone = rig.root / "working" / "job-gone"
    photo = rig.hand_out(rig.task(gone))
    assert photo.verbs == ["term"] and not gone.exists(), "a job folder was made up"


def test_a_photo_that_fails_in_the_model_is_committed_as_a_failure(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    rig.model.finish_images(ok=False, code="decode_failed")
    rig.step()
    assert photo.verbs == ["ack"] and committed(job, "img0.png") == ATTEMPT
    failed = json.loads((job / "attempts" / "img0.png" / ATTEMPT / FAILED_FILE).read_text())
    assert failed["code"] == "decode_failed" and failed["message"] == "the worker says no"


def test_a_full_disk_hands_the_photo_back_uncommitted(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    rig.model.finish_images(ok=False, code="disk_full")
    rig.step()
    assert photo.verbs == ["nak"] and committed(job, "img0.png") is None
    assert not (job / "attempts" / "img0.png" / ATTEMPT).exists()


def test_a_model_worker_lost_on_the_photo_gets_no_ack_and_leaves_only_why(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    (job / "attempts" / "img0.png" / ATTEMPT / "img0.ply").write_bytes(b"half")
    rig.model.die()
    rig.step()
    assert "ack" not in photo.verbs and photo.verbs == ["nak"]
    assert committed(job, "img0.png") is None
    folder = job / "attempts" / "img0.png" / ATTEMPT
    assert sorted(p.name for p in folder.iterdir()) == [LOST_FILE], "its outputs were left"
    lost = json.loads((folder / LOST_FILE).read_text())
    assert lost["reason"] == "crash" and lost["detail"] == "exit code -9"
    fetches = len(rig.broker.fetches)
    rig.step(5.0)
    assert len(rig.broker.fetches) == fetches, "fetched while the model is down"
    rig.model.become_ready()
    rig.step()
    assert len(rig.broker.fetches) == fetches + 1


def test_a_commit_lost_to_another_attempt_removes_its_files_and_does_nothing_else(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    other = Attempt(job, "img0.png", "host2.77.2")
    other.open()
    assert other.commit()
    rig.model.finish_images()
    rig.step()
    assert photo.verbs == [], "a losing attempt answered the broker"
    assert rig.broker.notices == [], "a losing attempt announced a commit"
    assert committed(job, "img0.png") == "host2.77.2"
    assert not (job / "attempts" / "img0.png" / ATTEMPT).exists() and other.folder.exists()
    rig.step()
    assert rig.worker.held is None and len(rig.broker.fetches) == 2


def test_a_photo_already_committed_is_acked_without_running_it(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    marker = commit_marker(job, "img0.png")
    marker.parent.mkdir(parents=True)
    marker.write_text("host2.77.1")
    photo = rig.hand_out(rig.task(job), delivered=2)
    assert photo.verbs == ["ack"] and rig.model.sent == []


def test_a_photo_arriving_after_the_model_went_away_is_handed_back(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    rig.model.state = sv.BACKOFF
    photo = rig.hand_out(rig.task(rig.job()))
    assert photo.verbs == ["nak"] and rig.model.sent == []


def test_stop_hands_the_photo_back_at_once_and_removes_its_attempt_and_status(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    status = status_path(rig.root / ".sharpmld", "host1")
    assert status.exists()
    rig.worker.stopping.request()
    rig.step()
    assert rig.worker.finished
    rig.worker.stop()
    assert photo.verbs == ["nak"] and rig.model.stops, "the model was not stopped"
    assert not (job / "attempts" / "img0.png" / ATTEMPT).exists()
    assert not status.exists() and rig.broker.stopped


def test_stop_after_the_commit_keeps_the_committed_attempt(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    rig.model.finish_images()
    rig.step()
    rig.worker.stop()
    assert photo.verbs == ["ack"]
    assert (job / "attempts" / "img0.png" / ATTEMPT / RESULT_FILE).exists()


def test_a_broker_that_cannot_be_reached_is_tried_again_later(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    refused: Future[None] = Future()
    refused.set_exception(OSError("connection refused"))
    rig.worker.connecting = refused
    rig.model.become_ready()
    rig.step()
    assert rig.broker.stopped and rig.worker.broker is None
    rig.step(1.0)
    assert len(rig.brokers) == 1, "tried again at once"
    rig.step(2.0)
    assert len(rig.brokers) == 2 and not rig.broker.stopped
    rig.step()
    assert len(rig.broker.fetches) == 1, "no photo asked for once connected"


def test_a_step_that_fails_costs_that_step_not_the_photo(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    real_step = rig.model.step
    rig.model.step = lambda now: (_ for _ in ()).throw(RuntimeError("a bug"))  # type: ignore[method-assign]
    rig.step()
    rig.model.step = real_step  # type: ignore[method-assign]
    rig.model.finish_images()
    rig.step()
    assert photo.verbs == ["ack"] and committed(job, "img0.png") == ATTEMPT


def test_a_photo_that_killed_max_deliver_workers_is_committed_as_failed_without_running(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path, max_deliver=2)
    rig.model.become_ready()
    rig.step()
    job = rig.job()
    for name in ("hostA.1.1", "hostB.2.2"):
        folder = Attempt(job, "img0.png", name).open()
        if name.startswith("hostA"):
            write_lost(folder, "crash", "killed by signal 9", {})  # hostB's worker died outright
    photo = rig.hand_out(rig.task(job), delivered=3)
    assert rig.model.sent == [] and photo.verbs == ["ack"]
    winner = committed(job, "img0.png")
    assert winner == f"host1.{os.getpid()}.3"
    failed = json.loads((job / "attempts" / "img0.png" / winner / FAILED_FILE).read_text())
    assert failed["code"] == "engine_crash" and "2 times" in failed["message"]
    assert "killed by signal 9" in failed["message"]


def test_a_photo_handed_back_by_stopped_workers_is_not_charged(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, max_deliver=2)
    rig.model.become_ready()
    rig.step()
    job = rig.job()
    for n in range(3):  # three workers told to stop on it: their attempts are gone
        photo = rig.hand_out(rig.task(job), delivered=n + 1)
        rig.worker.stop()
        assert photo.verbs == ["nak"]
        rig.worker.held, rig.worker.finished = None, False
        rig.model.become_ready()
        rig.step()
    photo = rig.hand_out(rig.task(job), delivered=4)
    assert photo.verbs == [] and len(rig.model.sent) == 4, "the photo was not run again"


def test_stop_while_a_lost_attempt_is_being_handed_back_keeps_its_record(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    job = rig.job()
    photo = rig.hand_out(rig.task(job))
    photo.answered = False
    rig.model.die()
    rig.step()
    assert rig.worker.held is not None, "let go before the broker answered"
    rig.worker.stop()
    assert photo.verbs == ["nak"], "handed back twice"
    assert (job / "attempts" / "img0.png" / ATTEMPT / LOST_FILE).exists()

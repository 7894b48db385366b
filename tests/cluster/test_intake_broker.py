"""The intake's broker verbs against a real nats-server: given-up photos, look-ups, deletes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sharpmld.cluster.broker import Settings
from sharpmld.cluster.intake_broker import GivenUp, IntakeBroker
from tests.cluster.conftest import NatsServer
from tests.support.harness import wait_for

WAIT = 10.0


@pytest.fixture
def broker(nats_server: NatsServer) -> Iterator[IntakeBroker]:
    b = IntakeBroker(Settings(nats_server.url, ack_wait=0.5, max_deliver=2))
    b.start().result(WAIT)
    yield b
    b.stop()


def test_a_photo_past_max_deliver_is_reported_given_up_and_kept_until_acked(
    nats_server: NatsServer, broker: IntakeBroker
) -> None:
    seq = broker.publish("normal", "job-1", "a.jpg", b"x").result(WAIT).sequence
    for _ in range(2):  # two deliveries that never ack: the second is the last
        assert wait_for(lambda: broker.fetch(1.0).result(WAIT), 20, "a delivery") is not None

    def advised() -> list[GivenUp]:
        # The server notices the last delivery ran out when a worker next asks for work.
        assert broker.fetch(0.2).result(WAIT) is None
        return broker.given_up().result(WAIT)

    got = wait_for(advised, 20, "the max-deliveries advisory")
    assert [(g.sequence, g.deliveries) for g in got] == [(seq, 2)]
    assert broker.holds(seq, "job-1/a.jpg").result(WAIT)  # the server keeps it, undelivered
    # Not acked: an intake that restarts here reads it again, even from a new connection.
    broker.stop()
    again = IntakeBroker(broker.settings)
    again.start().result(WAIT)
    try:
        replay = wait_for(lambda: again.given_up().result(WAIT), 20, "the advisory again")
        assert [g.sequence for g in replay] == [seq]
        again.done_with(replay[0]).result(WAIT)
        again.forget(seq).result(WAIT)
        assert not again.holds(seq, "job-1/a.jpg").result(WAIT)
        assert again.given_up().result(WAIT) == []
    finally:
        again.stop()


def test_holds_tells_a_photo_from_another_at_the_same_sequence(broker: IntakeBroker) -> None:
    seq = broker.publish("normal", "job-1", "a.jpg", b"x").result(WAIT).sequence
    assert broker.holds(seq, "job-1/a.jpg").result(WAIT)
    assert not broker.holds(seq, "job-2/a.jpg").result(WAIT)
    assert not broker.holds(seq + 1, "job-1/a.jpg").result(WAIT)


def test_a_server_that_lost_its_store_gets_its_stream_back(nats_server: NatsServer) -> None:
    import shutil

    b = IntakeBroker(Settings(nats_server.url, ack_wait=5, max_deliver=2))
    b.start().result(WAIT)
    try:
        b.publish("normal", "job-1", "a.jpg", b"x").result(WAIT)
        nats_server.kill()
        shutil.rmtree(nats_server.store)
        nats_server.start()

        def republished() -> bool:
            try:
                return not b.publish("normal", "job-1", "a.jpg", b"x").result(WAIT).duplicate
            except Exception:
                return False

        wait_for(republished, 30, "a publish accepted by the reset server as new")
    finally:
        b.stop()

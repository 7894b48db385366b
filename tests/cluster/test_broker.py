"""The broker as the cluster uses it, against a real nats-server with JetStream."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sharpmld.cluster import broker as broker_module
from sharpmld.cluster.broker import Broker, Delivery, Settings
from sharpmld.core.errors import BrokerNotReady
from tests.cluster.conftest import NatsServer
from tests.cluster.proxy import Proxy

WAIT = 10.0  # seconds any one broker answer may take on this machine


@pytest.fixture
def broker(nats_server: NatsServer) -> Iterator[Broker]:
    b = Broker(Settings(nats_server.url, ack_wait=1.0, max_deliver=3))
    b.start().result(WAIT)
    yield b
    b.stop()


def fetch(broker: Broker, timeout: float = 0.5) -> Delivery | None:
    return broker.fetch(timeout).result(WAIT + timeout)


def test_a_photo_published_twice_is_delivered_once(broker: Broker) -> None:
    first = broker.publish("normal", "job-1", "a.jpg", b"payload").result(WAIT)
    again = broker.publish("normal", "job-1", "a.jpg", b"payload").result(WAIT)
    assert not first.duplicate and again.duplicate and again.sequence == first.sequence
    got = fetch(broker)
    assert got is not None and got.msg_id == "job-1/a.jpg" and got.data == b"payload"
    got.ack().result(WAIT)
    assert fetch(broker) is None


def test_the_high_band_is_served_first(broker: Broker) -> None:
    broker.publish("normal", "job-n", "a.jpg", b"n").result(WAIT)
    broker.publish("high", "job-h", "a.jpg", b"h").result(WAIT)
    order = []
    for _ in range(2):
        got = fetch(broker)
        assert got is not None
        order.append(got.msg_id)
        got.ack().result(WAIT)
    assert order == ["job-h/a.jpg", "job-n/a.jpg"]


def test_the_high_band_is_served_first_even_when_the_server_answers_slowly(
    nats_server: NatsServer,
) -> None:
    """A loaded machine: every answer of the server takes 0.2 s. A waiting high photo must
    still come before a normal one, however long the high band's answer takes."""
    broker = Broker(Settings(nats_server.url, ack_wait=5.0, max_deliver=3))
    broker.start().result(WAIT)
    proxy = Proxy(nats_server.port, delay=0.2)
    proxy.restore()
    slow = Broker(Settings(proxy.url, ack_wait=5.0, max_deliver=3, define=False))
    try:
        slow.start().result(WAIT)
        broker.publish("normal", "job-n", "a.jpg", b"n").result(WAIT)
        broker.publish("high", "job-h", "a.jpg", b"h").result(WAIT)
        got = fetch(slow, timeout=2.0)
        assert got is not None and got.msg_id == "job-h/a.jpg"
        got.ack().result(WAIT)
        got = fetch(slow, timeout=2.0)
        assert got is not None and got.msg_id == "job-n/a.jpg"
        got.ack().result(WAIT)
    finally:
        slow.stop()
        proxy.cut()
        broker.stop()


def test_an_unacked_photo_comes_back_after_ack_wait_and_in_progress_holds_it(broker: Broker) -> None:
    broker.publish("normal", "job-1", "a.jpg", b"x").result(WAIT)
    held = fetch(broker)
    assert held is not None and held.delivered == 1
    for _ in range(3):  # heartbeats inside ack_wait keep it with this worker
        held.in_progress().result(WAIT)
        assert fetch(broker, timeout=0.4) is None
    back = fetch(broker, timeout=3.0)  # no more heartbeats: redelivered after ack_wait
    assert back is not None and back.msg_id == "job-1/a.jpg" and back.delivered == 2
    back.ack().result(WAIT)


def test_a_nak_hands_the_photo_back_at_once(broker: Broker) -> None:
    broker.publish("normal", "job-1", "a.jpg", b"x").result(WAIT)
    got = fetch(broker)
    assert got is not None
    got.nak().result(WAIT)
    again = fetch(broker, timeout=0.5)  # well inside ack_wait: the nak, not the timeout
    assert again is not None and again.delivered == 2


def test_counts_of_waiting_and_held_photos(broker: Broker) -> None:
    for photo in ("a.jpg", "b.jpg", "c.jpg"):
        broker.publish("normal", "job-1", photo, b"x").result(WAIT)
    held = fetch(broker)
    assert held is not None
    counts = broker.pending().result(WAIT)
    assert counts["pending"] == 2 and counts["ack_pending"] == 1


def test_published_photos_survive_a_broker_killed_and_restarted(
    nats_server: NatsServer, broker: Broker
) -> None:
    broker.publish("normal", "job-1", "a.jpg", b"kept").result(WAIT)
    nats_server.kill()
    nats_server.start()  # same port, same store: the client reconnects by itself
    got = broker.fetch(2.0).result(WAIT * 3)
    assert got is not None and got.data == b"kept"


def test_a_worker_binds_to_the_intakes_consumers_without_changing_them(
    nats_server: NatsServer, broker: Broker
) -> None:
    worker = Broker(Settings(nats_server.url, ack_wait=300.0, max_deliver=9, define=False))
    worker.start().result(WAIT)
    try:
        assert worker.ack_wait == 1.0, "the worker must heartbeat by the server's ack_wait"
        again = Broker(Settings(nats_server.url, ack_wait=1.0))  # the intake, restarted
        again.start().result(WAIT)
        assert again.ack_wait == 1.0, "a worker changed the cluster's ack_wait"
        again.stop()
        broker.publish("normal", "job-1", "a.jpg", b"x").result(WAIT)
        got = fetch(worker)
        assert got is not None and got.msg_id == "job-1/a.jpg"
    finally:
        worker.stop()


def test_a_worker_before_any_intake_is_told_the_broker_is_not_ready(nats_server: NatsServer) -> None:
    worker = Broker(Settings(nats_server.url, define=False))
    try:
        with pytest.raises(BrokerNotReady):
            worker.start().result(WAIT)
    finally:
        worker.stop()


class _Later:
    """The broker module's clock, 100 s ahead: the photo published now looks 100 s old."""

    @staticmethod
    def time() -> float:
        return time.time() + 100.0


def test_the_oldest_photo_not_yet_done_is_aged_from_its_publish_time(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert broker.pending().result(WAIT)["oldest_age_seconds"] == 0  # nothing on the stream
    broker.publish("normal", "job-1", "a.jpg", b"1").result(WAIT)
    broker.publish("high", "job-2", "a.jpg", b"2").result(WAIT)
    monkeypatch.setattr(broker_module, "time", _Later)
    assert 99 <= broker.pending().result(WAIT)["oldest_age_seconds"] <= 160
    for _ in range(2):  # once both are acked, nothing is pending however old the stream is
        got = fetch(broker)
        assert got is not None
        got.ack().result(WAIT)
    assert broker.pending().result(WAIT)["oldest_age_seconds"] == 0

"""The broker as the intake uses it: what workers never need to ask.

Besides publishing, the intake must learn which photos the server gave up on, and whether
the server still holds a photo it was given (a server whose store was lost forgets them).

Commits: a worker that wins a photo's commit says so on ``COMMITS_SUBJECT``; the intake
subscribes on every connection and hands each notice to ``on_commit`` (on the broker's
thread), so its finisher looks at that job at once. A notice is only a hint, lost while the
intake is away; the finisher's own polling of ``commits/`` finds every commit regardless.

Given-up photos: past ``max_deliver`` the server publishes a max-deliveries advisory on
``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`` (NATS JetStream
documentation, "Monitoring: Advisories"). Those are plain NATS messages, lost when nobody
listens, so an intake that was down when one was sent would wait for that photo forever.
Here they are captured in a small stream of their own with a durable consumer: the intake
reads them when it is back, and acks each only once it has recorded the photo as given up.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from sharpmld.cluster.broker import MSG_ID, Broker
from sharpmld.cluster.subjects import COMMITS_SUBJECT, STREAM

ADVISORY_STREAM = "SHARPMLD_GIVEN_UP"
ADVISORY_SUBJECTS = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM}.*"
ADVISORY_CONSUMER = "sharpmld-intake"
ADVISORY_ACK_WAIT = 5.0
ADVISORY_MAX_AGE = 7 * 86400.0  # an intake down for longer than a week has bigger problems


@dataclass(frozen=True)
class GivenUp:
    """The server stopped delivering the photo at ``sequence`` after ``deliveries`` tries."""

    sequence: int
    deliveries: int
    msg: Msg | None = None  # the advisory itself, acked once the intake has recorded it


class IntakeBroker(Broker):
    """``Broker`` plus the advisory stream, message look-ups and deletes."""

    _advisories: JetStreamContext.PullSubscription | None = None
    on_commit: Callable[[str, str], None] | None = None  # (job id, photo), on the broker's thread

    async def _connect(self) -> None:
        await super()._connect()
        assert self._nc is not None
        await self._nc.subscribe(COMMITS_SUBJECT, cb=self._commit_noticed)  # each connection anew

    async def _commit_noticed(self, msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
            job_id, photo = str(body["job_id"]), str(body["photo"])
        except (ValueError, KeyError, TypeError):
            return  # not a notice this version reads; polling finds the commit anyway
        if self.on_commit is not None:
            self.on_commit(job_id, photo)

    async def _define(self) -> None:
        await super()._define()
        assert self._js is not None
        stream = StreamConfig(
            name=ADVISORY_STREAM,
            subjects=[ADVISORY_SUBJECTS],
            storage=StorageType.FILE,
            max_age=ADVISORY_MAX_AGE,
        )
        try:
            await self._js.stream_info(ADVISORY_STREAM)
        except NotFoundError:
            await self._js.add_stream(stream)
        # An advisory fetched but not acked (the intake died first) comes back after ack_wait.
        consumer = ConsumerConfig(
            durable_name=ADVISORY_CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=ADVISORY_ACK_WAIT
        )
        await self._js.add_consumer(ADVISORY_STREAM, consumer)
        if self._advisories is None:
            self._advisories = await self._js.pull_subscribe_bind(ADVISORY_CONSUMER, ADVISORY_STREAM)

    def set_up_again(self) -> Future[None]:
        """After a refused set-up (say, a stream made by an older version): try it again."""
        return self.submit(self._set_up_again())

    # -- verbs -------------------------------------------------------------------------------

    def given_up(self, batch: int = 64, wait: float = 1.0) -> Future[list[GivenUp]]:
        """Photos the server gave up on and the intake has not yet said it recorded.

        The answer comes within ``wait``; ask again only once it came (one request at a time).
        """
        return self.submit(self._given_up(batch, wait))

    def done_with(self, item: GivenUp) -> Future[None]:
        """The intake recorded ``item``: the advisory is not needed again."""
        assert item.msg is not None
        return self.submit(item.msg.ack())

    def holds(self, sequence: int, msg_id: str) -> Future[bool]:
        """Whether the photo stream still holds ``msg_id`` at ``sequence``.

        After a lost store the server numbers messages from 1 again, so the id is compared
        too: another photo at the same number is not this one.
        """
        return self.submit(self._holds(sequence, msg_id))

    def forget(self, sequence: int) -> Future[None]:
        """Remove a given-up photo's message (the server keeps it, undeliverable, otherwise)."""
        return self.submit(self._forget(sequence))

    # -- on the broker's thread --------------------------------------------------------------

    async def _given_up(self, batch: int, wait: float) -> list[GivenUp]:
        if self._advisories is None:
            return []
        try:
            msgs = await self._advisories.fetch(batch, timeout=wait)
        except (NatsTimeout, TimeoutError):  # nats-py raises either, by where it timed out
            return []
        out = []
        for msg in msgs:
            try:
                body = json.loads(msg.data)
                out.append(GivenUp(int(body["stream_seq"]), int(body.get("deliveries", 0)), msg))
            except (ValueError, KeyError, TypeError):
                await msg.term()  # not an advisory this version reads: never again
        return out

    async def _set_up_again(self) -> None:
        if self._nc is None or self._nc.is_closed:
            await self._connect()
        else:
            await self._define()

    async def _holds(self, sequence: int, msg_id: str) -> bool:
        assert self._js is not None, "start() first"
        try:
            found = await self._js.get_msg(STREAM, sequence)
        except NotFoundError:
            return False
        return (found.headers or {}).get(MSG_ID) == msg_id

    async def _forget(self, sequence: int) -> None:
        assert self._js is not None, "start() first"
        with contextlib.suppress(NotFoundError):
            await self._js.delete_msg(STREAM, sequence)

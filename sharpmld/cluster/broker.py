"""The NATS JetStream client, on an asyncio loop in a thread of its own.

nats-py is asyncio-only and the daemon's loop and the cluster worker's loop are plain
``step(now)`` loops that must never block, so every call here hands a coroutine to the
broker's thread and returns a ``concurrent.futures.Future`` at once; the caller looks at it
in a later step. ``stop`` closes the connection and ends the thread.

What the broker is set up to do (``ensure``): one stream, ``SHARPMLD_PHOTOS``, on
``sharpmld.jobs.*`` with work-queue retention (a photo's message goes once it is acked),
file storage, and a duplicate window for ``Nats-Msg-Id``; one durable pull consumer per
band with explicit acks, ``ack_wait`` and ``max_deliver``. A worker that holds a message
calls ``in_progress`` well inside ``ack_wait`` while the model runs; ``nak`` hands it back
at once (a worker told to stop); past ``max_deliver`` the server gives up on it and says so
in an advisory.

Only the intake defines the stream and the consumers. Workers (``define=False``) bind to them
as they are: a worker whose own configuration says another ``ack_wait`` must not change the
cluster's, and it heartbeats at a third of the ``ack_wait`` the server holds (``ack_wait``
after ``start``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from sharpmld.cluster.subjects import (
    BANDS,
    COMMITS_SUBJECT,
    CONSUMERS,
    STREAM,
    SUBJECT_PREFIX,
    message_id,
    subject,
)
from sharpmld.core.errors import BrokerNotReady

T = TypeVar("T")
MSG_ID = "Nats-Msg-Id"
# How long a band asked to answer at once (no_wait) may take to say so: the server answers
# straight away, so this only bounds a server that has stopped answering at all.
NO_WAIT_ANSWER = 5.0


@dataclass(frozen=True)
class Settings:
    """How the broker's stream and consumers are set up (``[cluster]`` in the config)."""

    url: str
    ack_wait: float = 60.0  # seconds a worker may hold a photo between heartbeats
    max_deliver: int = 5  # deliveries before a photo that keeps killing workers is given up
    duplicate_window: float = 2 * 3600.0  # a re-publish within this is dropped as a duplicate
    define: bool = True  # False for workers: bind to the intake's stream and consumers only


@dataclass(frozen=True)
class Published:
    """The broker's answer to a publish: where the photo went, and whether it was known."""

    sequence: int
    duplicate: bool


class Delivery:
    """One photo handed to this worker; the broker's verbs on it return futures."""

    def __init__(self, broker: Broker, msg: Msg) -> None:
        self._broker, self._msg = broker, msg
        self.data: bytes = msg.data
        self.msg_id: str = (msg.headers or {}).get(MSG_ID, "")
        self.subject: str = msg.subject
        self.delivered: int = int(msg.metadata.num_delivered)  # 1 the first time
        # When the server stored the photo (the ack subject's timestamp, a wall clock): the
        # start of its wait, for the log and the benchmark's publish-to-start figure.
        self.published: float = msg.metadata.timestamp.timestamp()

    def in_progress(self) -> Future[None]:
        """Tell the broker the work goes on: the ack deadline starts again."""
        return self._broker.submit(self._msg.in_progress())

    def ack(self) -> Future[None]:
        """Done (after the commit): the broker forgets the photo."""
        return self._broker.submit(self._ack())

    async def _ack(self) -> None:
        await self._msg.ack_sync()  # waits for the broker's word, unlike ack()

    def nak(self) -> Future[None]:
        """Hand the photo back now, for another worker."""
        return self._broker.submit(self._msg.nak())

    def term(self) -> Future[None]:
        """Never deliver this photo again."""
        return self._broker.submit(self._msg.term())


class Broker:
    """A NATS connection on its own thread; every method returns at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subs: dict[str, JetStreamContext.PullSubscription] = {}
        self.last_error = ""  # the connection's last complaint, for status and the log
        self.ack_wait = settings.ack_wait  # after start: the shortest the server's consumers hold
        # Bumped at each reconnection (an int read across threads: no lock needed). A server
        # can go and come back between two reads of ``connected``; this count still tells.
        self.reconnections = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Future[None]:
        """Connect and make sure the stream and consumers exist; done when both are."""
        self._thread.start()
        return self.submit(self._connect())

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection (pending acks are flushed first) and end the thread."""
        if self._thread.is_alive():
            if self._nc is not None:
                done = self.submit(self._nc.close())
                with contextlib.suppress(Exception):  # a broker gone away: nothing to close
                    done.result(timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the broker's thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # -- verbs -------------------------------------------------------------------------------

    def publish(self, band: str, job_id: str, photo: str, payload: bytes) -> Future[Published]:
        """Offer one photo to the workers; a repeat of the same job and photo is a duplicate."""
        return self.submit(self._publish(subject(band), message_id(job_id, photo), payload))

    def fetch(self, timeout: float) -> Future[Delivery | None]:
        """The next photo, from the high band first; None when none came within ``timeout``."""
        return self.submit(self._fetch(timeout))

    def notify_commit(self, job_id: str, photo: str) -> Future[None]:
        """Tell the intake a photo was just committed (a hint: lost when nobody listens)."""
        return self.submit(self._notify_commit(job_id, photo))

    def pending(self) -> Future[dict[str, int]]:
        """Per band: photos waiting, photos held by workers, and redeliveries so far."""
        return self.submit(self._pending())

    # -- on the broker's thread --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (a bool read across threads: no lock needed)."""
        return self._nc is not None and self._nc.is_connected

    async def _connect(self) -> None:
        # Keep trying until the server answers (the future stays pending meanwhile); the
        # callbacks keep nats-py from logging a traceback at every failed attempt.
        self._nc = await nats.connect(
            self.settings.url,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=self._on_error,
            reconnected_cb=self._on_reconnected,
        )
        self._js = self._nc.jetstream()
        if self.settings.define:
            await self._define()
        waits = []
        for band in BANDS:
            try:
                info = await self._js.consumer_info(STREAM, CONSUMERS[band])
            except NotFoundError as exc:
                raise BrokerNotReady() from exc
            waits.append(float(info.config.ack_wait or self.settings.ack_wait))
            if band not in self._subs:  # a bound subscription asks by name: it outlives a reset server
                self._subs[band] = await self._js.pull_subscribe_bind(CONSUMERS[band], STREAM)
        self.ack_wait = min(waits)

    async def _on_error(self, exc: Exception) -> None:
        self.last_error = str(exc) or type(exc).__name__

    async def _on_reconnected(self) -> None:
        """A server that lost its store comes back without the stream: the process that defines
        it (the intake) sets it up again; workers only join what the intake set up."""
        try:
            if self.settings.define:
                with contextlib.suppress(Exception):  # the next reconnect, or the caller, tries again
                    await self._define()
        finally:
            self.reconnections += 1  # counted once set up again, so look-ups find the stream

    async def _define(self) -> None:
        assert self._js is not None
        stream = StreamConfig(
            name=STREAM,
            subjects=[f"{SUBJECT_PREFIX}.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=self.settings.duplicate_window,
        )
        try:
            await self._js.stream_info(STREAM)
            await self._js.update_stream(stream)
        except NotFoundError:
            await self._js.add_stream(stream)
        for band in BANDS:
            consumer = ConsumerConfig(
                durable_name=CONSUMERS[band],
                filter_subject=subject(band),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.settings.ack_wait,
                max_deliver=self.settings.max_deliver,
            )
            await self._js.add_consumer(STREAM, consumer)

    async def _publish(self, subj: str, msg_id: str, payload: bytes) -> Published:
        assert self._js is not None, "start() first"
        ack = await self._js.publish(subj, payload, headers={MSG_ID: msg_id})
        return Published(int(ack.seq), bool(ack.duplicate))

    async def _notify_commit(self, job_id: str, photo: str) -> None:
        assert self._nc is not None, "start() first"
        await self._nc.publish(COMMITS_SUBJECT, json.dumps({"job_id": job_id, "photo": photo}).encode())

    async def _fetch(self, timeout: float) -> Delivery | None:
        # Every band but the last is asked to answer at once (no_wait): the server replies
        # with a photo or "no messages" however long that reply takes to arrive, so a waiting
        # high photo is never passed over for a normal one because the machine was slow (a
        # short timed pull was: it expired before the answer came). The last band waits.
        for band in BANDS[:-1]:
            msg = await self._next_now(band)
            if msg is not None:
                return Delivery(self, msg)
        try:
            msgs = await self._subs[BANDS[-1]].fetch(1, timeout=timeout)
        except NatsTimeout:
            return None
        return Delivery(self, msgs[0]) if msgs else None

    async def _next_now(self, band: str) -> Msg | None:
        """One photo of ``band`` if the server holds one now, else None (JetStream's pull
        request ``{"batch": 1, "no_wait": true}``: a message, or a 404/408 status at once)."""
        assert self._nc is not None, "start() first"
        request = json.dumps({"batch": 1, "no_wait": True}).encode()
        api = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{CONSUMERS[band]}"
        # An inbox of its own, not ``request()``: a delivered photo keeps its own subject, by
        # which nats-py's shared reply inbox would not know it for the answer.
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, max_msgs=1)
        try:
            await self._nc.publish(api, request, reply=inbox)
            msg = await sub.next_msg(timeout=NO_WAIT_ANSWER)
        except NatsTimeout:
            return None  # a photo the server sends after this comes back after ack_wait
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if JetStreamContext.is_status_msg(msg):
            return None  # 404: none waiting; 408: the request could not be served now
        return msg

    async def _pending(self) -> dict[str, int]:
        assert self._js is not None, "start() first"
        # redelivered: photos held now that were delivered before (the server's count, which
        # drops once they are acked); deliveries: every delivery so far, first or not.
        out = {"pending": 0, "ack_pending": 0, "redelivered": 0, "deliveries": 0, "oldest_age_seconds": 0}
        for band in BANDS:
            info = await self._js.consumer_info(STREAM, CONSUMERS[band])
            out["pending"] += int(info.num_pending or 0)
            out["ack_pending"] += int(info.num_ack_pending or 0)
            out["redelivered"] += int(info.num_redelivered or 0)
            out["deliveries"] += int(info.delivered.consumer_seq or 0) if info.delivered else 0
        out["oldest_age_seconds"] = await self._oldest_age()
        return out

    async def _oldest_age(self) -> int:
        """Seconds since the oldest photo still on the stream was published (0 when none).

        The stream keeps a photo until a worker acks it (work-queue retention), so its first
        message is the oldest photo not yet done, waiting or held."""
        assert self._js is not None
        state = (await self._js.stream_info(STREAM)).state
        if not state.messages:
            return 0
        try:
            first = await self._js.get_msg(STREAM, state.first_seq)
        except NotFoundError:  # acked between the two calls: the next poll sees the new first
            return 0
        if first.time is None:
            return 0
        return max(0, round(time.time() - first.time.timestamp()))

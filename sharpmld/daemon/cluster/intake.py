"""The cluster intake: one part of the daemon's loop, ``start(now)``, ``step(now)``, ``stop()``.

Every broker call is a future handed to the broker's thread and looked at in a later step, so
a step never waits on the network. While the broker cannot be reached, nothing is claimed:
folders stay in the inbox, where the person who dropped them can still see, change or take
them back, and ``sharpmld status`` says the intake waits for the broker. (Claiming first
and publishing later would move folders out of the inbox into a state that nobody works
on.) A job claimed just before the broker went away stays in ``working/`` unpublished
and is published when the broker is back, as it is after a restart.

The jobs this intake holds are the job folders in ``working/``: at start it takes them all
(one intake per root), those with a ledger to be finished, those without to be published.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sharpmld.cluster import commit
from sharpmld.cluster.broker import Settings
from sharpmld.cluster.intake_broker import GivenUp, IntakeBroker
from sharpmld.cluster.subjects import message_id
from sharpmld.core.config import Config
from sharpmld.core.errors import ClaimRefused
from sharpmld.core.faults import crashpoint
from sharpmld.daemon import results
from sharpmld.daemon.cluster import finisher, ledger, publisher
from sharpmld.daemon.cluster.ledger import Ledger
from sharpmld.daemon.cluster.publisher import Publication
from sharpmld.daemon.cluster.reconciler import Reconciler
from sharpmld.daemon.jobrun import OUTCOME_DONE, OUTCOME_FAILED, JobRun
from sharpmld.intake.scanner import NOT_WRITABLE, Entry, InboxScanner
from sharpmld.observers.events import Observers
from sharpmld.queue.claim import claim
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner, write_lease
from sharpmld.queue.record import Job

RETRY_SECONDS = 2.0  # after a failed publish, before the job is published again
SETUP_RETRY_SECONDS = 30.0  # after the broker refused to set up the stream
FINISH_SECONDS = 0.5  # how often published jobs are looked at for new commits
RELIST_SECONDS = 10.0  # commits/ listed at least this often, whatever its mtime says
COUNTS_SECONDS = 2.0  # how often the broker's pending counts are asked
CLAIMS_PER_STEP = 8  # a big inbox is claimed over several steps, never in one long one
BROKER_UNAVAILABLE = "broker_unavailable"


@dataclass
class Held:
    """A job this intake holds in ``working/``: published (with a ledger) or to be."""

    run: JobRun
    ledger: Ledger | None = None
    publication: Publication | None = None
    publish_due: float = 0.0
    republish: set[str] = field(default_factory=set)  # photos the broker lost, to offer again
    commits_seen: int = -1  # commits/'s mtime when last looked at: unchanged, nothing new
    settled: set[str] = field(default_factory=set)  # photos already seen committed or given up
    looked_at: float = 0.0  # when commits/ was last listed whatever its mtime said


class ClusterIntake:
    """Publishes claimed jobs photo by photo, and closes them when their photos are settled."""

    def __init__(
        self,
        config: Config,
        layout: Layout,
        owner: Owner,
        log: Any,
        events: Observers,
        engine: Callable[[], dict[str, Any]],
        broker_factory: Callable[[Settings], IntakeBroker] = IntakeBroker,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        """``wake`` ends the daemon's wait from the broker's thread (a commit was noticed)."""
        self.config, self.layout, self.owner, self.log, self.events = config, layout, owner, log, events
        self.engine = engine
        self.settings = Settings(
            url=str(config.get("cluster", "url")),
            ack_wait=float(config.get("cluster", "ack_wait_seconds")),
            max_deliver=int(config.get("cluster", "max_deliver")),
        )
        self.broker = broker_factory(self.settings)
        self.broker.on_commit = self._commit_noticed
        self._wake = wake
        self._noticed: deque[str] = deque()  # job ids whose commits the finisher looks at now
        self.held: dict[str, Held] = {}
        self.by_sequence: dict[int, tuple[str, str]] = {}  # stream sequence -> (job id, photo)
        self.reconciler = Reconciler()
        self._connecting: Future[None] | None = None
        self._was_connected = False
        self._reconnections = 0  # the broker's count when last looked at
        self._given_up: Future[list[GivenUp]] | None = None
        self._counts: Future[dict[str, int]] | None = None
        self.counts: dict[str, int] = {}
        self.next_finish = self.next_counts = 0.0
        self.down_since: float | None = None
        self.setup_due = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Connect in the background and take the jobs left in ``working/``."""
        self._connecting = self.broker.start()
        self.down_since = time.time()
        self.log.info("connecting to the broker", url=self.settings.url)
        self._take_working(now)

    def stop(self) -> None:
        """Close the connection; jobs in ``working/`` stay, published or to be, for the next start."""
        for held in self.held.values():
            if held.publication is not None:
                held.publication.cancel()
        self.broker.stop()

    @property
    def connected(self) -> bool:
        """Whether photos can be published now."""
        return (
            self._connecting is not None
            and self._connecting.done()
            and self._connecting.exception() is None
            and self.broker.connected
        )

    def reason(self) -> str:
        """Why the intake waits (for status and the log); "" when the broker answers."""
        if self.connected:
            return ""
        if self._connecting is not None and self._connecting.done() and self._connecting.exception():
            return f"the broker at {self.settings.url} refused the set-up: {self._connecting.exception()}"
        said = f" ({self.broker.last_error})" if self.broker.last_error else ""
        return f"cannot reach the broker at {self.settings.url}{said}; folders wait in the inbox"

    def idle(self) -> bool:
        """Nothing held: every job this intake took is closed."""
        return not self.held

    # -- claiming ----------------------------------------------------------------------------

    def claim(self, ready: list[Entry], scanner: InboxScanner, now: float) -> None:
        """Claim ready inbox entries, validate them and start publishing (only while connected)."""
        for _ in range(CLAIMS_PER_STEP):
            if not ready or not self.connected:
                return
            entry = ready.pop(0)
            scanner.forget(entry.name)
            try:
                job = claim(self.layout, entry.name, self.owner, priority=entry.priority)
            except ClaimRefused:  # a folder this user may not move: held, and said at the next scan
                scanner.refuse(entry.name, NOT_WRITABLE)
                continue
            if job is None:
                continue
            self.log.info("job claimed", job_id=job.job_id, original_name=entry.name)
            ready_at = entry.ready_at if entry.ready_at is not None else now
            self._take(job, settle_wait=ready_at - entry.first_seen, queue_wait=now - ready_at)

    def _take_working(self, now: float) -> None:
        """At start: every job folder in ``working/`` is this intake's to publish or finish."""
        try:
            names = sorted(n for n in os.listdir(self.layout.working) if is_job_id(n))
        except FileNotFoundError:
            return
        for name in names:
            path = self.layout.working / name
            try:
                job = Job.load(path)
            except (OSError, ValueError, KeyError, TypeError):
                self.log.warning("job folder without a readable record left alone", path=str(path))
                continue
            write_lease(path, self.owner)
            self._take(job, settle_wait=-1.0, queue_wait=-1.0)

    def _take(self, job: Job, *, settle_wait: float, queue_wait: float) -> None:
        run = JobRun(job, self.layout, self.config, self.engine(), owner=self.owner)
        self.events.on_claimed(run, settle_wait=settle_wait, queue_wait=queue_wait)
        started = time.perf_counter()
        if run.prepare() is None:  # the job failed validation: closed as today
            self.events.on_finished(run, run.outcome)
            return
        videos = [t.rel for t in run.request.images if t.kind != "image"] if run.request else []
        for rel in videos:
            run.rejected.append(
                {
                    "source": rel,
                    "code": "unsupported_type",
                    "message": "videos are not split into frames in the cluster mode yet: drop "
                    "stills taken from it as photos, or give it to a single-host daemon",
                }
            )
        held = Held(run, ledger=ledger.read(job.path))
        if held.ledger is None and not publisher.plan(run).photos:
            finisher.close(run, finisher.Settled())  # only videos: fails as "no valid images"
            self.events.on_finished(run, run.outcome)
            return
        self.held[job.job_id] = held
        if held.ledger is not None:
            self._index(job.job_id, held.ledger)
            self.reconciler.due_now()  # after a restart: is every photo still with the broker?
        self.events.on_dispatched(run, validation=time.perf_counter() - started)

    # -- one iteration -----------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Publish, learn what was given up, reconcile, finish; never waits."""
        connecting = self._connecting
        refused = connecting is not None and connecting.done() and connecting.exception() is not None
        if refused and now >= self.setup_due:  # say why once a while, and try again
            assert connecting is not None
            self.log.warning(
                "broker set-up refused", url=self.settings.url, error=str(connecting.exception())
            )
            self.setup_due = now + SETUP_RETRY_SECONDS
            self._connecting = self.broker.set_up_again()
        connected = self.connected
        if connected != self._was_connected:
            self._connection_changed(connected)
        if self.broker.reconnections != self._reconnections:
            # Back from a restart, maybe one too quick for a step to see the server gone: a
            # server that lost what it had not synced (a power loss) forgot some photos.
            self._reconnections = self.broker.reconnections
            self.reconciler.due_now()
        self.events.on_broker(connected=connected, counts=self.counts)
        noticed = self._drain_noticed()
        poll = now >= self.next_finish
        if poll:
            self.next_finish = now + FINISH_SECONDS
        if poll or noticed:  # commits are on the shared folder: the poll needs no broker
            self._finish_settled(now, noticed, poll=poll)
        if not connected:
            return
        for job_id, held in list(self.held.items()):
            if held.ledger is None or held.republish:
                self._publish(job_id, held, now)
        self._read_given_up()
        self.reconciler.step(self, now)
        self._poll_counts(now)

    def _connection_changed(self, connected: bool) -> None:
        self._was_connected = connected
        if connected:
            self.log.info("broker connected", url=self.settings.url, down_seconds=self._down_for())
            self.down_since = None
            self.reconciler.due_now()  # the server may have come back without its store
        else:
            self.down_since = time.time()
            self.log.warning("broker unreachable; folders wait in the inbox", url=self.settings.url)

    def _down_for(self) -> float | None:
        return None if self.down_since is None else round(time.time() - self.down_since, 3)

    # -- publishing --------------------------------------------------------------------------

    def _publish(self, job_id: str, held: Held, now: float) -> None:
        if held.publication is None:
            if now < held.publish_due:
                return
            target = held.ledger or publisher.plan(held.run)
            keys = sorted(held.republish) if held.ledger is not None else list(target.photos)
            publisher.stage(held.run.job.path, target)  # where the workers read the photos
            held.publication = Publication(self.broker, held.run, target, keys, self.layout.root)
            return
        try:
            answers = held.publication.outcome()
        except Exception as exc:  # the broker went away or refused: the whole lot again later
            self.log.warning("publish failed; will publish again", job_id=job_id, error=repr(exc))
            held.publication, held.publish_due = None, now + RETRY_SECONDS
            return
        if answers is None:
            return
        target, held.publication = held.publication.ledger, None
        duplicates = sum(1 for a in answers.values() if a.duplicate)
        for key, answer in answers.items():
            target.photos[key].sequence = answer.sequence
        crashpoint("cluster_published")  # published, not yet recorded: the crash test's instant
        if held.ledger is None:
            target.duplicates = duplicates
            self.log.info("job published", job_id=job_id, photos=len(answers), band=target.band)
        else:
            target.duplicates += duplicates
            self.log.info("photos published again", job_id=job_id, photos=len(answers))
        if duplicates:
            self.log.info("re-publish detected as duplicate", job_id=job_id, duplicates=duplicates)
        held.republish -= set(answers)
        held.ledger = target
        ledger.write(held.run.job.path, target)
        self._index(job_id, target)

    def _index(self, job_id: str, target: Ledger) -> None:
        for key, photo in target.photos.items():
            if photo.sequence:
                self.by_sequence[photo.sequence] = (job_id, key)

    # -- given up ----------------------------------------------------------------------------

    def _read_given_up(self) -> None:
        if self._given_up is None:
            self._given_up = self.broker.given_up()
            return
        if not self._given_up.done():
            return
        future, self._given_up = self._given_up, None
        try:
            items = future.result()
        except Exception as exc:
            self.log.warning("could not read the given-up photos", error=repr(exc))
            return
        for item in items:
            self._record_given_up(item)
            self.broker.done_with(item)
            self.broker.forget(item.sequence)

    def _record_given_up(self, item: GivenUp) -> None:
        job_id, key = self.by_sequence.get(item.sequence, ("", ""))
        held = self.held.get(job_id)
        if held is None or held.ledger is None or key not in held.ledger.photos:
            self.log.info("given-up photo of no job held here", sequence=item.sequence)
            return
        if held.ledger.photos[key].sequence != item.sequence:  # from before a store was lost
            return
        held.ledger.given_up[key] = item.deliveries
        held.commits_seen = -1
        ledger.write(held.run.job.path, held.ledger)
        self.log.warning("photo given up", job_id=job_id, photo=key, deliveries=item.deliveries)

    # -- finishing ---------------------------------------------------------------------------

    def _commit_noticed(self, job_id: str, photo: str) -> None:
        """On the broker's thread: a worker committed a photo of ``job_id``; look soon."""
        self._noticed.append(job_id)  # deque appends and pops are atomic: no lock
        self._wake()

    def _drain_noticed(self) -> set[str]:
        out: set[str] = set()
        with contextlib.suppress(IndexError):
            while True:
                out.add(self._noticed.popleft())
        return out

    def _finish_settled(self, now: float, noticed: set[str], *, poll: bool) -> None:
        """Look at the jobs a worker said it committed to, and on a poll at all the others."""
        for job_id, held in list(self.held.items()):
            if held.ledger is None or held.republish or held.publication is not None:
                continue
            if job_id in noticed:
                held.commits_seen = -1  # listed now, whatever the folder's mtime says
            elif not poll:
                continue
            # Listing commits/ of every job twice a second is most of the work on a NAS: look
            # when a commit changed the folder (or a photo was given up), and now and then
            # anyway, as a file server's mtimes may be as coarse as a second or two.
            try:
                mtime = os.stat(publisher.workspace(held.run.job.path) / commit.COMMITS_DIR).st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            if mtime == held.commits_seen and now - held.looked_at < RELIST_SECONDS:
                continue
            held.commits_seen, held.looked_at = mtime, now
            left = finisher.outstanding(held.run.job.path, held.ledger)
            self._note_settled(job_id, held, left)
            if left:
                self._progress(held, len(left))
                continue
            self._close(job_id, held, held.ledger)

    def _note_settled(self, job_id: str, held: Held, left: list[str]) -> None:
        """Say which photos were found settled since the last look: the moment the intake
        learns of a commit, which the cluster benchmark compares with the worker's."""
        assert held.ledger is not None
        new = set(held.ledger.photos) - set(left) - held.settled
        if new:
            held.settled |= new
            self.log.info("photo commit seen", job_id=job_id, photos=sorted(new))

    def _progress(self, held: Held, left: int) -> None:
        """progress.json, as a single-host job has it, for `sharpmld status` (best effort)."""
        run = held.run
        total = len(run.request.images) if run.request else 0
        with contextlib.suppress(OSError):
            results.write_progress(run.job, run.request, images_done=total - left, started=run.started)

    def _close(self, job_id: str, held: Held, target: Ledger) -> None:
        settled = finisher.settle(held.run.job.path, target)
        outcome = finisher.close(held.run, settled)
        if outcome in (OUTCOME_DONE, OUTCOME_FAILED):
            finisher.tidy(held.run.job.path)
        del self.held[job_id]
        for photo in target.photos.values():
            self.by_sequence.pop(photo.sequence, None)
        self.events.on_photos_settled(redeliveries=settled.redeliveries, conflicts=settled.swept)
        self.events.on_finished(held.run, outcome)

    # -- counts ------------------------------------------------------------------------------

    def _poll_counts(self, now: float) -> None:
        if self._counts is not None and self._counts.done():
            future, self._counts = self._counts, None
            try:
                self.counts = future.result()
            except Exception as exc:
                self.log.debug("broker counts not read", error=repr(exc))
        if self._counts is None and now >= self.next_counts:
            self.next_counts = now + COUNTS_SECONDS
            self._counts = self.broker.pending()

    # -- for the reconciler ------------------------------------------------------------------

    def unsettled(self) -> list[tuple[str, str, int, str]]:
        """(job id, photo, sequence, message id) of each published photo with no COMMIT."""
        out = []
        for job_id, held in self.held.items():
            if held.ledger is None or held.publication is not None:
                continue
            for key in finisher.outstanding(held.run.job.path, held.ledger):
                seq = held.ledger.photos[key].sequence
                out.append((job_id, key, seq, message_id(job_id, key)))
        return out

    def lost(self, job_id: str, photo: str) -> None:
        """The broker no longer holds ``photo`` of ``job_id``: offer it again."""
        held = self.held.get(job_id)
        if held is None or held.ledger is None or photo in held.ledger.given_up:
            return
        if photo in finisher.outstanding(held.run.job.path, held.ledger):
            self.log.warning("photo lost by the broker; publishing again", job_id=job_id, photo=photo)
            held.republish.add(photo)

    def status(self) -> dict[str, Any]:
        """What ``sharpmld status`` shows of the cluster side."""
        return {
            "url": self.settings.url,
            "connected": self.connected,
            "reason": self.reason(),
            "down_since": self.down_since,
            "jobs": len(self.held),
            "unpublished": sum(1 for h in self.held.values() if h.ledger is None),
            **{k: int(v) for k, v in self.counts.items()},
        }

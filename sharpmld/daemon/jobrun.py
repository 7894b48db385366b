"""One job's life on the daemon's side: prepare, dispatch, collect, and close.

The runner turns a claimed folder into a ``JobRequest`` (metadata-level validation only; the
worker decodes), follows the worker's events, keeps ``progress.json`` current for
``sharpmld status``, and ends the job with exactly one rename to ``done/`` or ``failed/``.
Which tries count against the job is decided in ``attempts``; what the job leaves behind
(progress.json, result.json, the reuse index) is written by ``results``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from sharpmld.core import log
from sharpmld.core.config import Config
from sharpmld.core.errors import (
    WORKER_ERRORS,
    DiskFull,
    JobFailed,
    NoValidImages,
    SharpmldError,
)
from sharpmld.core.units import MB
from sharpmld.daemon import attempts, report, results
from sharpmld.daemon.stems import output_stem
from sharpmld.intake.inventory import inventory
from sharpmld.intake.jobspec import JobSpec, read_jobspec
from sharpmld.protocol import (
    Event,
    ImageDone,
    ImageFailed,
    ImageStarted,
    ImageTask,
    JobDone,
    JobRequest,
    TasksAdded,
    WorkerWarning,
)
from sharpmld.queue import cache_index as cache
from sharpmld.queue import recovery, transitions
from sharpmld.queue.layout import JOB_LOG, Layout
from sharpmld.queue.lease import LeaseLost, Owner, holds
from sharpmld.queue.record import Job

OUTCOME_DONE = "done"
OUTCOME_FAILED = "failed"
OUTCOME_RETRY = "retry"
OUTCOME_HANDED_BACK = "handed_back"
OUTCOME_RELEASED = "released"  # could not be closed; left in working/ for recovery
OUTCOME_TAKEN_OVER = "taken_over"  # adopted by another daemon while this one was paused


@dataclass
class JobRun:
    """The daemon-side state of the job in flight."""

    job: Job
    layout: Layout
    config: Config
    engine: dict[str, Any]
    started: float = field(default_factory=time.time)
    spec: JobSpec = field(default_factory=JobSpec)
    request: JobRequest | None = None
    images: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    job_toml: str | None = None  # the settings file read, named in result.json as used
    outcome: str = ""
    error: SharpmldError | None = None
    inputs: int = 0  # tasks from the job itself; video frames the worker adds come after
    owner: Owner | None = None  # the daemon running it, fenced before the job is closed
    cancel: dict[str, Any] | None = None  # the CANCEL request once seen (see daemon.cancelling)
    started_photos: set[str] = field(default_factory=set)  # this try's ImageStarted, for progress

    def __post_init__(self) -> None:
        self.log = log.get().bind(job_id=self.job.job_id)
        log.attach_job_log(self.job.job_id, self.job.path / JOB_LOG)

    @property
    def formats(self) -> list[str]:
        """The job's output formats: job.toml's choice, else the configuration's."""
        return self.spec.formats or list(self.config.get("outputs", "formats"))

    # -- preparing ---------------------------------------------------------------------------

    def prepare(self) -> JobRequest | None:
        """Validate what can be validated without decoding; None means the job already failed."""
        cfg = self.config
        try:
            folder = self.job.record.source == "folder"  # a loose file's job.toml is no settings
            self.spec = read_jobspec(self.job.input_dir) if folder else JobSpec()
            found = inventory(
                self.job.input_dir,
                max_file_bytes=int(cfg.get("limits", "max_file_mb") * MB),
                max_job_bytes=int(cfg.get("limits", "max_job_mb") * MB),
                max_images=int(cfg.get("limits", "max_images")),
                max_depth=int(cfg.get("limits", "max_depth")),
                max_entries=int(cfg.get("limits", "max_entries")),
                max_video_bytes=int(cfg.get("video", "max_mb") * MB) if cfg.get("video", "enabled") else 0,
                settings_file=folder,
            )
        except JobFailed as exc:
            self.fail(exc)
            return None
        marker = cfg.get("intake", "ready_marker")
        self.rejected = [
            {"source": r.rel, "code": r.code, "message": r.message} for r in found.rejected if r.rel != marker
        ]
        # The ready marker is a signal, not an input: ignored, but still named like all clutter.
        self.ignored = sorted([*found.ignored, *(r.rel for r in found.rejected if r.rel == marker)])
        self.job_toml = found.settings
        if not found.images:
            self.fail(NoValidImages())
            return None
        taken: set[str] = set()
        tasks = tuple(
            ImageTask(
                c.rel, str(c.path), output_stem(c.rel, taken), "video" if c.kind == "video" else "image"
            )
            for c in found.images
        )
        self.inputs = len(tasks)
        self.request = JobRequest.configured(
            cfg,
            job_id=self.job.job_id,
            job_dir=str(self.job.path),
            images=tasks,
            formats=tuple(self.formats),
            f_px=self.spec.f_px,
            video_frames=self.spec.video_frames or int(cfg.get("video", "frames")),
            cache_dir=str(self.layout.state_dir / cache.CACHE_DIR) if cfg.get("cache", "enabled") else None,
            cache_salt=cache.salt(
                checkpoint_sha256=self.engine.get("checkpoint_sha256"),
                factory=str(self.engine.get("model")),
                formats=self.formats,
                f_px_override=self.spec.f_px,
                precision=str(cfg.get("model", "precision")),
                colour=str(cfg.get("model", "colour")),
                previews=bool(cfg.get("outputs", "previews")),
                orbit_frames=int(cfg.get("outputs", "orbit_frames")),
                ply_layout=str(cfg.get("outputs", "ply_layout")),
                spz_version=int(cfg.get("outputs", "spz_version")),
            ),
        )
        self.log.info(
            "job prepared",
            images=len(tasks),
            rejected=len(self.rejected),
            original_name=self.job.record.original_name,
        )
        return self.request

    def refuse_if_exhausted(self) -> bool:
        """Fail the job when it has used its tries; True when it did (checked before a try)."""
        error = attempts.exhausted(self.job, self.config)
        if error is not None:
            self.fail(error)
        return error is not None

    def begin_attempt(self) -> None:
        """Record a try the moment the job is handed to the model; it is charged when it ends."""
        attempts.begin(self.job)

    # -- following the worker ---------------------------------------------------------------

    def on_event(self, event: Event) -> bool:
        """Apply one worker event about this job; True when the worker has finished it."""
        if isinstance(event, ImageStarted):
            self.started_photos.add(event.rel)
            self.log.info("image started", image=event.rel)
        elif isinstance(event, ImageDone):
            entry = {"source": event.rel, "sha256": event.sha256, **event.result}
            self.images.append(entry)
            self.log.info("image done", image=event.rel, gaussians=entry.get("gaussians"))
        elif isinstance(event, ImageFailed):
            self.rejected.append({"source": event.rel, "code": event.code, "message": event.message})
            bug = {"detail": event.detail} if event.detail else {}  # a repr is for the log only
            self.log.warning("image rejected", image=event.rel, code=event.code, reason=event.message, **bug)
        elif isinstance(event, TasksAdded) and self.request is not None:
            self.request = dataclasses.replace(self.request, images=self.request.images + event.tasks)
            self.log.info("video frames chosen", video=event.source, frames=len(event.tasks))
        elif isinstance(event, WorkerWarning):
            self.log.warning("worker warning", reason=event.message)
        elif isinstance(event, JobDone):
            return True
        self._write_progress(current=event.rel if isinstance(event, ImageStarted) else None)
        return False

    def _write_progress(self, current: Any = None) -> None:
        failed = self.rejected_by_worker()
        photos = results.photo_states(
            self.request,
            done={str(i["source"]) for i in self.images},
            failed={str(r["source"]) for r in failed},
            started=self.started_photos,
        )
        results.write_progress(
            self.job,
            self.request,
            images_done=len(self.images) + len(failed),
            started=self.started,
            current=current,
            photos=photos,
        )

    def rejected_by_worker(self) -> list[dict[str, Any]]:
        """Images the worker refused (as opposed to files refused before decoding)."""
        names = {t.rel for t in self.request.images} if self.request else set()
        return [r for r in self.rejected if r["source"] in names]

    def worker_lost(self, reason: str, detail: str) -> str:
        """The worker died or was killed mid-job: retry, or fail with the matching code."""
        self._fence()  # a retry cleans the outputs: never those of the daemon that adopted it
        self.log.warning("worker lost during job", reason=reason, detail=detail)
        attempts.close(self.job, attempts.WORKER_LOST_OUTCOMES.get(reason, "worker_crash"))
        error = attempts.lost_verdict(self.job, self.config, reason, detail)
        if error is not None:
            self.fail(error)
        else:
            self.outcome = OUTCOME_RETRY
            recovery.clean_outputs(self.job.path)
            self.images.clear()
            self.started_photos.clear()
            self.rejected = [r for r in self.rejected if r not in self.rejected_by_worker()]
            if self.request is not None:  # the worker picks a video's frames again
                self.request = dataclasses.replace(self.request, images=self.request.images[: self.inputs])
        return self.outcome

    # -- closing -----------------------------------------------------------------------------

    def complete(self) -> str:
        """The worker finished: done if any image made it, else failed with the best reason."""
        self._fence()
        disk = [r for r in self.rejected if r["code"] == DiskFull.code]
        if disk:
            return self.hand_back("disk full while writing outputs")
        self._close_attempt(OUTCOME_DONE if self.images else OUTCOME_FAILED)
        if self.images:
            self._finish(OUTCOME_DONE)
        else:
            engine_side = [r for r in self.rejected if r["code"] in WORKER_ERRORS]
            error: SharpmldError = NoValidImages()
            if engine_side:
                first = engine_side[0]
                cls = WORKER_ERRORS[first["code"]]
                error = cls(f"{cls.advice} ({first['source']}: {first['message']})")
            self.fail(error)
        return self.outcome

    def fail(self, error: SharpmldError) -> None:
        """End the job in ``failed/`` with ERROR.txt, error.json and result.json."""
        self._fence()
        self.error = error
        self._close_attempt(error.code)  # a try still open ends here (e.g. an internal error)
        self.log.warning("job failed", code=error.code, reason=error.message)
        report.write_error(
            self.job.path,
            error,
            job_id=self.job.job_id,
            original_name=self.job.record.original_name,
            rejected=self.rejected,
            ignored=self.ignored,
        )
        self._finish(OUTCOME_FAILED)

    def hand_back(self, why: str) -> str:
        """Return the input to the inbox: nothing was wrong with the job itself."""
        self._fence()
        self.log.info("job handed back to the inbox", reason=why)
        self._close_attempt(OUTCOME_HANDED_BACK, charged=False)
        log.detach_job_log(self.job.job_id)
        transitions.hand_back(self.layout, self.job)
        self.outcome = OUTCOME_HANDED_BACK
        return self.outcome

    def _fence(self) -> None:
        """Raise ``LeaseLost`` when another daemon holds the job: then nothing here is ours."""
        if self.owner is not None and not holds(self.job.path, self.owner):
            raise LeaseLost(self.job.job_id)

    def _finish(self, state: str) -> None:
        self._fence()
        results.publish(self.job.path, self.result(state), index=state == OUTCOME_DONE, log=self.log)
        if state == OUTCOME_DONE:
            results.remember_outputs(self.layout, self.job, self.request, self.images, self.log, self.owner)
        self.log.info("job finished", state=state, images=len(self.images), rejected=len(self.rejected))
        self.job = transitions.finish(self.layout, self.job, state)
        log.detach_job_log(self.job.job_id)
        self.outcome = state

    def _close_attempt(self, outcome: str, *, charged: bool = True) -> None:
        attempts.close(self.job, outcome, charged=charged)

    def result(self, state: str) -> dict[str, Any]:
        """The content of result.json."""
        return results.result(
            self.job,
            state,
            started=self.started,
            engine=self.engine,
            settings={"formats": self.formats, "f_px_override": self.spec.f_px, "job_toml": self.job_toml},
            images=self.images,
            rejected=self.rejected,
            ignored=self.ignored,
            error=self.error,
        )

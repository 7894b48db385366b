"""Notifications when a job ends: commands, a webhook, a macOS desktop notification.

An observer that queues work for one background thread, so a slow hook never holds up the
daemon's loop, and a failing hook never fails the job: its outcome goes to the job's log.
Commands are argument lists (no shell); the job is described in environment variables.
Stopping waits for queued notifications only ``STOP_BUDGET_SECONDS``: hook timeouts can add
up to minutes, more than a service manager gives the daemon after its shutdown grace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpmld.core.config import Config
from sharpmld.observers.events import Observer
from sharpmld.queue.layout import JOB_LOG

# subprocess.run, or a stand-in: tests check the desktop notification's command on any platform.
Runner = Callable[..., "subprocess.CompletedProcess[str]"]

# How long stop() lets queued notifications finish. The service files give the daemon its
# shutdown grace plus 30 s after SIGTERM; the worker's stop takes part of that margin.
STOP_BUDGET_SECONDS = 10.0


@dataclass(frozen=True)
class Outcome:
    """What a hook learns about a finished job."""

    job_id: str
    job_dir: Path
    outcome: str
    original_name: str
    images: int
    rejected: int
    error_code: str

    def env(self) -> dict[str, str]:
        return {
            "SHARPMLD_JOB_ID": self.job_id,
            "SHARPMLD_JOB_DIR": str(self.job_dir),
            "SHARPMLD_OUTCOME": self.outcome,
            "SHARPMLD_ORIGINAL_NAME": self.original_name,
            "SHARPMLD_IMAGES": str(self.images),
            "SHARPMLD_ERROR_CODE": self.error_code,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "outcome": self.outcome,
            "original_name": self.original_name,
            "job_dir": str(self.job_dir),
            "images": self.images,
            "rejected": self.rejected,
            "error_code": self.error_code or None,
        }


class Notifier(Observer):
    """Runs the configured hooks for every job that ends in done/ or failed/."""

    def __init__(
        self, config: Config, log: Any, *, platform: str | None = None, runner: Runner = subprocess.run
    ) -> None:
        self.on_done: list[str] = list(config.get("notify", "on_done"))
        self.on_failed: list[str] = list(config.get("notify", "on_failed"))
        self.timeout = float(config.get("notify", "command_timeout_seconds"))
        self.webhook = str(config.get("notify", "webhook_url"))
        self.webhook_timeout = float(config.get("notify", "webhook_timeout_seconds"))
        self.webhook_attempts = int(config.get("notify", "webhook_attempts"))
        self.desktop = bool(config.get("notify", "desktop")) and (platform or sys.platform) == "darwin"
        self._runner = runner
        self.log = log
        self.stop_budget = STOP_BUDGET_SECONDS
        self._wake = threading.Condition()  # guards the three fields below
        self._pending: deque[Outcome] = deque()
        self._current: Outcome | None = None  # being delivered by the thread
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.on_done or self.on_failed or self.webhook or self.desktop)

    def on_finished(self, run: Any, outcome: str) -> None:
        if outcome not in ("done", "failed") or not self.enabled:
            return
        item = Outcome(
            job_id=run.job.job_id,
            job_dir=run.job.path,
            outcome=outcome,
            original_name=run.job.record.original_name,
            images=len(run.images),
            rejected=len(run.rejected),
            error_code=run.error.code if run.error else "",
        )
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="notify", daemon=True)
            self._thread.start()
        with self._wake:
            self._pending.append(item)
            self._wake.notify()

    def stop(self) -> None:
        """Let queued notifications finish within ``stop_budget``; log what is abandoned."""
        if self._thread is None:
            return
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=self.stop_budget)
        with self._wake:
            if not self._thread.is_alive():
                return
            pending = [item.job_id for item in self._pending]
            self._pending.clear()  # the thread ends after the one in flight
            current = self._current.job_id if self._current else None
        if current is None and not pending:  # the thread was on its way out
            return
        self.log.warning(
            "notifications abandoned", in_flight=current, pending=pending, budget_seconds=self.stop_budget
        )

    def _drain(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:
                    return
                item = self._current = self._pending.popleft()
            try:
                self.deliver(item)
            finally:
                with self._wake:
                    self._current = None

    def deliver(self, item: Outcome) -> None:
        """Run every hook for one finished job; record each result in its job.log."""
        command = self.on_done if item.outcome == "done" else self.on_failed
        if command:
            self._note(item, "hook command", **run_command(command, item, self.timeout))
        if self.webhook:
            self._note(
                item,
                "hook webhook",
                **post_webhook(self.webhook, item.summary(), self.webhook_timeout, self.webhook_attempts),
            )
        if self.desktop:
            self._note(item, "hook desktop notification", **desktop_notification(item, runner=self._runner))

    def _note(self, item: Outcome, event: str, **fields: Any) -> None:
        line = {"event": event, "job_id": item.job_id, "timestamp": time.time(), **fields}
        try:
            with open(item.job_dir / JOB_LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError:
            pass
        level = "info" if fields.get("ok") else "warning"
        getattr(self.log, level)(event, job_id=item.job_id, ok=fields.get("ok"), detail=fields.get("detail"))


def run_command(argv: list[str], item: Outcome, timeout: float) -> dict[str, Any]:
    """Run one hook command; its output is kept (truncated) for the job's log."""
    env = {**os.environ, **item.env()}
    try:
        proc = subprocess.run(
            argv,
            env=env,
            cwd=item.job_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "detail": f"timed out after {timeout:g} s"}
    except OSError as exc:
        return {"ok": False, "detail": f"cannot run {argv[0]!r}: {exc.strerror}"}
    return {
        "ok": proc.returncode == 0,
        "detail": f"exit status {proc.returncode}",
        "stdout": proc.stdout[-4000:],
        "stderr": proc.stderr[-4000:],
    }


def post_webhook(url: str, body: dict[str, Any], timeout: float, attempts: int) -> dict[str, Any]:
    """POST the JSON summary, retrying with backoff; never raises."""
    data = json.dumps(body).encode("utf-8")
    detail = ""
    for attempt in range(1, max(1, attempts) + 1):
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "sharpmld"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return {"ok": True, "detail": f"HTTP {response.status}", "attempts": attempt}
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break
        except (urllib.error.URLError, OSError, ValueError) as exc:
            detail = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            time.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))
    return {"ok": False, "detail": detail, "attempts": attempt}


def desktop_notification(item: Outcome, runner: Runner = subprocess.run) -> dict[str, Any]:
    """A macOS notification through osascript (no extra dependency)."""
    title = "sharpmld: splats ready" if item.outcome == "done" else "sharpmld: job failed"
    text = f"{item.original_name}: {item.images} image(s)" + (
        f", error {item.error_code}" if item.error_code else ""
    )
    script = f"display notification {json.dumps(text)} with title {json.dumps(title)}"
    try:
        proc = runner(["osascript", "-e", script], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "detail": str(exc)}
    return {"ok": proc.returncode == 0, "detail": proc.stderr.strip()}

"""The macOS desktop notification, on any platform: the exact osascript command it would run.

The platform and the command runner are injected, so this runs on Linux CI as well; what runs
on a Mac is the argument list checked here.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sharpmld.core.config import Config, validate
from sharpmld.observers.notify import Notifier, Outcome, desktop_notification
from sharpmld.queue.layout import JOB_LOG
from tests.support.harness import wait_for


class Runner:
    """Stands in for subprocess.run: records each call, answers like osascript would."""

    def __init__(self, returncode: int = 0, stderr: str = "", raises: Exception | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.returncode, self.stderr, self.raises = returncode, stderr, raises

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, kwargs))
        if self.raises is not None:
            raise self.raises
        return subprocess.CompletedProcess(argv, self.returncode, "", self.stderr)


def outcome(job_dir: Path, name: str = "kitchen", result: str = "done", code: str = "") -> Outcome:
    return Outcome("J1", job_dir, result, name, images=3, rejected=0, error_code=code)


def config(tmp_path: Path, **notify: Any) -> Config:
    return Config(root=tmp_path, path=None, sections=validate({"notify": notify}, "test"))


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))


def test_a_finished_job_runs_osascript_with_title_and_text(tmp_path: Path) -> None:
    runner = Runner()
    assert desktop_notification(outcome(tmp_path), runner=runner) == {"ok": True, "detail": ""}
    ((argv, kwargs),) = runner.calls
    assert argv == [
        "osascript",
        "-e",
        'display notification "kitchen: 3 image(s)" with title "sharpmld: splats ready"',
    ]
    assert kwargs["timeout"] > 0  # a stuck osascript cannot hold the notify thread forever


def test_a_failed_job_says_so_with_its_error_code(tmp_path: Path) -> None:
    runner = Runner()
    desktop_notification(outcome(tmp_path, result="failed", code="no_valid_images"), runner=runner)
    ((argv, _),) = runner.calls
    assert argv[2] == (
        'display notification "kitchen: 3 image(s), error no_valid_images" with title "sharpmld: job failed"'
    )


def test_a_folder_name_cannot_break_out_of_the_applescript_string(tmp_path: Path) -> None:
    runner = Runner()
    desktop_notification(outcome(tmp_path, name='a" & (do shell script "rm x") & "'), runner=runner)
    ((argv, _),) = runner.calls
    # AppleScript reads \" as a quote inside the string: the whole name stays one literal.
    assert argv[2] == (
        'display notification "a\\" & (do shell script \\"rm x\\") & \\": 3 image(s)"'
        ' with title "sharpmld: splats ready"'
    )


def test_osascript_failing_or_missing_is_reported_not_raised(tmp_path: Path) -> None:
    refused = desktop_notification(outcome(tmp_path), runner=Runner(1, "execution error: not allowed\n"))
    assert refused == {"ok": False, "detail": "execution error: not allowed"}
    missing = desktop_notification(
        outcome(tmp_path), runner=Runner(raises=FileNotFoundError(2, "No such file", "osascript"))
    )
    assert missing["ok"] is False and "osascript" in missing["detail"]


def test_the_notifier_notifies_on_macos_and_notes_it_in_the_job_log(tmp_path: Path) -> None:
    runner = Runner()
    notifier = Notifier(config(tmp_path, desktop=True), Log(), platform="darwin", runner=runner)
    assert notifier.enabled
    notifier.deliver(outcome(tmp_path))
    assert [argv[0] for argv, _ in runner.calls] == ["osascript"]
    (line,) = [json.loads(x) for x in (tmp_path / JOB_LOG).read_text().splitlines()]
    assert (line["event"], line["job_id"], line["ok"]) == ("hook desktop notification", "J1", True)


def test_the_notifier_stays_silent_elsewhere_or_when_off(tmp_path: Path) -> None:
    runner = Runner()
    for platform, desktop in (("linux", True), ("darwin", False)):
        notifier = Notifier(config(tmp_path, desktop=desktop), Log(), platform=platform, runner=runner)
        assert not notifier.enabled
        notifier.deliver(outcome(tmp_path))
    assert runner.calls == []
    assert not (tmp_path / JOB_LOG).exists()


class HangingRunner(Runner):
    """An osascript that hangs until released: a hook still running when the daemon stops."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.entered.set()
        self.release.wait(timeout=60)
        return super().__call__(argv, **kwargs)


def finished_run(tmp_path: Path, job_id: str) -> Any:
    """What the notifier reads of a finished job's run."""
    (tmp_path / job_id).mkdir()
    job = SimpleNamespace(job_id=job_id, path=tmp_path / job_id, record=SimpleNamespace(original_name=job_id))
    return SimpleNamespace(job=job, images=[{}], rejected=[], error=None)


def desktop_notifier(tmp_path: Path, log: Log, runner: Runner) -> Notifier:
    # Hook timeouts summing to 4 s: the stop budget below must win over them.
    cfg = config(
        tmp_path, desktop=True, command_timeout_seconds=2, webhook_timeout_seconds=2, webhook_attempts=1
    )
    return Notifier(cfg, log, platform="darwin", runner=runner)


def test_stop_delivers_what_is_queued_when_the_hooks_are_quick(tmp_path: Path) -> None:
    runner, log = Runner(), Log()
    notifier = desktop_notifier(tmp_path, log, runner)
    notifier.on_finished(finished_run(tmp_path, "J1"), "done")
    notifier.on_finished(finished_run(tmp_path, "J2"), "failed")
    notifier.stop()
    assert len(runner.calls) == 2
    assert [e for _, e, _ in log.lines] == ["hook desktop notification"] * 2


def test_stop_gives_up_after_its_budget_and_says_which_notifications_it_abandoned(tmp_path: Path) -> None:
    runner, log = HangingRunner(), Log()
    notifier = desktop_notifier(tmp_path, log, runner)
    notifier.stop_budget = 0.2
    notifier.on_finished(finished_run(tmp_path, "J1"), "done")
    notifier.on_finished(finished_run(tmp_path, "J2"), "failed")
    assert runner.entered.wait(timeout=10)  # J1's notification is running and hangs
    begun = time.monotonic()
    notifier.stop()
    took = time.monotonic() - begun
    runner.release.set()
    assert took < 1.5, f"stop() waited {took:.1f} s, not its 0.2 s budget"
    abandoned = [(level, f) for level, e, f in log.lines if e == "notifications abandoned"]
    assert abandoned == [("warning", {"in_flight": "J1", "pending": ["J2"], "budget_seconds": 0.2})]
    thread = notifier._thread
    assert thread is not None
    wait_for(lambda: not thread.is_alive(), 10, "the notifier thread to end", interval=0.01)
    assert len(runner.calls) == 1  # J1 ran to its end; J2 was not started after the stop

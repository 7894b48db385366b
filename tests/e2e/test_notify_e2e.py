"""Hooks when a job ends: a command, a webhook; a failing hook never fails the job."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = pytest.mark.timeout(120)


class Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    fail_first: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Recorder.fail_first > 0:
            Recorder.fail_first -= 1
            self.send_response(503)
        else:
            Recorder.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    """A webhook receiver on loopback that answers 503 once, then records every POST."""
    httpd = HTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.received, Recorder.fail_first = [], 1
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_hooks_run_and_a_failing_one_does_not_fail_the_job(
    root: Path, checkpoint: Path, tmp_path: Path, daemons: list, server: HTTPServer
) -> None:
    record = tmp_path / "hook.txt"
    script = (
        "import os, sys; open(sys.argv[1], 'a').write("
        "os.environ['SHARPMLD_OUTCOME'] + ' ' + os.environ['SHARPMLD_ORIGINAL_NAME'] + ' ' "
        "+ os.environ['SHARPMLD_JOB_DIR'] + '\\n')"
    )
    harness.write_config(
        root,
        checkpoint,
        notify={
            "on_done": [sys.executable, "-c", script, str(record)],
            "on_failed": [sys.executable, "-c", "import sys; print('hook broke'); sys.exit(7)"],
            "webhook_url": f"http://127.0.0.1:{server.server_port}/hook",
            "webhook_attempts": 3,
        },
    )
    good = root / "inbox" / "good"
    good.mkdir(parents=True)
    corpus.write_png(good / "a.png", (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    bad = root / "inbox" / "bad"
    bad.mkdir()
    (bad / "x.txt").write_text("no")
    d = Daemon(root)
    daemons.append(d)
    wait_for(lambda: len(Recorder.received) == 2, 60, lambda: f"two webhooks\n{d.text()[-2000:]}")
    (done,) = jobs(root, "done")
    (failed,) = jobs(root, "failed")
    assert json.loads((failed / "error.json").read_text())["code"] == "no_valid_images"
    assert record.read_text().split() == ["done", "good", str(done)]
    summaries = {r["original_name"]: r for r in Recorder.received}
    assert summaries["good"]["outcome"] == "done" and summaries["good"]["images"] == 1
    assert summaries["bad"]["error_code"] == "no_valid_images"
    wait_for(lambda: "hook command" in (failed / "job.log").read_text(), 10, "the hook's log line")
    lines = [json.loads(x) for x in (failed / "job.log").read_text().splitlines()]
    (hook,) = [x for x in lines if x["event"] == "hook command"]
    assert hook["ok"] is False and hook["detail"] == "exit status 7" and "hook broke" in hook["stdout"]
    assert d.stop() == 0

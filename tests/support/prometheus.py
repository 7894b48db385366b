"""A real ``prometheus`` for the end-to-end tests, scraping what file-based discovery finds.

It listens on a free loopback port, keeps its data under the test's folder, loads
``grafana/alerts.yml``, and follows ``<root>/.sharpmld/targets/*.json`` as the README's
example does. Debian: ``apt-get install prometheus`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.observers.test_dashboard import ALERTS

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """``prometheus`` as a child process on a free loopback port, scraping the daemons its
    file-based discovery finds under ``<root>/.sharpmld/targets/`` (as the README says)."""

    def __init__(self, workdir: Path, root: Path) -> None:
        workdir.mkdir(parents=True)
        self.url = f"http://127.0.0.1:{free_port()}"
        config = workdir / "prometheus.yml"
        # JSON is YAML.
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERTS)],
                    "scrape_configs": [
                        {
                            "job_name": "sharpmld",
                            "file_sd_configs": [
                                {
                                    "files": [str(root / ".sharpmld" / "targets" / "*.json")],
                                    "refresh_interval": "1s",
                                }
                            ],
                        }
                    ],
                }
            )
        )
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        assert PROMETHEUS
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error
            with exc:
                return json.loads(exc.read())

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited\n{self.text()}"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("/api/v1/query", query=expr)  # type: ignore[no-any-return]

    def value(self, expr: str) -> float | None:
        result = self.query(expr).get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            self._log.close()

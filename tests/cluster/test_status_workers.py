"""``sharpmld status`` lists the cluster's workers from their status files, by host.

The files are written by ``sharpmld worker --cluster`` under ``.sharpmld/workers/`` (one per
worker process, the shape below); here they are written by hand, as a worker would leave them.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from sharpmld.queue.layout import Layout
from tests.support import harness


def worker_file(root: Path, host: str, host_id: str, pid: int, **fields: Any) -> None:
    folder = root / ".sharpmld" / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "host_id": host_id,
        "broker": "nats://studio:4222",
        "started": time.time() - 600,
        "host": host,
        "pid": pid,
        "device": "",
        "model": "starting",
        "model_warm": False,
        "model_message": "",
        "connected": True,
        "current_photo": None,
        "last_heartbeat": None,
        "photos_done": 0,
        "updated": time.time() - 5,
        **fields,
    }
    (folder / f"{host_id}.{pid}.json").write_text(json.dumps(content))


def test_status_shows_each_worker_by_host_with_its_device_model_and_photo(tmp_path: Path) -> None:
    root = tmp_path / "root"
    harness.write_config(root, tmp_path / "no-model.pt")
    Layout(root).ensure()
    photo = {"job": "20261203T120000Z-kitchen-ab12", "photo": "IMG_0.jpg", "attempt": "b.9.2", "delivered": 2}
    worker_file(
        root,
        "mini-2",
        "b" * 32,
        9,
        device="mps",
        model="busy",
        model_warm=True,
        current_photo={**photo, "since": time.time() - 3},
        last_heartbeat=time.time() - 4,
    )
    worker_file(root, "cuda-box", "a" * 32, 7)
    shown = harness.cli(root, "status", "--root", str(root))
    lines = shown.stdout.splitlines()
    at = lines.index("workers:")
    assert lines[at + 1].startswith("  cuda-box pid 7: no device yet, model not warm (starting), idle")
    assert re.fullmatch(
        r"  mini-2 pid 9: mps, model warm, on 20261203T120000Z-kitchen-ab12/IMG_0\.jpg \(delivery 2\), "
        r"last heartbeat \d+ s ago, written \d+ s ago",
        lines[at + 2],
    ), lines[at + 2]
    as_json = json.loads(harness.cli(root, "status", "--json", "--root", str(root)).stdout)
    assert [w["host"] for w in as_json["workers"]] == ["cuda-box", "mini-2"]


def test_no_workers_folder_no_workers_lines(tmp_path: Path) -> None:
    root = tmp_path / "root"
    harness.write_config(root, tmp_path / "no-model.pt")
    Layout(root).ensure()
    shown = harness.cli(root, "status", "--root", str(root))
    assert "workers:" not in shown.stdout
    assert "workers" not in json.loads(harness.cli(root, "status", "--json", "--root", str(root)).stdout)

"""A photo task survives the trip through the broker, and hostile payloads are refused."""

from __future__ import annotations

import pytest

from sharpmld.cluster.task import BadTask, PhotoTask


def test_a_task_round_trips() -> None:
    task = PhotoTask(
        "20261203T100000Z-garden-abcd", "IMG 1.jpg", "working/20261203T100000Z-garden-abcd", {"spz": True}
    )
    assert PhotoTask.from_bytes(task.to_bytes()) == task


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"v": 2, "job": "j", "photo": "p.jpg", "job_dir": "working/j"}',
        b'{"v": 1, "job": "j", "photo": "", "job_dir": "working/j"}',
        b'{"v": 1, "job": "j", "photo": "p.jpg", "job_dir": "/etc"}',
        b'{"v": 1, "job": "j", "photo": "p.jpg", "job_dir": "working/../../etc"}',
        b'{"v": 1, "job": "j", "photo": "../p.jpg", "job_dir": "working/j"}',
        b'{"v": 1, "job": "j", "photo": "p.jpg", "job_dir": "working/j", "options": []}',
    ],
)
def test_a_payload_that_is_not_a_task_is_refused(data: bytes) -> None:
    with pytest.raises(BadTask):
        PhotoTask.from_bytes(data)

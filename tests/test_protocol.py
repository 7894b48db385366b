"""The daemon <-> worker protocol: every message survives a round trip; bad lines are refused."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharpmld.core.config import DEFAULTS, Config
from sharpmld.core.errors import ProtocolError
from sharpmld.protocol import (
    Command,
    Event,
    ImageDone,
    ImageFailed,
    ImageStarted,
    ImageTask,
    JobDone,
    JobRequest,
    LineReader,
    Message,
    Stop,
    TasksAdded,
    WorkerReady,
    WorkerUnavailable,
    WorkerWarning,
    decode,
    encode,
)

TASK = ImageTask("trip/a.jpg", "/in/trip/a.jpg", "trip-a")
EXAMPLES: list[Message] = [
    JobRequest("j1", "/jobs/j1", (TASK, ImageTask("v.mov", "/in/v.mov", "v", "video")), f_px=1200.5),
    Stop(),
    WorkerReady(pid=42, device="cpu", torch="2.4.0", load_seconds=1.25, load_method="meta+mmap+assign"),
    WorkerUnavailable("ml-sharp is not installed", "engine_unavailable"),
    ImageStarted("j1", "trip/a.jpg", 0),
    ImageDone("j1", "trip/a.jpg", 0, "ab" * 32, {"gaussians": 7, "timings": {"decode": 0.5}}),
    ImageFailed("j1", "trip/a.jpg", 1, "decode_failed", "The image could not be read.", detail="x"),
    TasksAdded("j1", "v.mov", (TASK,)),
    WorkerWarning("j1", "the output cache cannot be read"),
    JobDone("j1"),
]


def test_the_examples_cover_every_message_kind() -> None:
    kinds = {type(m) for m in EXAMPLES}
    assert kinds == {*typing.get_args(Command), *typing.get_args(Event)}


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_survives_a_round_trip(message: Message) -> None:
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line.rstrip(b"\n")) == message


def test_a_request_is_frozen_all_the_way_down() -> None:
    request = EXAMPLES[0]
    assert isinstance(request, JobRequest) and isinstance(request.images, tuple)
    with pytest.raises(AttributeError):
        request.images = ()  # type: ignore[misc]


def test_job_defaults_are_the_configuration_defaults(tmp_path: Path) -> None:
    bare = JobRequest("j", "/j", (TASK,))
    assert list(bare.formats) == DEFAULTS["outputs"]["formats"][0]
    assert bare.max_pixels_side == DEFAULTS["limits"]["max_pixels_side"][0]
    assert bare.video_frames == DEFAULTS["video"]["frames"][0]
    assert bare.previews is DEFAULTS["outputs"]["previews"][0]
    # A line without the optional fields (an older daemon) gets the same defaults.
    assert decode(b'{"op":"job","job_id":"j","job_dir":"/j","images":[]}') == JobRequest("j", "/j", ())
    config = Config(root=tmp_path, path=None, sections={"limits": {"max_pixels_side": 640}})
    assert JobRequest.configured(config, job_id="j", job_dir="/j", images=()).max_pixels_side == 640


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"ev": "teleported"}', "no known 'op' or 'ev'"),
        (b'{"ev": "job_done", "op": "stop"}', "no known 'op' or 'ev'"),
        (b'{"ev": "ready", "device": "cpu"}', "missing field 'pid'"),
        (b'{"ev": "image_started", "job_id": "j", "rel": "a", "index": "0"}', "index: expected int"),
        (b'{"ev": "job_done", "job_id": "j", "extra": 1}', "unknown field 'extra'"),
        (b'{"ev": "image_started", "job_id": "j", "rel": "a", "index": true}', "expected int, got bool"),
        (b'{"ev": "tasks_added", "job_id": "j", "source": "v", "tasks": [{"rel": 1}]}', "tasks[0].rel"),
        (b'{"op": "job", "job_id": "j", "job_dir": "/j", "images": {}}', "images: expected a list"),
    ],
)
def test_a_malformed_line_is_refused_with_a_reason(line: bytes, says: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(line)
    assert says in caught.value.message
    assert caught.value.code == "protocol_error"


def test_the_line_reader_splits_and_bounds_lines() -> None:
    reader = LineReader()
    assert reader.feed(b'{"a"') == []
    assert reader.feed(b':1}\n{"b":2}\n{') == [b'{"a":1}', b'{"b":2}']
    with pytest.raises(ProtocolError):
        reader.feed(b"x" * (1 << 21))


names = st.text(max_size=40)  # any text, lone surrogates of undecodable file names included
tasks = st.builds(ImageTask, names, names, names, st.sampled_from(["image", "video"]))


@given(
    st.one_of(
        st.builds(ImageStarted, names, names, st.integers(0, 10**6)),
        st.builds(ImageFailed, names, names, st.integers(0, 10**6), names, names, names, names),
        st.builds(TasksAdded, names, names, st.lists(tasks, max_size=4).map(tuple)),
        st.builds(
            JobRequest,
            names,
            names,
            st.lists(tasks, max_size=4).map(tuple),
            f_px=st.none() | st.floats(allow_nan=False, allow_infinity=False),
        ),
    )
)
def test_any_message_survives_a_round_trip(message: Message) -> None:
    assert decode(encode(message)) == message


def test_output_variants_cross_the_pipe_and_come_from_the_config(tmp_path: Path) -> None:
    request = JobRequest("j", "/j", (TASK,), ply_layout="ml-sharp", spz_version=3)
    assert decode(encode(request)) == request
    assert (JobRequest("j", "/j", ()).ply_layout, JobRequest("j", "/j", ()).spz_version) == ("3dgs", 2)
    config = Config(
        root=tmp_path, path=None, sections={"outputs": {"ply_layout": "ml-sharp", "spz_version": 3}}
    )
    configured = JobRequest.configured(config, job_id="j", job_dir="/j", images=())
    assert (configured.ply_layout, configured.spz_version) == ("ml-sharp", 3)

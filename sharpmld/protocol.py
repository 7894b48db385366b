"""The daemon <-> worker protocol: the one module both processes import.

Every message is a frozen dataclass; :func:`encode` turns one into a line of compact JSON and
:func:`decode` turns a line back into one, checking every field, so neither side ever handles
a bare dict. Commands go to the worker's stdin; events come back on a dedicated pipe (its
number is in ``SHARPMLD_EVENT_FD``), so anything ml-sharp or torch prints to stdout cannot
corrupt them.

Commands (``"op"``):  job (:class:`JobRequest`) | stop (:class:`Stop`)
Events (``"ev"``):    ready | unavailable | image_started | image_done | image_failed |
                      tasks_added | warning | job_done
The supervisor adds events of its own that never cross the pipe: worker_lost,
worker_recycled and worker_exited.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from sharpmld.core.config import DEFAULTS, KNOWN_FORMATS, Config
from sharpmld.core.errors import ProtocolError, SharpmldError

EVENT_FD_ENV = "SHARPMLD_EVENT_FD"
MAX_LINE = 1 << 20

# Request fields that come from the configuration: their defaults are the configuration's.
CONFIG_FIELDS: dict[str, tuple[str, str]] = {
    "formats": ("outputs", "formats"),
    "max_pixels_side": ("limits", "max_pixels_side"),
    "video_frames": ("video", "frames"),
    "video_max_seconds": ("video", "max_seconds"),
    "previews": ("outputs", "previews"),
    "orbit_frames": ("outputs", "orbit_frames"),
    "ply_layout": ("outputs", "ply_layout"),
    "spz_version": ("outputs", "spz_version"),
    "colour": ("model", "colour"),
}


# The stages the worker times for each image (``ImageDone.timings``): one write per format.
WORKER_STAGES: tuple[str, ...] = (
    "decode",
    "inference",
    "postprocess",
    "write_image",
    *(f"write_{name}" for name in KNOWN_FORMATS),
    "previews",
)


def _default(name: str) -> Any:
    section, key = CONFIG_FIELDS[name]
    value = DEFAULTS[section][key][0]
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class ImageTask:
    """One image of a job: where it is and the stem its outputs get."""

    rel: str
    src: str
    stem: str
    kind: str = "image"


# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    """Everything the worker needs to run one job, outputs written into ``job_dir``."""

    tag: ClassVar[tuple[str, str]] = ("op", "job")

    job_id: str
    job_dir: str
    images: tuple[ImageTask, ...]
    formats: tuple[str, ...] = _default("formats")
    f_px: float | None = None
    max_pixels_side: int = _default("max_pixels_side")
    cache_dir: str | None = None
    cache_salt: str = ""
    video_frames: int = _default("video_frames")
    video_max_seconds: float = float(_default("video_max_seconds"))
    previews: bool = _default("previews")
    orbit_frames: int = _default("orbit_frames")
    ply_layout: str = _default("ply_layout")
    spz_version: int = _default("spz_version")
    colour: str = _default("colour")

    @classmethod
    def configured(cls, config: Config, **fields: Any) -> JobRequest:
        """A request whose settings come from ``config`` unless ``fields`` says otherwise."""
        values: dict[str, Any] = {name: config.get(*key) for name, key in CONFIG_FIELDS.items()}
        values["formats"] = tuple(values["formats"])
        values["video_max_seconds"] = float(values["video_max_seconds"])
        values.update(fields)
        return cls(**values)


@dataclass(frozen=True)
class Stop:
    """Finish nothing more; exit."""

    tag: ClassVar[tuple[str, str]] = ("op", "stop")


# -- events from the worker ----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReady:
    """The model is loaded; the worker waits for jobs."""

    tag: ClassVar[tuple[str, str]] = ("ev", "ready")

    pid: int
    device: str
    torch: str
    load_seconds: float
    start_seconds: float = 0.0
    load_method: str = ""


@dataclass(frozen=True)
class WorkerUnavailable:
    """The model cannot be loaded; ``message`` says why and how to fix it."""

    tag: ClassVar[tuple[str, str]] = ("ev", "unavailable")

    message: str
    code: str = "engine_unavailable"


@dataclass(frozen=True)
class ImageStarted:
    """The worker began the model's turn on one input (or a video's frame extraction)."""

    tag: ClassVar[tuple[str, str]] = ("ev", "image_started")

    job_id: str
    rel: str
    index: int


@dataclass(frozen=True)
class ImageDone:
    """One image made it; ``result`` is its entry in result.json (outputs, timings, ...)."""

    tag: ClassVar[tuple[str, str]] = ("ev", "image_done")

    job_id: str
    rel: str
    index: int
    sha256: str
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def gaussians(self) -> int:
        return int(self.result.get("gaussians", 0))

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage the worker measured for this image."""
        return {str(k): float(v) for k, v in self.result.get("timings", {}).items()}


@dataclass(frozen=True)
class ImageFailed:
    """One image did not make it. ``message`` is for a person; ``detail`` is for the log."""

    tag: ClassVar[tuple[str, str]] = ("ev", "image_failed")

    job_id: str
    rel: str
    index: int
    code: str
    message: str
    sha256: str = ""
    detail: str = ""

    @classmethod
    def of(
        cls, job_id: str, rel: str, index: int, error: SharpmldError, *, sha256: str = "", detail: str = ""
    ) -> ImageFailed:
        return cls(job_id, rel, index, error.code, error.message, sha256, detail)


@dataclass(frozen=True)
class TasksAdded:
    """A video's chosen frames, which join the job as images after its own inputs."""

    tag: ClassVar[tuple[str, str]] = ("ev", "tasks_added")

    job_id: str
    source: str
    tasks: tuple[ImageTask, ...]


@dataclass(frozen=True)
class WorkerWarning:
    """Something the daemon should log for this job that changes no image's outcome."""

    tag: ClassVar[tuple[str, str]] = ("ev", "warning")

    job_id: str
    message: str


@dataclass(frozen=True)
class JobDone:
    """Every image of the job has been reported."""

    tag: ClassVar[tuple[str, str]] = ("ev", "job_done")

    job_id: str
    accelerator_bytes: int | None = None  # what MPS/CUDA's allocator holds after the job


# -- events the supervisor makes itself (never on the pipe) ------------------------------------


@dataclass(frozen=True)
class WorkerLost:
    """The worker died or was killed; ``busy`` says whether a job was in flight."""

    reason: str  # crash | timeout | memory
    detail: str
    busy: bool
    exit: str = ""  # the exit status in words, once the worker was reaped


@dataclass(frozen=True)
class WorkerRecycled:
    """The worker was restarted on purpose after serving ``images`` images."""

    images: int


Command = JobRequest | Stop
Event = (
    WorkerReady
    | WorkerUnavailable
    | ImageStarted
    | ImageDone
    | ImageFailed
    | TasksAdded
    | WorkerWarning
    | JobDone
)
SupervisorEvent = Event | WorkerLost | WorkerRecycled
Message = Command | Event

_KINDS: dict[tuple[str, str], type[Any]] = {
    cls.tag: cls for cls in (*typing.get_args(Command), *typing.get_args(Event))
}


def encode(message: Message) -> bytes:
    """One line of compact JSON: the message's tag and its fields."""
    key, kind = message.tag
    body = {key: kind, **dataclasses.asdict(message)}
    return json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes) -> Message:
    """The message on one line; raises ProtocolError saying what is wrong with a bad one."""
    try:
        raw = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"a protocol line is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("a protocol line is not a JSON object")
    tags = [(k, raw[k]) for k in ("op", "ev") if k in raw]
    if len(tags) != 1 or not isinstance(tags[0][1], str) or (tags[0][0], tags[0][1]) not in _KINDS:
        raise ProtocolError(f"a protocol line has no known 'op' or 'ev': {str(raw)[:80]}")
    key, kind = tags[0]
    cls = _KINDS[(key, kind)]
    fields = {k: v for k, v in raw.items() if k != key}
    built: Message = _build(cls, fields, kind)
    return built


def _build(cls: type[Any], raw: Any, where: str) -> Any:
    """``cls`` from a JSON object, every field checked against its type hint."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: expected an object, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ProtocolError(f"{where}: unknown field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            values[f.name] = _value(hints[f.name], raw[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{where}: missing field {f.name!r}")
    return cls(**values)


def _value(hint: Any, value: Any, where: str) -> Any:
    """``value`` as ``hint`` says it must be; ProtocolError if it is something else."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _value(inner, value, where)
    if hint is Any:
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ProtocolError(f"{where}: expected a list, got {type(value).__name__}")
        item = typing.get_args(hint)[0]
        return tuple(_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object, got {type(value).__name__}")
        return value
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, float, bool) and type(value) is hint:
        return value
    raise ProtocolError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {type(value).__name__}")


class LineReader:
    """Splits a non-blocking byte stream into lines; bounded so a runaway peer cannot bloat us."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf.extend(data)
        lines: list[bytes] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            lines.append(bytes(self._buf[:nl]))
            del self._buf[: nl + 1]
        if len(self._buf) > MAX_LINE:
            self._buf.clear()
            raise ProtocolError("a protocol line is longer than 1 MiB")
        return lines

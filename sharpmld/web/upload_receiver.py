"""Writing an upload's files into its staging folder with the job limits applied per chunk.

The limits are the intake's own (``[limits]``, ``[video]``), checked before each chunk is
written: a file's type is judged from its first bytes with the intake's magic before the
file is even created, and no byte past a size limit ever reaches the disk. Any refusal
raises from the project's error hierarchy; the caller then discards the staging folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sharpmld.core.config import Config
from sharpmld.core.errors import (
    EmptyFile,
    FileTooLarge,
    JobTooLarge,
    SharpmldError,
    TooManyImages,
    UnsafeName,
    UnsupportedType,
    format_advice,
    unsupported_message,
)
from sharpmld.core.units import MB
from sharpmld.intake.magic import DESCRIBE_BYTES, describe_other, sniff
from sharpmld.intake.names import JOB_TOML

MAX_JOB_TOML_BYTES = 64 * 1024
"""A job.toml is a few lines of settings; anything bigger is not one."""

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _mb(n: int) -> str:
    value = n / MB
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


@dataclass(frozen=True)
class UploadLimits:
    """The limits an upload is held to: the same numbers the daemon's intake applies."""

    max_file_bytes: int
    max_job_bytes: int
    max_images: int
    max_depth: int
    max_video_bytes: int  # 0: video input is turned off

    @classmethod
    def from_config(cls, config: Config) -> UploadLimits:
        video = int(config.get("video", "max_mb") * MB) if config.get("video", "enabled") else 0
        return cls(
            max_file_bytes=int(config.get("limits", "max_file_mb") * MB),
            max_job_bytes=int(config.get("limits", "max_job_mb") * MB),
            max_images=int(config.get("limits", "max_images")),
            max_depth=int(config.get("limits", "max_depth")),
            max_video_bytes=video,
        )


def _refuse(error: SharpmldError, rel: str) -> SharpmldError:
    error.details["file"] = rel
    return error


def judge(rel: str, head: bytes, limits: UploadLimits) -> tuple[str, int]:
    """The kind of the file whose first bytes are ``head``, and how large it may be; raises
    UnsupportedType when the intake would refuse it."""
    kind = sniff(head)
    name = rel.rsplit("/", 1)[-1]
    if kind is None:
        raise _refuse(UnsupportedType(unsupported_message(describe_other(head, name))), rel)
    if kind == "video" and not limits.max_video_bytes:
        message = f"This file is a video and video input is turned off. {UnsupportedType.advice}"
        raise _refuse(UnsupportedType(message), rel)
    return kind, limits.max_video_bytes if kind == "video" else limits.max_file_bytes


def check_size(rel: str, kind: str, size: int, limit: int) -> None:
    """Raise FileTooLarge when a file of ``kind`` would reach ``size`` bytes, past ``limit``."""
    if size > limit:
        if kind == "video":
            message = f"Videos must be under {_mb(limit)} MB each."
        else:
            message = format_advice(FileTooLarge, max_file_mb=_mb(limit))
        raise _refuse(FileTooLarge(message, max_bytes=limit), rel)


def check_total(rel: str, total: int, limits: UploadLimits) -> None:
    """Raise JobTooLarge when the job's files would add up to ``total`` bytes, past the limit."""
    if total > limits.max_job_bytes:
        message = format_advice(JobTooLarge, max_job_mb=_mb(limits.max_job_bytes))
        raise _refuse(JobTooLarge(message, max_job_bytes=limits.max_job_bytes), rel)


def check_count(rel: str, images: int, limits: UploadLimits) -> None:
    """Raise TooManyImages when the job would hold ``images`` photos, past the limit."""
    if images > limits.max_images:
        message = format_advice(TooManyImages, max_images=limits.max_images)
        raise _refuse(TooManyImages(message, max_images=limits.max_images), rel)


@dataclass
class _File:
    rel: str
    path: Path
    is_settings: bool
    head: bytearray = field(default_factory=bytearray)
    size: int = 0
    limit: int = 0
    kind: str = ""
    fd: int | None = None


class Receiver:
    """Receives one job's files, one at a time, into ``folder`` (which it creates)."""

    def __init__(self, folder: Path, limits: UploadLimits) -> None:
        self.folder = folder
        self.limits = limits
        self.files: list[str] = []
        self.total = 0
        self._current: _File | None = None
        folder.mkdir()

    def open(self, parts: tuple[str, ...]) -> None:
        """Start the file at ``parts``; nothing is created until its first bytes are judged."""
        rel = "/".join(parts)
        if rel in self.files:
            raise UnsafeName(format_advice(UnsafeName, name=repr(rel)), file=rel)
        settings = parts == (JOB_TOML,)
        if not settings:
            check_count(rel, len(self.files) - (JOB_TOML in self.files) + 1, self.limits)
        self.files.append(rel)
        self._current = _File(rel, self.folder.joinpath(*parts), settings)
        if settings:
            self._current.limit = MAX_JOB_TOML_BYTES
            self._create(self._current)

    def write(self, data: bytes) -> None:
        """Take the next bytes of the current file, refusing them if they break a limit."""
        f = self._current
        if f is None or not data:
            return
        if f.fd is None:
            f.head += data
            if len(f.head) >= DESCRIBE_BYTES:
                self._judge(f)
            return
        self._account(f, len(data))
        os.write(f.fd, data)

    def close(self) -> None:
        """The current file ended: judge it if it was short, and close it."""
        f = self._current
        if f is None:
            return
        if f.fd is None and f.head:
            self._judge(f)
        if f.fd is None or (f.size == 0 and not f.is_settings):
            raise _refuse(EmptyFile(format_advice(EmptyFile)), f.rel)
        os.close(f.fd)
        f.fd = None
        self._current = None

    def abort(self) -> None:
        """Release the open file, if any (the caller removes the folder)."""
        if self._current is not None and self._current.fd is not None:
            os.close(self._current.fd)
            self._current.fd = None

    def _judge(self, f: _File) -> None:
        """Decide from the head whether the file may be kept and how large it may grow."""
        head = bytes(f.head)
        f.kind, f.limit = judge(f.rel, head, self.limits)
        f.head = bytearray()
        self._account(f, len(head))
        self._create(f)
        assert f.fd is not None
        os.write(f.fd, head)

    def _account(self, f: _File, n: int) -> None:
        check_size(f.rel, f.kind, f.size + n, f.limit)
        check_total(f.rel, self.total + n, self.limits)
        f.size += n
        self.total += n

    def _create(self, f: _File) -> None:
        parent = f.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            f.fd = os.open(f.path, _CREATE, 0o644)
        except (FileExistsError, NotADirectoryError):
            # "a" and "a/b.jpg" in one upload: the same name as a file and as a folder.
            raise _refuse(UnsafeName(format_advice(UnsafeName, name=repr(f.rel))), f.rel) from None

"""The error hierarchy: every failure a person can see has a stable code and a plain message.

Codes are a contract: they appear in ``error.json``, ``result.json``, metrics labels and the
README, so scripts may match on them. Messages are for people and may be reworded.
"""

from __future__ import annotations

from typing import Any


class SharpmldError(Exception):
    """Root of every error sharpmld raises on purpose."""

    code = "internal_error"
    advice = "Processing failed. Please try again."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.advice
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The ``{code, message, details}`` shape written to ``error.json``."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigError(SharpmldError):
    """The configuration file or an override is invalid; the message names the key."""

    code = "config_invalid"
    advice = "Fix the configuration file and start again."


class BrokerNotReady(SharpmldError):
    """A cluster worker found the broker without the photo stream: no intake has set it up yet."""

    code = "broker_not_ready"
    advice = (
        "The broker has no photo stream yet: start the intake (`sharpmld run` with [cluster] url) "
        "once; workers wait for it and retry."
    )


class EngineUnavailable(SharpmldError):
    """The model cannot be loaded (ml-sharp or the checkpoint missing); jobs wait, none fail."""

    code = "engine_unavailable"
    advice = "Install ml-sharp and its checkpoint; run `sharpmld doctor` for the exact fix."


class SandboxUnavailable(EngineUnavailable):
    """``[worker] sandbox`` is on but its tool (unshare / sandbox-exec) refuses to run here."""

    code = "sandbox_unavailable"
    advice = (
        "Set [worker] sandbox = false, or let this user create namespaces "
        "(sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
        "kernel.apparmor_restrict_unprivileged_userns=0)."
    )


class ClaimRefused(SharpmldError):
    """The system refused the rename that claims an inbox entry; the entry stays where it is."""

    code = "not_writable"
    advice = (
        "The daemon's user cannot move this entry out of the inbox (moving a folder needs "
        "write permission on it). Make that user its owner, or give it write access."
    )


class ImageRejected(SharpmldError):
    """One input image cannot be used; the rest of its job goes on."""


class JobFailed(SharpmldError):
    """The whole job ends in ``failed/``."""


class UnsupportedType(ImageRejected):
    """The file's content is not a JPEG, PNG or HEIC image, whatever its name says."""

    code = "unsupported_type"
    advice = "Please upload JPEG, PNG, or HEIC images."
    named = "This file is {what}; sharpmld reads JPEG, PNG and HEIC photos. {how}"


_EXPORT = "Export or save it as JPEG, PNG or HEIC, and drop that instead."
FILE_KINDS: dict[str, tuple[str, str]] = {
    "raw": (
        "a RAW camera file (such as DNG, CR2, NEF or ARW)",
        "Export it as JPEG or HEIC from your camera's app or photo editor, and drop that instead.",
    ),
    "tiff": ("a TIFF image", _EXPORT),
    "gif": ("a GIF image", _EXPORT),
    "bmp": ("a BMP image", _EXPORT),
    "webp": ("a WebP image", _EXPORT),
    "avif": ("an AVIF image", _EXPORT),
    "jxl": ("a JPEG XL image", _EXPORT),
    "jp2": ("a JPEG 2000 image", _EXPORT),
    "psd": ("a Photoshop document (PSD)", _EXPORT),
    "pdf": ("a PDF document", "Export the photos it holds as JPEG, PNG or HEIC files."),
    "zip": ("a ZIP archive", "Unzip it and drop the photos it holds."),
    "script": ("a script, not an image", ""),
    "job_toml": (
        "a job.toml (a job's settings) on its own",
        "Put it inside the folder of photos it is for, and drop that folder.",
    ),
}
"""What a refused file really is, by the kind ``intake.magic.describe_other`` names, and what
to do about it; each way out is said once, here."""


def unsupported_message(kind: str | None) -> str:
    """The person-facing reason for an unsupported file: named when its kind is known."""
    if kind not in FILE_KINDS:
        return UnsupportedType.advice
    what, how = FILE_KINDS[kind]
    return UnsupportedType.named.format(what=what, how=how).strip()


class EmptyFile(ImageRejected):
    """A zero-byte file."""

    code = "empty_file"
    advice = "The file is empty. Please copy it again."


class FileTooLarge(ImageRejected):
    """A file above the per-file size limit."""

    code = "file_too_large"
    advice = "Images must be under {max_file_mb} MB each."


class NotRegularFile(ImageRejected):
    """A symlink, FIFO, socket or device file: never followed or opened."""

    code = "not_regular_file"
    advice = "Symbolic links, devices and pipes are not accepted. Copy the image itself."


class PermissionDenied(ImageRejected):
    """A file or folder in the job the daemon's user may not read: left out, and named."""

    code = "permission_denied"
    advice = (
        "The daemon's user ({user}) cannot read this {what}. Give it read access "
        "(chmod -R u+rX), or make that user its owner (chown -R {user}), then drop the job again."
    )


class DecodeFailed(ImageRejected):
    """The decoder refused the file."""

    code = "decode_failed"
    advice = "The image could not be read; it may be damaged or truncated. Please export it again."
    high_bit_depth = (
        "This is a {bits}-bit JPEG, which sharpmld cannot read (it needs 8 bits per sample). "
        "Export it as an 8-bit JPEG, PNG or HEIC, and drop that instead."
    )


class NotDownloaded(ImageRejected):
    """An iCloud Drive placeholder: the file itself was evicted from this Mac, only its stub is here."""

    code = "not_downloaded"
    advice = (
        "{name} is in iCloud Drive but not downloaded to this Mac. Download it (in Finder, "
        "Control-click it and choose Download Now, or run `brctl download` on it) and drop it again."
    )


class ImageTooLarge(ImageRejected):
    """Decoded dimensions above the configured limit, or a decompression bomb."""

    code = "image_too_large"
    advice = "Images must be at most {max_pixels_side} pixels on each side."
    sized = "This one is {width}×{height}."


class VideoTooLong(ImageRejected):
    """A clip longer than ``video.max_seconds``."""

    code = "video_too_long"
    advice = "Videos may be at most {max_seconds} seconds long. Trim the clip and try again."


class NoValidImages(JobFailed):
    """Every file in the job was rejected or ignored."""

    code = "no_valid_images"
    advice = "No usable image was found. Please upload JPEG, PNG, or HEIC images."


class TooManyImages(JobFailed):
    """More images than ``limits.max_images``."""

    code = "too_many_images"
    advice = "A job may hold at most {max_images} images. Split it into smaller folders."


class JobTooLarge(JobFailed):
    """The job's files add up to more than ``limits.max_job_mb``."""

    code = "job_too_large"
    advice = "A job may hold at most {max_job_mb} MB. Split it into smaller folders."


class TooManyEntries(JobFailed):
    """Too many entries or too deep a tree to be a folder of photos."""

    code = "too_many_entries"
    advice = "The folder holds too many files or is nested too deeply. Drop only the photos."


class InvalidJobToml(JobFailed):
    """``job.toml`` is not valid TOML, or has an unknown key or a wrong type."""

    code = "invalid_job_toml"
    advice = "The job.toml file is invalid: {problem}"


class Timeout(JobFailed):
    """An image or the whole job ran past its time limit."""

    code = "timeout"
    advice = "Processing took too long. Try fewer images."


class EngineCrash(JobFailed):
    """The model worker died, or failed every image, while working on this job."""

    code = "engine_crash"
    advice = "The engine failed on this job. Run `sharpmld doctor`; if it keeps happening, report it."


class OutOfMemory(JobFailed):
    """The worker went past ``worker.max_memory_mb``."""

    code = "out_of_memory"
    advice = "Processing ran out of memory. Try smaller images or fewer at a time."


class Cancelled(JobFailed):
    """A person cancelled the job (``sharpmld cancel`` or the web app); nothing was wrong with it."""

    code = "cancelled"
    advice = "The job was cancelled on request."


class TooManyAttempts(JobFailed):
    """The job already used its ``queue.max_attempts`` attempts (the limit was lowered since)."""

    code = "too_many_attempts"
    advice = "Processing failed several times in a row. Please try again later or report it."


class DaemonKeptDying(JobFailed):
    """The daemon died ``queue.max_daemon_restarts`` times while it held this job.

    Not the job's fault as far as anyone can tell, so it is counted apart from the attempts;
    but a job must not be retried forever, in case it is what brings the daemon down.
    """

    code = "daemon_restarts"
    advice = (
        "The sharpmld service stopped unexpectedly {restarts} times while processing this job. "
        "Check the service's log, then drop the job into the inbox again."
    )


class OutputInvalid(JobFailed):
    """A written output did not read back as expected."""

    code = "output_invalid"
    advice = "The model produced unusable output (NaN or wrong size). Please report it."


class OutputTooLarge(JobFailed):
    """An output would exceed ``worker.max_file_size_mb``."""

    code = "output_too_large"
    advice = "The result was larger than the configured file-size limit. Try smaller images."


class InternalError(JobFailed):
    """A bug: anything unexpected. The technical detail goes to the log, never to a person."""

    code = "internal_error"
    advice = "sharpmld hit an internal error; its log has the details. Please report it."


class UploadRefused(SharpmldError):
    """An upload through the web app was refused before it reached the inbox; nothing was kept."""

    code = "upload_refused"
    advice = "The upload was refused; nothing was added to the inbox."


class UnsafeName(UploadRefused):
    """An uploaded file's path climbs out of the job (``..``), is absolute, or holds control bytes."""

    code = "unsafe_name"
    advice = (
        "The file name {name} cannot be used: names may not start with a slash, contain "
        "'..', a backslash or control characters, or repeat another file's name."
    )


class BadUpload(UploadRefused):
    """The request is not the multipart form the upload page sends (or it names no file)."""

    code = "bad_upload"
    advice = "The upload could not be read: send the photos as multipart/form-data fields named 'file'."


class ProtocolError(SharpmldError, ValueError):
    """A line between the daemon and the worker that is not a valid message."""

    code = "protocol_error"
    advice = "The daemon and the worker disagree on a message; reinstall the same sharpmld for both."


class WorkerImageError(SharpmldError):
    """The engine, not the picture, went wrong on one image; the rest of the job goes on."""


class ModelError(WorkerImageError):
    """The model's forward pass raised on this image."""

    code = "model_error"
    advice = "The model failed on this image."


class WriteFailed(WorkerImageError):
    """Writing an image's outputs failed for a reason other than a full disk."""

    code = "write_failed"
    advice = "The outputs of this image could not be written."


class DiskFull(WorkerImageError):
    """The disk (or the quota) filled up while writing outputs: the job goes back to the inbox."""

    code = "disk_full"
    advice = "The disk filled up while writing the outputs; the job waits until there is room."


class PhotoGivenUp(WorkerImageError):
    """Cluster mode: every worker that took this photo was lost on it, ``max_deliver`` times."""

    code = "given_up"
    advice = "Every worker that tried this photo stopped on it ({deliveries} tries); it was given up."


def format_advice(cls: type[SharpmldError], **values: Any) -> str:
    """Fill a class's advice template; missing values leave the braces visible, never crash."""
    try:
        return cls.advice.format(**values)
    except (KeyError, IndexError, ValueError):
        return cls.advice


IMAGE_ERRORS: dict[str, type[ImageRejected]] = {
    c.code: c
    for c in (
        UnsupportedType,
        EmptyFile,
        FileTooLarge,
        NotRegularFile,
        PermissionDenied,
        NotDownloaded,
        DecodeFailed,
        ImageTooLarge,
        VideoTooLong,
    )
}
JOB_ERRORS: dict[str, type[JobFailed]] = {
    c.code: c
    for c in (
        NoValidImages,
        TooManyImages,
        JobTooLarge,
        TooManyEntries,
        InvalidJobToml,
        Timeout,
        EngineCrash,
        OutOfMemory,
        TooManyAttempts,
        DaemonKeptDying,
        OutputInvalid,
        OutputTooLarge,
        InternalError,
    )
}
# Codes the worker reports for one image when the engine, not the photo, went wrong, and the
# job error each means when no image of the job made it. The one table both sides use.
WORKER_ERRORS: dict[str, type[JobFailed]] = {
    ModelError.code: EngineCrash,
    WriteFailed.code: EngineCrash,
    DiskFull.code: EngineCrash,  # never a failure in practice: a full disk hands the job back
    InternalError.code: EngineCrash,
    OutputInvalid.code: OutputInvalid,
    OutputTooLarge.code: OutputTooLarge,
}

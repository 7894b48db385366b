"""``POST /api/jobs``: photos or a folder from a browser, streamed into a new inbox entry.

The body is ordinary ``multipart/form-data`` (what a browser's ``FormData`` and ``curl -F``
send, so no client needs our code): file parts whose ``filename`` is the path inside the job
(``garden/IMG_1.jpg``), and an optional text part ``name``. It is parsed as it arrives
(python-multipart's push parser, not Starlette's ``form()``, which spools every file to a
temp folder before anyone can look at it), into a staging folder under a hidden temp name in
the inbox, with every limit checked before a chunk is written. The folder becomes a job by
one rename when the body has ended well; a refusal, an error or a client gone mid-body
removes it, so the daemon never sees a partial upload.

After a refusal the rest of the body is read and dropped (up to a bound) before answering:
a browser that is still sending when the server answers and closes shows a network error
instead of the message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from sharpmld.core.errors import (
    BadUpload,
    EmptyFile,
    FileTooLarge,
    JobTooLarge,
    NoValidImages,
    SharpmldError,
    UnsupportedType,
    format_advice,
)
from sharpmld.core.units import MB
from sharpmld.queue.delivery import Staging
from sharpmld.queue.layout import Layout
from sharpmld.web.upload_names import browser_filename, clean_path, job_name
from sharpmld.web.upload_receiver import Receiver, UploadLimits, check_total

NAME_FIELD = "name"
MAX_FIELD_BYTES = 4096
DRAIN_SLACK_BYTES = 16 * MB
"""How much past the job limit a refused body is still read, so the browser gets the answer."""

STATUS_BY_CODE = {
    FileTooLarge.code: 413,
    JobTooLarge.code: 413,
    UnsupportedType.code: 415,
    EmptyFile.code: 422,
}

Event = tuple[str, bytes]


def refusal(error: SharpmldError) -> JSONResponse:
    """The JSON a refused upload gets: the stable code, a message for a person, the file."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if "file" in error.details:
        body["file"] = str(error.details["file"])
    return JSONResponse(body, status_code=STATUS_BY_CODE.get(error.code, 400))


def _boundary(request: Request) -> bytes:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadUpload(format_advice(BadUpload))
    return boundary


class _Form:
    """Turns the parser's callbacks into calls on the receiver, one part at a time."""

    def __init__(self, receiver: Receiver, limits: UploadLimits) -> None:
        self.receiver = receiver
        self.limits = limits
        self.events: list[Event] = []
        self.ended = False
        self.name: str | None = None
        self.first_file: tuple[str, ...] | None = None
        self.ignored: list[str] = []
        self._header = [b"", b""]
        self._disposition = b""
        self._part = ""  # "file", "name", or "" for a part that is dropped
        self._text = bytearray()
        self._dropped = 0  # bytes of skipped parts: read and thrown away, but not without end

    def callbacks(self) -> dict[str, Callable[..., None]]:
        def keep(kind: str) -> Callable[..., None]:
            def on(data: bytes = b"", start: int = 0, end: int = 0) -> None:
                self.events.append((kind, data[start:end]))

            return on

        kinds = ("part_begin", "header_field", "header_value", "header_end", "headers_finished")
        found = {f"on_{k}": keep(k) for k in (*kinds, "part_data", "part_end")}
        found["on_end"] = keep("end")
        return found

    def handle(self) -> None:
        """Act on the events the last chunk produced (raises a refusal from the receiver)."""
        events, self.events = self.events, []
        for kind, data in events:
            if kind == "part_begin":
                self._header, self._disposition, self._part = [b"", b""], b"", ""
            elif kind == "header_field":
                self._header[0] += data
            elif kind == "header_value":
                self._header[1] += data
            elif kind == "header_end":
                if self._header[0].strip().lower() == b"content-disposition":
                    self._disposition = self._header[1]
                self._header = [b"", b""]
            elif kind == "headers_finished":
                self._start_part()
            elif kind == "part_data":
                self._data(data)
            elif kind == "part_end":
                if self._part == "file":
                    self.receiver.close()
                elif self._part == "name":
                    self.name = self._text.decode("utf-8", "replace")
                self._part = ""
            elif kind == "end":
                self.ended = True

    def _start_part(self) -> None:
        _, options = parse_options_header(self._disposition.decode("latin-1"))
        field = options.get(b"name", b"").decode("latin-1")
        filename = options.get(b"filename")
        if filename is None:
            self._part, self._text = ("name", bytearray()) if field == NAME_FIELD else ("", bytearray())
            return
        if not filename:
            return  # an empty file input sends a part with no name and no bytes
        name = browser_filename(filename)
        parts = clean_path(name, self.limits.max_depth)
        if parts is None:
            self.ignored.append(name)
            return
        if self.first_file is None:
            self.first_file = parts
        self.receiver.open(parts)
        self._part = "file"

    def _data(self, data: bytes) -> None:
        if self._part == "file":
            self.receiver.write(data)
        elif self._part == "name":
            self._text += data
            if len(self._text) > MAX_FIELD_BYTES:
                raise BadUpload("The job name is too long.")
        else:
            self._dropped += len(data)
            check_total("(skipped files)", self._dropped, self.limits)


def _too_large(limits: UploadLimits) -> JobTooLarge:
    return JobTooLarge(format_advice(JobTooLarge, max_job_mb=f"{limits.max_job_bytes / MB:g}"))


def _now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


async def receive(request: Request, layout: Layout, limits: UploadLimits) -> Response:
    """Stream one upload into the inbox, or refuse it leaving nothing behind."""
    cap = limits.max_job_bytes + DRAIN_SLACK_BYTES
    try:
        boundary = _boundary(request)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            return refusal(_too_large(limits))
    except SharpmldError as exc:
        return refusal(exc)
    since = _now_stamp()
    layout.ensure()
    staging = Staging(layout, "upload")
    receiver = Receiver(staging.path, limits)
    form = _Form(receiver, limits)
    parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
    refused: SharpmldError | None = None
    drained = received = 0

    def drop() -> None:
        receiver.abort()
        staging.discard()

    try:
        async for chunk in request.stream():
            received += len(chunk)
            if refused is not None:
                drained += len(chunk)
                if drained > cap:
                    break
                continue
            if received > cap:  # headers of endless empty parts, say: no part's bytes count
                refused = _too_large(limits)
                drop()
                break
            try:
                parser.write(chunk)
                form.handle()
            except SharpmldError as exc:
                refused = exc
                drop()
            except Exception as exc:  # the parser's own errors: a malformed body
                refused = BadUpload(f"{BadUpload.advice} ({exc})")
                drop()
        if refused is not None:
            return refusal(refused)
        if not form.ended:
            raise BadUpload("The upload ended before its last part; nothing was kept.")
        if form.first_file is None:
            raise NoValidImages("The upload held no photo. " + NoValidImages.advice)
        name = job_name(form.name, form.first_file)
        target = await run_in_threadpool(staging.commit, name)
    except SharpmldError as exc:
        drop()
        return refusal(exc)
    except ClientDisconnect:
        drop()
        return Response(status_code=400)  # no one is there to read it
    except BaseException:
        drop()
        raise
    body = {
        "inbox": target.name,
        "id": None,  # the daemon names the job when it claims it; follow tells which
        "files": len(receiver.files),
        "bytes": receiver.total,
        "ignored": form.ignored,
        "follow": f"/api/uploads/{quote(target.name, safe='')}?since={since}",
    }
    return JSONResponse(body, status_code=201)

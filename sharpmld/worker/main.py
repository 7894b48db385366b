"""The worker process: load the model once, then run the jobs the daemon sends.

Started by the supervisor as ``python -m sharpmld.worker.main`` in its own process
group, possibly with another Python (a venv that has ml-sharp). It never outlives the daemon:
a thread reads the command pipe and exits the process the moment it closes, and on Linux the
kernel's parent-death signal backs that up.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sharpmld.core.errors import ProtocolError
from sharpmld.protocol import (
    EVENT_FD_ENV,
    Command,
    Event,
    JobRequest,
    Stop,
    WorkerReady,
    WorkerUnavailable,
    decode,
    encode,
)
from sharpmld.worker import limits

EXIT_OK = 0
EXIT_UNAVAILABLE = 3
EXIT_PROTOCOL = 4
EXIT_PARENT_GONE = 5


class Channel:
    """Thread-safe writer of events to the daemon."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def emit(self, message: Event) -> None:
        data = encode(message)
        with self._lock:
            try:
                os.write(self._fd, data)
            except BrokenPipeError:
                os._exit(EXIT_PARENT_GONE)


def _read_commands(commands: queue.Queue[Command | None]) -> None:
    """Forward commands; the daemon closing our stdin means it is gone, so we go too."""
    for line in sys.stdin.buffer:
        try:
            command = decode(line)
        except ProtocolError as exc:
            print(f"sharpmld worker: {exc.message}", file=sys.stderr, flush=True)
            os._exit(EXIT_PROTOCOL)
        if not isinstance(command, JobRequest | Stop):
            print(f"sharpmld worker: not a command: {command!r}", file=sys.stderr, flush=True)
            os._exit(EXIT_PROTOCOL)
        commands.put(command)
    os._exit(EXIT_PARENT_GONE)


def main(argv: list[str] | None = None) -> int:
    """Entry point; the arguments are a JSON object of settings from the supervisor."""
    settings: dict[str, Any] = json.loads((argv or sys.argv[1:] or ["{}"])[0])
    limits.apply(settings.get("limits", {}))
    limits.die_with_parent(int(settings.get("daemon_pid", 0)))
    channel = Channel(int(os.environ[EVENT_FD_ENV]))
    commands: queue.Queue[Command | None] = queue.Queue()
    threading.Thread(target=_read_commands, args=(commands,), daemon=True).start()

    start = time.perf_counter()
    from sharpmld.core.errors import EngineUnavailable
    from sharpmld.worker.model import load_model

    try:
        import torch

        loaded = load_model(
            settings["factory"],
            Path(settings["checkpoint"]),
            settings["device"],
            str(settings.get("precision", "fp32")),
        )
    except EngineUnavailable as exc:
        channel.emit(WorkerUnavailable(exc.message, exc.code))
        return EXIT_UNAVAILABLE
    if loaded.device.type == "mps":
        limits.cap_mps_memory(float(settings.get("max_memory_mb") or 0))
    from sharpmld.worker.pipeline import run_job

    channel.emit(
        WorkerReady(
            pid=os.getpid(),
            device=str(loaded.device),
            torch=str(torch.__version__),
            load_seconds=round(loaded.load_seconds, 3),
            start_seconds=round(time.perf_counter() - start, 3),
            load_method=loaded.method,
        )
    )
    while True:
        command = commands.get()
        if command is None or isinstance(command, Stop):
            return EXIT_OK
        run_job(command, loaded, channel.emit)


if __name__ == "__main__":
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: the command-reader thread may sit in a read on stdin, which a normal
    # interpreter shutdown would trip over.
    os._exit(main())

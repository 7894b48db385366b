"""The three processes a person may run at login, each as its own launchd agent or unit.

The daemon owns the inbox; the web app (``sharpmld serve``) only reads the folder tree and
writes into the inbox as ``submit`` does, so it runs and restarts apart from the daemon; a
cluster worker host runs ``sharpmld worker --cluster URL`` and no daemon at all. Each has a
label of its own, so installing one never reloads or removes another.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharpmld.core.errors import SharpmldError

DEFAULT_LABEL = "com.sharpml.sharpmld"
CLUSTER_SCHEMES = ("nats://", "tls://")


@dataclass(frozen=True)
class Role:
    """One kind of process: its launchd label, its systemd unit, and its command line."""

    name: str
    label: str
    unit: str  # systemd user unit, without ".service"
    command: tuple[str, ...]  # after ``python -m sharpmld``; ``--root`` and ``--config`` follow
    runs: str  # for messages: "<runs> runs now and at every login"


DAEMON = Role("daemon", DEFAULT_LABEL, "sharpmld", ("run",), "the sharpmld daemon")
WEB = Role("web", f"{DEFAULT_LABEL}.web", "sharpmld-web", ("serve",), "the sharpmld web app")


def worker(url: str) -> Role:
    """The agent of a cluster worker host, taking photos from the broker at ``url``."""
    if not url.startswith(CLUSTER_SCHEMES) or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise SharpmldError(f"--worker needs the broker's URL, e.g. nats://studio.local:4222 (got {url!r})")
    return Role(
        "worker",
        f"{DEFAULT_LABEL}.worker",
        "sharpmld-worker",
        ("worker", "--cluster", url),
        f"a sharpmld cluster worker on {url}",
    )


def choose(web: bool, worker_url: str | None) -> Role:
    """The role ``--web`` / ``--worker URL`` name (neither: the daemon; both: an error)."""
    if web and worker_url is not None:
        raise SharpmldError("--web and --worker are separate agents: install them one at a time")
    if worker_url is not None:
        return worker(worker_url)
    return WEB if web else DAEMON

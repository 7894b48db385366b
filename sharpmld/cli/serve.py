"""``sharpmld serve``: the web app in its own process, wired to the CLI's status and retry.

The daemon does not depend on it; both read and write the same tree. A bind address other
than loopback is served only with the token from the state folder, printed here in the URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpmld.cli.cancel import cancel
from sharpmld.cli.codes import RET_OK
from sharpmld.cli.status import gather
from sharpmld.cli.submit import retry
from sharpmld.core.config import Config
from sharpmld.core.units import MB
from sharpmld.queue.layout import Layout
from sharpmld.web.app import Actions, create_app
from sharpmld.web.security import is_loopback, load_or_create_token
from sharpmld.web.upload_receiver import UploadLimits


def build(config: Config, host: str, port: int) -> tuple[Any, str | None]:
    """The app for ``config``'s root and the token it needs (None on loopback)."""
    layout = Layout(config.root)
    layout.ensure()
    token = None if is_loopback(host) else load_or_create_token(layout.state_dir)

    def cancel_from_web(job: str, now: bool) -> tuple[str, Path] | None:
        done = cancel(config, job, by="web", now=now)
        return None if done is None else (done.state, done.path)

    def status() -> dict[str, Any]:
        # ``sharpmld status``'s facts, and the disk the daemon checks before it claims a job.
        info = gather(config)
        minimum = int(float(config.get("intake", "min_free_mb")) * MB)
        try:
            info["disk"] = {"free_bytes": layout.free_bytes(), "min_free_bytes": minimum}
        except OSError:
            info["disk"] = {"free_bytes": None, "min_free_bytes": minimum}
        return info

    actions = Actions(status=status, retry=lambda job: retry(config, job), cancel=cancel_from_web)
    limits = UploadLimits.from_config(config)
    return create_app(config.root, actions, host=host, port=port, token=token, limits=limits), token


def serve(config: Config, host: str, port: int) -> int:
    """Run uvicorn in the foreground until interrupted."""
    import uvicorn

    app, token = build(config, host, port)
    shown = f"[{host}]" if ":" in host else host
    query = f"/?token={token}" if token else "/"
    print(f"sharpmld: serving {config.root} at http://{shown}:{port}{query}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
    return RET_OK

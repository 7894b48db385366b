"""Serving a registry over HTTP: the daemon's ``/metrics`` and each cluster worker's.

One place turns a taken port into a clear start-up error and shuts a server down; each
caller says what to do about the port in its own words (a config key, a flag).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from sharpmld.core.errors import ConfigError


def start(registry: CollectorRegistry, host: str, port: int, *, what: str, advice: str) -> Any:
    """Serve ``registry`` on ``host:port`` (port 0: a free one); returns the HTTP server."""
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve {what} on {host}:{port} ({exc.strerror}); another program uses it: {advice}"
        ) from None
    return server


def stop(server: Any) -> None:
    """Stop a server ``start`` returned (None: nothing was started)."""
    if server is not None:
        server.shutdown()
        server.server_close()

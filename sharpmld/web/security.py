"""The rules that keep a page which can write into the inbox from being used by strangers.

Loopback is the default; any other bind needs a token. The Host header must name the bound
address (a DNS-rebinding page reaches us under its own name), and a request that changes
something must come from our own origin (CSRF). No CORS headers are ever sent.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sharpmld.core import fsio

TOKEN_FILE = "web-token"
COOKIE = "sharpmld_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_or_create_token(state_dir: Path) -> str:
    """The token in the state folder, made once with O_EXCL and mode 0600 so no race can read it."""
    path = state_dir / TOKEN_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text("ascii").strip()  # another serve made it first
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    fsio.fsync_dir(state_dir)
    return token


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values a browser sends for the bound address."""
    names = {host}
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    if ":" in host and not host.startswith("["):
        names.add(f"[{host}]")
    return frozenset({*names, *(f"{n}:{port}" for n in names)})


class Guard:
    """ASGI middleware that applies the Host, token and Origin rules before any route runs."""

    def __init__(self, app: App, *, host: str, port: int, token: str | None) -> None:
        self.app = app
        self.hosts = allowed_hosts(host, port)
        self.origins = frozenset(f"{scheme}://{h}" for h in self.hosts for scheme in ("http", "https"))
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._problem(scope, headers)
        if problem is None:
            if self.token is not None and self._token_in_query(scope):
                send = self._setting_cookie(send)
            await self.app(scope, receive, send)
            return
        status, text = problem
        body = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        if headers.get("host", "").lower() not in self.hosts:
            return 421, "this server answers only to the name it is bound to (Host header refused)"
        if self.token is not None and not self._has_token(scope, headers):
            return 401, "a token is needed: open the URL that `sharpmld serve` printed"
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is None:
                referer = headers.get("referer")
                origin = None if referer is None else "{0.scheme}://{0.netloc}".format(urlsplit(referer))
            if origin is not None and origin.lower() not in self.origins:
                return 403, "a request from another site may not change anything here"
        return None

    def _token_in_query(self, scope: Scope) -> bool:
        return any(self._matches(g) for g in _query_tokens(scope))

    def _setting_cookie(self, send: Send) -> Send:
        """``send``, adding the token as a cookie to the response's headers.

        The URL ``serve`` prints carries the token once; the page's later requests (its
        scripts, images, downloads) do not, so the browser keeps it as a cookie: HttpOnly so
        no script reads it, SameSite=Strict so no other site's page sends it.
        """
        assert self.token is not None
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        return sending

    def _matches(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _has_token(self, scope: Scope, headers: dict[str, str]) -> bool:
        given: list[str] = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        given += _query_tokens(scope)
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                given.append(value)
        return any(self._matches(g) for g in given)


def _query_tokens(scope: Scope) -> list[str]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])

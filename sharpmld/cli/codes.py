"""The exit codes every ``sharpmld`` command returns, named once so scripts can rely on them."""

from __future__ import annotations

RET_OK = 0
RET_FAILURE = 1
RET_USAGE = 2
RET_CONFIG = 3
RET_NOT_FOUND = 4

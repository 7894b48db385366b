"""The exit codes every ``sharpmld`` command returns, named once so scripts can rely on them."""

from __future__ import annotations

RET_OK = 0
RET_FAILURE = 1
RET_USAGE = 2
RET_CONFIG = 3
RET_NOT_FOUND = 4
RET_NO_DAEMON = 5
RET_JOBS_FAILED = 6
RET_ENGINE_UNAVAILABLE = 7
RET_PAUSED = 8

STATUS_EXIT_CODES = {
    RET_NO_DAEMON: "no daemon is running on this root",
    RET_ENGINE_UNAVAILABLE: "with --check: the daemon runs but its engine is unavailable",
    RET_PAUSED: "with --check: the daemon runs but claims no jobs (low disk space, stopping, broker down)",
    RET_JOBS_FAILED: "with --failed-since: a job failed since that time",
    RET_OK: "none of the above (with --check: a daemon runs, its engine is loaded, it claims jobs)",
    RET_USAGE: "a bad option, e.g. a --failed-since time that cannot be read",
    RET_CONFIG: "the configuration is invalid",
}
"""What ``sharpmld status`` exits with; of 5 to 8, when several apply, the first listed."""

"""Units and errno groups that several rooms need, said once.

The ``*_mb`` settings are mebibytes: every conversion to bytes multiplies by ``MB`` from here,
so a limit the person sets means the same number of bytes in the daemon, the worker and the
messages that quote it.
"""

from __future__ import annotations

import errno

MB = 1 << 20
"""Bytes in one of the configuration's megabytes (a mebibyte)."""

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors that mean "no room left" (a full volume or a quota): wait for space, not fail."""

"""The name of the user this process runs as, for messages that tell a person whom to grant
access to."""

from __future__ import annotations

import os


def effective_user() -> str:
    """The effective user's name from the password database, else ``uid N``.

    Not ``getpass.getuser()``: it trusts ``$USER``/``$LOGNAME``, which ``sudo -u``, ``su`` without
    ``-``, or a service started from someone's shell may leave naming another user, and the
    ``chown`` a message suggests must name the user whose permissions actually applied.
    """
    uid = os.geteuid()
    try:
        import pwd
    except ImportError:  # no password database on this platform
        return f"uid {uid}"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no entry (a container's arbitrary uid)
        return f"uid {uid}"

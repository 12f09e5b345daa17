"""A file or folder the agent's account may not use: one line saying which, and what to run."""

from __future__ import annotations

import errno
import grp
import os
import pwd
from pathlib import Path

__all__ = ["ACCESS_ERRNOS", "access_message"]

# Refused by permissions or a read-only filesystem: the technician fixes these with one command.
ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def access_message(exc: OSError) -> str:
    """What went wrong, naming the path and the account, and the command that fixes it."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    path = Path(exc.filename) if exc.filename else None
    what = "is on a read-only filesystem" if exc.errno == errno.EROFS else "is not writable"
    if path is None:
        return (
            f"error: {exc.strerror or exc} for the account {user}\n"
            "next: run the agent as the account that owns its buffer and state folders "
            "(buffer.path, state_dir), e.g. sudo -u millstream edge-agent …"
        )
    if exc.errno == errno.EROFS:
        fix = "set buffer.path and state_dir to a writable filesystem, e.g. /var/lib/millstream"
    elif path.exists():
        fix = f"sudo chown -R {user}:{group} {path}"
    else:
        folder = path.parent if path.suffix else path  # a file to create needs its folder
        fix = f"sudo install -d -o {user} -g {group} -m 0750 {folder}"
    return (
        f"error: {path} {what} for the account {user} ({exc.strerror})\n"
        f"next: {fix}   (or run as the account that owns it: sudo -u millstream edge-agent …)"
    )

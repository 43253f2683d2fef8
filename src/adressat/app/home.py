"""The data directory is its owner's only (DESIGN.md I6: every local user could read every
text when the store files were 0644 in a 0755 directory).

Both processes and the CLI set the umask to 077 first, so whatever they create (the database
and its -wal, -shm and .wlock, tag.key, delivery.lock, netsim/ and its files) is 0600 and a
directory 0700; the files that are created by name are also opened 0600. ``prepare_home``
creates the directory 0700, and tightens it and the node's own files in it when an older
version left them readable to others.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("adressat.home")

UMASK = 0o077
DIR_MODE = 0o700


def private_umask() -> None:
    """Nothing created by this process is readable or writable by group or others."""
    os.umask(UMASK)


#: what the node and the CLI create in it (only these are tightened: the directory may hold
#: anything else, e.g. be a user's own home)
OWN_ENTRIES = (
    "adressat.db", "adressat.db-wal", "adressat.db-shm", "adressat.db.wlock", "tag.key",
    "delivery.lock", "netsim", "netsim/inbox.log", "content.keys", "content.keys.lock",
)


def prepare_home(home: Path) -> None:
    """Create ``home`` (0700), or tighten it and the node's own files in it."""
    home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    uid = os.getuid()
    for path in (home, *(home / name for name in OWN_ENTRIES)):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        try:
            if stat.S_ISLNK(st.st_mode) or st.st_uid != uid or not st.st_mode & 0o077:
                continue
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
        except OSError as e:  # e.g. gone meanwhile; never a reason not to start
            log.warning("could not tighten a data file's mode",
                        extra={"path": str(path), "error_type": type(e).__name__})

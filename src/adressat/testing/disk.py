"""A data directory on a small file system of its own, and a way to fill it: the disk-full
tests and ``bench/soak.py --disk-full`` (a tmpfs needs root to mount)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["small_fs", "fill"]


@contextlib.contextmanager
def small_fs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` (mode 0700) while the block runs."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700",
                           "tmpfs", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"cannot mount a tmpfs at {path} (root needed): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(filler: Path, bytes_max: int = 64 << 30) -> Path:
    """Write ``filler`` until the file system has no byte left (1 MiB blocks, then 512 B),
    ``bytes_max`` at most."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for block in (b"\0" * (1 << 20), b"\0" * 512):
            for _ in range(bytes_max // len(block)):
                try:
                    os.write(fd, block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler

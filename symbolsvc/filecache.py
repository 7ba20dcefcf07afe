"""A file parsed once per change: re-read when its (mtime, size, inode) changes, so a replaced
agency certificate or HPKE key takes effect on the next call without a restart. The project
replaces such files atomically (a new inode: ``pki.write_public``) or appends to them (the
revocation list grows), so a change is seen even within the file system's mtime
granularity."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class FileCache(Generic[T]):
    """``get(path)``: ``parse(bytes)`` of the file, or None when it is missing or ``parse``
    raises ValueError (the caller says what that means for its request)."""

    def __init__(self, parse: Callable[[bytes], T]) -> None:
        self._parse = parse
        self._cache: dict[Path, tuple[tuple[int, int, int], T | None]] = {}

    def get(self, path: Path) -> T | None:
        try:
            st = os.stat(path)
        except OSError:
            self._cache.pop(path, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value: T | None
        try:
            value = self._parse(path.read_bytes())
        except (OSError, ValueError):
            value = None
        self._cache[path] = (stamp, value)
        return value

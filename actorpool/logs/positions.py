"""Log positions kept in a file across restarts: a file-backed ``PositionStore``.

A :class:`FilePositionStore` holds container id -> :class:`~actorpool.messages.LogPosition`
in memory and writes them to one JSON file, atomically: a temporary file in
the same directory, ``fsync``, ``rename`` over the old one, ``fsync`` of the
directory. A crash at any point leaves either the old file or the new one,
never a mix, so a file that does not parse is not ours or was damaged by
something else; loading it raises :class:`~actorpool.errors.PositionError`
(naming the file and what is wrong) instead of silently starting from zero.

The file::

    {"format": "actorpool-positions", "version": 1, "created": <ns>, "saved": <ns>,
     "positions": {"<container id>": "v1;stdout=TS:N;stderr=TS:N", ...},
     "meta": {...}}

``created`` is when the store began (its first run): containers it does not
know are read from then on (``baseline``). ``meta`` is free for the owner
(the CLI keeps where its output file was when the positions were saved).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from actorpool.errors import PositionError
from actorpool.messages import LogPosition

__all__ = ["FORMAT", "VERSION", "FilePositionStore"]

FORMAT: Final = "actorpool-positions"
VERSION: Final = 1


class FilePositionStore:
    """A :class:`~actorpool.messages.PositionStore` saved to one file. Thread-safe.

    Args:
        path: The file. Missing: a new store (``baseline()`` is ``None``).
        interval: Seconds between saves made by :meth:`update` itself; ``None``
            leaves every save to the owner (who may first need to make its
            own output durable, as the CLI does). Call :meth:`save` on stop.
        reset: Ignore the file's contents and start a new store (the way out
            of a :class:`~actorpool.errors.PositionError`); the file is only
            replaced at the next save.

    Raises:
        PositionError: The file cannot be read, is not a positions file, was
            written by a newer actorpool, or holds a damaged position.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, interval: float | None = 1.0, reset: bool = False
    ) -> None:
        self.path = Path(path)
        self._interval = interval
        self._lock = threading.Lock()
        self._positions: dict[str, LogPosition] = {}
        self._meta: dict[str, Any] = {}
        self._created = time.time_ns()
        self._fresh = True
        self._dirty = False
        self._last_save = time.monotonic()
        if not reset:
            self._load()

    # -- loading --

    def _fail(self, what: str) -> PositionError:
        return PositionError(
            f"positions file {self.path}: {what}; fix or move it, or start over with "
            "--reset-positions (lines may then repeat or be missed)"
        )

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as error:
            raise self._fail(f"cannot be read ({error.strerror or error})") from error
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise self._fail(f"is not an actorpool positions file (not JSON: {error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise self._fail(f'is not an actorpool positions file (no "format": "{FORMAT}")')
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._fail(f"has no valid format version (got {version!r:.40})")
        if version > VERSION:
            raise self._fail(
                f"was written by a newer actorpool (format version {version}; this one reads "
                f"{VERSION})"
            )
        created = data.get("created")
        positions = data.get("positions")
        meta = data.get("meta", {})
        if not isinstance(created, int) or isinstance(created, bool) or created < 0:
            raise self._fail(f'has no valid "created" time (got {created!r:.40})')
        if not isinstance(positions, dict) or not isinstance(meta, dict):
            raise self._fail('is damaged ("positions" and "meta" must be objects)')
        loaded: dict[str, LogPosition] = {}
        for key, value in positions.items():
            try:
                loaded[key] = LogPosition.decode(value)
            except PositionError as error:
                raise self._fail(f"container {key!r:.80}: {error}") from None
        self._positions = loaded
        self._meta = meta
        self._created = created
        self._fresh = False

    # -- the PositionStore protocol --

    def positions(self) -> dict[str, LogPosition]:
        """Container id -> position, a copy."""
        with self._lock:
            return dict(self._positions)

    def baseline(self) -> int | None:
        """When the store began (ns), or ``None`` when it was new at load."""
        return None if self._fresh else self._created

    def update(self, container_id: str, position: LogPosition) -> None:
        """Set one container's position; saves when ``interval`` passed since the last save."""
        with self._lock:
            self._positions[container_id] = position
            self._dirty = True
        self._maybe_save()

    def forget(self, container_id: str) -> None:
        """Drop one container."""
        with self._lock:
            if self._positions.pop(container_id, None) is not None:
                self._dirty = True
        self._maybe_save()

    # -- more --

    @property
    def dirty(self) -> bool:
        """Changed since the last save."""
        return self._dirty

    @property
    def meta(self) -> dict[str, Any]:
        """The owner's free-form data as loaded or last set (a copy)."""
        with self._lock:
            return dict(self._meta)

    def set_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace the owner's data (JSON-serialisable), saved with the positions."""
        with self._lock:
            self._meta = dict(meta)
            self._dirty = True

    def _maybe_save(self) -> None:
        if self._interval is not None and time.monotonic() - self._last_save >= self._interval:
            self.save()

    def save(self) -> None:
        """Write the file atomically (temp file, fsync, rename, fsync of the directory).

        Raises:
            OSError: It could not be written (the old file is left as it was).
        """
        with self._lock:
            data = {
                "format": FORMAT,
                "version": VERSION,
                "created": self._created,
                "saved": time.time_ns(),
                "positions": {k: p.encode() for k, p in self._positions.items()},
                "meta": self._meta,
            }
            self._dirty = False
            self._last_save = time.monotonic()
        body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode() + b"\n"
        directory = self.path.parent
        tmp = directory / f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with self._lock:
                self._dirty = True
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

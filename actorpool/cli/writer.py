"""The subscriber that writes log records to a file (or stdout) and keeps their positions.

:class:`LogWriter` is the monitor's subscriber when it writes JSON, writes to
a file, or keeps positions. It encodes each ``LogChunk`` into records
(:mod:`actorpool.cli.records`), writes them with one ``os.write`` per chunk on
an ``O_APPEND`` descriptor, and only then records the chunk's position in
the :class:`~actorpool.logs.positions.FilePositionStore`.

Exactly once across crashes
---------------------------
A position is saved *after* its records were written, so a crash can only
leave records the saved positions do not cover: never a gap. Those records
are not written twice, because the positions file also keeps the output's
identity (device, inode) and the offset the saved positions correspond to;
a restarted monitor reads the records after that offset
(:func:`~actorpool.cli.records.replay`), advances the positions over them
and cuts off a record torn by the crash. The records themselves are the
log; the positions file is a checkpoint that keeps the replay short (it is
saved every second, output ``fsync``-ed first, so a power loss cannot leave
positions ahead of the data either). Written to stdout (a pipe) nothing can
be read back: a crash then repeats up to a second of lines.

A full disk or any other write error
------------------------------------
A failed write stops everything: the chunk's unwritten rest and every later
message are held, in order, and the writer's mailbox *reports them as
waiting* (its ``qsize`` counts the held messages), which is exactly what the
log streams read for backpressure: each stops sending at
``streams.subscriber_buffer`` and pauses its readers, and the daemon
buffers. The positions stay at the last whole chunk written. Every tick
(the CLI's main loop sends one twice a second) the writer tries again; once
a write succeeds it writes what it held and says so.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from pykka._envelope import Envelope

from actorpool.cli.printer import GetStats, PrinterStats, Status
from actorpool.cli.records import RecordEncoder
from actorpool.engine.actor import Actor
from actorpool.logs.positions import FilePositionStore
from actorpool.messages import (
    LogChunk,
    LogStreamEnded,
    LogStreamError,
    LogStreamStarted,
    position_key,
)

__all__ = ["TICK", "LogWriter", "Tick", "output_identity"]

_SAVE_INTERVAL: Final = 1.0  # seconds between position saves while lines flow
_POOL_STOPPED: Final = "pool stopped"


class Tick:
    """CLI main loop -> writer: save positions when due, retry a failed write."""


TICK: Final = Tick()


class _Inbox(queue.SimpleQueue[Envelope[Any]]):
    """A mailbox whose size includes the messages the writer holds while it cannot write."""

    held = 0

    def qsize(self) -> int:
        return super().qsize() + self.held


def output_identity(fd: int, path: str) -> dict[str, Any]:
    """What identifies the output file in the positions file (device, inode, path)."""
    st = os.fstat(fd)
    return {"path": path, "dev": st.st_dev, "ino": st.st_ino}


class LogWriter(Actor):
    """Writes the records of every chunk it is sent to ``fd``; keeps positions in ``store``.

    Args:
        fd: An open descriptor (``O_APPEND`` for a file; 1 for stdout). Closed on stop
            unless it is stdout.
        encoder: Makes the records.
        store: Positions, updated after each chunk is written; saved every second
            and on stop. ``None``: no positions.
        identity: The output's :func:`output_identity` (a regular file only),
            saved with the positions with the offset they match.
        offset: The file's size now (where the next record goes).
        status: Prints one of actorpool's own lines (on stderr).
        done: Set when the output is gone for good (stdout closed: ``| head``).
        expect: Set ``done`` once this many streams ended (``logs -f``).
    """

    @staticmethod
    def _create_actor_inbox() -> _Inbox:
        return _Inbox()

    def __init__(
        self,
        fd: int,
        encoder: RecordEncoder,
        *,
        store: FilePositionStore | None = None,
        identity: dict[str, Any] | None = None,
        offset: int = 0,
        status: Callable[[str], None] = lambda text: None,
        done: threading.Event | None = None,
        expect: int | None = None,
    ) -> None:
        super().__init__()
        self._fd = fd
        self._encoder = encoder
        self._store = store
        self._identity = identity
        self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
        self._offset = offset  # bytes of the file (written so far)
        self._committed = offset  # the end of the last whole chunk written
        self._saved_offset = -1
        self._status = status
        self._done = done
        self._expect = expect
        self._pending: memoryview | None = None  # the unwritten rest of a chunk
        self._pending_chunk: LogChunk | None = None
        self._held: collections.deque[Any] = collections.deque()
        self._error: OSError | None = None
        self._last_save = time.monotonic()
        self._lines = 0
        self._streaming: set[str] = set()
        self._ended = 0
        self._failed = 0
        self._broken = False

    # -- lifecycle --

    def on_stop(self) -> None:
        self._save(force=True)
        if self._fd > 2:
            with contextlib.suppress(OSError):
                os.close(self._fd)

    # -- messages --

    def on_receive(self, message: Any) -> Any:
        if message is TICK:
            if self._error is not None:
                self._retry()
            self._save(force=False)
            return None
        if isinstance(message, GetStats):
            return PrinterStats(
                self._lines, len(self._streaming), self._ended, self._failed, self._broken
            )
        if isinstance(message, Status):
            self._status(message.text)
            return None
        if self._error is not None:
            self._hold(message)
            return None
        self._handle(message)
        return None

    def _hold(self, message: Any) -> None:
        self._held.append(message)
        inbox = self.actor_inbox
        assert isinstance(inbox, _Inbox)
        inbox.held = len(self._held)

    def _handle(self, message: Any) -> None:
        if isinstance(message, LogChunk):
            if not self._broken:
                self._chunk(message)
        elif isinstance(message, LogStreamStarted):
            self._encoder.started(message)
        elif isinstance(message, LogStreamEnded | LogStreamError):
            self._stream_end(message)

    def _chunk(self, chunk: LogChunk) -> None:
        data = self._encoder.encode(chunk.container_id, chunk.lines, chunk.endpoint)
        self._streaming.add(position_key(chunk.endpoint, chunk.container_id))
        self._pending, self._pending_chunk = memoryview(data), chunk
        self._write_pending()

    def _write_pending(self) -> bool:
        """Write the pending rest; True when it is all out (and its position kept)."""
        data = self._pending
        chunk = self._pending_chunk
        assert data is not None
        assert chunk is not None
        while data:
            try:
                n = os.write(self._fd, data)
            except InterruptedError:
                continue
            except BrokenPipeError:
                self._broken = True
                if self._done is not None:
                    self._done.set()
                return False
            except OSError as error:
                self._pending = data
                self._stalled(error)
                return False
            self._offset += n
            data = data[n:]
        self._pending = self._pending_chunk = None
        self._committed = self._offset
        self._lines += len(chunk.lines)
        if self._store is not None and chunk.position is not None:
            self._store.update(position_key(chunk.endpoint, chunk.container_id), chunk.position)
        return True

    def _stream_end(self, message: LogStreamEnded | LogStreamError) -> None:
        cid = message.container_id
        if not cid:
            return  # the end of the FollowContainers subscription as a whole
        key = position_key(message.endpoint, cid)
        self._streaming.discard(key)
        self._ended += 1
        if isinstance(message, LogStreamError):
            self._failed += 1
            self._status(f"actorpool: {cid[:12]}: log stream failed: {message.error}")
        elif message.reason == "removed" and self._store is not None:
            self._store.forget(key)  # its last lines are written: nothing more to read
        if self._expect is not None and self._ended >= self._expect and self._done is not None:
            self._done.set()

    # -- write errors --

    def _stalled(self, error: OSError) -> None:
        first = self._error is None
        self._error = error
        if first:
            self._status(
                f"actorpool: cannot write the output ({error.strerror or error}): stopped "
                "reading; positions stay at the last line written; retrying every 0.5 s"
            )

    def _retry(self) -> None:
        if not self._write_pending():
            return
        error, self._error = self._error, None
        held = len(self._held)
        while self._held and self._error is None:
            message = self._held.popleft()
            self._handle(message)
        inbox = self.actor_inbox
        assert isinstance(inbox, _Inbox)
        inbox.held = len(self._held)
        if self._error is None:
            self._status(
                f"actorpool: the output is writable again ({held} held messages written); "
                f"reading resumed after: {error.strerror if error else ''}"
            )

    # -- positions --

    def _save(self, *, force: bool) -> None:
        store = self._store
        if store is None:
            return
        due = force or time.monotonic() - self._last_save >= _SAVE_INTERVAL
        if not due or (not store.dirty and self._committed == self._saved_offset):
            return
        self._last_save = time.monotonic()
        try:
            if self._regular:
                os.fsync(self._fd)  # the records before the positions that cover them
            if self._identity is not None:
                store.set_meta({"output": {**self._identity, "offset": self._committed}})
            store.save()
        except OSError as error:
            self._status(
                f"actorpool: cannot save the positions to {store.path} "
                f"({error.strerror or error}); will retry"
            )
            return
        self._saved_offset = self._committed

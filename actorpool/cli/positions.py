"""Opening the monitor's output and positions files, and bringing the positions up to date.

Before the monitor follows anything, :func:`open_output` loads the positions
file (a damaged or foreign one is a :class:`~actorpool.errors.PositionError`
naming it: nothing starts from zero unless ``--reset-positions`` says so),
opens the output for appending, and, when the positions were saved for this
very output file (same device and inode), reads the JSON records written
after the offset they were saved at (:func:`~actorpool.cli.records.replay`):
a monitor killed between writing records and saving their positions
continues after its last record, not after its last save. Why this is
exact is explained in :mod:`actorpool.cli.writer`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from actorpool.cli.args import EXIT_ERROR, CliError
from actorpool.cli.records import Format, replay
from actorpool.cli.writer import output_identity
from actorpool.errors import PositionError
from actorpool.logs.positions import FilePositionStore

__all__ = ["OpenedOutput", "open_output"]


@attrs.define
class OpenedOutput:
    """The output descriptor, where it ends, what identifies it, and the positions."""

    fd: int
    offset: int
    identity: dict[str, Any] | None
    store: FilePositionStore | None


def open_output(
    output: str | None,
    positions: str | None,
    *,
    fmt: Format,
    reset: bool,
    status: Callable[[str], None],
) -> OpenedOutput:
    """Load the positions, open the output, replay its records past the saved offset.

    Raises:
        PositionError: The positions file is damaged or foreign, or the output
            holds something after the saved offset that is not a record.
        CliError: The output file cannot be opened.
    """
    store = None
    if positions is not None:
        store = FilePositionStore(positions, interval=None, reset=reset)
    if output is None:
        if store is not None:
            _begin(store)
        return OpenedOutput(1, 0, None, store)
    try:
        fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        msg = f"cannot open the output file {output}: {error.strerror or error}"
        raise CliError(msg, EXIT_ERROR) from error
    identity = output_identity(fd, os.path.abspath(output))
    offset = os.fstat(fd).st_size
    try:
        if store is not None and not reset and fmt == "json":
            offset = _catch_up(store, Path(output), identity, offset, status)
        if store is not None:
            store.set_meta({"output": {**identity, "offset": offset}})
            _begin(store)
    except BaseException:
        os.close(fd)
        raise
    return OpenedOutput(fd, offset, identity, store)


def _begin(store: FilePositionStore) -> None:
    # Saved at once: from now on the file says when the store began and where the output
    # ends, however soon this run is killed.
    try:
        store.save()
    except OSError as error:
        msg = f"cannot write the positions file {store.path}: {error.strerror or error}"
        raise CliError(msg, EXIT_ERROR) from error


def _catch_up(
    store: FilePositionStore,
    path: Path,
    identity: dict[str, Any],
    size: int,
    status: Callable[[str], None],
) -> int:
    saved = store.meta.get("output")
    if not isinstance(saved, dict):
        if store.positions():
            status(
                f"actorpool: {store.path} does not say where its output ended; lines a "
                "crashed monitor wrote after its last save may repeat"
            )
        return size
    same = saved.get("dev") == identity["dev"] and saved.get("ino") == identity["ino"]
    start = saved.get("offset")
    if not same:
        status(
            f"actorpool: {path} is not the file the positions were saved with (rotated or "
            "replaced?); continuing from the saved positions (lines written after the last "
            "save may repeat)"
        )
        return size
    if not isinstance(start, int) or not 0 <= start <= size:
        msg = (
            f"positions file {store.path}: the output {path} is shorter ({size} bytes) than "
            f"when the positions were saved ({start!r} bytes): it was truncated; start over "
            "with --reset-positions"
        )
        raise PositionError(msg)
    try:
        replayed = replay(path, start, store.positions())
    except ValueError as error:
        msg = (
            f"output file {path}: {error}; the positions in {store.path} cannot be brought up "
            "to date from it: fix the file, or start over with --reset-positions"
        )
        raise PositionError(msg) from None
    for cid, position in replayed.positions.items():
        store.update(cid, position)
    if replayed.records or replayed.torn:
        torn = (
            f"; cut off a record torn by the crash ({replayed.torn} bytes)" if replayed.torn else ""
        )
        status(
            f"actorpool: {replayed.records} records in {path} were written after the last "
            f"saved positions: continuing after them{torn}"
        )
    return replayed.end

"""Log positions: the versioned encoding and the file store (atomic, strict about bad files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorpool.errors import PositionError
from actorpool.logs.positions import FilePositionStore
from actorpool.messages import LogPosition, PositionStore

cursors = st.none() | st.tuples(st.integers(0, (1 << 63) - 1), st.integers(1, (1 << 63) - 1))
positions = st.builds(LogPosition, cursors, cursors)
container_ids = st.text("0123456789abcdef", min_size=1, max_size=64)


@given(positions)
def test_a_position_survives_encode_and_decode(position: LogPosition) -> None:
    text = position.encode()
    assert text.isascii()
    assert " " not in text
    assert '"' not in text
    assert LogPosition.decode(text) == position
    assert LogPosition.from_cursors(position.cursors()) == position


@given(st.text(max_size=60) | st.binary(max_size=20) | st.integers() | st.none())
def test_anything_else_is_a_position_error_or_a_position_that_encodes_back(value: object) -> None:
    try:
        position = LogPosition.decode(value)
    except PositionError:
        pass
    else:
        # Only a canonical encoding decodes (the order of the parts aside).
        assert isinstance(value, str)
        assert sorted(value.split(";")) == sorted(position.encode().split(";"))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("v2;stdout=1:1", "version 2"),
        ("stdout=1:1", "not an actorpool log position"),
        ("v1;stdout=9999999999999999999:1", "out of range"),
        ("v1;stdout=1:0", "bad"),
        ("v1;stdout=01:1", "bad"),
        ("v1;stdout=1:1;stdout=2:1", "repeated"),
        ("v1;stdin=1:1", "bad"),
        ("v1;stdout=-1:1", "bad"),
    ],
)
def test_bad_encodings_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(PositionError, match=words):
        LogPosition.decode(text)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(container_ids, positions, max_size=20), st.data())
def test_the_file_store_gives_back_what_it_saved(
    tmp_path_factory: pytest.TempPathFactory, saved: dict[str, LogPosition], data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("store") / "positions.json"
    store = FilePositionStore(path, interval=None)
    assert isinstance(store, PositionStore)
    assert store.baseline() is None  # new
    for cid, position in saved.items():
        store.update(cid, position)
    gone = data.draw(st.sets(st.sampled_from(sorted(saved))) if saved else st.just(set()))
    for cid in gone:
        store.forget(cid)
    store.set_meta({"output": {"offset": 7}})
    store.save()
    again = FilePositionStore(path)
    assert again.positions() == {k: v for k, v in saved.items() if k not in gone}
    assert again.meta == {"output": {"offset": 7}}
    assert again.baseline() is not None
    assert os.listdir(path.parent) == ["positions.json"]  # no temporary file left behind


def test_update_saves_by_itself_once_the_interval_passed(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    store = FilePositionStore(path, interval=0.0)
    store.update("abc", LogPosition((5, 1), None))
    assert FilePositionStore(path).positions() == {"abc": LogPosition((5, 1), None)}
    lazy = FilePositionStore(tmp_path / "q.json", interval=3600)
    lazy.update("abc", LogPosition((5, 1), None))
    assert not (tmp_path / "q.json").exists()
    assert lazy.dirty


def test_the_baseline_is_the_stores_first_creation(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    first = FilePositionStore(path, interval=None)
    first.save()
    created = FilePositionStore(path).baseline()
    assert created is not None
    FilePositionStore(path, interval=None).save()
    assert FilePositionStore(path).baseline() == created


def _valid(**changes: object) -> bytes:
    data: dict[str, object] = {
        "format": "actorpool-positions",
        "version": 1,
        "created": 1,
        "positions": {"abc": "v1;stdout=5:1"},
        "meta": {},
    }
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not JSON"),
        (b"\x00\x01garbage", "not JSON"),
        (b'{"hello": "world"}', "not an actorpool positions file"),
        (b"[1, 2]", "not an actorpool positions file"),
        (_valid(version=9), "newer actorpool"),
        (_valid(version="1"), "format version"),
        (_valid(created=None), "created"),
        (_valid(positions=[]), "damaged"),
        (_valid(positions={"abc": "v1;stdout=5"}), "container 'abc'"),
        (_valid(positions={"abc": 5}), "container 'abc'"),
    ],
)
def test_a_foreign_or_damaged_file_is_an_error_naming_it_never_a_fresh_start(
    tmp_path: Path, content: bytes, words: str
) -> None:
    path = tmp_path / "positions.json"
    path.write_bytes(content)
    with pytest.raises(PositionError, match=words) as caught:
        FilePositionStore(path)
    assert str(path) in str(caught.value)
    assert "--reset-positions" in str(caught.value)
    assert path.read_bytes() == content  # left alone
    fresh = FilePositionStore(path, reset=True, interval=None)
    assert fresh.positions() == {}
    assert fresh.baseline() is None


def test_a_failed_save_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    store = FilePositionStore(path, interval=None)
    store.update("abc", LogPosition((5, 1), None))
    store.save()
    store.update("abc", LogPosition((6, 1), None))
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores the mode: use a path that cannot exist
            store.path = tmp_path / "missing-dir" / "positions.json"
        with pytest.raises(OSError, match=r"No such file|Permission denied"):
            store.save()
    finally:
        os.chmod(tmp_path, 0o700)
    assert store.dirty
    assert FilePositionStore(path).positions() == {"abc": LogPosition((5, 1), None)}
    assert sorted(os.listdir(tmp_path)) == ["positions.json"]

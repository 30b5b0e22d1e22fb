"""``actorpool monitor --format json --output --positions`` against real daemons.

Exactly once across SIGKILL and a daemon restart, backpressure on a full disk,
and clear errors for a bad positions file. The truth every test compares with
is the daemon's own log of each container (``docker logs`` through the API).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorpool.testing.sandbox import IMAGE

from helpers import numbered_lines_cmd, wait_for_state, wait_until

REPO = Path(__file__).resolve().parents[2]
MakeContainer = Callable[..., str]
LOOP = 'i=1; while true; do echo "o $i"; echo "e $i" >&2; i=$((i+1)); usleep 5000; done'


_MONITOR = (sys.executable, "-m", "actorpool")
_QUIET = ("--metrics", "127.0.0.1:0", "--summary-interval", "600")  # any free port, no chatter


class Monitor:
    """One ``actorpool monitor`` process; its stderr goes to a file the test reads."""

    def __init__(self, host: str, *args: str, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "NO_COLOR")}
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*_MONITOR, "-H", host, "monitor", *_QUIET, *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=REPO,
            )
        self._start = log.stat().st_size

    def stderr(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self._start)
            return f.read().decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"monitor exited ({self.proc.returncode}):\n{self.stderr()}")
            return re.search(pattern, self.stderr())

        return wait_until(found, timeout, message=f"monitor stderr matching {pattern!r}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout)


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    started: list[Monitor] = []
    yield started
    for m in started:
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            m.stop(signal.SIGKILL, 10)


def records(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        return [json.loads(raw) for raw in f]


def daemon_log(api: Any, cid: str, source: str) -> list[tuple[str, str]]:
    """The daemon's own log of one source: (RFC 3339 time, line) pairs."""
    raw = api.logs(cid, stdout=source == "stdout", stderr=source == "stderr", timestamps=True)
    return [tuple(line.split(" ", 1)) for line in raw.decode().splitlines()]  # type: ignore[misc]


def written(recs: list[dict[str, Any]], cid: str, source: str) -> list[tuple[str, str]]:
    return [
        (r["time"], r["line"]) for r in recs if r["container_id"] == cid and r["stream"] == source
    ]


def test_json_records_carry_the_containers_metadata(
    sandbox: Any, make_container: MakeContainer, monitors: list[Monitor], tmp_path: Path
) -> None:
    label = uuid.uuid4().hex[:10]
    labels = {
        "ship": label,
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": "w",
    }
    name = f"json-{label}"
    cid = make_container(
        ["sh", "-c", "echo hello; echo oops >&2; sleep 60"], labels=labels, name=name
    )
    out = tmp_path / "out.jsonl"
    m = Monitor(
        sandbox.url,
        "--format",
        "json",
        "-o",
        str(out),
        "-f",
        f"label=ship={label}",
        log=tmp_path / "err",
    )
    monitors.append(m)
    wait_until(lambda: out.exists() and len(records(out)) == 2, 20)
    assert m.stop() == 0
    recs = records(out)
    by_stream = {r["stream"]: r for r in recs}
    assert by_stream["stdout"]["line"] == "hello"
    assert by_stream["stderr"]["line"] == "oops"
    for record in recs:
        assert list(record) == [
            "time",
            "container_id",
            "container_name",
            "image",
            "stream",
            "line",
            "labels",
        ]
        assert (record["container_id"], record["container_name"]) == (cid, name)
        assert record["image"] == IMAGE
        assert record["labels"] == labels
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", record["time"])
    assert sorted(r["time"] for r in recs) == sorted(
        t for s in ("stdout", "stderr") for t, _ in daemon_log(sandbox.client(), cid, s)
    )
    # `actorpool logs --format json` writes the same records.
    done = subprocess.run(
        [sys.executable, "-m", "actorpool", "-H", sandbox.url, "logs", "--format", "json", cid],
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(map(json.dumps, map(json.loads, done.stdout.splitlines()))) == sorted(
        map(json.dumps, recs)
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not JSON"),
        (b'{"format": "something-else"}', "not an actorpool positions file"),
        (
            b'{"format": "actorpool-positions", "version": 7, "created": 1, "positions": {}}',
            "newer",
        ),
    ],
)
def test_a_bad_positions_file_is_one_clear_error_and_reset_positions_is_the_way_out(
    tmp_path: Path, content: bytes, words: str
) -> None:
    bad = tmp_path / "positions.json"
    bad.write_bytes(content)
    base = [sys.executable, "-m", "actorpool", "-H", f"unix://{tmp_path}/no.sock", "monitor"]
    args = ["--format", "json", "--positions", str(bad), "-o", str(tmp_path / "o")]
    done = subprocess.run(
        base + args, capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )
    assert done.returncode == 4
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert str(bad) in lines[0]
    assert words in lines[0]
    assert "--reset-positions" in lines[0]
    assert bad.read_bytes() == content  # never replaced behind the user's back
    # With --reset-positions it goes on (and then fails only on the missing daemon).
    reset = subprocess.run(
        [*base, *args, "--reset-positions"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert reset.returncode == 3, reset.stderr
    assert "cannot reach Docker" in reset.stderr


def _delivered(url: str) -> float:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        body = response.read().decode()
    match = re.search(r"^\w*stream_lines_total(?:\{[^}]*\})? (\S+)$", body, re.MULTILINE)
    assert match is not None, body[:500]
    return float(match[1])


def test_a_full_disk_stops_reading_keeps_positions_at_what_was_written_and_resumes(
    sandbox: Any, make_container: MakeContainer, monitors: list[Monitor], tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        label = uuid.uuid4().hex[:10]
        n = 3000
        script = numbered_lines_cmd(n)[-1] + "; sleep 120"
        cid = make_container(["sh", "-c", script], labels={"ship": label})
        out, pos = disk / "out.jsonl", tmp_path / "positions.json"
        # Small buffers, so that what backpressure lets through is far below what was logged.
        config = tmp_path / "config.yaml"
        config.write_text(
            "docker:\n  streams:\n    subscriber_buffer: 2\n    batch_max_lines: 50\n"
        )
        m = Monitor(
            sandbox.url,
            "--config",
            str(config),
            "--format",
            "json",
            "-o",
            str(out),
            "--positions",
            str(pos),
            "-n",
            "all",
            "-f",
            f"label=ship={label}",
            log=tmp_path / "err",
        )
        monitors.append(m)
        metrics = m.wait_for(r"metrics at (\S+/metrics)", 30)[1]
        m.wait_for(r"cannot write the output \(No space left on device\): stopped reading", 30)
        api = sandbox.client()
        wait_until(lambda: len(api.logs(cid).splitlines()) == 2 * n, 30)  # all logged
        # Backpressure: nothing more is taken from the daemon while nothing can be written.
        before = _delivered(metrics)
        time.sleep(1.0)
        assert _delivered(metrics) == before
        assert before < n  # of 2 n lines logged
        # The positions cover exactly the whole records in the file.
        saved = wait_until(lambda: pos.exists() and json.loads(pos.read_bytes()), 10)
        offset = saved["meta"]["output"]["offset"]
        whole = out.read_bytes()[:offset]
        assert whole.endswith(b"\n")
        kept = [json.loads(raw) for raw in whole.splitlines()]
        stdout_kept = [r for r in kept if r["stream"] == "stdout"]
        if stdout_kept:
            position = saved["positions"][cid]
            assert f"stdout={_ns(stdout_kept[-1]['time'])}:" in position
        # More room: it writes what it held and reads on, losing and repeating nothing.
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        m.wait_for(r"the output is writable again", 20)
        wait_until(lambda: len(records(out)) == 2 * n, 30)
        assert m.stop() == 0
        recs = records(out)
        for source in ("stdout", "stderr"):
            assert written(recs, cid, source) == daemon_log(api, cid, source)
    finally:
        for m in monitors:
            with contextlib.suppress(Exception):
                m.stop(signal.SIGKILL)
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _ns(text: str) -> int:
    from actorpool.transport.frames import parse_timestamp

    return parse_timestamp(text.encode())


@pytest.mark.daemon
def test_sigkill_and_sigterm_at_random_points_and_a_daemon_restart_lose_and_repeat_nothing(
    private_sandbox: Any, make_container: MakeContainer, monitors: list[Monitor], tmp_path: Path
) -> None:
    seed = int(os.environ.get("SHIP_SEED", time.time()))
    rng = random.Random(seed)
    api = private_sandbox.client(timeout=30)
    label = uuid.uuid4().hex[:10]
    out, pos, err = tmp_path / "out.jsonl", tmp_path / "positions.json", tmp_path / "err"
    args = ("--format", "json", "-o", str(out), "--positions", str(pos), "-n", "all")
    args += ("-f", f"label=ship={label}")
    started = time.monotonic()
    steady: list[str] = []
    ending = ""
    kills = 0
    for i in range(9):
        if i == 4:
            private_sandbox.restart()  # containers live on (live-restore); their logs go on
        m = Monitor(private_sandbox.url, *args, log=err)
        monitors.append(m)
        if i == 0:  # the containers start after the first monitor began its positions file
            m.wait_for("following logs", 30)
            steady = [
                make_container(["sh", "-c", LOOP], labels={"ship": label}, api=api)
                for _ in range(3)
            ]
            ending = make_container(
                numbered_lines_cmd(400, delay=0.01), labels={"ship": label}, api=api
            )
        elif i % 2:  # half of the kills while it follows, half at any point of its life
            m.wait_for("following logs", 30)
        time.sleep(rng.uniform(0.1, 1.5))
        if i in (2, 6):  # an orderly stop now and then: it must save what it wrote
            m.wait_for("following logs", 30)
            assert m.stop(signal.SIGTERM) == 0
            continue
        m.stop(signal.SIGKILL)
        kills += 1
    for cid in steady:
        api.kill(cid)
    wait_for_state(api, ending, "exited", timeout=30)
    truth = {
        (cid, s): daemon_log(api, cid, s) for cid in (*steady, ending) for s in ("stdout", "stderr")
    }
    last = Monitor(private_sandbox.url, *args, log=err)
    monitors.append(last)

    def complete() -> bool:
        recs = records(out) if out.exists() else []
        return sum(
            1 for r in recs if r["container_id"] in steady or r["container_id"] == ending
        ) >= sum(map(len, truth.values()))

    with contextlib.suppress(AssertionError):  # the comparison below says what is missing
        wait_until(complete, 40, interval=0.2)
    assert last.stop() == 0
    recs = records(out)
    lost = dup = 0
    report = []
    for (cid, source), expected in truth.items():
        got = written(recs, cid, source)
        missing = set(expected) - set(got)
        lost += len(missing)
        dup += len(got) - len(set(got))
        report.append((cid[:12], source, len(got), len(expected), sorted(missing)[:3]))
    assert (lost, dup) == (0, 0), (seed, report, err.read_text()[-3000:])
    for (cid, source), expected in truth.items():
        assert written(recs, cid, source) == expected  # and in the daemon's order
    assert sum(map(len, truth.values())) > 1000  # it did follow a steady flow
    assert kills == 7
    assert time.monotonic() - started < 90, f"took {time.monotonic() - started:.0f} s (seed {seed})"


def test_an_output_that_cannot_be_opened_is_one_clear_error(tmp_path: Path) -> None:
    base = [*_MONITOR, "-H", f"unix://{tmp_path}/no.sock", "monitor", "--format", "json"]
    done = subprocess.run(
        [*base, "-o", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 4
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"cannot open the output file {tmp_path}: Is a directory" in lines[0]

"""The command line's interface: its duration flags, ``--since`` and usage errors (no daemon)."""

from __future__ import annotations

import argparse
import time

import pytest

from actorpool.cli.args import EXIT_OK, Handlers, build_parser, parse_since
from actorpool.config import parse_duration


def parser() -> argparse.ArgumentParser:
    def run(args: argparse.Namespace) -> int:
        return EXIT_OK

    return build_parser(Handlers(run, run, run, run, run, run, run))


# The forms every duration accepts, whether it is an option in the file or a flag.
SHARED_FORMS = ["250ms", "5s", "7", "1.5", "1h30m", "1m30.5s", "2h5m10s500ms", " 10 s "]


@pytest.mark.parametrize("form", SHARED_FORMS)
def test_duration_flags_take_the_config_forms(form: str) -> None:
    seconds = parse_duration(form, "k")
    args = parser().parse_args(["monitor", "--duration", form, "--summary-interval", form])
    assert (args.duration, args.summary_interval) == (seconds, seconds)


@pytest.mark.parametrize(
    "form", [f for f in SHARED_FORMS if not f.strip().replace(".", "").isdigit()]
)
def test_since_takes_the_config_forms_as_a_duration_ago(form: str) -> None:
    # A bare number is Unix seconds for --since (as for docker logs), not an age.
    now = 1706702400.0
    ago = round(parse_duration(form, "k") * 10**9)
    ns = 1706702400 * 10**9 - ago
    assert parse_since(form, now=now) == f"{ns // 10**9}.{ns % 10**9:09d}"


def test_since_keeps_nanoseconds_exact() -> None:
    # 1706702400 - 7510.5 s, computed in integer nanoseconds: no float rounding at 1e18.
    assert parse_since("2h5m10s500ms", now=1706702400.0) == "1706694889.500000000"
    assert parse_since("0.000000001s", now=1706702400.0) == "1706702399.999999999"


def test_parse_since_accepts_times_unix_seconds_and_durations_ago() -> None:
    assert parse_since("2024-01-31T12:00:00.123456789Z") == "1706702400.123456789"
    assert parse_since("2024-01-31T13:00:00+01:00") == "1706702400.000000000"
    assert parse_since("1706702400.5") == "1706702400.500000000"
    assert parse_since("1h30m", now=1706702400.0) == "1706697000.000000000"
    assert parse_since("250ms", now=1706702400.0) == "1706702399.750000000"
    with pytest.raises(ValueError, match="--since must be"):
        parse_since("yesterday")


def test_a_time_without_a_zone_is_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # As docker reads --since/--until: 21:00 in Tokyo (UTC+9) is 12:00 UTC.
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert parse_since("2024-01-31T21:00:00") == "1706702400.000000000"
        assert parse_since("2024-01-31T21:00:00.5") == "1706702400.500000000"
        assert parse_since("2024-01-31T12:00:00Z") == "1706702400.000000000"
        with pytest.raises(ValueError, match=r"^--until must be"):
            parse_since("soon", flag="--until")
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("bad", ["1h30", "soon", "-5s", "0", "0s"])
def test_a_bad_duration_flag_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["monitor", "--duration", bad])
    assert exit_info.value.code == 2
    assert "argument --duration:" in capsys.readouterr().err


def test_metrics_takes_a_listen_address_and_names_the_flag_when_bad(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parser().parse_args(["monitor", "--metrics", "[::1]:0"]).metrics == "[::1]:0"
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["monitor", "--metrics", "9323"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --metrics: must be 'host:port' with a port in 0-65535, got '9323'" in err
    assert "docker.monitoring.listen" not in err


def test_exclude_takes_label_name_and_image(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["monitor", "--exclude", "label=io.actorpool.agent", "--exclude", "name=db-*"]
    assert parser().parse_args(argv).exclude == [("label", "io.actorpool.agent"), ("name", "db-*")]
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["monitor", "--exclude", "status=exited"])
    assert exit_info.value.code == 2
    assert "argument --exclude: exclude must be label=KEY[=VALUE]" in capsys.readouterr().err

"""The ``actorpool`` command line's interface: its options, help, exit codes and values.

:func:`build_parser` declares every command and option with its help text;
the ``*_arg`` converters and :func:`parse_since` turn option values into what
the pool's messages take, so a bad value is a one-line usage error (exit 2)
before anything starts. The exit codes are here because the help of every
command lists them.

This is apart from :mod:`actorpool.cli.main` because declaring the interface and
running the commands are different jobs: this module starts no actor and
talks to no daemon. The parser does not know the commands' code either;
:mod:`actorpool.cli.main` hands it their functions as :class:`Handlers`, which
keeps the import one way (``cli`` imports this module, never the reverse).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import re
import time
from collections.abc import Callable
from typing import Any, Literal, NoReturn

import attrs

import actorpool
from actorpool.config import DEFAULT_MONITOR_LISTEN, parse_duration, parse_duration_ns
from actorpool.errors import ConfigError
from actorpool.observe.metrics import parse_listen

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNHEALTHY",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "Handler",
    "Handlers",
    "build_parser",
    "parse_since",
]

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_ERROR = 4


class CliError(Exception):
    """A command failed in a way the user can fix: ``message`` and the exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


EXIT_INTERRUPTED = 130

_EXIT_CODES = """\
exit codes:
  0    ok
  1    the pool is degraded or unhealthy (health)
  2    usage or configuration error
  3    cannot reach Docker (sandbox, monitor --sandbox: cannot start a private daemon)
  4    any other actorpool error (e.g. no such container, metrics port in use)
  130  interrupted (Ctrl-C)

The daemon is chosen as the docker CLI chooses it: -H (or the config file's
docker.pool.socket_path), else --context (or docker.pool.context), else DOCKER_HOST,
else DOCKER_CONTEXT, else the current context of `docker context use`, else
unix:///var/run/docker.sock. TLS comes from DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (or a
context); DOCKER_API_VERSION pins the API version (default: negotiated).
Several -H or --context (or docker.endpoints) follow several daemons at once, one
endpoint each, named NAME=...: ps adds an ENDPOINT column, logs takes
ENDPOINT/CONTAINER, and lines are prefixed endpoint/container.
"""


# --------------------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) that point at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The top-level parser holds the defaults; a subcommand's copies default to
    # SUPPRESS so `actorpool -H x ps` and `actorpool ps -H x` both work.
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config", metavar="FILE", default=default(None), help="YAML configuration file"
    )
    group.add_argument(
        "-H",
        "--host",
        metavar="[NAME=]HOST",
        action="append",
        default=default(None),
        help="daemon address: unix:///path/docker.sock, tcp://host[:port] or "
        "ssh://[user@]host[:port] (overrides all else); give it several times for several "
        "endpoints, each named NAME (default: its address)",
    )
    group.add_argument(
        "--context",
        metavar="[NAME=]CONTEXT",
        action="append",
        default=default(None),
        help="docker context to use (as made by `docker context create`); beats DOCKER_HOST; "
        "give it several times for several endpoints, each named NAME (default: the context)",
    )
    group.add_argument(
        "--log-level",
        default=default("warning"),
        choices=("debug", "info", "warning", "error", "critical"),
        type=str.lower,
        help="actorpool's own log level (default: warning); libraries stay at warning",
    )
    group.add_argument(
        "--debug-libraries",
        action="store_true",
        default=default(False),
        help="also log docker-py, urllib3 and pykka at debug level (very verbose)",
    )
    group.add_argument(
        "--log-json",
        action="store_true",
        default=default(False),
        help="write actorpool's own log records as JSON lines",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show a traceback when a command fails",
    )


def _filter_arg(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        msg = f"filter must be key=value (e.g. label=app=web, status=running), got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return key, val


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default) or json: one JSON object per line with time (RFC 3339, ns), "
        "container_id, container_name, image, stream, line and labels",
    )


def _seconds_arg(value: str) -> float:
    try:
        seconds = parse_duration(value, "value")
    except ConfigError:
        msg = f"must be a number of seconds or a duration like 500ms, 5s, 1h30m; got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if seconds <= 0:
        msg = f"must be more than zero seconds, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _listen_arg(value: str) -> str:
    try:
        parse_listen(value, key_path="--metrics")
    except ConfigError as error:
        # argparse already starts the line with "argument --metrics: ".
        raise argparse.ArgumentTypeError(str(error).removeprefix("--metrics: ")) from None
    return value


def _exclude_arg(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or key not in ("label", "name", "image") or not val:
        msg = (
            "exclude must be label=KEY[=VALUE], name=PATTERN or image=PATTERN "
            f"(e.g. label=io.actorpool.agent, name=db-*), got {value!r}"
        )
        raise argparse.ArgumentTypeError(msg)
    return key, val


def _tail_arg(value: str) -> int | Literal["all"]:
    if value == "all":
        return "all"
    if value.isdigit():
        return int(value)
    msg = f"must be 'all' or a number of lines, got {value!r}"
    raise argparse.ArgumentTypeError(msg)


def _since_arg(value: str) -> str:
    try:
        return parse_since(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _until_arg(value: str) -> str:
    try:
        return parse_since(value, flag="--until")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(value: str) -> int:
    if value.isdigit() and int(value) > 0:
        return int(value)
    msg = f"must be a number of containers >= 1, got {value!r}"
    raise argparse.ArgumentTypeError(msg)


# A command's function: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]


@attrs.frozen
class Handlers:
    """The function that runs each command, given to :func:`build_parser` by the CLI.

    Attributes:
        ps: ``actorpool ps``.
        logs: ``actorpool logs``.
        monitor: ``actorpool monitor``.
        sandbox: ``actorpool sandbox``.
        health: ``actorpool health``.
        config: ``actorpool config`` with no subcommand (a usage error).
        config_check: ``actorpool config check``.
    """

    ps: Handler
    logs: Handler
    monitor: Handler
    sandbox: Handler
    health: Handler
    config: Handler
    config_check: Handler


def build_parser(handlers: Handlers) -> argparse.ArgumentParser:
    """The ``actorpool`` argument parser, each command's handler from ``handlers`` in ``func``."""
    parser = _Parser(
        prog="actorpool",
        description="Talk to Docker through a pool of actor connections.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"actorpool {actorpool.__version__}")
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help_text: str, func: Handler) -> Any:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_common(sub, suppress=True)
        sub.set_defaults(func=func)
        return sub

    ps = command("ps", "List containers through the pool (like docker ps).", handlers.ps)
    ps.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    ps.add_argument(
        "-f",
        "--filter",
        action="append",
        type=_filter_arg,
        default=[],
        metavar="KEY=VALUE",
        help="Docker filter, repeatable (label=app=web, status=exited, name=db)",
    )
    ps.add_argument("-q", "--quiet", action="store_true", help="only print container ids")
    ps.add_argument("--no-trunc", action="store_true", help="do not shorten ids and commands")
    ps.add_argument(
        "-n",
        "--last",
        type=_positive_int,
        metavar="N",
        help="the N most recently created containers, in any state",
    )
    ps.add_argument(
        "-l", "--latest", action="store_true", help="the most recently created container"
    )
    ps.add_argument(
        "--format",
        dest="ps_format",
        metavar="FORMAT",
        help="'json' (one object per line, as docker ps prints them), 'table' (default), or a "
        "Go template such as '{{.ID}} {{.Names}}' or 'table {{.ID}}\\t{{.Status}}'",
    )

    logs = command(
        "logs",
        "Print the logs of one or more containers (like docker logs); stdout lines go to "
        "stdout and stderr lines to stderr, prefixed by the container's name when there are "
        "several.",
        handlers.logs,
    )
    logs.add_argument("containers", nargs="+", metavar="CONTAINER", help="container id or name")
    logs.add_argument("-f", "--follow", action="store_true", help="follow new lines")
    logs.add_argument(
        "--since",
        type=_since_arg,
        help="only lines since a time: 2024-01-31T12:00:00Z (no zone: local time), Unix "
        "seconds, or ago (10m, 1h30m)",
    )
    logs.add_argument(
        "--until",
        type=_until_arg,
        help="only lines up to a time, in the forms --since takes (not with -f)",
    )
    logs.add_argument(
        "--details",
        action="store_true",
        help="show the extra attributes the log driver was given (--log-opt labels/env)",
    )
    logs.add_argument(
        "-n", "--tail", type=_tail_arg, default="all", help="lines from the end (default: all)"
    )
    logs.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    _add_format(logs)

    monitor = command(
        "monitor",
        "Follow and print the logs of every matching container, including ones that start "
        f"later, serve Prometheus metrics (on {DEFAULT_MONITOR_LISTEN} unless "
        "docker.monitoring.listen or --metrics says otherwise) and print a pool health line "
        "every few seconds. It never starts a daemon unless asked with --sandbox.",
        handlers.monitor,
    )
    monitor.add_argument(
        "-f",
        "--filter",
        action="append",
        type=_filter_arg,
        default=[],
        metavar="KEY=VALUE",
        help="which containers to follow, repeatable (e.g. label=app=web); default: all",
    )
    monitor.add_argument(
        "--exclude",
        action="append",
        type=_exclude_arg,
        default=[],
        metavar="KEY=VALUE",
        help="containers not to follow, repeatable: label=KEY[=VALUE], name=PATTERN, "
        "image=PATTERN (e.g. label=io.actorpool.agent: the agent's own container, whose "
        "output would otherwise come back to it as logs)",
    )
    monitor.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=_listen_arg,
        help=f"serve Prometheus metrics here (default: docker.monitoring.listen, else "
        f"{DEFAULT_MONITOR_LISTEN}; port 0 = any free port)",
    )
    monitor.add_argument(
        "--summary-interval",
        type=_seconds_arg,
        default=5.0,
        metavar="SECONDS",
        help="seconds between pool health lines on stderr (default: 5)",
    )
    monitor.add_argument(
        "-n",
        "--tail",
        type=_tail_arg,
        default=10,
        help="lines of history of the containers already running (default: 10; 'all' for "
        "everything); containers that start later are shown from their first line",
    )
    monitor.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    monitor.add_argument(
        "--name", metavar="PATTERN", help="only containers whose name matches (shell-style: web-*)"
    )
    _add_format(monitor)
    monitor.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="append the log records to FILE instead of printing them",
    )
    monitor.add_argument(
        "--positions",
        metavar="FILE",
        help="keep each container's exact position in FILE: a restarted monitor continues "
        "every container after its last line written, with no gap and no repeat (with "
        "--format json --output, also after a crash)",
    )
    monitor.add_argument(
        "--reset-positions",
        action="store_true",
        help="ignore what --positions FILE holds (damaged, foreign) and start over; "
        "lines may then repeat or be missed",
    )
    monitor.add_argument(
        "--sandbox",
        action="store_true",
        help="start a private sandbox daemon with demo containers and follow it instead "
        "(needs root); it is removed on exit",
    )
    monitor.add_argument(
        "--duration", type=_seconds_arg, metavar="SECONDS", help="stop by itself after this long"
    )

    sandbox = command(
        "sandbox",
        "Start a private Docker daemon with demo containers (needs root) for trying actorpool "
        "and its examples, print the `export DOCKER_HOST=...` line that points at it, and "
        "keep it until Ctrl-C or SIGTERM, which stop and remove it and everything in it.",
        handlers.sandbox,
    )
    sandbox.add_argument(
        "--duration", type=_seconds_arg, metavar="SECONDS", help="stop by itself after this long"
    )

    command(
        "health",
        "Check the pool (one ping through every connection) and print each connection's "
        "health, breaker, usage and age; exit 1 when the pool is degraded. Usable as a "
        "container health check.",
        handlers.health,
    )

    config = command("config", "Configuration commands.", handlers.config)
    config_commands = config.add_subparsers(title="commands", metavar="COMMAND")
    check = config_commands.add_parser(
        "check",
        help="validate a configuration file and print the effective configuration",
        description="Validate a configuration file (default: --config, else the defaults) and "
        "print the effective configuration, defaults filled in, as YAML. Exit 2 when invalid.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(check, suppress=True)
    check.add_argument("file", nargs="?", metavar="FILE", help="the YAML file to check")
    check.set_defaults(func=handlers.config_check)
    config.set_defaults(_config_parser=config)
    return parser


# --------------------------------------------------------------------------- --since


_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")
_ISO_FRACTION = re.compile(r"\.(\d+)")


def parse_since(value: str, *, now: float | None = None, flag: str = "--since") -> str:
    """Turn a ``--since``/``--until`` value into the daemon's exact ``"seconds.nanoseconds"``.

    Accepts what ``docker logs --since`` does: an RFC 3339 time
    (``2024-01-31T12:00:00.5Z``; without a zone it is local time, as for ``docker``),
    Unix seconds (``1706702400.5``), or a duration ago in any form
    :func:`~actorpool.config.parse_duration` takes (``90s``, ``10m``, ``1h30m``).

    Args:
        value: The flag's value.
        now: "Now" for durations ago (default: the clock).
        flag: The flag, named in the error.

    Raises:
        ValueError: None of those.
    """
    text = value.strip()
    unix = _UNIX.match(text)
    if unix:
        return f"{unix[1]}.{(unix[2] or '').ljust(9, '0')}"
    with contextlib.suppress(ConfigError):
        # Integer nanoseconds: float seconds since 1970 cannot hold nanoseconds exactly.
        ago = parse_duration_ns(text, flag)
        ns = (time.time_ns() if now is None else round(now * 1e9)) - ago
        return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
    fraction = _ISO_FRACTION.search(text)
    nanos = int(fraction[1][:9].ljust(9, "0")) if fraction else 0
    try:
        moment = datetime.datetime.fromisoformat(_ISO_FRACTION.sub("", text, count=1))
    except ValueError:
        msg = (
            f"{flag} must be a time (2024-01-31T12:00:00Z), Unix seconds or a duration "
            f"ago (10m, 1h30m), got {value!r}"
        )
        raise ValueError(msg) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as docker reads a time without a zone
    return f"{int(moment.timestamp())}.{nanos:09d}"

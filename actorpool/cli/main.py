"""The ``actorpool`` commands' code (ps, logs, monitor, health, config check) and ``main``.

Commands (``actorpool COMMAND --help`` for each)::

    actorpool ps [-a] [-n N] [-l] [--filter k=v] [--format F]  containers, like docker ps
    actorpool logs [-f] [--since] [--until] [--details] [-n N] [-t] C...  logs of containers
    actorpool monitor [--filter k=v] [--exclude k=v] [--metrics ADDR] [--sandbox]  follow logs
    actorpool sandbox                           a private daemon with demo containers
    actorpool health                            the pool's connections; exit 1 if degraded
    actorpool config check [FILE]               validate a config, print it with defaults

Global options (before or after the command): ``--config FILE``, ``-H/--host``
and ``--context`` (like Docker's), ``--log-level`` (actorpool's own loggers),
``--debug-libraries`` (docker-py, urllib3 and pykka at debug too), ``--log-json`` and
``--debug``. The daemon is chosen by the docker CLI's rules
(:mod:`actorpool.transport.endpoint`): ``-H`` or ``docker.pool.socket_path``, else
``--context`` or ``docker.pool.context``, else ``DOCKER_HOST``, else
``DOCKER_CONTEXT``, else the current docker context, else
``unix:///var/run/docker.sock``; ``config check`` and ``health`` say which and why.

Every command that talks to Docker first pings the daemon once with a short
timeout: a daemon that is down is then one clear line after two seconds,
instead of a wait through the pool's retries and backoff.

Exit codes:

    0    ok
    1    the pool is degraded or unhealthy (``health``)
    2    usage or configuration error
    3    cannot reach Docker (``sandbox``, ``monitor --sandbox``: cannot start a private one)
    4    any other actorpool error (e.g. no such container, metrics port in use)
    130  interrupted (Ctrl-C)

Errors are one line on stderr, never a traceback (``--debug`` shows it).

The command line is three modules: :mod:`actorpool.cli.args` declares it (the
parser, the option values, the exit codes), :mod:`actorpool.cli.printer` writes
to the terminal (log lines, tables, the ``LinePrinter`` actor), and this one
runs it: the configuration a command uses, the commands themselves, signals
and :func:`main`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import queue
import re
import signal
import socket
import stat
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType
from typing import Any, cast

import attrs
import pykka
import yaml

import actorpool
from actorpool.cli.args import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNHEALTHY,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    Handlers,
    parse_since,
)
from actorpool.cli.args import build_parser as _build_parser
from actorpool.cli.positions import open_output
from actorpool.cli.printer import (
    GetStats,
    LinePrinter,
    Names,
    Output,
    PrinterStats,
    Status,
    health_line,
    health_table,
)
from actorpool.cli.psformat import PsFormatError, render_ps
from actorpool.cli.records import RecordEncoder
from actorpool.cli.sandbox import start_demo, start_demo_containers, start_sandbox
from actorpool.cli.writer import TICK, LogWriter
from actorpool.config import (
    DEFAULT_MONITOR_LISTEN,
    Config,
    EndpointConfig,
    config_to_dict,
    load_config,
    normalize_socket_path,
)
from actorpool.errors import (
    ActorPoolError,
    ApiVersionError,
    ConfigError,
    DockerUnavailable,
    FanOutError,
    NoHealthyConnections,
    NotFound,
    TLSError,
)
from actorpool.messages import (
    ContainerLogs,
    FollowContainers,
    InspectContainer,
    ListContainers,
    LogStreamStarted,
    Ping,
    SubscribeLogs,
)
from actorpool.observe.log import configure_logging
from actorpool.observe.metrics import MetricsServerError
from actorpool.transport.endpoint import DEFAULT_SOURCE, Endpoint, daemon_url, endpoint_for

# EXIT_* and parse_since live in actorpool.cli.args; they stay importable from here.
__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNHEALTHY",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "build_parser",
    "main",
    "parse_since",
    "resolve_config",
]


# How long the up-front ping waits: long enough for a busy daemon, short enough
# that "no daemon" is an answer rather than a hang.
PING_TIMEOUT = 2.0

# How often the monitor's main loop ticks its writer (save positions, retry a failed write).
_TICK_INTERVAL = 0.5

# How long a command waits for the pool to stop (monitor must be gone within 2 s).
_STOP_TIMEOUT = 1.5


# --------------------------------------------------------------------------- configuration


def resolve_config(args: argparse.Namespace, *, path: str | None = None) -> Config:
    """The configuration a command runs with: the file, with ``-H``/``--context`` put in.

    ``-H`` or ``--context`` replaces both ``docker.pool.socket_path`` and
    ``docker.pool.context`` of the file (a flag beats the file); the environment and
    the docker contexts apply when the client is built (:func:`endpoint_for`).

    Args:
        args: Parsed arguments (``config``, ``host`` and ``context`` are used).
        path: A file that replaces ``--config`` (``config check FILE``).

    Raises:
        ConfigError: The file, ``-H`` or ``--context`` is invalid, or both flags are given.
    """
    config = load_config(path or args.config)
    hosts, contexts = _flag_values(args, "host"), _flag_values(args, "context")
    if hosts and contexts:
        raise ConfigError("conflicting options: cannot specify both -H/--host and --context")
    if len(hosts) + len(contexts) == 1 and "=" not in (hosts or contexts)[0].split("/")[0]:
        socket_path = normalize_socket_path(hosts[0], "-H/--host") if hosts else None
        context = contexts[0] if contexts else None
        pool = attrs.evolve(config.pool, socket_path=socket_path, context=context)
        config = attrs.evolve(config, pool=pool, endpoints=())
    elif hosts or contexts:
        pool = attrs.evolve(config.pool, socket_path=None, context=None)
        endpoints = _flag_endpoints(hosts, "host") + _flag_endpoints(contexts, "context")
        config = attrs.evolve(config, pool=pool, endpoints=endpoints)
    return config


def _flag_values(args: argparse.Namespace, name: str) -> list[str]:
    value = getattr(args, name, None)
    return [value] if isinstance(value, str) else list(value or [])


def _endpoint(args: argparse.Namespace, config: Config) -> Endpoint:
    """The endpoint ``config`` resolves to, its source naming the flag when one was given."""
    return endpoint_for(
        config,
        host_source="-H" if args.host else "docker.pool.socket_path",
        context_source="--context" if getattr(args, "context", None) else "docker.pool.context",
    )


def _flag_endpoints(values: Sequence[str], key: str) -> tuple[EndpointConfig, ...]:
    """One endpoint per ``-H [NAME=]HOST`` (or ``--context [NAME=]CONTEXT``).

    Unnamed ones are named by their address (tcp ``host:port``, the socket's
    file name, its directory too when two are alike) or their context.
    """
    flag = "-H/--host" if key == "host" else "--context"
    endpoints: list[EndpointConfig] = []
    for value in values:
        name, sep, target = value.partition("=")
        if not sep or "/" in name:
            name, target = "", value
        if key == "host":
            target = normalize_socket_path(target, flag)
        if not name:
            base = target.split("://", 1)[-1]
            name = (
                base
                if "://" not in target or target.startswith(("tcp://", "ssh://"))
                else (os.path.basename(base).removesuffix(".sock"))
            )
            name = re.sub(r"[^A-Za-z0-9_.:-]", "-", name).strip("-.:_") or "docker"
            taken = {e.name for e in endpoints}
            if name in taken:  # two sockets both called docker.sock: their directories tell
                parent = os.path.basename(os.path.dirname(base))
                name = re.sub(r"[^A-Za-z0-9_.:-]", "-", f"{parent}-{name}").strip("-.:_")
            stem, n = name, 2
            while name in taken:
                name, n = f"{stem}-{n}", n + 1
        try:
            if key == "host":
                endpoints.append(EndpointConfig(name=name, host=target))
            else:
                endpoints.append(EndpointConfig(name=name, context=target))
        except ConfigError as error:
            raise ConfigError(f"{flag} {value!r}: {error}") from None
    if len({e.name for e in endpoints}) < len(endpoints):
        raise ConfigError(f"{flag}: two endpoints have the same name; name them NAME=...")
    return tuple(endpoints)


def _without_metrics(config: Config) -> Config:
    # One-shot commands never bind the metrics port (a running monitor may hold it).
    return attrs.evolve(config, monitoring=attrs.evolve(config.monitoring, enabled=False))


def _check_reachable(
    config: Config,
    args: argparse.Namespace,
    timeout: float = PING_TIMEOUT,
    endpoint: Endpoint | None = None,
) -> None:
    """Ping the daemon once, directly; raise ``CliError`` (exit 3) saying why it failed.

    With several endpoints there is no check: a daemon that is down is one
    failed part of each fan-out (reported, exit 3), never a reason to show
    nothing of the others.
    """
    from actorpool.transport.classify import classify
    from actorpool.transport.client import connect

    if config.endpoints:
        return

    endpoint = _endpoint(args, config) if endpoint is None else endpoint
    url, origin = endpoint.url, endpoint.source.removeprefix("from ")
    if endpoint.source == DEFAULT_SOURCE:
        origin = "the default address"
    try:
        client = connect(endpoint, timeout=timeout)
        try:
            Ping().execute(client)  # on the socket the negotiation used (transport.direct)
        finally:
            client.close()
    except Exception as exc:
        error = classify(exc, target=url, what="ping").error
        if isinstance(error, TLSError | ApiVersionError):
            # The daemon is there; what is wrong is on this side, and the error says what.
            raise CliError(str(error).removeprefix("ping: "), EXIT_UNREACHABLE) from exc
        # connect() to a path that is no socket says "connection refused": say what it is.
        problem = _socket_file_problem(url, origin)
        msg = f"cannot reach Docker at {url} ({origin}): " + (
            problem
            or f"{_unreachable_reason(exc, timeout)} — is the daemon running? set -H, "
            "--context, DOCKER_HOST or docker.pool.socket_path"
        )
        raise CliError(msg, EXIT_UNREACHABLE) from exc


def _socket_file_problem(url: str, origin: str) -> str | None:
    """What is wrong with a ``unix://`` address's file, or ``None`` (tcp, or a socket)."""
    if not url.startswith("unix://"):
        return None
    path = url.removeprefix("unix://")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        where = (
            "set -H, --context, DOCKER_HOST or docker.pool.socket_path"
            if "default" in origin
            else (f"is {origin} right?")
        )
        return f"no such file {path} — is the daemon running? {where}"
    except PermissionError:
        return f"permission denied on {path} — run as root or as a member of its group"
    except OSError as error:
        return f"{path}: {error.strerror}"
    if not stat.S_ISSOCK(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a file" if stat.S_ISREG(mode) else "other"
        return f"{path} is not a socket ({kind}) — {origin} must name the daemon's socket"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"permission denied on {path} — run as root or as a member of its group"
    return None


def _unreachable_reason(exc: BaseException, timeout: float) -> str:
    """The root cause of a failed ping, in a few words."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):  # docker.errors.APIError: something answered, not like dockerd
        return f"the address answered HTTP {status} to /_ping, not like a Docker daemon"
    causes: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:  # requests and urllib3 nest their causes in args as well as __cause__
        cur = todo.pop()
        if any(cur is seen for seen in causes):
            continue
        causes.append(cur)
        todo.extend(a for a in cur.args if isinstance(a, BaseException))
        todo.extend(c for c in (cur.__cause__, cur.__context__) if c is not None)
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    words: list[tuple[type[BaseException], str]] = [
        (FileNotFoundError, "no such socket"),
        (ConnectionRefusedError, "connection refused"),
        (PermissionError, "permission denied"),
        (socket.gaierror, "unknown host"),
        (ConnectionResetError, "connection reset"),
    ]
    for kind, text in words:
        if any(isinstance(c, kind) for c in causes):
            return text
    if any(isinstance(c, TimeoutError | socket.timeout) or "timed out" in str(c) for c in causes):
        return f"no answer within {timeout:g}s"
    return f"{type(exc).__name__}: {exc}"


def _filters(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]] | None:
    result: dict[str, list[str]] = {}
    for key, value in pairs:
        result.setdefault(key, []).append(value)
    return result or None


# --------------------------------------------------------------------------- signals


class _Stopped(Exception):
    """A signal arrived while a command was starting up."""


def _end_the_ctrl_c_line() -> None:
    """Start a fresh line after the ``^C`` the terminal echoed, so what follows is not on it.

    A plain ``os.write`` of one byte: safe in a signal handler (no lock, no buffer).
    """
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stderr.fileno()
        if os.isatty(fd):
            os.write(fd, b"\n")


class _Signals:
    """SIGINT and SIGTERM as a flag the main thread polls.

    The handler only stores the signal number: raising ``KeyboardInterrupt``
    at an arbitrary point could cut a cleanup short (a sandbox daemon left
    running), and taking a lock in a handler can deadlock. A second signal
    changes nothing; cleanup is bounded anyway.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            if signum == signal.SIGINT:
                _end_the_ctrl_c_line()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return False early when a signal arrived."""
        deadline = time.monotonic() + seconds
        while self.received is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.05, left))
        return False

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C; 0 after SIGTERM (a requested stop) or no signal."""
        return EXIT_INTERRUPTED if self.received == signal.SIGINT else EXIT_OK

    def check(self) -> None:
        """Raise :class:`_Stopped` if a signal arrived (checked between start-up steps)."""
        if self.received is not None:
            raise _Stopped


# --------------------------------------------------------------------------- commands


def _ask(pool: actorpool.Pool, message: Any) -> Any:
    # The router's ask returns the plain reply (its futures unwrap); typed as Any here.
    return pool.router.ask(message)


@contextlib.contextmanager
def _pool(config: Config) -> Iterator[actorpool.Pool]:
    pool = actorpool.start(config)
    try:
        yield pool
    finally:
        pool.stop(timeout=_STOP_TIMEOUT)


def _container_ref(value: str) -> str:
    try:
        InspectContainer(value.split("/", 1)[-1] if "/" in value.lstrip("/") else value)
    except ValueError:
        msg = f"{value!r} is not a container id or name (letters, digits, '_', '.', '-')"
        raise CliError(msg, EXIT_USAGE) from None
    return value


def _cmd_ps(args: argparse.Namespace) -> int:
    config = _without_metrics(resolve_config(args))
    _check_reachable(config, args)
    # -n N / -l: the N (1) most recently created containers in any state, as docker ps.
    limit = 1 if args.latest else args.last
    failures: Mapping[str, BaseException] = {}
    with _pool(config) as pool:
        request = ListContainers(
            all=args.all or limit is not None, filters=_filters(args.filter), limit=limit
        )
        try:
            containers: list[dict[str, Any]] = _ask(pool, request)
        except FanOutError as error:  # what the live endpoints answered, then who failed
            containers, failures = error.partial, error.failures
        several = len(pool.endpoints) > 1
    if args.quiet:
        for c in containers:
            print(c["Id"] if args.no_trunc else c["Id"][:12])
    else:
        try:
            text = render_ps(
                containers,
                args.ps_format,
                no_trunc=args.no_trunc,
                now=time.time(),
                endpoints=several,
            )
        except PsFormatError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        if text:
            print(text)
    for name, failure in failures.items():
        print(f"actorpool: endpoint {name} did not answer: {failure}", file=sys.stderr)
    return EXIT_UNREACHABLE if failures else EXIT_OK


def _inspect_all(pool: actorpool.Pool, refs: Sequence[str]) -> dict[str, LogStreamStarted]:
    """Full id -> who it is, for each ref, asked in parallel; unknown ones fail with exit 4.

    With several endpoints a ref is ``ENDPOINT/CONTAINER``, or a container that
    exactly one endpoint has (asked on each, in parallel).
    """
    several = len(pool.endpoints) > 1
    asks: list[tuple[str, str, Any]] = []
    for ref in refs:
        endpoint, sep, container = ref.partition("/")
        if sep and endpoint and endpoint not in pool.endpoints:
            msg = f"{ref}: no endpoint named {endpoint!r} (endpoints: {', '.join(pool.endpoints)})"
            raise CliError(msg, EXIT_USAGE)
        if not (sep and endpoint):
            endpoint, container = "", ref
        for name in [endpoint] if endpoint else pool.endpoints:
            message = InspectContainer(container, endpoint=name if several else None)
            asks.append((ref, name, pool.router.ask(message, block=False)))
    seen: dict[str, list[dict[str, Any]]] = {ref: [] for ref in refs}
    for ref, name, future in asks:
        with contextlib.suppress(NotFound):
            seen[ref].append({**future.get(), "Endpoint": name})
    found: dict[str, LogStreamStarted] = {}
    for ref, infos in seen.items():
        if not infos:
            msg = f"no such container: {ref} (list them with `actorpool ps -a`)"
            raise CliError(msg, EXIT_ERROR)
        if len(infos) > 1:
            where = ", ".join(f"{i['Endpoint']}/{ref}" for i in infos)
            msg = f"{ref} is on several endpoints; name one: {where}"
            raise CliError(msg, EXIT_USAGE)
        meta = LogStreamStarted.from_inspect(infos[0])
        found[infos[0]["Id"]] = attrs.evolve(meta, endpoint=infos[0]["Endpoint"])
    return found


def _shown(pool: actorpool.Pool, meta: LogStreamStarted) -> str:
    """How lines of a container are prefixed: its name, ``endpoint/name`` with several."""
    return f"{meta.endpoint}/{meta.name}" if len(pool.endpoints) > 1 else meta.name


def _cmd_logs(args: argparse.Namespace) -> int:
    refs = [_container_ref(ref) for ref in args.containers]
    if args.follow and (args.until or args.details):
        flag = "--until" if args.until else "--details"
        raise CliError(f"{flag} works without -f only (for now)", EXIT_USAGE)
    config = _without_metrics(resolve_config(args))
    _check_reachable(config, args)
    several = len(config.endpoint_names) > 1
    output = Output(prefix=len(refs) > 1 or several, timestamps=args.timestamps)
    with _pool(config) as pool:
        found = _inspect_all(pool, refs)
        names = {cid: _shown(pool, meta) for cid, meta in found.items()}
        where = {
            cid: meta.endpoint if len(pool.endpoints) > 1 else None for cid, meta in found.items()
        }
        output.reserve(names.values())
        several = len(config.endpoint_names) > 1
        encoder = RecordEncoder("json", endpoints=several) if args.format == "json" else None
        for meta in found.values() if encoder is not None else ():
            encoder.started(meta)  # type: ignore[union-attr]
        if not args.follow:
            futures = [
                (
                    cid,
                    pool.router.ask(
                        ContainerLogs(
                            cid,
                            since=args.since,
                            until=args.until,
                            tail=args.tail,
                            details=args.details,
                            endpoint=where[cid],
                        ),
                        block=False,
                    ),
                )
                for cid in names
            ]
            lines = [(line, cid) for cid, future in futures for line in future.get()]
            if len(names) > 1:  # one history, in time order (the sort is stable)
                lines.sort(key=lambda item: item[0].timestamp)
            for line, cid in lines:
                if encoder is not None:
                    sys.stdout.buffer.write(encoder.encode(cid, (line,)))
                else:
                    output.lines(names[cid], (line,), flush=False)
            return EXIT_OK
        done = threading.Event()
        with _Signals() as signals:
            printer: pykka.ActorRef[Any]
            if encoder is not None:
                printer = LogWriter.start(
                    sys.stdout.fileno(), encoder, status=output.status, done=done, expect=len(names)
                )
            else:
                printer = LinePrinter.start(output, names=names, expect=len(names), done=done)
            try:
                for cid in names:
                    pool.router.ask(
                        SubscribeLogs(
                            cid, printer, since=args.since, tail=args.tail, endpoint=where[cid]
                        )
                    )
                while not done.is_set() and signals.sleep(0.1):
                    printer.tell(TICK)
            finally:
                pool.stop(timeout=_STOP_TIMEOUT)
                printer.stop(timeout=_STOP_TIMEOUT)
            return signals.exit_code


def _cmd_health(args: argparse.Namespace) -> int:
    config = _without_metrics(resolve_config(args))
    if not config.endpoints:
        endpoint = _endpoint(args, config)
        print(f"endpoint: {endpoint.describe()}")
        _check_reachable(config, args, endpoint=endpoint)
    unhealthy = False
    with _pool(config) as pool:
        several = len(pool.endpoints) > 1
        # The pool's own health checks run every health_check_interval; one ping per
        # connection (sent together, so each idle connection takes one) checks them now.
        # Every endpoint's pings go out before any is waited for.
        timeout = min(config.pool.health_check_timeout, 10.0)
        pings = {
            name: [
                pool.router.ask(Ping(timeout=timeout, endpoint=name), block=False)
                for _ in range(pool.status(endpoint=name).size)
            ]
            for name in pool.endpoints
        }
        for name, futures in pings.items():
            failures: list[str] = []
            for future in futures:
                try:
                    future.get()
                except ActorPoolError as error:
                    failures.append(str(error))
            report = pool.status(endpoint=name)
            if several:
                print(f"endpoint {name}:")
            print(health_table(report))
            print(health_line(report, failures))
            if failures:
                first = failures[0]
                where = f"endpoint {name}: " if several else ""
                print(
                    f"{where}{len(failures)} of {len(futures)} pings failed; the first: {first}",
                    file=sys.stderr,
                )
            unhealthy = unhealthy or report.degraded or report.healthy == 0 or bool(failures)
    return EXIT_UNHEALTHY if unhealthy else EXIT_OK


def _cmd_config_help(args: argparse.Namespace) -> int:
    args._config_parser.print_usage(sys.stderr)
    print("actorpool config: error: name a command: check", file=sys.stderr)
    return EXIT_USAGE


def _cmd_config_check(args: argparse.Namespace) -> int:
    path = args.file or args.config
    config = resolve_config(args, path=path)
    endpoint = _endpoint(args, config)  # resolving checks contexts and TLS files too
    print(f"# effective configuration of {path or '(defaults)'}, defaults filled in")
    print(f"# endpoint: {endpoint.describe()}")
    print(yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False), end="")
    print(f"actorpool: {path or 'the default configuration'} is valid", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- monitor


def _monitor_metrics(args: argparse.Namespace, config: Config) -> Config:
    """Serve metrics: on ``--metrics``, else ``monitoring.listen``, else the monitor's default.

    ``monitoring.enabled: false`` turns the default off; ``--metrics`` still serves.
    """
    monitoring = config.monitoring
    if not (args.metrics or monitoring.enabled):
        return config
    listen = args.metrics or monitoring.listen or DEFAULT_MONITOR_LISTEN
    monitoring = attrs.evolve(monitoring, enabled=True, listen=listen)
    return attrs.evolve(config, monitoring=monitoring)


def _metrics_origin(args: argparse.Namespace, config: Config) -> str:
    """What to change when the metrics address cannot be bound, as the user set it."""
    if args.metrics:
        return "--metrics HOST:PORT"
    if config.monitoring.listen is not None:
        return "docker.monitoring.listen"
    return "--metrics HOST:PORT (or docker.monitoring.listen)"


def _cmd_monitor(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    origin = _metrics_origin(args, config)
    config = _monitor_metrics(args, config)
    output = Output(prefix=True, timestamps=args.timestamps)
    with _Signals() as signals:
        cleanup = contextlib.ExitStack()
        try:
            _run_monitor(args, config, output, signals, cleanup)
        except _Stopped:
            pass  # a signal during start-up: clean up and exit as after a normal run
        except MetricsServerError as error:
            listen = config.monitoring.listen
            msg = f"cannot serve metrics on {listen}: {error.reason} — choose another with {origin}"
            raise CliError(msg, EXIT_ERROR) from error
        finally:
            cleanup.close()
        return signals.exit_code


def _run_monitor(
    args: argparse.Namespace,
    config: Config,
    output: Output,
    signals: _Signals,
    cleanup: contextlib.ExitStack,
) -> None:
    writes = bool(args.format == "json" or args.output or args.positions)
    opened = None
    if writes:  # before anything starts: a bad positions file is the first thing to know
        opened = open_output(
            args.output,
            args.positions,
            fmt=args.format,
            reset=args.reset_positions,
            status=output.status,
        )
        owned = opened
        cleanup.callback(lambda: _close_quietly(owned.fd))  # -1 once the writer owns it
    # Never a daemon of its own unless asked: an agent started at boot, or while Docker
    # restarts, must wait for the real one, not run a root dockerd beside it.
    if args.sandbox:
        url = start_sandbox(output, cleanup)
        pool_config = attrs.evolve(config.pool, socket_path=url, context=None)
        config = attrs.evolve(config, pool=pool_config, endpoints=())
    else:
        try:
            _check_reachable(config, args)
        except CliError as error:
            # Said, not done: a newcomer without Docker learns the way to a demo.
            hint = "; to try actorpool without Docker: actorpool monitor --sandbox"
            raise CliError(f"{error}{hint}", error.code) from error
    signals.check()

    unknown: queue.Queue[str] = queue.Queue()
    broken = threading.Event()  # set by the printer when stdout is closed (`| head`)
    printer: pykka.ActorRef[Any]
    if opened is not None:
        fd, opened.fd = opened.fd, -1
        printer = LogWriter.start(
            fd,
            RecordEncoder(
                args.format,
                endpoints=len(config.endpoint_names) > 1,
                timestamps=args.timestamps,
            ),
            store=opened.store,
            identity=opened.identity,
            offset=opened.offset,
            status=output.status,
            done=broken,
        )
    else:
        printer = LinePrinter.start(output, resolve=unknown.put, notices=True, done=broken)
    cleanup.callback(_stop_quietly, printer)
    pool = actorpool.start(config)
    cleanup.callback(pool.stop, timeout=_STOP_TIMEOUT)  # runs first: streams end, then printer
    signals.check()

    filters = _filters(args.filter)
    if opened is None:
        printer.tell(Names(_running_names(pool, filters)))
    request = FollowContainers(
        printer,
        filters=filters,
        tail=args.tail,
        exclude=_filters(args.exclude),
        name=args.name,
        positions=None if opened is None else opened.store,
    )
    pool.router.ask(request)
    where = f"; metrics at {_metrics_url(pool)}" if pool.metrics_address else ""
    shown = f" (filter {_show_filters(filters)})" if filters else ""
    daemons = (
        ", ".join(f"{e.name} ({e.host or 'context ' + str(e.context)})" for e in config.endpoints)
        if config.endpoints
        else daemon_url(config)
    )
    printer.tell(Status(f"actorpool: following logs on {daemons}{shown}{where}; Ctrl-C to stop"))
    if args.sandbox:
        printer.tell(Names(start_demo(pool)))
    _monitor_loop(pool, printer, unknown, signals, args, broken)


def _monitor_loop(
    pool: actorpool.Pool,
    printer: pykka.ActorRef[Any],
    unknown: queue.Queue[str],
    signals: _Signals,
    args: argparse.Namespace,
    broken: threading.Event,
) -> None:
    started = time.monotonic()
    stop_at = None if args.duration is None else started + args.duration
    next_summary = started + args.summary_interval
    next_tick = started
    last = (started, 0)
    while signals.received is None and not broken.is_set():
        now = time.monotonic()
        if stop_at is not None and now >= stop_at:
            break
        if now >= next_tick:  # the writer saves positions and retries a failed write on it
            printer.tell(TICK)
            next_tick = now + _TICK_INTERVAL
        if now >= next_summary:
            last = _summary(pool, printer, last)
            next_summary = max(next_summary + args.summary_interval, time.monotonic())
        try:
            cid = unknown.get(timeout=0.05)
        except queue.Empty:
            continue
        printer.tell(Names({cid: _name_of(pool, cid)}))
    if signals.received is None and not broken.is_set():
        _summary(pool, printer, last)


def _summary(
    pool: actorpool.Pool, printer: pykka.ActorRef[Any], last: tuple[float, int]
) -> tuple[float, int]:
    """Print one pool health line; return the (time, lines) it was computed at."""
    now = time.monotonic()
    stats = cast(PrinterStats, printer.ask(GetStats(), timeout=2))
    try:
        reports = pool.statuses(timeout=2)
    except (ActorPoolError, pykka.Timeout) as error:
        printer.tell(Status(f"actorpool health: pool status unavailable: {error}"))
        return now, stats.lines
    rate = (stats.lines - last[1]) / max(now - last[0], 1e-6)
    every = list(reports.values())
    breakers = sum(c.breaker == "open" for r in every for c in r.connections)
    degraded = [name for name, r in reports.items() if r.degraded]
    state = "ok" if not degraded else "degraded"
    if len(reports) > 1 and degraded:
        state += f" ({', '.join(degraded)})"
    printer.tell(
        Status(
            f"actorpool health: {state} size={sum(r.size for r in every)} "
            f"healthy={sum(r.healthy for r in every)} "
            f"breakers_open={breakers} log_streams={sum(r.log_streams for r in every)} "
            f"event_streams={sum(r.event_streams for r in every)} lines/s={rate:.1f} "
            f"queue={sum(r.queue_length for r in every)}"
        )
    )
    return now, stats.lines


def _name_of(pool: actorpool.Pool, cid: str) -> str:
    """The name lines of ``cid`` are prefixed with (``endpoint/name`` with several endpoints)."""
    several = len(pool.endpoints) > 1
    futures = [
        (name, pool.router.ask(InspectContainer(cid, timeout=2, endpoint=name), block=False))
        for name in (pool.endpoints if several else [None])
    ]
    for name, future in futures:
        try:
            info: dict[str, Any] = future.get()
        except (ActorPoolError, ValueError, pykka.Timeout):
            continue  # gone already, another endpoint's, or the daemon is slow
        shown = str(info["Name"]).lstrip("/")
        return f"{name}/{shown}" if several else shown
    return cid[:12]  # the short id will do


def _running_names(pool: actorpool.Pool, filters: Mapping[str, Any] | None) -> dict[str, str]:
    # Known up front, so the first lines of running containers are not held back.
    try:
        containers: list[dict[str, Any]] = _ask(pool, ListContainers(filters=filters, timeout=5))
    except FanOutError as error:
        containers = error.partial  # the endpoints that answered
    except ActorPoolError:
        return {}
    several = len(pool.endpoints) > 1
    names: dict[str, str] = {}
    for c in containers:
        name = (c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/")
        names[c["Id"]] = f"{c['Endpoint']}/{name}" if several else name
    return names


def _show_filters(filters: Mapping[str, Sequence[str]]) -> str:
    return ", ".join(f"{k}={v}" for k, values in filters.items() for v in values)


def _metrics_url(pool: actorpool.Pool) -> str:
    address = pool.metrics_address
    assert address is not None
    host, port = address
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


def _close_quietly(fd: int) -> None:
    if fd > 2:
        with contextlib.suppress(OSError):
            os.close(fd)


def _stop_quietly(ref: pykka.ActorRef[Any]) -> None:
    with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
        ref.stop(timeout=_STOP_TIMEOUT)


# --------------------------------------------------------------------------- sandbox


def _cmd_sandbox(args: argparse.Namespace) -> int:
    output = Output(prefix=False, timestamps=False)
    with _Signals() as signals:
        cleanup = contextlib.ExitStack()
        try:
            url = start_sandbox(output, cleanup)
            signals.check()
            names = start_demo_containers(url)
            # The one line on stdout, so `eval "$(actorpool sandbox ...)"`-style use works.
            print(f"export DOCKER_HOST={url}", flush=True)
            output.status(
                f"actorpool: demo containers running: {', '.join(names)}. In another shell, "
                "run the export line above, then e.g. `actorpool monitor` or "
                "`python examples/list_containers.py`. Ctrl-C stops and removes the daemon."
            )
            signals.sleep(math.inf if args.duration is None else args.duration)
        except _Stopped:
            pass
        finally:
            cleanup.close()
        return signals.exit_code


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The ``actorpool`` argument parser (each command's handler in ``func``)."""
    return _build_parser(
        Handlers(
            ps=_cmd_ps,
            logs=_cmd_logs,
            monitor=_cmd_monitor,
            sandbox=_cmd_sandbox,
            health=_cmd_health,
            config=_cmd_config_help,
            config_check=_cmd_config_check,
        )
    )


def _describe(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an error that ends a command."""
    if isinstance(exc, CliError):
        return exc.code, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, str(exc)
    cur: BaseException | None = exc
    while cur is not None:  # a retried call whose last failure was an unreachable daemon
        if isinstance(cur, DockerUnavailable | NoHealthyConnections):
            return EXIT_UNREACHABLE, str(cur)
        cur = cur.__cause__
    if isinstance(exc, ActorPoolError):
        return EXIT_ERROR, str(exc)
    return EXIT_ERROR, (
        f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
    )


def _exit_stdout_quietly() -> None:
    # The reader went away (`| head`): point stdout at /dev/null so the final flush
    # at exit does not raise BrokenPipeError again.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``actorpool`` command line; return the exit code.

    Args:
        argv: The arguments; ``None`` means ``sys.argv[1:]`` and marks a real
            command-line run, which ends the process itself (:func:`_exit_promptly`)
            when a thread outlives the command.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    libraries = "debug" if args.debug_libraries else "warning"
    configure_logging(args.log_level, json=args.log_json, libraries=libraries)
    try:
        code = int(args.func(args))
    except BrokenPipeError:
        _exit_stdout_quietly()
        code = EXIT_OK
    except (Exception, KeyboardInterrupt) as exc:
        code, message = _describe(exc)
        if args.debug:
            traceback.print_exc()
        with contextlib.suppress(OSError):
            print(f"actorpool: {message}", file=sys.stderr)
    _flush_quietly()
    if argv is None:
        _exit_promptly(code)
    return code


def _exit_promptly(code: int, grace: float = 0.3) -> None:
    """End the process now if a worker thread is still running after the command.

    The pool stops its actors with a bounded wait, but a connection stuck in a
    Docker call (a paused daemon) keeps its thread until the call's deadline,
    and Python waits for every non-daemon thread before exiting: Ctrl-C must
    not take 30 seconds. Everything of ours is cleaned up by now (a sandbox
    daemon included), so nothing is lost by not waiting.
    """
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
    stuck = [name for name in stuck if name != threading.current_thread().name]
    if stuck:
        logging.getLogger(__name__).debug("exiting with threads still running: %s", stuck)
        _flush_quietly()
        os._exit(code)


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _exit_stdout_quietly()
        except (OSError, ValueError):
            pass

"""Structured logging for actorpool on top of the standard :mod:`logging` module.

Every record about a connection, a request or a stream carries its ids as
record attributes, so a handler, filter or :class:`JsonFormatter` can read
them, and repeats them in the message as ``key=value`` so a plain text log is
just as greppable::

    log_event(logger, logging.WARNING, "request retried",
              conn_id="c3", request_id="r17", attempt=2, operation="inspect_container")
    # -> "request retried conn_id=c3 request_id=r17 attempt=2 operation=inspect_container"

Field names the whole code base uses (constants below): ``conn_id``,
``request_id``, ``attempt``, ``container_id``, ``subscription_id``,
``operation``. Loggers are named ``actorpool.<module>``.

Nothing secret may reach a log: :func:`redact_text` and :class:`RedactingFilter`
hide the value of every field or ``key=value`` / ``key: value`` pair whose name
contains *key*, *password*, *passwd*, *secret*, *token*, *auth* or *credential*
(so TLS key paths, registry ``X-Registry-Auth`` headers and ``Authorization``
headers), every ``Bearer`` token and every PEM private key block.
:func:`log_event` redacts its fields itself; :func:`configure_logging` installs
the filter on its handler so records from any library (docker-py, urllib3) are
covered too. Passwords in URLs (``tcp://user:pw@host``) are hidden as well.
Over-redacting (``monkey=***``) is the accepted price of never
missing a secret.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Final

__all__ = [
    "ATTEMPT",
    "CONN_ID",
    "CONTAINER_ID",
    "OPERATION",
    "REDACTED",
    "REQUEST_ID",
    "SUBSCRIPTION_ID",
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "format_fields",
    "is_secret_name",
    "log_event",
    "redact_text",
    "redact_value",
]

CONN_ID: Final = "conn_id"
REQUEST_ID: Final = "request_id"
ATTEMPT: Final = "attempt"
CONTAINER_ID: Final = "container_id"
SUBSCRIPTION_ID: Final = "subscription_id"
OPERATION: Final = "operation"

#: What a secret value is replaced with.
REDACTED: Final = "***"

_SECRET_WORDS = r"(?:key|password|passwd|secret|token|auth|credential)"
_SECRET_NAME = re.compile(_SECRET_WORDS, re.IGNORECASE)
_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# A bearer token anywhere ("Bearer abc..."): the scheme word is kept, the token hidden.
_BEARER = re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]+")
_SCHEME_PREFIX = re.compile(r"(?:Bearer|Basic|Digest)\s+", re.IGNORECASE)
# tcp://user:secret@host: the password part of URL credentials.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+(?=@)", re.I)
# name=value, name: value, "name": "value", 'name': 'value', name="value with spaces".
_SECRET_PAIR = re.compile(
    r"""(?P<name>["']?[\w.-]*""" + _SECRET_WORDS + r"""[\w.-]*["']?)"""
    r"""(?P<sep>\s*[=:]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
    r"""|(?:(?:Bearer|Basic|Digest)\s+)?[^\s,;&}\])]+)""",
    re.IGNORECASE,
)

# Attributes every LogRecord has; any other attribute came from ``extra``.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "fields",
}


def is_secret_name(name: str) -> bool:
    """Whether a field named ``name`` holds a secret and must be redacted."""
    return bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """Hide secrets inside free text (messages, exception texts, reprs of dicts)."""
    text = _PEM_BLOCK.sub(lambda m: f"[REDACTED {m.group(1)}]", text)
    text = _BEARER.sub(f"Bearer {REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}", text)

    def _pair(m: re.Match[str]) -> str:
        value = m.group("value")
        quote = value[0] if value[:1] in ("'", '"') else ""
        scheme = _SCHEME_PREFIX.match(value.strip("'\""))
        kept = scheme.group(0) if scheme else ""
        if value.strip("'\"")[len(kept) :] in (REDACTED, ""):
            return m.group(0)
        return f"{m.group('name')}{m.group('sep')}{quote}{kept}{REDACTED}{quote}"

    return _SECRET_PAIR.sub(_pair, text)


def redact_value(name: str, value: Any) -> Any:
    """Redact ``value`` for a field called ``name``: hidden if the name is secret, else scrubbed.

    Mappings are redacted key by key (a headers dict keeps its harmless headers),
    strings are scrubbed with :func:`redact_text`, other values pass unchanged.
    """
    if is_secret_name(name):
        return None if value is None else REDACTED
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, str):
        return redact_text(value)
    return value


def _format_value(value: Any) -> str:
    text = (
        value if isinstance(value, str) else repr(value) if isinstance(value, bytes) else str(value)
    )
    if text == "" or any(c.isspace() or c in "\"='" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_fields(fields: Mapping[str, Any]) -> str:
    """Render fields as ``key=value`` pairs (values with spaces or quotes JSON-quoted).

    ``None`` values are left out: an id that does not apply is not worth a column.
    """
    return " ".join(f"{k}={_format_value(v)}" for k, v in fields.items() if v is not None)


def log_event(
    logger: logging.Logger,
    level: int,
    event: str,
    /,
    *,
    exc_info: Any = None,
    **fields: Any,
) -> None:
    """Log ``event`` with ``fields`` as record attributes and as ``key=value`` in the message.

    Cheap when the level is disabled (nothing is formatted). Secret fields are
    redacted before the record exists. Field names that clash with
    :class:`logging.LogRecord` attributes (``name``, ``msg``, ``module``...) are
    stored with a trailing ``_`` as attributes; the ``fields`` attribute always
    holds them all under their own names, for formatters.

    Args:
        logger: The module's logger (``logging.getLogger(__name__)``).
        level: A :mod:`logging` level.
        event: What happened, a short constant phrase (no ids in it: they go in fields).
        exc_info: Passed to the logger (an exception or True to log a traceback).
        **fields: Ids and values (``conn_id=...``, ``attempt=...``).
    """
    if not logger.isEnabledFor(level):
        return
    clean = {k: redact_value(k, v) for k, v in fields.items()}
    extra: dict[str, Any] = {"fields": clean, "event": event}
    for key, value in clean.items():
        extra[f"{key}_" if key in _RECORD_ATTRS or key == "event" else key] = value
    rendered = format_fields(clean)
    message = f"{event} {rendered}" if rendered else event
    # %s keeps a '%' in a value from being taken for a format directive.
    logger.log(level, "%s", message, exc_info=exc_info, extra=extra, stacklevel=2)


class RedactingFilter(logging.Filter):
    """Scrub secrets from a record's message, arguments, extra fields and traceback.

    Install it on a handler (filters on a logger do not see records propagated
    from child loggers). It never drops a record: it only rewrites it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact_text(message)
        record.args = None
        for name, value in list(record.__dict__.items()):
            if name in _RECORD_ATTRS:
                continue
            record.__dict__[name] = redact_value(name, value)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = {k: redact_value(k, v) for k, v in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    if isinstance(fields, Mapping):
        return dict(fields)
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the fields, ``exc``.

    ``ts`` is RFC 3339 UTC with milliseconds. Values JSON cannot encode are
    rendered with ``str``. Fields never overwrite the fixed keys.
    """

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        millis = int((record.created - seconds) * 1000)
        out: dict[str, Any] = {
            "ts": f"{stamp}.{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if event is not None:
            out["event"] = event
        for key, value in _record_fields(record).items():
            out.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


_HANDLER_MARK: Final = "_actorpool_handler"
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: int | str = "INFO",
    json: bool = False,
    *,
    stream: IO[str] | None = None,
    logger: logging.Logger | None = None,
    libraries: int | str = "WARNING",
) -> logging.Handler:
    """Send log records to ``stream`` (stderr) as text or JSON, with secrets redacted.

    Meant for the CLI and for applications without their own logging setup.
    Calling it again replaces the handler it installed before (no duplicate lines).

    By default ``level`` is actorpool's own (the ``actorpool`` loggers) and
    ``libraries`` everyone else's: ``--log-level debug`` must show what the
    pool does, not the 60 lines docker-py, urllib3 and pykka write for one
    request. Their records still go through this handler, so they are
    formatted and redacted the same way when they are turned on.

    Args:
        level: A level name (``"debug"``, ``"INFO"``) or number, for actorpool's loggers.
        json: One JSON object per line instead of text.
        stream: Where to write; ``sys.stderr`` by default.
        logger: The logger to configure, handler and ``level`` both (``libraries``
            is then unused); by default the handler goes on the root logger.
        libraries: The level of every other logger (docker-py, urllib3, pykka).

    Returns:
        The installed handler.

    Raises:
        ValueError: ``level`` or ``libraries`` is not a logging level.
    """
    level = _level(level)
    target = logging.getLogger() if logger is None else logger
    for old in list(target.handlers):
        if getattr(old, _HANDLER_MARK, False):
            target.removeHandler(old)
            old.close()
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    target.addHandler(handler)
    if logger is None:
        target.setLevel(_level(libraries))
        logging.getLogger("actorpool").setLevel(level)
    else:
        target.setLevel(level)
    return handler


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    resolved = logging.getLevelName(level.strip().upper())
    if not isinstance(resolved, int):
        msg = f"unknown log level {level!r}; use debug, info, warning, error or critical"
        raise ValueError(msg)
    return resolved

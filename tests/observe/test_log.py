"""Tests of actorpool.observe.log: structured fields, JSON lines, no secret ever logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actorpool.observe.log import (
    REDACTED,
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    format_fields,
    log_event,
    redact_text,
    redact_value,
)

from helpers import restored_logging

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAzSECRETSECRETSECRET\n"
    "q1w2e3r4t5y6u7i8o9p0SECRETSECRET==\n"
    "-----END RSA PRIVATE KEY-----"
)
SECRETS = ("hunter2", "s3cr3t-t0ken", "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAifQ==", "SECRET")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A private logger that does not propagate, restored afterwards."""
    log = logging.getLogger("actorpool.test_obslog")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.propagate = True
    log.setLevel(logging.NOTSET)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def configured(log: logging.Logger, *, json_lines: bool = False) -> io.StringIO:
    out = io.StringIO()
    configure_logging("DEBUG", json_lines, stream=out, logger=log)
    return out


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


# --- structured fields --------------------------------------------------------------------


def test_log_event_puts_fields_in_record_and_message(logger: logging.Logger) -> None:
    handler = ListHandler()
    logger.addHandler(handler)
    log_event(logger, logging.INFO, "request retried", conn_id="c3", request_id="r17", attempt=2)
    (record,) = handler.records
    assert record.getMessage() == "request retried conn_id=c3 request_id=r17 attempt=2"
    assert record.conn_id == "c3"  # type: ignore[attr-defined]
    assert record.request_id == "r17"  # type: ignore[attr-defined]
    assert record.attempt == 2  # type: ignore[attr-defined]
    assert record.fields == {"conn_id": "c3", "request_id": "r17", "attempt": 2}  # type: ignore[attr-defined]
    assert record.event == "request retried"  # type: ignore[attr-defined]
    # The record points at the caller, not at log_event.
    assert record.funcName == "test_log_event_puts_fields_in_record_and_message"


def test_log_event_quotes_awkward_values_and_skips_none(logger: logging.Logger) -> None:
    handler = ListHandler()
    logger.addHandler(handler)
    log_event(
        logger,
        logging.WARNING,
        "stream cut",
        container_id=None,
        reason="daemon went away",
        ratio="50%",
        empty="",
    )
    (record,) = handler.records
    assert record.getMessage() == 'stream cut reason="daemon went away" ratio=50% empty=""'


def test_log_event_renames_fields_that_clash_with_record_attributes(
    logger: logging.Logger,
) -> None:
    handler = ListHandler()
    logger.addHandler(handler)
    log_event(logger, logging.INFO, "started", name="router", module="pool")
    (record,) = handler.records
    assert record.name == "actorpool.test_obslog"
    assert record.name_ == "router"  # type: ignore[attr-defined]
    assert record.module_ == "pool"  # type: ignore[attr-defined]
    assert record.getMessage() == "started name=router module=pool"


def test_log_event_formats_nothing_when_the_level_is_off(logger: logging.Logger) -> None:
    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("formatted although DEBUG is off")

    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    log_event(logger, logging.DEBUG, "chunk sent", payload=Exploding())
    assert handler.records == []


def test_format_fields() -> None:
    assert format_fields({"a": 1, "b": None, "c": "x y", "d": b"\x00"}) == (
        'a=1 c="x y" d="b\'\\\\x00\'"'
    )


# --- text and JSON output -----------------------------------------------------------------


def test_text_output_is_one_line_with_fields(logger: logging.Logger) -> None:
    out = configured(logger)
    log_event(logger, logging.INFO, "connection opened", conn_id="c1")
    line = out.getvalue().strip()
    assert line.endswith("INFO actorpool.test_obslog: connection opened conn_id=c1")


def test_json_lines_carry_fields_and_exceptions(logger: logging.Logger) -> None:
    out = configured(logger, json_lines=True)
    log_event(logger, logging.INFO, "connection opened", conn_id="c1", attempt=0)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log_event(logger, logging.ERROR, "call failed", exc_info=True, request_id="r1")
    logger.warning("plain %s", "message", extra={"container_id": "abc123"})
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "INFO"
    assert first["logger"] == "actorpool.test_obslog"
    assert first["message"] == "connection opened conn_id=c1 attempt=0"
    assert first["event"] == "connection opened"
    assert first["conn_id"] == "c1"
    assert first["attempt"] == 0
    assert first["ts"].endswith("Z")
    assert second["request_id"] == "r1"
    assert "RuntimeError: boom" in second["exc"]
    assert third["message"] == "plain message"
    assert third["container_id"] == "abc123"


def test_json_formatter_survives_unserialisable_values() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.thing = object()
    data = json.loads(JsonFormatter().format(record))
    assert data["thing"].startswith("<object object")


def test_configure_logging_replaces_its_own_handler(logger: logging.Logger) -> None:
    first = configure_logging("info", stream=io.StringIO(), logger=logger)
    second = configure_logging(logging.DEBUG, stream=io.StringIO(), logger=logger)
    assert second in logger.handlers
    assert first not in logger.handlers
    assert logger.level == logging.DEBUG


def test_configure_logging_sets_actorpool_loggers_only_unless_libraries_are_asked() -> None:
    out = io.StringIO()
    with restored_logging():
        configure_logging("debug", stream=out)
        logging.getLogger("actorpool.pool.router").debug("ours")
        for name in ("docker.api.client", "urllib3.connectionpool", "pykka"):
            logging.getLogger(name).debug("theirs %s", name)
            logging.getLogger(name).warning("their warning %s", name)
        configure_logging("warning", stream=out, libraries="debug")
        logging.getLogger("actorpool.pool.router").debug("ours, hidden now")
        logging.getLogger("urllib3.connectionpool").debug("theirs, shown now")
    lines = [line.split(": ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "ours",
        "their warning docker.api.client",
        "their warning urllib3.connectionpool",
        "their warning pykka",
        "theirs, shown now",
    ]


def test_configure_logging_rejects_unknown_level(logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("loud", logger=logger)


# --- redaction ----------------------------------------------------------------------------


def test_log_event_redacts_secret_fields(logger: logging.Logger) -> None:
    handler = ListHandler()
    logger.addHandler(handler)
    log_event(
        logger,
        logging.INFO,
        "client created",
        conn_id="c1",
        tls_client_key="/etc/docker/hunter2.pem",
        password="hunter2",
        auth_token="s3cr3t-t0ken",
        headers={"X-Registry-Auth": SECRETS[2], "Content-Type": "application/json"},
    )
    (record,) = handler.records
    message = record.getMessage()
    assert_no_secret(message)
    assert_no_secret(repr(record.__dict__))
    assert "conn_id=c1" in message
    assert f"tls_client_key={REDACTED}" in message
    assert record.headers == {  # type: ignore[attr-defined]
        "X-Registry-Auth": REDACTED,
        "Content-Type": "application/json",
    }


@pytest.mark.parametrize(
    "message",
    [
        "headers: {'X-Registry-Auth': '" + SECRETS[2] + "', 'Accept': 'json'}",
        'json body {"password": "hunter2", "username": "u"}',
        "Authorization: Bearer s3cr3t-t0ken",
        "registry auth=hunter2 user=u",
        "DOCKER_AUTH_CONFIG=hunter2",
        "connecting to tcp://admin:hunter2@docker.example:2376",
        "loaded key\n" + PEM + "\ndone",
        "api_key = 'hunter2'",
    ],
)
def test_redacting_filter_scrubs_any_record(logger: logging.Logger, message: str) -> None:
    out = configured(logger)
    logger.info(message)
    logger.info("%s", message)  # through args too
    text = out.getvalue()
    assert_no_secret(text)
    assert text.count(REDACTED) >= 2 or "[REDACTED RSA PRIVATE KEY]" in text


def test_redacting_filter_keeps_harmless_text(logger: logging.Logger) -> None:
    out = configured(logger)
    logger.info("listed %d containers on conn %s in %.3f s", 3, "c1", 0.0125)
    assert "listed 3 containers on conn c1 in 0.013 s" in out.getvalue()
    assert REDACTED not in out.getvalue()


def test_redacting_filter_scrubs_extra_fields_and_tracebacks(logger: logging.Logger) -> None:
    out = configured(logger, json_lines=True)
    try:
        raise ValueError("bad credential password=hunter2 in config")
    except ValueError:
        logger.exception("load failed", extra={"registry_token": "s3cr3t-t0ken", "conn_id": "c9"})
    text = out.getvalue()
    assert_no_secret(text)
    data = json.loads(text)
    assert data["registry_token"] == REDACTED
    assert data["conn_id"] == "c9"
    assert "ValueError: bad credential password=***" in data["exc"]


def test_redacting_filter_is_installed_on_the_root_by_default() -> None:
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    out = io.StringIO()
    try:
        handler = configure_logging("INFO", stream=out, libraries="INFO")
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        logging.getLogger("urllib3.connectionpool").info(
            "Authorization: Basic aHVudGVyMjpodW50ZXIy"
        )
    finally:
        for h in list(root.handlers):
            if h not in saved_handlers:
                root.removeHandler(h)
        root.setLevel(saved_level)
    assert "aHVudGVyMjpodW50ZXIy" not in out.getvalue()
    assert "Authorization: " in out.getvalue()


def test_redact_value_by_name() -> None:
    assert redact_value("tls_client_key", "/etc/key.pem") == REDACTED
    assert redact_value("Password", None) is None
    assert redact_value("conn_id", "c1") == "c1"
    assert redact_value("attempt", 3) == 3
    assert redact_value("config", {"api": {"tls_client_key": "/k"}, "x": 1}) == {
        "api": {"tls_client_key": REDACTED},
        "x": 1,
    }


_SECRET_ALPHABET = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/_-"),
    min_size=8,
    max_size=40,
)


@given(
    name=st.sampled_from(["password", "token", "api_key", "X-Registry-Auth", "client_secret"]),
    sep=st.sampled_from(["=", ": ", " = ", ":"]),
    quote=st.sampled_from(["", "'", '"']),
    secret=_SECRET_ALPHABET,
    prefix=st.sampled_from(["", "config ", "{", "a=1, "]),
)
def test_redact_text_never_leaks_a_named_secret(
    name: str, sep: str, quote: str, secret: str, prefix: str
) -> None:
    text = f"{prefix}{name}{sep}{quote}{secret}{quote} tail"
    redacted = redact_text(text)
    assert secret not in redacted
    assert redacted.endswith(" tail")

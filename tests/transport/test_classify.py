"""Which daemon failures a stream reconnects for (transport/classify.py, logs/context.py)."""

from __future__ import annotations

from actorpool.errors import DockerError
from actorpool.logs.context import transient
from actorpool.transport.classify import passing

# What Podman 4.3 answered, once, in a full run: a tail read of a log file being written.
_RACE = (
    "failed to obtain logs for Container 'f5fe80d0': unable to read log file f5fe80d0 for "
    "/tmp/x/userdata/ctr.log : '2' is not a valid container log line"
)


def test_podmans_500_for_a_log_file_read_as_it_is_written_passes_and_is_retried() -> None:
    race = DockerError("container_logs: HTTP 500", status=500, explanation=_RACE)
    assert passing(race)
    assert transient(race)


def test_other_daemon_failures_are_not_retried_and_gateways_are() -> None:
    other = DockerError("x", status=500, explanation="no space left on device")
    assert not passing(other)
    assert not transient(other)
    assert not passing(DockerError("x", status=404, explanation=_RACE))
    assert transient(DockerError("x", status=503, explanation="busy"))

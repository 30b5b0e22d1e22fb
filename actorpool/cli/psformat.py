"""``actorpool ps`` output as ``docker ps`` prints it: its columns, ``--format json`` and templates.

``docker ps --format`` takes a Go template over each container's fields; actorpool
takes the subset scripts use: ``{{.Field}}``, ``{{json .}}``, ``{{json .Field}}``,
``{{.Label "key"}}``, ``\\t``/``\\n`` escapes, and a leading ``table`` for a header row.
Field values are docker's own strings (``RunningFor`` = "5 minutes ago", ``Ports`` =
"127.0.0.1:8080->80/tcp", ``CreatedAt`` in local time), so output can be compared with
``docker ps`` as is.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from actorpool.cli.printer import short, table

__all__ = ["FIELDS", "PsFormatError", "human_duration", "ps_fields", "render_ps"]

#: The fields a template may name, with the header ``table`` prints for each.
FIELDS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "Endpoint": "ENDPOINT",
}

# docker ps's default columns.
_DEFAULT = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")

_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_FIELD = re.compile(r"^\.(\w+)$")
_JSON = re.compile(r"^json\s+\.(\w*)$")
_LABEL = re.compile(r'^\.Label\s+"([^"]*)"$')


class PsFormatError(ValueError):
    """A ``--format`` template actorpool cannot run; the message says which part."""


def human_duration(seconds: float) -> str:
    """docker's ``units.HumanDuration``: "Less than a second", "About a minute", "3 hours"."""
    whole = int(seconds)
    minutes = int(seconds / 60)
    hours = int(seconds / 3600 + 0.5)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _ports(ports: Sequence[Mapping[str, Any]]) -> str:
    shown = []
    for port in ports:
        inner = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
        if port.get("PublicPort"):
            ip = port.get("IP") or "0.0.0.0"
            host = f"[{ip}]" if ":" in ip else ip
            inner = f"{host}:{port['PublicPort']}->{inner}"
        if inner not in shown:
            shown.append(inner)
    return ", ".join(shown)


def ps_fields(container: Mapping[str, Any], *, no_trunc: bool, now: float) -> dict[str, str]:
    """The template fields of one ``GET /containers/json`` item, as ``docker ps`` shows them."""
    created = float(container.get("Created") or 0)
    local = datetime.datetime.fromtimestamp(created).astimezone()
    labels = container.get("Labels") or {}
    networks = ((container.get("NetworkSettings") or {}).get("Networks")) or {}
    mounts = [m.get("Name") or m.get("Source", "") for m in container.get("Mounts") or []]
    command = container.get("Command", "")
    return {
        "ID": container["Id"] if no_trunc else container["Id"][:12],
        "Image": container.get("Image", ""),
        "Command": '"' + short(command, 20, no_trunc) + '"',
        "CreatedAt": local.strftime("%Y-%m-%d %H:%M:%S %z %Z"),
        "RunningFor": human_duration(max(0.0, now - created)) + " ago",
        "Ports": _ports(container.get("Ports") or []),
        "State": container.get("State", ""),
        "Status": container.get("Status", ""),
        "Names": ",".join(n.lstrip("/") for n in container.get("Names") or []),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(mounts),
        "Networks": ",".join(sorted(networks)),
        "Endpoint": str(container.get("Endpoint", "")),  # set with several endpoints
    }


def _compile(template: str) -> list[tuple[str, str]]:
    """``template`` as ``("text", s)`` and ``("field"|"json"|"label", name)`` parts."""
    parts: list[tuple[str, str]] = []
    at = 0
    for action in _ACTION.finditer(template):
        parts.append(("text", template[at : action.start()]))
        at = action.end()
        code = action[1]
        if field := _FIELD.match(code):
            kind, name = "field", field[1]
        elif whole := _JSON.match(code):
            kind, name = "json", whole[1]
        elif label := _LABEL.match(code):
            parts.append(("label", label[1]))
            continue
        else:
            msg = (
                f"--format: cannot run {{{{{code}}}}}; actorpool takes {{{{.Field}}}}, "
                '{{json .}}, {{json .Field}} and {{.Label "key"}}'
            )
            raise PsFormatError(msg)
        if name and name not in FIELDS:
            msg = f"--format: no field {name!r}; the fields are {', '.join(FIELDS)}"
            raise PsFormatError(msg)
        parts.append((kind, name))
    parts.append(("text", template[at:]))
    return parts


def _run(parts: Sequence[tuple[str, str]], fields: Mapping[str, str], labels: Any) -> str:
    out = []
    for kind, name in parts:
        if kind == "text":
            out.append(name)
        elif kind == "field":
            out.append(fields[name])
        elif kind == "label":
            out.append(str((labels or {}).get(name, "")))
        else:
            out.append(json.dumps(dict(fields) if not name else fields[name], sort_keys=True))
    return "".join(out)


def render_ps(
    containers: Sequence[Mapping[str, Any]],
    fmt: str | None,
    *,
    no_trunc: bool,
    now: float,
    endpoints: bool = False,
) -> str:
    """What ``ps`` prints for ``containers`` with ``--format fmt`` (``None``: the table).

    ``endpoints``: several endpoints answered, so the default table starts with ENDPOINT.

    Raises:
        PsFormatError: ``fmt`` is a template actorpool cannot run.
    """
    rows = [ps_fields(c, no_trunc=no_trunc, now=now) for c in containers]
    if fmt is None or fmt.strip() == "table":
        names = ("Endpoint", *_DEFAULT) if endpoints else _DEFAULT
        columns = [FIELDS[name] for name in names]
        return table([columns, *([row[name] for name in names] for row in rows)])
    if fmt.strip() == "json":
        shown = [{k: v for k, v in row.items() if v or k != "Endpoint"} for row in rows]
        return "\n".join(json.dumps(row, sort_keys=True) for row in shown)
    text = fmt.replace("\\t", "\t").replace("\\n", "\n")
    as_table = text.startswith(("table ", "table\t"))
    parts = _compile(text.removeprefix("table").lstrip(" ") if as_table else text)
    lines = [_run(parts, row, c.get("Labels")) for row, c in zip(rows, containers, strict=True)]
    if not as_table:
        return "\n".join(lines)
    heading = _run(parts, FIELDS, {})
    cells = [line.split("\t") for line in [heading, *lines]]
    width = max(len(c) for c in cells)
    return table([[*c, *([""] * (width - len(c)))] for c in cells])

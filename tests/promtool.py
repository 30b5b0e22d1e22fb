"""Test helpers that check metrics and rules with the real ``promtool`` (reusable by any test).

``from promtool import scrape, promtool_check`` from a test module in tests/.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

__all__ = [
    "PROMTOOL",
    "promtool_check",
    "promtool_check_rules",
    "promtool_test_rules",
    "scrape",
]

PROMTOOL = shutil.which("promtool") or "promtool"
_TIMEOUT = 60.0


def scrape(address: tuple[str, int] | str, *, timeout: float = 5.0) -> str:
    """GET the metrics endpoint and return the exposition text.

    Args:
        address: ``(host, port)`` (``MetricsServer.address``, ``Pool.metrics_address``),
            ``"host:port"`` or a full ``http://`` URL.
        timeout: Socket timeout in seconds.
    """
    if isinstance(address, tuple):
        host, port = address
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{port}/metrics"
    elif address.startswith(("http://", "https://")):
        url = address
    else:
        url = f"http://{address}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body.decode("utf-8")


def _run(args: list[str], *, stdin: str | None = None, cwd: Path | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [PROMTOOL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        cwd=cwd,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def promtool_check(text: str) -> tuple[int, str]:
    """Run ``promtool check metrics`` on an exposition; return (exit code, stdout+stderr).

    Exit code 0 means no error and no lint problem (promtool exits 3 on lint problems).
    """
    return _run(["check", "metrics"], stdin=text)


def promtool_check_rules(path: Path) -> tuple[int, str]:
    """Run ``promtool check rules`` on a rules file."""
    return _run(["check", "rules", str(path)])


def promtool_test_rules(path: Path) -> tuple[int, str]:
    """Run ``promtool test rules`` on a rule unit-test file (paths in it are relative to it)."""
    return _run(["test", "rules", path.name], cwd=path.parent)

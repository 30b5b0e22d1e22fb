"""The agent recipes in packaging/: each is parsed (or verified by its own tool) and checked.

The systemd unit goes through ``systemd-analyze verify``; the Dockerfile, compose
file and DaemonSet cannot be built or applied here (no registry, no cluster), so
they are parsed and checked for what makes them work: the command line the
image runs is one our parser accepts (and runs, against the shared daemon), the
socket is mounted read-only, the metrics port agrees everywhere, the health
check is ``actorpool health``, and the agent leaves its own container out.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from actorpool.cli.main import build_parser
from actorpool.testing.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
SOCKET = "/var/run/docker.sock"
PORT = 19323
AGENT_LABEL = "io.actorpool.agent"


def monitor_args(argv: list[str]) -> Any:
    """Parse an agent's command line (without the program name) as the CLI would."""
    args = build_parser().parse_args(argv)
    assert args.func.__name__ == "_cmd_monitor", argv
    return args


def assert_is_the_agent(argv: list[str], *, metrics: str = f"0.0.0.0:{PORT}") -> None:
    args = monitor_args(argv)
    assert args.metrics == metrics
    assert ("label", AGENT_LABEL) in args.exclude  # else it follows its own output
    assert args.log_json


# --------------------------------------------------------------------------- systemd


def systemd_verify(unit: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: run scripts/_setup.sh (it installs systemd)"
    return subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def unit_here(tmp_path: Path, text: str | None = None) -> Path:
    # verify checks that ExecStart's program exists: point it at this checkout's script.
    source = (PACKAGING / "systemd" / "actorpool.service").read_text()
    script = Path(sys.executable).parent / "actorpool"
    unit = tmp_path / "actorpool.service"
    unit.write_text((text or source).replace("/opt/actorpool/bin/actorpool", str(script)))
    return unit


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = systemd_verify(unit_here(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_systemd_analyze_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    # verify exits 0 on unknown keys and bad values, and only says so: the check above
    # must read its output, as this shows.
    source = (PACKAGING / "systemd" / "actorpool.service").read_text()
    broken = source.replace("Restart=on-failure", "Restart=sometimes\nRestartSecs=5s")
    result = systemd_verify(unit_here(tmp_path, broken))
    assert "restart specifier" in result.stderr, result.stderr
    assert "Unknown key 'RestartSecs'" in result.stderr, result.stderr


def test_the_systemd_unit_runs_the_agent_with_its_defaults() -> None:
    text = (PACKAGING / "systemd" / "actorpool.service").read_text()
    env = dict(re.findall(r"^Environment=(\w+)=(.*)$", text, re.MULTILINE))
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", text, re.MULTILINE)
    argv = shlex.split(exec_start.replace("${ACTORPOOL_METRICS}", env["ACTORPOOL_METRICS"]))
    assert argv[0] == "/opt/actorpool/bin/actorpool"
    assert argv[-1] == "$ACTORPOOL_ARGS"
    assert env["ACTORPOOL_ARGS"] == ""
    args = monitor_args(argv[1:-1])
    assert args.metrics == f"127.0.0.1:{PORT}"  # a host process: loopback unless told
    assert "RestartPreventExitStatus=2" in text  # a bad configuration is not retried


# --------------------------------------------------------------------------- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of packaging/docker/Dockerfile, continuations joined."""
    text = (PACKAGING / "docker" / "Dockerfile").read_text()
    logical = re.sub(r"\\\n\s*", " ", text)
    steps = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def test_the_dockerfile_builds_from_a_pinned_base_and_installs_the_package() -> None:
    steps = dockerfile()
    froms = [rest for op, rest in steps if op == "FROM"]
    assert froms
    assert steps[0][0] == "FROM"
    assert all(re.match(r"python:3\.1[1-9][\w.-]*( AS \w+)?$", f) for f in froms), froms
    copies = [rest.split() for op, rest in steps if op == "COPY" and "--from" not in rest]
    sources = [src for copy in copies for src in copy[:-1]]
    assert "pyproject.toml" in sources
    assert "actorpool" in sources
    for source in sources:  # the build context is the repository root
        assert (REPO / source).exists(), source
    runs = " && ".join(rest for op, rest in steps if op == "RUN")
    assert re.search(r"pip (wheel|install) [^&]*\.(\s|$)", runs), runs
    assert re.search(r"pip install [^&]*\.whl", runs), runs


def test_the_image_runs_the_agent_and_checks_its_health() -> None:
    steps = dict(dockerfile())  # the last of each instruction wins, as in Docker
    assert json.loads(steps["ENTRYPOINT"]) == ["actorpool"]
    assert_is_the_agent(json.loads(steps["CMD"]))
    assert steps["HEALTHCHECK"].endswith('CMD ["actorpool", "health"]')
    assert steps["EXPOSE"] == str(PORT)
    assert steps["LABEL"] == f'{AGENT_LABEL}="1"'
    assert steps["ENV"] == f"DOCKER_HOST=unix://{SOCKET}"


# --------------------------------------------------------------------------- compose


def test_the_compose_file_runs_the_image_with_the_socket_read_only() -> None:
    compose = yaml.safe_load((PACKAGING / "compose.yaml").read_text())
    service = compose["services"]["actorpool"]
    build = service["build"]
    assert (PACKAGING / build["context"] / build["dockerfile"]).resolve() == (
        PACKAGING / "docker" / "Dockerfile"
    )
    assert (PACKAGING / build["context"]).resolve() == REPO
    assert_is_the_agent(service["command"])
    assert service["command"] == json.loads(dict(dockerfile())["CMD"])
    (volume,) = service["volumes"]
    assert (volume["type"], volume["source"], volume["target"]) == ("bind", SOCKET, SOCKET)
    assert volume["read_only"] is True
    assert service["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]
    assert service["healthcheck"]["test"] == ["CMD", "actorpool", "health"]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert service["restart"] == "unless-stopped"
    assert set(service["deploy"]["resources"]["limits"]) == {"cpus", "memory"}


# --------------------------------------------------------------------------- Kubernetes


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi)?", str(value))
    assert match, value
    return float(match[1]) * units.get(match[2] or "", 1)


def test_the_daemonset_mounts_the_socket_read_only_and_probes_health() -> None:
    (manifest,) = list(
        yaml.safe_load_all((PACKAGING / "kubernetes" / "daemonset.yaml").read_text())
    )
    assert (manifest["apiVersion"], manifest["kind"]) == ("apps/v1", "DaemonSet")
    spec = manifest["spec"]
    template = spec["template"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    pod = template["spec"]
    (container,) = pod["containers"]
    assert_is_the_agent(container["args"])
    (volume,) = pod["volumes"]
    assert volume["hostPath"] == {"path": SOCKET, "type": "Socket"}
    (mount,) = container["volumeMounts"]
    assert (mount["name"], mount["mountPath"], mount["readOnly"]) == (volume["name"], SOCKET, True)
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", PORT)
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(PORT)
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        assert 0 < quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind])
    probe = container["livenessProbe"]
    assert probe["exec"]["command"] == ["actorpool", "health"]
    assert probe["timeoutSeconds"] < probe["periodSeconds"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


# --------------------------------------------------------------------------- the command


def test_the_agents_command_runs_against_a_real_daemon(sandbox: Sandbox) -> None:
    # What the image, compose and DaemonSet run, on a free loopback port, for 2 seconds.
    argv = json.loads(dict(dockerfile())["CMD"])
    argv[argv.index("--metrics") + 1] = "127.0.0.1:0"
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": sandbox.url}
    result = subprocess.run(
        [sys.executable, "-m", "actorpool", *argv, "--duration", "2"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    health = subprocess.run(
        [sys.executable, "-m", "actorpool", "health"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert health.returncode == 0, health.stdout + health.stderr

# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/main.sh: installs what actorpool needs on a
# Debian machine (run as root), creates .venv and installs the project into it.
# Idempotent and quick when everything is there: apt-get runs only for missing
# packages and pip only when pyproject.toml changed.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1

stage() {
    printf '\n\033[1m==> [%s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*"
}

die() {
    printf '\033[1;31merror:\033[0m %s\n' "$*" >&2
    exit 1
}

_deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

_find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

_apt_install() {
    [ "$(id -u)" = 0 ] || die "missing Debian packages: $*; run this script as root (or install them)"
    command -v apt-get >/dev/null || die "missing packages: $* (no apt-get here: install them by hand)"
    # Keep package scripts from starting services (a system dockerd on
    # /var/run/docker.sock, a prometheus server): the project starts its own.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
    fi
    local status=0
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    } || status=$?
    if [ "$created" = 1 ]; then rm -f "$policy"; fi
    [ "$status" = 0 ] || die "apt-get install $* failed (exit $status)"
}

stage "system packages"
_missing=()
command -v dockerd >/dev/null 2>&1 || _missing+=(docker.io)
_deb_installed busybox-static || _missing+=(busybox-static)
command -v promtool >/dev/null 2>&1 || _missing+=(prometheus)
# tests/test_packaging.py checks packaging/systemd/actorpool.service with systemd-analyze.
command -v systemd-analyze >/dev/null 2>&1 || _missing+=(systemd)
# The second real engine of the suite: podman's Docker-compatible API (tests/engines/).
command -v podman >/dev/null 2>&1 || _missing+=(podman runc)
# The ssh:// endpoint tests run a private sshd (and its ssh client) on 127.0.0.1.
[ -x /usr/sbin/sshd ] || _missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || _missing+=(openssh-client)
if ! PYTHON_BIN="$(_find_python)"; then
    _missing+=(python3 python3-venv)
elif [ ! -x .venv/bin/python ] && ! "$PYTHON_BIN" -c 'import ensurepip, venv' 2>/dev/null; then
    _missing+=(python3-venv)
fi
if [ "${#_missing[@]}" -gt 0 ]; then
    echo "installing: ${_missing[*]}"
    _apt_install "${_missing[@]}"
    PYTHON_BIN="$(_find_python)" || die "no Python >= 3.11 even after installing python3"
else
    echo "dockerd, podman, busybox-static, promtool, systemd-analyze, sshd and Python >= 3.11 are installed"
fi

stage "python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $PYTHON_BIN"
    "$PYTHON_BIN" -m venv .venv
fi
_stamp=.venv/.actorpool-installed
_want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ] || \
    ! .venv/bin/python -I -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("actorpool"))'; then
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$_want" >"$_stamp"
fi
echo "$(.venv/bin/python --version) in $ROOT/.venv, actorpool installed in editable mode"

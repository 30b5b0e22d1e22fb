#!/usr/bin/env bash
# The main job on a fresh Debian machine (as root): installs what is missing,
# then runs `actorpool monitor`, which follows and prints container logs through
# the pool. When no daemon is reachable (and no -H, --config or --sandbox is
# given) it passes --sandbox: a private sandbox daemon with demo containers,
# removed on exit. `actorpool monitor` itself never starts a daemon unasked.
# Extra arguments go to `actorpool monitor`.

# shellcheck source=scripts/_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

explicit=no
for arg in "$@"; do
    case "$arg" in
        -H | --host | --host=* | -H?* | --config | --config=* | --sandbox) explicit=yes ;;
    esac
done
if [ "$explicit" = no ]; then
    status=0
    .venv/bin/actorpool ps --quiet >/dev/null 2>&1 || status=$?
    if [ "$status" = 3 ]; then  # 3: cannot reach Docker
        stage "no Docker daemon reachable: running the monitor on a private sandbox (--sandbox)"
        set -- --sandbox "$@"
    fi
fi

stage "actorpool monitor $*"
exec .venv/bin/actorpool monitor "$@"

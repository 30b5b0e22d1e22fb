#!/usr/bin/env bash
# The main job on a fresh Debian machine (as root): installs what is missing,
# then runs `actorpool monitor`, which follows and prints container logs through
# the pool (starting a private sandbox daemon with demo containers when no
# daemon is reachable). Extra arguments go to `actorpool monitor`.

# shellcheck source=scripts/_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

stage "actorpool monitor $*"
exec .venv/bin/actorpool monitor "$@"

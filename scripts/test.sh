#!/usr/bin/env bash
# The whole suite on a fresh Debian machine (as root): installs what is missing,
# then lint, format check, strict types and the tests against private real
# dockerd daemons. Extra arguments go to pytest (e.g. tests/test_sandbox.py -x).
# `--quick` (first) leaves out the tests marked slow (the minute-long soak and
# the load runs): a few minutes instead of the full suite that CI runs.
# The tests run in ACTORPOOL_TEST_WORKERS parallel workers (pytest-xdist; default
# 2, each with its own private daemons): most of a test's time is spent waiting
# on daemons and deadlines, so two workers take the suite from ~10 to ~6 minutes
# on a 2-core machine. ACTORPOOL_TEST_WORKERS=0 runs everything in one process.
# Exits non-zero if any stage fails; every stage runs either way.

# shellcheck source=scripts/_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
set +e

quick=()
if [ "${1:-}" = "--quick" ]; then
    shift
    quick=(-m "not slow")
fi

failed=()
run() {
    local name="$1"
    shift
    stage "$name"
    "$@" || failed+=("$name")
}

run "ruff check" .venv/bin/ruff check .
run "ruff format --check" .venv/bin/ruff format --check .
run "mypy (strict, actorpool/)" .venv/bin/mypy
workers="${ACTORPOOL_TEST_WORKERS:-2}"
run "pytest${quick[*]:+ (quick: not slow)}, $workers workers" \
    .venv/bin/pytest -n "$workers" "${quick[@]}" "$@"

if [ "${#failed[@]}" -gt 0 ]; then
    stage "FAILED: ${failed[*]}"
    exit 1
fi
stage "all stages passed"

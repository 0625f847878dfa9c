#!/usr/bin/env bash
# `make test`: the suite as two pytest processes at once — the layers without servers
# (tests/unit, tests/inprocess: CPU, mostly the memory churn) beside the layers with
# them (tests/processes, tests/kernel: mostly waiting on servers and mounts). They share
# no server, no mount and no data directory. Each run's status counts, "no tests ran"
# (status 5) too; the quick layers' output follows the other's. Paths given in the
# arguments: one pytest over just those.
set -u
pytest=$1
shift
for arg in "$@"; do
    case "$arg" in tests/*) exec "$pytest" "$@" ;; esac
done
log=$(mktemp)
"$pytest" tests/unit tests/inprocess "$@" > "$log" 2>&1 &
quick=$!
"$pytest" tests/processes tests/kernel "$@"
slow=$?
wait "$quick"
fast=$?
echo "======== tests/unit and tests/inprocess (run alongside; status $fast) ========"
cat "$log"
rm -f "$log"
[ "$slow" -eq 0 ] && [ "$fast" -eq 0 ]

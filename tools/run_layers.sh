#!/usr/bin/env bash
# `make test`: the suite as two pytest runs at once — tests/unit, tests/inprocess
# and tests/processes (the memory churn's CPU; the command line against its servers)
# beside tests/kernel (mostly waiting on mounts and servers), which pytest-xdist runs
# in two worker processes, a test file at a time each (`--dist loadfile`: a module's
# fixtures, as the NFS tests' one rpcbind on port 111, stay in one process). Each
# process starts the servers it needs on free ports; they share no mount, no data
# directory and no user. Each run's status counts, "no tests ran" (status 5) too; the
# first run's output follows the kernel layer's. Paths given in the arguments: one
# pytest over just those.
set -u
pytest=$1
shift
for arg in "$@"; do
    case "$arg" in tests/*) exec "$pytest" "$@" ;; esac
done
log=$(mktemp)
"$pytest" tests/unit tests/inprocess tests/processes "$@" > "$log" 2>&1 &
quick=$!
"$pytest" tests/kernel -n 2 --dist loadfile "$@"
slow=$?
wait "$quick"
fast=$?
echo "======== tests/unit, tests/inprocess, tests/processes (run alongside; status $fast) ========"
cat "$log"
rm -f "$log"
[ "$slow" -eq 0 ] && [ "$fast" -eq 0 ]

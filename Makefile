# markfs set-up and entry points. Every target is idempotent and quick when
# everything is already in place; a fresh Debian machine (as root) needs nothing else.
VENV    := .venv
PY      := $(VENV)/bin/python
MARKFS  := $(VENV)/bin/markfs
STAMP   := $(VENV)/.installed
DEMO_DATA ?= $(CURDIR)/.demo-data
DEMO_MNT  ?= $(CURDIR)/mnt
PYTEST_ARGS ?=

.PHONY: setup setup-test system system-test bytecode test test-quick test-long lint demo demo-stop bench bench-remote bench-render bench-cache bench-small bench-floor bench-multihost bench-cpu clean

# markfs and the demo: FUSE and the OpenSSH client; the tests: also the servers they start
setup: system $(STAMP) bytecode
setup-test: system-test $(STAMP) bytecode

system:
	@bash tools/setup-system.sh

system-test:
	@bash tools/setup-system.sh test

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

lint: setup-test
	$(VENV)/bin/ruff check markfs tests tools
	$(VENV)/bin/mypy markfs

# markfs's bytecode, written even where PYTHONDONTWRITEBYTECODE is set: every markfs
# process (the tests start hundreds of mounts and commands) would compile ~80
# modules from source again (0.2 s each time)
bytecode: $(STAMP)
	@$(PY) -m compileall -q markfs

# the four layers as two pytest runs at once: the kernel layer beside the other three
# (tools/run_layers.sh)
test: setup-test lint
	@bash tools/run_layers.sh $(VENV)/bin/pytest $(PYTEST_ARGS)

# the unit and in-process layers: no root, no server, under a minute (the memory churn
# with 10,000 files; `make test` runs 20,000)
test-quick: $(STAMP)
	MARKFS_CHURN_FILES=10000 $(VENV)/bin/pytest tests/unit tests/inprocess $(PYTEST_ARGS)

# the long versions of the randomized tests: fsx 8,000 operations (2,500), on S3 and SFTP
# 3,000 (300); the crash matrix 20 seeds (1); the memory churn 100,000 files (20,000)
test-long: setup-test lint
	MARKFS_TEST_LONG=1 $(VENV)/bin/pytest $(PYTEST_ARGS)

demo: setup
	@$(MARKFS) --data-dir $(DEMO_DATA) demo $(DEMO_MNT)

bench: setup-test
	@bash tools/bench/setup.sh
	$(PY) tools/bench/remote_bench.py $(BENCH_ARGS)
	$(PY) tools/bench/meta_bench.py --nodes 1000000
	$(PY) tools/bench/render_bench.py

bench-remote: setup-test
	@bash tools/bench/setup.sh
	$(PY) tools/bench/remote_bench.py $(BENCH_ARGS)

bench-render: setup
	$(PY) tools/bench/render_bench.py $(BENCH_ARGS)

bench-cache: setup
	$(PY) tools/bench/cache_bench.py $(BENCH_ARGS)

# small files and metadata against the plain folder, rclone, s3fs and sshfs (issue 25):
# medians of 3 interleaved runs, tables printed, one PNG per table in docs/img
bench-small: setup-test
	@bash tools/bench/setup.sh
	@$(PY) -m pip install -q -e '.[bench]'
	$(PY) tools/bench/small_bench.py --plot-dir docs/img --json docs/img/small.json $(BENCH_ARGS)

# the floor: the same local workloads through libfuse's C passthrough (built from the
# example libfuse3-dev ships) and a bare pyfuse3 passthrough, beside markfs
# one namespace on several hosts (issue 27): SQLite vs PostgreSQL, one daemon and two;
# the close-on-A to visible-on-B latency
bench-multihost: setup-test
	@$(PY) -m pip install -q -e '.[bench]'
	$(PY) tools/bench/multihost_bench.py --json docs/img/multihost.json --plot-dir docs/img $(BENCH_ARGS)

bench-cpu: setup-test
	$(PY) tools/bench/cpu_budget.py $(BENCH_ARGS)

bench-floor: setup-test
	$(PY) tools/bench/floor_bench.py --json docs/img/floor.json $(BENCH_ARGS)

demo-stop:
	@$(MARKFS) --data-dir $(DEMO_DATA) umount $(DEMO_MNT)

clean:
	rm -rf $(VENV) .demo-data .pytest_cache .mypy_cache .ruff_cache

# airflow-mlc: `make demo` runs the demo, `make test` runs every check. Both create .venv first.
SHELL := /bin/bash
PYTHON_VERSION ?= 3.11
VENV := .venv
BIN := $(VENV)/bin
UV ?= $(shell command -v uv 2>/dev/null || echo $(BIN)/uv)
DEMO_HOME ?= $(CURDIR)/.mlc/airflow
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast check-plain-install browser-deps lint typecheck lock clean bench bench-drift bench-predict bench-decisions bench-ui \
	bench-drift-speed bench-parse bench-startup bench-threads bench-suite bench-faults

$(STAMP): pyproject.toml constraints.txt
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	uv venv --quiet --allow-existing --python $(PYTHON_VERSION) $(VENV)
	uv pip install --quiet --compile-bytecode --python $(BIN)/python -r constraints.txt
	uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	AIRFLOW_HOME=$(DEMO_HOME) $(BIN)/python scripts/demo.py

# The Airflow UI on the demo's home, on 127.0.0.1 only, with the demo's DAGs and runs (Ctrl-C stops it).
.PHONY: ui
UI_PORT ?= 8080
ui: $(STAMP)
	AIRFLOW_HOME=$(DEMO_HOME) $(BIN)/python scripts/ui.py --port $(UI_PORT)

lint: $(STAMP)
	$(BIN)/ruff check airflow_mlc dags tests scripts benchmarks docker
	$(BIN)/ruff format --check airflow_mlc dags tests scripts benchmarks docker

typecheck: $(STAMP)
	$(BIN)/mypy airflow_mlc

# The browser tier's headless Chromium and its driver, from Debian's packages (root), when either is missing.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver (the browser tier)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

# Every tier, the integration and browser tiers included (they need PostgreSQL on 127.0.0.1:5432 and Redis on
# 127.0.0.1:6379; the browser tier Chromium and chromedriver, installed by browser-deps), on pytest-xdist
# workers: one per deployment (the LocalExecutor and CeleryExecutor integration ones, the browser one) and two
# for the other tiers (docs/integration-tests.md#how-the-suite-runs-in-parallel). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 5
FAST_WORKERS ?= 2
test: lint typecheck browser-deps check-plain-install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The package installed without constraints.txt, as a user installs it, in a throwaway virtualenv: the newest
# releases pyproject.toml's ranges allow must import, build the DAGs and pass two unit modules (about a minute;
# needs PyPI). See docs/deployment.md#supported-versions.
check-plain-install: $(STAMP)
	UV=$(UV) PYTHON_VERSION=$(PYTHON_VERSION) scripts/check_plain_install.sh

# Every tier but the integration and browser ones: no services needed.
test-fast: lint typecheck
	$(BIN)/python -m pytest -n $(FAST_WORKERS) --dist loadgroup -m "not integration and not browser"

# Size and time of the drift and quality reports on 10k and 100k-row windows.
bench-drift: $(STAMP)
	$(BIN)/python benchmarks/drift_report_size.py

# Chunked batch inference against a bare predict on the whole frame: rows/s and peak memory.
bench-predict: $(STAMP)
	$(BIN)/python benchmarks/predict_throughput.py

# How often the decisions are right on known-answer datasets: false alarms, detected shifts, wrong and right
# promotions, against their goals (several minutes; BENCH_WINDOWS=6 for a quick run).
BENCH_WINDOWS ?= 30
bench-decisions: $(STAMP)
	$(BIN)/python benchmarks/decision_quality.py --windows $(BENCH_WINDOWS)

# How fast the Models page answers for 200 versions and 1,000 monitoring runs (builds the history: a few minutes).
bench-ui: $(STAMP)
	$(BIN)/python benchmarks/models_page.py

# Drift (the product's statistics against plain SciPy) and quality on 1M rows x 12 columns: time and peak memory.
bench-drift-speed: $(STAMP)
	$(BIN)/python benchmarks/drift_speed.py

# 100 specs parsed and serialised as the DAG processor does, against hand-written DAGs of the same shapes.
bench-parse: $(STAMP)
	$(BIN)/python benchmarks/parse_specs.py

# The bike training DAG under a real scheduler (LocalExecutor) against a hand-written script; start-up per phase.
bench-startup: $(STAMP)
	$(BIN)/python benchmarks/task_startup.py

# Concurrent training fits on a worker's cores, without and with the tasks' native thread limit.
bench-threads: $(STAMP)
	$(BIN)/python benchmarks/native_threads.py

# The whole suite as make test runs it, against the 12-minute goal (PostgreSQL and Redis needed).
bench-suite: $(STAMP)
	$(BIN)/python benchmarks/suite_time.py

# The fault-injection module on its own deployment, in one process, so its table of faults tried, recovered and
# lost is printed (under make test's workers it is only written to the deployment's faults.txt). About 4 minutes.
bench-faults: $(STAMP)
	$(BIN)/python -m pytest -p no:xdist -q -m integration tests/integration/test_faults.py

# Every benchmark.
bench: bench-drift bench-predict bench-decisions bench-ui bench-drift-speed bench-parse bench-startup bench-threads bench-suite bench-faults

# Re-pin every dependency (CI installs exactly constraints.txt).
lock:
	uv pip compile pyproject.toml --extra dev --python $(PYTHON_VERSION) -c <(echo "apache-airflow>=3.3") --upgrade -o constraints.txt

clean:
	rm -rf $(VENV) .mlc

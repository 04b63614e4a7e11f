#!/usr/bin/env bash
# The package installed as a user installs it: `uv pip install <repo>` in a throwaway virtualenv, WITHOUT
# constraints.txt, so the resolver picks the newest releases that pyproject.toml's ranges allow. Fails loudly when
# that set does not work: the declared ranges (apache-airflow above all) must only admit what the suite passes on.
#
# It checks, in that environment: the resolved Airflow is of the minor release constraints.txt pins; Airflow's task SDK, the DAG
# factory and every module the phases load import; Airflow's execution API app (what dag.test() and the API
# server's task API build, and what failed on import with Airflow 3.2.2 and pydantic 2.14) builds; the shipped
# spec becomes its DAGs; and two unit modules that need no database pass.
#
# Usage: scripts/check_plain_install.sh   (PYTHON_VERSION, default 3.11; UV, default `uv` on the PATH)
# Needs PyPI; with uv's cache warm it takes about half a minute.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
UV="${UV:-uv}"
#: The unit modules run against the plain install: the spec, and the evaluation (pandas, scikit-learn, SciPy).
UNIT_TESTS=(tests/unit/test_spec.py tests/unit/test_core_evaluate.py)

fail() {
    echo "check_plain_install: FAILED: $*" >&2
    echo "A plain install of airflow-mlc (without constraints.txt) does not work: narrow the ranges in" >&2
    echo "pyproject.toml's dependencies to what the suite passes on." >&2
    exit 1
}

started=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mlc-plain-install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
VENV="$WORK/venv"
export AIRFLOW_HOME="$WORK/airflow"  # nothing of the developer's Airflow is read or written
unset AIRFLOW__CORE__DAGS_FOLDER MLC_SPECS_DIR MLC_ARTIFACT_ROOT PYTHONPATH

"$UV" venv --quiet --python "$PYTHON_VERSION" "$VENV" || fail "uv venv"
"$UV" pip install --quiet --python "$VENV/bin/python" "$ROOT" pytest || fail "the dependencies do not resolve or install"
resolved="$("$UV" pip list --python "$VENV/bin/python" 2>/dev/null \
    | grep -E '^(apache-airflow|apache-airflow-core|apache-airflow-task-sdk|pydantic|mlflow|evidently|scikit-learn|pandas) ' \
    | tr -s ' ' | tr '\n' ';' | sed 's/;$//')"
echo "check_plain_install: resolved $resolved"

# From the throwaway folder, in isolated mode: the installed package is imported, not the source tree.
(cd "$WORK" && "$VENV/bin/python" -I - "$ROOT" <<'PY') || fail "the imports or the execution API (see above)"
import importlib
import logging
import sys
from pathlib import Path

logging.disable(logging.WARNING)
root = Path(sys.argv[1])

import airflow
import airflow.sdk
import airflow_mlc.dag_factory
import airflow_mlc.operators.train

pinned = next(
    line.split("==")[1].strip()
    for line in (root / "constraints.txt").read_text().splitlines()
    if line.startswith("apache-airflow==")
)
tested = ".".join(pinned.split(".")[:2])
assert airflow.__version__.startswith(f"{tested}."), (
    f"resolved Airflow {airflow.__version__}, but the suite runs on {pinned} (constraints.txt)"
)
assert root not in Path(airflow_mlc.dag_factory.__file__).parents, "imported the source tree, not the install"

from airflow_mlc.core.preload import PRELOAD_MODULES
from airflow_mlc.core.skops_import import import_skops

for name in PRELOAD_MODULES:  # strictly: preload() itself only logs a module that fails
    importlib.import_module(name)
import_skops()

from airflow.api_fastapi.execution_api.app import create_task_execution_api_app

create_task_execution_api_app()

from airflow_mlc.dag_factory import build_dags

dags = build_dags(root / "dags" / "specs")
assert not [d for d in dags if d.startswith("mlc_invalid_spec_")], sorted(dags)
print(f"check_plain_install: Airflow {airflow.__version__}: imports, execution API and {len(dags)} DAGs ok")
PY

(cd "$ROOT" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${UNIT_TESTS[@]}") \
    || fail "unit tests ${UNIT_TESTS[*]}"

echo "check_plain_install: ok in $((SECONDS - started)) s"

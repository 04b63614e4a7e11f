"""airflow-mlc template DAGs: one set per model spec in ``specs/`` (or the folder named by MLC_SPECS_DIR).

An invalid spec file does not hide the others: it shows up as the DAG ``mlc_invalid_spec_<file stem>``,
whose description and docs say what is wrong. A task process, which parses this file for one DAG, builds
only the DAGs of that DAG's spec.
"""

from __future__ import annotations

from pathlib import Path

from airflow_mlc.dag_factory import build_dags, specs_dir

globals().update(build_dags(specs_dir(Path(__file__).parent / "specs")))

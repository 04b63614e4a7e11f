"""``airflow-mlc``: commands for what happens outside a DAG run.

``airflow-mlc history --spec SPEC [--format json|csv] [--output FILE] [--tracking-uri URI]`` exports the
spec's model's decision history (:mod:`airflow_mlc.core.audit`): every promotion decision, champion move
and retraining request, with who, why and when. Without ``--tracking-uri``, MLflow is found as the tasks
find it: the spec's MLflow connection (``mlflow_default`` by default), else the embedded store under
``$AIRFLOW_HOME``. Run it where the Airflow configuration applies (a scheduler or worker shell).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _client(spec_conn_id: str, tracking_uri: str | None, registry_uri: str | None) -> object:
    from airflow_mlc.core.tracking import MlflowTarget

    if tracking_uri:
        return MlflowTarget(tracking_uri=tracking_uri, registry_uri=registry_uri).activate()
    from airflow_mlc.hooks.mlflow import MLflowHook

    return MLflowHook(spec_conn_id).get_conn().activate()


def history(arguments: argparse.Namespace) -> int:
    from airflow_mlc.core.audit import decision_history, write_history
    from airflow_mlc.core.storage import write_text
    from airflow_mlc.spec import load_spec

    spec = load_spec(arguments.spec)
    client = _client(spec.mlflow.conn_id, arguments.tracking_uri, arguments.registry_uri)
    text = write_history(decision_history(client, spec), arguments.format)
    if arguments.output in (None, "-"):
        sys.stdout.write(text)
    else:
        write_text(text, arguments.output)
        print(f"wrote the decision history of {spec.registered_model_name} to {arguments.output}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from airflow_mlc.core.audit import FORMATS
    from airflow_mlc.errors import MLCError

    parser = argparse.ArgumentParser(prog="airflow-mlc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("history", help="export a model's decision history as JSON or CSV")
    export.add_argument("--spec", type=Path, required=True, help="the model's spec file")
    export.add_argument("--format", choices=FORMATS, default="json")
    export.add_argument("--output", help="a file path or s3:// URI; default: standard output")
    export.add_argument("--tracking-uri", help="MLflow's tracking URI, instead of the spec's MLflow connection")
    export.add_argument("--registry-uri", help="MLflow's registry URI, when it is not the tracking URI")
    export.set_defaults(run=history)
    arguments = parser.parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except MLCError as error:
        print(f"airflow-mlc: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

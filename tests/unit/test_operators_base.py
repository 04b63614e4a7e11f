"""What every operator shares: bad input fails without retries, outputs per run, upstream results."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.operators.base import MLCBaseOperator, result_of, uri_of
from tests.conftest import BIKES_SPEC

pytestmark = pytest.mark.unit


class Failing(MLCBaseOperator):
    def __init__(self, *, error: Exception, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def execute_phase(self, context: Any) -> Any:
        raise self.error


@pytest.mark.parametrize("error", [BadInputError("column 'hr': no times"), DataError("file 'x' is empty")])
def test_bad_input_fails_the_task_without_retries_with_its_message(error: Exception) -> None:
    task = Failing(task_id="t", spec=BIKES_SPEC, error=error)
    with pytest.raises(AirflowFailException, match=str(error)):
        task.execute({})


def test_other_errors_pass_through_so_retries_apply() -> None:
    task = Failing(task_id="t", spec=BIKES_SPEC, error=ConnectionError("server gone"))
    with pytest.raises(ConnectionError, match="server gone"):
        task.execute({})


def test_outputs_are_kept_per_model_dag_run_and_task(tmp_path) -> None:
    from airflow.sdk import DAG

    with DAG("mlc_bikes_train", schedule=None):
        task = Failing(task_id="ingest", spec=BIKES_SPEC, error=ValueError(), artifact_root=str(tmp_path))
    uri = task.output_uri({"run_id": "manual__1"}, "snapshot.parquet")  # type: ignore[typeddict-item]
    assert uri == str(tmp_path / "bikes" / "mlc_bikes_train" / "manual__1" / "ingest" / "snapshot.parquet")


def test_upstream_results_and_uris() -> None:
    assert uri_of("s3://b/k") == "s3://b/k" and uri_of({"uri": "/x", "rows": 2}) == "/x"
    assert uri_of({"train_uri": "/t"}, "train_uri") == "/t"
    assert result_of({"rows": 2}, "split") == {"rows": 2}
    with pytest.raises(BadInputError, match="split must be an upstream task's result"):
        result_of("not a result", "split")  # type: ignore[arg-type]

"""Batch inference through ``dag.test()``: chunked predictions, one partition per interval, a SQL table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlc.testing import run_dag, task_result, task_states
from tests.e2e.test_training_dag import WINTER, bikes_data, make_spec, registry

pytestmark = pytest.mark.e2e


def test_predictions_match_the_model_and_reruns_replace_their_interval(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bikes
) -> None:
    import mlflow
    import pandas as pd
    import sqlalchemy

    database = tmp_path / "predictions.db"
    monkeypatch.setenv("AIRFLOW_CONN_MLC_PREDICTIONS", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    data = bikes_data("bikes_predict")
    data["prediction"] = {
        "window_days": 7,
        "chunk_rows": 100,
        "keep_columns": ["timestamp"],
        "table": "predictions",
        "conn_id": "mlc_predictions",
    }
    spec = make_spec(tmp_path, data)
    assert str(run_dag(f"mlc_{spec.name}_train", conf=WINTER).state) == "success"

    first = run_dag(f"mlc_{spec.name}_predict", conf={"window_end": "2011-04-08"})
    assert task_states(first) == {"wait_for_data": "success", "wait_for_champion": "success", "predict": "success"}
    result = task_result(first, "predict")
    assert result["model_version"] == "1"
    assert result["window"] == {"start": "2011-04-01T00:00:00+00:00", "end": "2011-04-08T00:00:00+00:00"}
    written = pd.read_parquet(result["uri"])
    bikes["timestamp"] = pd.to_datetime(bikes["timestamp"])
    week = bikes[(bikes.timestamp >= "2011-04-01") & (bikes.timestamp < "2011-04-08")].reset_index(drop=True)
    assert result["rows"] == len(written) == len(week) > 100  # several chunks
    pyfunc = mlflow.pyfunc.load_model(f"models:/{spec.name}/1")
    expected = pyfunc.predict(week[spec.features.columns])
    assert written["prediction"].to_numpy() == pytest.approx(list(expected))
    assert set(written["model_version"]) == {"1"} and set(written["run_id"]) == {first.run_id}
    assert set(written["role"]) == {"champion"}  # every served row says which version and role produced it

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")

    def table_rows() -> dict[str, int]:
        counts = pd.read_sql("select window_end, count(*) as n from predictions group by window_end", engine)
        return dict(zip(counts.window_end, counts.n, strict=True))

    assert table_rows() == {"2011-04-08T00:00:00+00:00": len(week)}

    second = run_dag(f"mlc_{spec.name}_predict", conf={"window_end": "2011-04-15"})
    other_uri = task_result(second, "predict")["uri"]
    assert other_uri != result["uri"]
    other_before = Path(other_uri).read_bytes()

    again = run_dag(f"mlc_{spec.name}_predict", conf={"window_end": "2011-04-08"})
    assert task_result(again, "predict")["uri"] == result["uri"]
    rerun = pd.read_parquet(result["uri"])
    assert len(rerun) == len(week) and set(rerun["run_id"]) == {again.run_id}
    assert Path(other_uri).read_bytes() == other_before
    assert table_rows() == {
        "2011-04-08T00:00:00+00:00": len(week),
        "2011-04-15T00:00:00+00:00": len(pd.read_parquet(other_uri)),
    }

    every_interval = pd.read_parquet(Path(result["uri"]).parent.parent)
    assert len(every_interval) == len(week) + len(pd.read_parquet(other_uri))

    pinned = run_dag(f"mlc_{spec.name}_predict", conf={"window_end": "2011-04-08", "model_version": "1"})
    assert set(pd.read_parquet(task_result(pinned, "predict")["uri"])["role"]) == {"pinned"}
    assert set(pd.read_sql("select role from predictions", engine)["role"]) == {"champion", "pinned"}

    client = registry()
    experiment = client.get_experiment_by_name(f"{spec.experiment_name}/predictions")
    runs = client.search_runs([experiment.experiment_id])
    assert {run.data.metrics["rows"] for run in runs} == {len(week), len(pd.read_parquet(other_uri))}
    assert {run.info.run_name for run in runs} == {
        "predict 2011-04-01 .. 2011-04-08",
        "predict 2011-04-08 .. 2011-04-15",
    }


def test_shadow_mode_scores_the_challenger_beside_the_champion_and_never_serves_it(
    airflow_db: Path, tmp_path: Path, bikes
) -> None:
    import pandas as pd

    data = bikes_data("bikes_shadow")
    data["prediction"] = {"window_days": 7, "chunk_rows": 100, "rollout": {"mode": "shadow"}}
    spec = make_spec(tmp_path, data)
    assert str(run_dag(f"mlc_{spec.name}_train", conf=WINTER).state) == "success"

    alone = task_result(run_dag(f"mlc_{spec.name}_predict", conf={"window_end": "2011-04-08"}), "predict")
    assert alone["shadow"] is None  # no challenger yet: nothing to shadow

    worse = bikes_data("bikes_shadow", model={"estimator": "sklearn.dummy.DummyRegressor"})
    make_spec(tmp_path, {**worse, "prediction": data["prediction"]})
    assert str(run_dag(f"mlc_{spec.name}_train", conf=WINTER).state) == "success"
    assert str(registry().get_model_version_by_alias(spec.name, "challenger").version) == "2"

    run = run_dag(f"mlc_{spec.name}_predict", conf={"window_end": "2011-04-08"})
    result = task_result(run, "predict")
    served, shadow = pd.read_parquet(result["uri"]), pd.read_parquet(result["shadow"]["uri"])
    assert set(served["model_version"]) == {"1"} and set(served["role"]) == {"champion"}
    assert set(shadow["model_version"]) == {"2"} and set(shadow["role"]) == {"shadow"}
    assert len(shadow) == len(served) == result["shadow"]["rows"] > 100  # every chunk, every row
    assert (shadow["timestamp"] == served["timestamp"]).all()
    difference = shadow["prediction"] - served["prediction"]
    assert result["shadow"]["mean_abs_difference"] == pytest.approx(difference.abs().mean())
    assert result["shadow"]["difference_mean"] == pytest.approx(difference.mean())
    # the served predictions, read as a dataset, hold no shadow row
    assert len(pd.read_parquet(Path(result["uri"]).parent.parent)) == len(served)
    client = registry()
    experiment = client.get_experiment_by_name(f"{spec.experiment_name}/predictions")
    (logged,) = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags["mlc.run_id"] == run.run_id]
    assert logged.data.metrics["shadow_mean_abs_difference"] == pytest.approx(difference.abs().mean())

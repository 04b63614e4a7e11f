"""The life cycle on data unlike the demo's, through the real DAGs: string labels, many classes, odd column names.

Each test reproduces a failure users met: the quality task crashing on 'Yes'/'No' labels (so drift
never requested a retraining), a multi-class model scored on a window that misses a class, and a
drift column whose name MLflow refuses as a metric key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlc.testing import run_dag, task_result, task_states
from tests.e2e.test_training_dag import champion_version, make_spec, registry

pytestmark = pytest.mark.e2e

WIND = "wind speed (m/s)"
TEMP = "temp °C"


def weather(days: int, seed: int, start: str = "2020-01-01", temp_shift: float = 0.0) -> pd.DataFrame:
    """Hourly weather rows with a time column, a column name MLflow refuses as is, and a categorical."""
    generator = np.random.default_rng(seed)
    rows = days * 24
    frame = pd.DataFrame(
        {
            "time": pd.date_range(start, periods=rows, freq="h").strftime("%d/%m/%Y %H:%M"),  # day-first
            WIND: generator.gamma(2.0, 2.5, rows),
            TEMP: generator.normal(12 + temp_shift, 6, rows),
            "humidity": generator.uniform(0.2, 1.0, rows),
            "region": generator.choice(["north", "south", "coast"], rows),
        }
    )
    wet = 2.5 * frame["humidity"] - 0.08 * frame[TEMP] + 0.1 * frame[WIND] + generator.normal(0, 0.4, rows)
    frame["rain"] = np.where(wet > 1.6, "Yes", "No")
    frame["sky"] = pd.cut(wet, [-np.inf, 0.6, 1.2, 1.9, np.inf], labels=["clear", "cloudy", "showers", "storm"])
    return frame


def weather_spec(tmp_path: Path, name: str, source: Path, target: str, metric: str) -> object:
    return make_spec(
        tmp_path,
        {
            "name": name,
            "task": "classification",
            "source": {"path": str(source), "time_column": "time", "time_format": "%d/%m/%Y %H:%M"},
            "target": target,
            "features": {"numeric": [WIND, TEMP, "humidity"], "categorical": ["region"]},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
            "gates": {"metric": metric},
            "monitoring": {"window_days": 14, "drift": {"columns": [WIND, TEMP, "humidity"]}},
        },
    )


def test_string_labels_drift_requests_retraining_and_quality_is_scored(airflow_db: Path, tmp_path: Path) -> None:
    from airflow_mlc.core import tracking

    calm = weather(60, seed=1)
    hot = weather(20, seed=2, start="2020-03-01", temp_shift=15.0)
    source = tmp_path / "weather.csv"
    pd.concat([calm, hot]).to_csv(source, index=False)
    weather_spec(tmp_path, "rain", source, "rain", "f1")

    trained = run_dag("mlc_rain_train", conf={"window_start": "2020-01-01", "window_end": "2020-03-01"})
    assert str(trained.state) == "success", task_states(trained)
    client = registry()
    assert champion_version(client, "rain") == "1"
    version = client.get_model_version("rain", "1")
    assert version.tags[tracking.TAG_POSITIVE_CLASS] == "Yes"  # the minority class
    assert version.tags[tracking.TAG_CLASSES] == '["No", "Yes"]'

    monitored = run_dag("mlc_rain_monitor", conf={"window_end": "2020-03-15"})
    states = task_states(monitored)
    assert states["quality"] == "success" and states["request_retraining"] == "success", states
    drift = task_result(monitored, "drift")
    assert TEMP in drift["drifted_columns"]
    run = client.get_run(drift["monitoring_run_id"])
    assert tracking.metric_key(f"drift_score.{TEMP}") in run.data.metrics
    assert tracking.metric_key(f"drift_score.{WIND}") in run.data.metrics
    quality = task_result(monitored, "quality")
    assert quality["labelled_rows"] == 14 * 24 and "f1" in quality["live_metrics"]


def test_a_multiclass_model_is_scored_on_a_window_missing_classes(airflow_db: Path, tmp_path: Path) -> None:
    frame = weather(60, seed=3)
    window = frame.iloc[-14 * 24 :]
    frame.loc[window.index, "sky"] = np.where(window["sky"].isin(["storm", "showers"]), "cloudy", window["sky"])
    source = tmp_path / "sky.csv"
    frame.to_csv(source, index=False)
    spec = weather_spec(tmp_path, "sky", source, "sky", "f1_macro")

    trained = run_dag("mlc_sky_train", conf={"window_start": "2020-01-01", "window_end": "2020-02-15"})
    assert str(trained.state) == "success", task_states(trained)
    assert champion_version(registry(), spec.name) == "1"

    monitored = run_dag("mlc_sky_monitor", conf={"window_end": "2020-03-01"})
    assert task_states(monitored)["quality"] == "success", task_states(monitored)
    quality = task_result(monitored, "quality")
    assert quality["labelled_rows"] == 14 * 24
    assert 0 <= quality["live_metrics"]["f1_macro"] <= 1 and "accuracy" in quality["live_metrics"]

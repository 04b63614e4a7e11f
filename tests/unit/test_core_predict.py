"""Chunked batch inference on the real bike data: sources, the Parquet output, the SQL table, the stats."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy

from airflow_mlc.core.predict import (
    PREDICTION,
    _RegressionSummary,
    predict_window,
    replace_interval,
    sql_sink,
)
from airflow_mlc.core.sources import read_chunks
from airflow_mlc.core.train import build_pipeline
from airflow_mlc.core.window import Window
from airflow_mlc.errors import DataError, EmptyWindowError
from airflow_mlc.spec import SourceSpec, load_spec
from tests.conftest import BIKES_CSV, BIKES_SPEC

pytestmark = pytest.mark.unit
UTC = timezone.utc
MARCH = Window(datetime(2011, 3, 1, tzinfo=UTC), datetime(2011, 4, 1, tzinfo=UTC))
APRIL = Window(datetime(2011, 4, 1, tzinfo=UTC), datetime(2011, 5, 1, tzinfo=UTC))
CHUNK = 250


@pytest.fixture(scope="module")
def spec():
    fast = load_spec(BIKES_SPEC)
    model = fast.model.model_copy(update={"search": None, "params": {"max_iter": 50, "random_state": 0}})
    return fast.model_copy(update={"name": "bikes_predict", "model": model})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(BIKES_CSV)


@pytest.fixture(scope="module")
def model(spec, data):
    winter = data[data["timestamp"] < "2011-03-01"]
    return build_pipeline(spec).fit(winter[spec.features.columns], winter[spec.target])


def rows_in(data: pd.DataFrame, window: Window) -> pd.DataFrame:
    times = pd.to_datetime(data["timestamp"], utc=True)
    return data[(times >= window.start) & (times < window.end)].reset_index(drop=True)


def extras(window: Window) -> dict[str, str]:
    bounds = window.as_dict()
    return {
        "model_version": "3",
        "run_id": "scheduled__x",
        "window_start": bounds["start"],
        "window_end": bounds["end"],
    }


def score(spec, model, chunks, out: Path, window: Window = MARCH, **kwargs):
    return predict_window(
        model, chunks, spec.features.columns, ["timestamp"], str(out), None, extras(window), spec.task, **kwargs
    )


@pytest.fixture(scope="module")
def sources(spec, data, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SourceSpec]:
    """The bike data as CSV, as Parquet with many row groups (real timestamps) and as a SQLite table."""
    folder = tmp_path_factory.mktemp("sources")
    parquet = folder / "bikes.parquet"
    typed = data.assign(timestamp=pd.to_datetime(data["timestamp"]))
    pq.write_table(pa.Table.from_pandas(typed, preserve_index=False), parquet, row_group_size=1000)
    url = f"sqlite:///{folder / 'bikes.db'}"
    data.to_sql("rides", sqlalchemy.create_engine(url), index=False)
    query = "select * from rides where timestamp >= :window_start and timestamp < :window_end order by timestamp"
    return {
        "csv": spec.source,
        "parquet": SourceSpec(path=str(parquet), time_column="timestamp"),
        "sqlite": SourceSpec(sql=query, url=url, time_column="timestamp"),
    }


@pytest.mark.parametrize("kind", ["csv", "parquet", "sqlite"])
def test_chunked_predictions_equal_predicting_the_window_at_once(spec, data, model, sources, kind, tmp_path) -> None:
    chunks = list(read_chunks(sources[kind], MARCH, CHUNK))
    assert all(0 < len(chunk) <= CHUNK for chunk in chunks) and len(chunks) >= 3
    expected = rows_in(data, MARCH)
    assert sum(len(chunk) for chunk in chunks) == len(expected)

    out = tmp_path / "predictions.parquet"
    stats = score(spec, model, iter(chunks), out)
    written = pd.read_parquet(out)
    np.testing.assert_allclose(written[PREDICTION], model.predict(expected[spec.features.columns]))
    assert list(pd.to_datetime(written["timestamp"])) == list(pd.to_datetime(expected["timestamp"]))
    assert stats.rows == len(expected) == len(written)


def test_the_output_has_a_row_group_per_chunk_and_the_asked_columns(spec, model, sources, tmp_path) -> None:
    out = tmp_path / "predictions.parquet"
    chunks = list(read_chunks(sources["parquet"], MARCH, CHUNK))
    score(spec, model, iter(chunks), out)
    parquet = pq.ParquetFile(out)
    assert parquet.metadata.num_row_groups == len(chunks)
    assert [parquet.metadata.row_group(i).num_rows for i in range(len(chunks))] == [len(c) for c in chunks]
    assert parquet.schema_arrow.names == [
        "timestamp",
        PREDICTION,
        "model_version",
        "run_id",
        "window_start",
        "window_end",
    ]
    written = pd.read_parquet(out)
    assert set(written["model_version"]) == {"3"} and set(written["window_end"]) == {"2011-04-01T00:00:00+00:00"}
    assert list(tmp_path.iterdir()) == [out]


def partition(root: Path, window: Window) -> Path:
    return root / f"window_end={window.end:%Y-%m-%d}" / "predictions.parquet"


def test_rescoring_an_interval_replaces_its_file_and_leaves_others_alone(spec, model, sources, tmp_path) -> None:
    march, april = partition(tmp_path, MARCH), partition(tmp_path, APRIL)
    score(spec, model, read_chunks(sources["csv"], MARCH, CHUNK), march, MARCH)
    score(spec, model, read_chunks(sources["csv"], APRIL, CHUNK), april, APRIL)
    april_bytes, rows = april.read_bytes(), len(pd.read_parquet(march))

    again = score(spec, model, read_chunks(sources["csv"], MARCH, CHUNK), march, MARCH)
    assert again.rows == rows == len(pd.read_parquet(march))
    assert april.read_bytes() == april_bytes
    assert sorted(p.name for p in march.parent.iterdir()) == ["predictions.parquet"]


def table_rows(url: str) -> pd.DataFrame:
    with sqlalchemy.create_engine(url).connect() as connection:
        frame = pd.read_sql_query(sqlalchemy.text("select * from predictions"), connection)
    return frame.sort_values(["window_end", "timestamp"]).reset_index(drop=True)


def broken_after(chunks: Iterator[pd.DataFrame], good: int) -> Iterator[pd.DataFrame]:
    """The chunks, the one after the first ``good`` of them without the feature ``hum``."""
    for number, chunk in enumerate(chunks):
        yield chunk.drop(columns=["hum"]) if number == good else chunk


def test_sql_sink_replaces_the_interval_in_one_transaction(spec, model, sources, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'out.db'}"
    for window in (MARCH, APRIL):
        bounds = window.as_dict()
        with sql_sink(url, "predictions", bounds["start"], bounds["end"]) as sink:
            score(
                spec,
                model,
                read_chunks(sources["sqlite"], window, CHUNK),
                partition(tmp_path, window),
                window,
                sink=sink,
            )
    before = table_rows(url)
    march_rows = len(rows_in(pd.read_csv(BIKES_CSV), MARCH))
    assert (before["window_end"] == MARCH.as_dict()["end"]).sum() == march_rows
    assert len(before) == march_rows + len(rows_in(pd.read_csv(BIKES_CSV), APRIL))

    bounds = MARCH.as_dict()
    with sql_sink(url, "predictions", bounds["start"], bounds["end"]) as sink:
        score(spec, model, read_chunks(sources["sqlite"], MARCH, CHUNK), partition(tmp_path, MARCH), sink=sink)
    pd.testing.assert_frame_equal(table_rows(url), before)

    march_file = partition(tmp_path, MARCH)
    file_bytes = march_file.read_bytes()
    with pytest.raises(DataError, match=r"columns missing from the data to score: \['hum'\]"):
        with sql_sink(url, "predictions", bounds["start"], bounds["end"]) as sink:
            chunks = broken_after(read_chunks(sources["sqlite"], MARCH, CHUNK), good=2)
            score(spec, model, chunks, march_file, sink=sink)
    pd.testing.assert_frame_equal(table_rows(url), before)
    assert march_file.read_bytes() == file_bytes
    assert sorted(p.name for p in march_file.parent.iterdir()) == ["predictions.parquet"]


def test_replace_interval_creates_the_table_and_keeps_other_intervals(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'out.db'}"
    one = pd.DataFrame({"prediction": [1.0, 2.0], "window_start": "a", "window_end": "b"})
    two = pd.DataFrame({"prediction": [3.0], "window_start": "b", "window_end": "c"})
    assert replace_interval(url, "predictions", [one, one], "a", "b") == 4
    replace_interval(url, "predictions", [two], "b", "c")
    replace_interval(url, "predictions", [one], "a", "b")
    assert table_rows_by_interval(url) == {("a", "b"): 2, ("b", "c"): 1}


def test_a_table_written_before_a_new_output_column_gains_it_and_keeps_its_rows(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'out.db'}"
    old = pd.DataFrame({"timestamp": [1, 2], "prediction": [1.0, 2.0], "window_start": "a", "window_end": "b"})
    replace_interval(url, "predictions", [old, old.assign(window_start="b", window_end="c")], "a", "b")
    before = table_rows(url)
    new = old.assign(**{"role": "champion", "Odd name ü": 3, "window_start": "b", "window_end": "c"})
    with pytest.raises(RuntimeError, match="boom"):  # a failure after the columns were added loses no row
        with sql_sink(url, "predictions", "b", "c") as sink:
            sink(new)
            raise RuntimeError("boom")
    pd.testing.assert_frame_equal(table_rows(url)[before.columns], before)
    assert replace_interval(url, "predictions", [new, new], "b", "c") == 4
    rows = table_rows(url)
    assert len(rows) == 6 and rows["role"].tolist() == [None, None, "champion", "champion", "champion", "champion"]
    assert rows["Odd name ü"].tolist()[2:] == [3, 3, 3, 3] and rows["Odd name ü"].isna().sum() == 2


def table_rows_by_interval(url: str) -> dict[tuple[str, str], int]:
    with sqlalchemy.create_engine(url).connect() as connection:
        rows = connection.execute(
            sqlalchemy.text("select window_start, window_end, count(*) from predictions group by 1, 2")
        )
        return {(start, end): count for start, end, count in rows}


def test_an_empty_window_is_an_error_and_writes_nothing(spec, model, sources, tmp_path) -> None:
    empty = Window(datetime(1999, 1, 1, tzinfo=UTC), datetime(1999, 2, 1, tzinfo=UTC))
    out = tmp_path / "p" / "predictions.parquet"
    with pytest.raises(EmptyWindowError, match=r"no rows to score in the data window \[1999-01-01T00:00:00\+00:00"):
        score(spec, model, read_chunks(sources["parquet"], empty, CHUNK), out, empty)
    assert not out.exists() and not any(tmp_path.rglob("*.tmp"))


def test_regression_stats_match_numpy(spec, data, model, sources, tmp_path) -> None:
    stats = score(spec, model, read_chunks(sources["csv"], MARCH, CHUNK), tmp_path / "p.parquet")
    predictions = model.predict(rows_in(data, MARCH)[spec.features.columns])
    assert stats.rows == len(predictions) and stats.rows_per_second > 0
    assert stats.mean == pytest.approx(predictions.mean())
    assert stats.std == pytest.approx(predictions.std())
    assert (stats.min, stats.max) == (predictions.min(), predictions.max())
    assert [stats.p05, stats.p50, stats.p95] == pytest.approx(np.quantile(predictions, [0.05, 0.5, 0.95]))
    metrics = stats.metrics()
    assert metrics["prediction_mean"] == stats.mean and metrics["rows"] == stats.rows
    assert "class_counts" not in stats.as_dict()


def test_the_quantile_sample_is_bounded_and_uniform_over_chunks() -> None:
    values = np.arange(200_000, dtype=float)  # sorted: a sample biased towards early chunks would show
    summary = _RegressionSummary(size=5_000, seed=1)
    for start in range(0, len(values), 7_000):
        summary.add(values[start : start + 7_000])
    fields = summary.fields()
    assert fields["sample_size"] == 5_000
    assert fields["mean"] == pytest.approx(values.mean()) and fields["std"] == pytest.approx(values.std())
    assert fields["p50"] == pytest.approx(100_000, rel=0.03)
    assert fields["p05"] == pytest.approx(10_000, rel=0.1) and fields["p95"] == pytest.approx(190_000, rel=0.02)


def test_classification_stats_count_each_class(tmp_path) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = load_breast_cancer(as_frame=True).frame
    features = [c for c in frame.columns if c != "target"]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame[features], frame["target"])
    chunks = (frame.iloc[start : start + 100] for start in range(0, len(frame), 100))
    stats = predict_window(classifier, chunks, features, [], str(tmp_path / "p.parquet"), task="classification")
    labels, counts = np.unique(classifier.predict(frame[features]), return_counts=True)
    assert stats.class_counts == {str(label): int(count) for label, count in zip(labels, counts, strict=True)}
    assert sum(stats.class_shares.values()) == pytest.approx(1.0)
    assert stats.mean is None and stats.metrics()["class_count.1"] == counts[1]
    assert list(pd.read_parquet(tmp_path / "p.parquet").columns) == [PREDICTION]


def test_a_pyfunc_model_from_mlflow_scores_as_the_pipeline(spec, data, sources, tmp_path) -> None:
    import mlflow

    from airflow_mlc.core import tracking
    from airflow_mlc.core.prepare import clean, split
    from airflow_mlc.core.train import train_and_log

    target = tracking.embedded_target(tmp_path / "mlflow-home")
    train, test = split(clean(data[data["timestamp"] < "2011-03-01"], spec), spec)
    tags = {tracking.TAG_DAG_ID: "train", tracking.TAG_RUN_ID: "r1", tracking.TAG_TASK_ID: "train"}
    logged = train_and_log(spec, train, test, target, tags, ("train-uri", "test-uri"))
    pyfunc_model = mlflow.pyfunc.load_model(logged.model_uri)
    pipeline = mlflow.sklearn.load_model(logged.model_uri)

    out = tmp_path / "predictions.parquet"
    score(spec, pyfunc_model, read_chunks(sources["csv"], MARCH, CHUNK), out)
    expected = rows_in(data, MARCH)[spec.features.columns]
    written = pd.read_parquet(out)[PREDICTION].to_numpy()
    np.testing.assert_allclose(written, np.asarray(pyfunc_model.predict(expected)))
    np.testing.assert_allclose(written, pipeline.predict(expected))


def test_remote_sources_and_outputs_go_through_fsspec(spec, data, model, sources) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.put_file(sources["parquet"].path, "/bucket/bikes.parquet")
    source = SourceSpec(path="memory://bucket/bikes.parquet", time_column="timestamp")
    out = "memory://bucket/predictions/interval=2011-04-01/predictions.parquet"
    local_temporaries = set(Path(tempfile.gettempdir()).glob("mlc-predictions-*"))
    stats = score(spec, model, read_chunks(source, MARCH, CHUNK, options={}), out)
    assert set(Path(tempfile.gettempdir()).glob("mlc-predictions-*")) == local_temporaries
    with fsspec.open(out, "rb") as handle:
        written = pd.read_parquet(handle)
    assert stats.rows == len(written) == len(rows_in(data, MARCH))
    np.testing.assert_allclose(written[PREDICTION], model.predict(rows_in(data, MARCH)[spec.features.columns]))
    assert memory.ls("/bucket/predictions/interval=2011-04-01", detail=False) == [out.removeprefix("memory:/")]


def test_a_malformed_line_deep_in_the_file_fails_the_run_and_writes_nothing(spec, data, model, tmp_path) -> None:
    march = rows_in(data, MARCH)
    path = tmp_path / "late-error.csv"
    lines = march.to_csv(index=False).splitlines()
    lines.insert(2 * CHUNK, lines[2 * CHUNK] + ",1,2,3")  # a row with extra fields, after two good chunks
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p" / "predictions.parquet"
    chunks = read_chunks(SourceSpec(path=str(path), time_column="timestamp"), MARCH, CHUNK)
    with pytest.raises(DataError, match=rf"file '{path}': not a readable CSV file: .*Expected 16 fields"):
        score(spec, model, chunks, out)
    assert not out.exists() and not any(tmp_path.rglob("*.tmp"))


def test_batch_inference_reads_epoch_milliseconds_in_chunks(spec, data, model, tmp_path) -> None:
    times = pd.to_datetime(data["timestamp"], utc=True)
    epoch = data.assign(timestamp=(times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))
    url = f"sqlite:///{tmp_path / 'epoch.db'}"
    engine = sqlalchemy.create_engine(url)
    epoch.to_sql("rides", engine, index=False)
    engine.dispose()
    query = "select * from rides where timestamp >= :window_start and timestamp < :window_end"
    source = SourceSpec(sql=query, url=url, time_column="timestamp", time_unit="ms")
    chunks = list(read_chunks(source, MARCH, CHUNK))
    expected = rows_in(data, MARCH)
    assert sum(len(chunk) for chunk in chunks) == len(expected) and len(chunks) >= 3
    scored = model.predict(pd.concat(chunks)[spec.features.columns])
    np.testing.assert_allclose(scored, model.predict(expected[spec.features.columns]))


class Threshold:
    """A classifier that says ``yes`` when ``x`` is above its threshold."""

    def __init__(self, at: float) -> None:
        self.at = at

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.where(frame["x"] > self.at, "yes", "no")


def test_a_shadow_classifier_s_agreement_is_the_share_of_equal_labels_and_a_failure_publishes_neither(
    tmp_path,
) -> None:
    from airflow_mlc.core.predict import ShadowModel

    frame = pd.DataFrame({"x": np.linspace(0, 1, 1000)})
    chunks = [frame.iloc[start : start + 300] for start in range(0, 1000, 300)]
    out, shadow_out = tmp_path / "p.parquet", tmp_path / "shadow" / "s.parquet"
    shadow = ShadowModel(Threshold(0.6), "2", str(shadow_out))

    stats = predict_window(Threshold(0.5), chunks, ["x"], [], str(out), task="classification", shadow=shadow)

    expected = float(np.mean((frame.x > 0.5) == (frame.x > 0.6)))  # they differ on 0.5 < x <= 0.6
    assert stats.shadow["agreement"] == pytest.approx(expected) and stats.shadow["rows"] == 1000
    assert stats.metrics()["shadow_agreement"] == pytest.approx(expected)
    served, shadowed = pd.read_parquet(out), pd.read_parquet(shadow_out)
    assert set(served.columns) == {"prediction"} and set(shadowed["role"]) == {"shadow"}
    assert set(shadowed["model_version"]) == {"2"} and len(shadowed) == len(served) == 1000

    def failing() -> Iterator[pd.DataFrame]:
        yield frame.iloc[:300]
        raise DataError("the source broke")

    again = ShadowModel(Threshold(0.6), "3", str(tmp_path / "shadow" / "t.parquet"))
    with pytest.raises(DataError):
        predict_window(
            Threshold(0.5), failing(), ["x"], [], str(tmp_path / "q.parquet"), task="classification", shadow=again
        )
    assert not (tmp_path / "q.parquet").exists() and not (tmp_path / "shadow" / "t.parquet").exists()
    assert sorted(p.name for p in (tmp_path / "shadow").iterdir()) == ["s.parquet"]  # no temporary file left


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer(tmp_path) -> None:
    """A prediction SIGKILLed while it writes leaves its temporary file; the next one on the machine removes it,
    and never the file of a writer that is still alive."""
    import os
    import subprocess
    import sys

    from airflow_mlc.core.predict import _temporary_prefix, remove_orphaned_temporaries

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    orphan = tmp_path / f"{_temporary_prefix()}{dead_pid}-abc.parquet"
    live = tmp_path / f"{_temporary_prefix()}{os.getpid()}-def.parquet"
    other_host = tmp_path / f"mlc-predictions-elsewhere-{dead_pid}-ghi.parquet"
    for path in (orphan, live, other_host):
        path.write_bytes(b"PAR1 half written")

    assert remove_orphaned_temporaries(tmp_path) == [orphan]
    assert not orphan.exists() and live.exists() and other_host.exists()

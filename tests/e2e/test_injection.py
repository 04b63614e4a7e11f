"""Run parameters and spec values reach SQL only as bound parameters or quoted identifiers, never as SQL text.

The source is a SQLite table ``bikes``; the predictions go to a table of the same database, so a value that
were formatted into SQL could drop ``bikes``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlc.testing import run_dag, task_result, task_states
from tests.conftest import BIKES_CSV
from tests.e2e.test_training_dag import WINTER, bikes_data, make_spec

pytestmark = pytest.mark.e2e

QUERY = "SELECT * FROM bikes WHERE timestamp >= :window_start AND timestamp < :window_end"
#: A table name that, pasted into SQL text, would end the statement and drop the source table.
HOSTILE_TABLE = 'predictions"; DROP TABLE bikes; --'


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A SQLite database holding the bike data as the table ``bikes`` (WAL: the prediction DAG reads and writes it)."""
    import pandas as pd
    import sqlalchemy

    path = tmp_path / "bikes.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    pd.read_csv(BIKES_CSV).to_sql("bikes", engine, index=False)
    engine.dispose()
    return path


def tables(database: Path) -> dict[str, int]:
    """The rows of each table of the database, by table name."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            names = sqlalchemy.inspect(connection).get_table_names()
            preparer = connection.dialect.identifier_preparer
            return {
                name: connection.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {preparer.quote(name)}")).scalar_one()
                for name in names
            }
    finally:
        engine.dispose()


def sql_spec(tmp_path: Path, database: Path, name: str, **changes):
    data = bikes_data(name, **changes)
    data["source"] = {"sql": QUERY, "url": f"sqlite:///{database}", "time_column": "timestamp"}
    return make_spec(tmp_path, data)


def test_a_window_that_is_not_a_time_fails_the_run_naming_the_field(
    airflow_db: Path, tmp_path: Path, database: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    spec = sql_spec(tmp_path, database, "inject_window")
    before = tables(database)
    assert before == {"bikes": len(pd.read_csv(BIKES_CSV))}
    window_end = "2011-04-08'; DROP TABLE bikes; --"
    conf = {"window_start": "2011-01-01'; DROP TABLE bikes; --", "window_end": window_end}
    dag_run = run_dag(spec.dag_ids["train"], conf=conf)
    output = capfd.readouterr()
    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert states.pop("ingest") == "failed"  # the first task that reads the window; no retry
    assert set(states.values()) == {"upstream_failed"}
    assert f"window_end {window_end!r} is not an ISO 8601 date or time" in output.out + output.err
    assert tables(database) == before


def test_a_prediction_table_name_is_an_identifier_never_sql(
    airflow_db: Path, tmp_path: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table gets exactly the spec's name, quoted; re-running the interval replaces its rows."""
    monkeypatch.setenv("AIRFLOW_CONN_MLC_INJECTION_DB", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    prediction = {"window_days": 7, "chunk_rows": 50, "table": HOSTILE_TABLE, "conn_id": "mlc_injection_db"}
    spec = sql_spec(tmp_path, database, "inject_table", prediction=prediction)
    before = tables(database)
    trained = run_dag(spec.dag_ids["train"], conf=WINTER)
    assert str(trained.state) == "success", task_states(trained)

    for _ in range(2):  # the second run deletes the interval's rows first: a statement on the table too
        run = run_dag(spec.dag_ids["predict"], conf={"window_end": "2011-04-08"})
        assert str(run.state) == "success", task_states(run)
        rows = task_result(run, "predict")["rows"]
        assert rows > 50  # several chunks
        assert tables(database) == {**before, HOSTILE_TABLE: rows}

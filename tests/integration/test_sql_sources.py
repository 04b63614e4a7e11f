"""The source seam and the prediction table on the real PostgreSQL and MariaDB servers of this machine.

PostgreSQL is reached through an Airflow SQL connection (its ``DbApiHook``), as a deployment reaches it;
MariaDB through SQLAlchemy's ``mysql+pymysql`` driver. Neither needs the deployment of the other tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from airflow_mlc.core.predict import sql_sink
from airflow_mlc.core.sources import SqlSource, open_source
from airflow_mlc.core.window import Window
from airflow_mlc.spec import SourceSpec
from tests.conftest import BIKES_CSV

pytestmark = pytest.mark.integration

MARCH = Window(datetime(2011, 3, 1, tzinfo=UTC), datetime(2011, 4, 1, tzinfo=UTC))
POSTGRES_CONN = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture(params=["postgres", "mariadb"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """An engine on one server (PostgreSQL: from an Airflow connection's hook), and a fresh table name."""
    import sqlalchemy

    if request.param == "postgres":
        from airflow_mlc.hooks.source import sql_engine

        monkeypatch.setenv("AIRFLOW_CONN_MLC_SOURCE_TEST", json.dumps(POSTGRES_CONN))
        engine = sql_engine("mlc_source_test")
    else:
        engine = sqlalchemy.create_engine(MARIADB_URL)
    table = f"rentals_{uuid.uuid4().hex[:8]}"
    try:
        yield {"kind": request.param, "engine": engine, "table": table}
    finally:
        with engine.begin() as connection:
            for name in (table, f"{table}_out"):
                connection.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


def load(server: dict[str, Any]) -> pd.DataFrame:
    frame = pd.read_csv(BIKES_CSV, parse_dates=["timestamp"])
    frame = frame[frame["timestamp"] < "2011-05-01"].reset_index(drop=True)
    frame.to_sql(server["table"], server["engine"], index=False)
    return frame


def test_a_window_is_read_whole_in_server_side_chunks_and_counted_by_the_database(server) -> None:
    import sqlalchemy

    frame = load(server)
    query = f"SELECT * FROM {server['table']} WHERE timestamp >= :window_start AND timestamp < :window_end"
    spec = SourceSpec(sql=query, conn_id="given below", time_column="timestamp")
    expected = frame[(frame["timestamp"] >= "2011-03-01") & (frame["timestamp"] < "2011-04-01")]

    with open_source(spec, engine=server["engine"]) as source:
        assert isinstance(source, SqlSource)
        whole = source.read(MARCH)
        assert source.count(MARCH) == len(whole) == len(expected) > 600
        chunks = source.chunks(MARCH, 100)
        first = next(chunks)
        if server["kind"] == "postgres":  # mid-read, the rows wait on the server behind a cursor
            with server["engine"].connect() as other:
                cursors = other.execute(
                    sqlalchemy.text("SELECT query FROM pg_stat_activity WHERE query ILIKE 'FETCH FORWARD%%'")
                ).all()
            assert cursors, "no server-side cursor was open during the chunked read"
        rest = list(chunks)
    assert len(first) == 100 and all(len(chunk) <= 100 for chunk in rest) and len(rest) > 5
    read = pd.concat([first, *rest], ignore_index=True)
    pd.testing.assert_frame_equal(read, whole)
    assert pd.to_datetime(read["timestamp"]).tolist() == expected["timestamp"].tolist()
    assert read["bikers"].tolist() == expected["bikers"].tolist()


def test_the_prediction_table_replaces_an_interval_in_one_transaction_and_gains_new_columns(server) -> None:
    import sqlalchemy

    engine, table = server["engine"], f"{server['table']}_out"
    old = pd.DataFrame({"prediction": [1.0, 2.0, 3.0], "window_start": "a", "window_end": ["b", "b", "c"]})
    with sql_sink(engine, table, "a", "b") as sink:
        sink(old)

    def rows() -> pd.DataFrame:
        with engine.connect() as connection:
            found = pd.read_sql_query(sqlalchemy.text(f"SELECT * FROM {table}"), connection)
        return found.sort_values(["window_end", "prediction"], ignore_index=True)

    before = rows()
    new = pd.DataFrame({"prediction": [9.0] * 4, "role": "champion", "window_start": "a", "window_end": "b"})
    # MariaDB commits at ALTER TABLE: the column is added before the interval's rows are deleted, so a failure
    # after the delete still rolls the delete back
    with pytest.raises(RuntimeError, match="midway"):
        with sql_sink(engine, table, "a", "b") as sink:
            sink(new.iloc[:2])
            raise RuntimeError("midway")
    pd.testing.assert_frame_equal(rows()[before.columns], before)

    with sql_sink(engine, table, "a", "b") as sink:
        sink(new.iloc[:2])
        sink(new.iloc[2:])
    after = rows()
    assert after["prediction"].tolist() == [9.0, 9.0, 9.0, 9.0, 3.0]  # the interval replaced, another kept
    assert after["role"].tolist()[:4] == ["champion"] * 4 and pd.isna(after["role"].iloc[4])

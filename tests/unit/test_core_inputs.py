"""Reading the source: time columns, malformed files, duplicate column names, wrong queries, the contract's categories.

Real files in tmp_path and a real SQLite database through SQLAlchemy; no mocks.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy

from airflow_mlc.core import storage
from airflow_mlc.core.ingest import filter_window, ingest, to_times, window_params
from airflow_mlc.core.sources import count_window_rows, open_source, read_chunks, read_source
from airflow_mlc.core.validate import category_violations, structural_violations, validate_frame
from airflow_mlc.core.window import Window
from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import SourceSpec, parse_spec

pytestmark = pytest.mark.unit
UTC = timezone.utc
YEAR_2011 = Window(datetime(2011, 1, 1, tzinfo=UTC), datetime(2012, 1, 1, tzinfo=UTC))
APRIL_2011 = Window(datetime(2011, 4, 1, tzinfo=UTC), datetime(2011, 5, 1, tzinfo=UTC))


def utc(*parts: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(*parts), tz="UTC")


def file_source(path: Path, **fields: Any) -> SourceSpec:
    return SourceSpec(path=str(path), time_column="t", **fields)


def sqlite_url(tmp_path: Path, frame: pd.DataFrame, table: str = "events") -> str:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sqlalchemy.create_engine(url)
    frame.to_sql(table, engine, index=False)
    engine.dispose()
    return url


def raises_exactly(error: type[Exception], call: Any, *args: Any, **kwargs: Any) -> str:
    """Run ``call``; it must raise exactly ``error`` (not a subclass); returns the message."""
    with pytest.raises(error) as caught:
        result = call(*args, **kwargs)
        if hasattr(result, "__next__"):
            list(result)
    assert caught.type is error, f"{caught.type.__name__}: {caught.value}"
    return str(caught.value)


# --- to_times: known answers -------------------------------------------------------------------------------


def test_an_integer_year_is_the_first_of_january_utc(tmp_path: Path) -> None:
    times = to_times(pd.Series([2010, 2011, None], index=[7, 8, 9]), file_source(tmp_path / "x.csv", time_unit="year"))
    assert times.tolist()[:2] == [utc(2010, 1, 1), utc(2011, 1, 1)] and pd.isna(times[9])
    assert list(times.index) == [7, 8, 9] and str(times.dt.tz) == "UTC"


def test_a_window_of_2011_keeps_only_the_rows_of_2011(tmp_path: Path) -> None:
    path = tmp_path / "yearly.csv"
    pd.DataFrame({"t": [2009, 2010, 2011, 2011, 2012, 2013], "x": range(6)}).to_csv(path, index=False)
    rows = read_source(file_source(path, time_unit="year"), YEAR_2011)
    assert rows["t"].tolist() == [2011, 2011] and rows["x"].tolist() == [2, 3]


def test_day_first_text_with_a_format_is_read_day_first(tmp_path: Path) -> None:
    source = file_source(tmp_path / "x.csv", time_format="%d/%m/%Y")
    assert to_times(pd.Series(["01/04/2011", "13/04/2011"]), source).tolist() == [utc(2011, 4, 1), utc(2011, 4, 13)]
    path = tmp_path / "dayfirst.csv"
    pd.DataFrame({"t": ["31/03/2011", "01/04/2011", "30/04/2011", "01/05/2011"], "x": range(4)}).to_csv(
        path, index=False
    )
    assert read_source(file_source(path, time_format="%d/%m/%Y"), APRIL_2011)["x"].tolist() == [1, 2]


def test_a_format_reads_whole_numbers_as_their_digits(tmp_path: Path) -> None:
    source = file_source(tmp_path / "x.csv", time_format="%Y%m%d")
    assert to_times(pd.Series([20110401, 20110430]), source).tolist() == [utc(2011, 4, 1), utc(2011, 4, 30)]


def test_epoch_seconds_and_milliseconds(tmp_path: Path) -> None:
    seconds = to_times(pd.Series([1301616000, 1301616001]), file_source(tmp_path / "x.csv", time_unit="s"))
    assert seconds.tolist() == [utc(2011, 4, 1), utc(2011, 4, 1, 0, 0, 1)]
    millis = to_times(pd.Series([1301616000000, 1301616000250]), file_source(tmp_path / "x.csv", time_unit="ms"))
    assert millis.tolist() == [utc(2011, 4, 1), utc(2011, 4, 1) + pd.Timedelta(milliseconds=250)]


def test_iso_text_and_date_times_are_read_as_they_are(tmp_path: Path) -> None:
    source = file_source(tmp_path / "x.csv")
    text = pd.Series(["2011-04-01", "2011-04-01T01:00:00Z", "2011-04-01 04:00:00+02:00"])
    assert to_times(text, source).tolist() == [utc(2011, 4, 1), utc(2011, 4, 1, 1), utc(2011, 4, 1, 2)]
    naive = pd.Series(pd.to_datetime(["2011-04-01 10:00"]))
    assert to_times(naive, source).tolist() == [utc(2011, 4, 1, 10)]
    aware = pd.Series(pd.to_datetime(["2011-04-01 10:00"]).tz_localize("Europe/Paris"))
    assert to_times(aware, source).tolist() == [utc(2011, 4, 1, 8)]
    assert to_times(pd.Series([None, None], dtype=object), source).isna().all()


def test_integers_without_a_unit_are_never_guessed(tmp_path: Path) -> None:
    path = tmp_path / "yearly.csv"
    pd.DataFrame({"t": [2011, 2012], "x": [1, 2]}).to_csv(path, index=False)
    message = raises_exactly(DataError, read_source, file_source(path), YEAR_2011)
    assert message == (
        f"file '{path}': time column 't' holds integers (e.g. 2011, 2012), and their unit is not guessed: "
        "set source.time_unit to year, s or ms in the spec (a calendar year, or seconds or milliseconds since 1970)"
    )
    floats = raises_exactly(DataError, to_times, pd.Series([1301616000.0, np.nan]), file_source(path))
    assert "holds integers (e.g. 1301616000.0)" in floats and "source.time_unit" in floats


def test_text_not_matching_the_format_names_the_format_and_three_values(tmp_path: Path) -> None:
    path = tmp_path / "dayfirst.csv"
    times = ["01/04/2011", "2011-04-02", "04/13/2011", "April 4", "2011/04/05", "2011-04-02"]
    pd.DataFrame({"t": times, "x": range(6)}).to_csv(path, index=False)
    message = raises_exactly(DataError, read_source, file_source(path, time_format="%d/%m/%Y"), APRIL_2011)
    assert message == (
        f"file '{path}': time column 't': values that do not match source.time_format '%d/%m/%Y' (5 rows): "
        "'2011-04-02', '04/13/2011', 'April 4'"
    )


def test_text_that_is_no_time_names_the_values(tmp_path: Path) -> None:
    message = raises_exactly(
        DataError, to_times, pd.Series(["2011-04-01", "soon", "later"]), file_source(tmp_path / "x.csv")
    )
    assert message.startswith(f"file '{tmp_path / 'x.csv'}': time column 't': values that are not times in ISO 8601")
    assert "(2 rows): 'soon', 'later'" in message and "source.time_format" in message


def test_values_outside_the_unit_are_named(tmp_path: Path) -> None:
    years = raises_exactly(
        DataError, to_times, pd.Series([2011, 1301616000]), file_source(tmp_path / "x.csv", time_unit="year")
    )
    assert "values that are not calendar years" in years and "source.time_unit 'year'" in years
    assert years.endswith("(1 row): 1301616000")
    seconds = raises_exactly(
        DataError, to_times, pd.Series([1301616000000]), file_source(tmp_path / "x.csv", time_unit="s")
    )
    assert "1301616000000" in seconds and "look like milliseconds" in seconds
    datetimes = pd.Series(pd.to_datetime(["2011-04-01"]))
    unit = raises_exactly(DataError, to_times, datetimes, file_source(tmp_path / "x.csv", time_unit="ms"))
    assert "holds date-times" in unit and "remove source.time_unit" in unit


def test_a_missing_time_column_names_the_file_and_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pd.DataFrame({"when": ["2011-04-01"], "x": [1]}).to_csv(path, index=False)
    message = raises_exactly(DataError, read_source, file_source(path), APRIL_2011)
    assert message == f"file '{path}': time column 't' is missing from the source (columns: ['when', 'x'])"


# --- SQL sources with an integer time column ------------------------------------------------------------


EVENTS = pd.DataFrame(
    {
        "year": [2010, 2011, 2011, 2012],
        "epoch_s": [1293839999, 1293840000, 1325375999, 1325376000],  # 2010-12-31 23:59:59 ... 2012-01-01
        "x": [0, 1, 2, 3],
    }
).assign(epoch_ms=lambda frame: frame["epoch_s"] * 1000)


def test_window_params_are_in_the_columns_unit() -> None:
    query = "select * from events where t >= :window_start and t < :window_end"

    def params(unit: str | None, window: Window = YEAR_2011) -> dict[str, Any]:
        return window_params(query, window, SourceSpec(sql=query, url="sqlite://", time_column="t", time_unit=unit))

    assert params(None) == {"window_start": datetime(2011, 1, 1), "window_end": datetime(2012, 1, 1)}
    assert params("year") == {"window_start": 2011, "window_end": 2012}
    assert params("s") == {"window_start": 1293840000, "window_end": 1325376000}
    assert params("ms") == {"window_start": 1293840000000, "window_end": 1325376000000}
    mid_year = Window(datetime(2011, 6, 1, tzinfo=UTC), datetime(2013, 6, 1, tzinfo=UTC))
    assert params("year", mid_year) == {"window_start": 2012, "window_end": 2014}  # 1 Jan 2012 and 2013 are inside
    half_second = Window(datetime(2011, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC), None)
    assert params("s", half_second) == {"window_start": 1293840000.5, "window_end": None}


@pytest.mark.parametrize(("column", "unit"), [("year", "year"), ("epoch_s", "s"), ("epoch_ms", "ms")])
def test_a_sql_integer_time_column_is_bound_and_filtered_in_its_unit(tmp_path: Path, column: str, unit: str) -> None:
    url = sqlite_url(tmp_path, EVENTS)
    query = f"select * from events where {column} >= :window_start and {column} < :window_end"
    source = SourceSpec(sql=query, url=url, time_column=column, time_unit=unit)
    result = ingest(open_source(source), YEAR_2011, str(tmp_path / "snapshot.parquet"))
    assert pd.read_parquet(result.uri)["x"].tolist() == [1, 2]
    unfiltered = SourceSpec(sql="select * from events", url=url, time_column=column, time_unit=unit)
    assert read_source(unfiltered, YEAR_2011)["x"].tolist() == [1, 2]  # the frame is filtered too
    assert count_window_rows(unfiltered, YEAR_2011) == 2  # COUNT(*) with the bounds in the unit
    assert count_window_rows(source, YEAR_2011) == 2
    assert [chunk["x"].tolist() for chunk in read_chunks(unfiltered, YEAR_2011, 1)] == [[1], [2]]


def test_a_sql_integer_time_column_without_a_unit_is_refused_by_every_reader(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, EVENTS)
    source = SourceSpec(sql="select * from events", url=url, time_column="year")
    read = raises_exactly(DataError, read_source, source, YEAR_2011)
    assert read.startswith("query 'select * from events': time column 'year' holds integers (e.g. 2010, 2011, 2012)")
    counted = raises_exactly(DataError, count_window_rows, source, YEAR_2011)  # one value is checked
    assert counted.startswith("query 'select * from events': time column 'year' holds integers (e.g. 2010)")
    for message in (read, counted):
        assert "set source.time_unit to year, s or ms in the spec" in message
    message = raises_exactly(DataError, read_chunks, source, YEAR_2011, 10)
    assert "time column 'year' holds integers" in message and "source.time_unit" in message


def test_the_probe_counts_day_first_text_times_itself(tmp_path: Path) -> None:
    frame = pd.DataFrame({"day": ["31/03/2011", "01/04/2011", "15/04/2011", "01/05/2011"], "x": range(4)})
    url = sqlite_url(tmp_path, frame)
    source = SourceSpec(sql="select * from events", url=url, time_column="day", time_format="%d/%m/%Y")
    assert count_window_rows(source, APRIL_2011) == 2  # as text, '15/04' > '01/05' > '01/04': the database can't
    broken = SourceSpec(sql="select * from events", url=url, time_column="day", time_format="%Y-%m-%d")
    message = raises_exactly(DataError, count_window_rows, broken, APRIL_2011)
    assert "time column 'day': values that do not match source.time_format '%Y-%m-%d' (4 rows)" in message


# --- malformed files --------------------------------------------------------------------------------------


MALFORMED = {
    "ragged.csv": (b"t,x\n2011-04-01,1\n2011-04-02,2,3,4\n", "Expected 2 fields in line 3, saw 4"),
    "empty.csv": (b"", "it is empty (no header row)"),
    "binary.csv": (b"PAR1\x15\x04\x15\xd0\xff\xfe\x00\x00" * 50, "is not utf-8 text"),
    "text.parquet": (b"t,x\n2011-04-01,1\n", "Parquet magic bytes not found"),
    "empty.parquet": (b"", "Parquet file size is 0 bytes"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_file_is_a_data_error_naming_the_file(tmp_path: Path, name: str) -> None:
    content, problem = MALFORMED[name]
    path = tmp_path / name
    path.write_bytes(content)
    source = file_source(path)
    for call, args in ((read_source, (source, APRIL_2011)), (read_chunks, (source, APRIL_2011, 100))):
        message = raises_exactly(DataError, call, *args)
        assert message.startswith(f"file '{path}': not a readable ") and problem in message, message
    assert raises_exactly(DataError, ingest, open_source(source), APRIL_2011, str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def test_a_missing_local_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    assert raises_exactly(DataError, read_source, file_source(path), APRIL_2011) == f"file '{path}' does not exist"
    assert raises_exactly(DataError, read_chunks, file_source(path), APRIL_2011, 10) == f"file '{path}' does not exist"
    parquet = tmp_path / "nowhere.parquet"
    assert raises_exactly(DataError, storage.read_file, str(parquet), "parquet") == f"file '{parquet}' does not exist"
    assert count_window_rows(file_source(path), APRIL_2011) == 0  # the data sensor waits for it


def test_remote_files_read_through_fsspec_and_report_the_same_errors(tmp_path: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe_file("/inputs/good.csv", b"t,x\n2011-04-02,1\n2011-05-02,2\n")
    memory.pipe_file("/inputs/bad.csv", b"t,x\n2011-04-02,1\n2011-04-03,1,2,3\n")
    memory.pipe_file("/inputs/dup.csv", b"t,x,x\n2011-04-02,1,2\n")
    good = SourceSpec(path="memory://inputs/good.csv", time_column="t")
    assert read_source(good, APRIL_2011, options={})["x"].tolist() == [1]
    assert [len(chunk) for chunk in read_chunks(good, APRIL_2011, 10, options={})] == [1]
    bad = SourceSpec(path="memory://inputs/bad.csv", time_column="t")
    assert raises_exactly(DataError, read_source, bad, APRIL_2011, {}).startswith(
        "file 'memory://inputs/bad.csv': not a readable CSV file"
    )
    dup = SourceSpec(path="memory://inputs/dup.csv", time_column="t")
    assert "duplicate column names ['x']" in raises_exactly(DataError, read_source, dup, APRIL_2011, {})


# --- duplicate column names --------------------------------------------------------------------------------


def test_a_csv_header_repeating_a_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("t,age,y,age\n2011-04-02,30,1,31\n")
    expected = f"file '{path}': duplicate column names ['age']: every column needs its own name"
    assert raises_exactly(DataError, read_source, file_source(path), APRIL_2011).startswith(expected)
    assert raises_exactly(DataError, read_chunks, file_source(path), APRIL_2011, 10).startswith(expected)
    assert raises_exactly(DataError, storage.read_file, str(path), "csv").startswith(expected)


def test_a_csv_with_a_column_named_like_a_renamed_duplicate_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "fine.csv"
    path.write_text("t,age,age.1\n2011-04-02,30,31\n")
    assert read_source(file_source(path), APRIL_2011).columns.tolist() == ["t", "age", "age.1"]


def test_a_parquet_file_repeating_a_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    table = pa.table([pa.array(["2011-04-02"]), pa.array([1]), pa.array([2])], names=["t", "x", "x"])
    pq.write_table(table, path)
    expected = f"file '{path}': duplicate column names ['x']"
    assert raises_exactly(DataError, read_source, file_source(path), APRIL_2011).startswith(expected)
    assert raises_exactly(DataError, read_chunks, file_source(path), APRIL_2011, 10).startswith(expected)


def test_a_query_result_repeating_a_name_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, EVENTS)
    query = "select e.year, e.x, f.x from events e join events f on e.year = f.year"
    source = SourceSpec(sql=query, url=url, time_column="year", time_unit="year")
    expected = f"query '{query}': duplicate column names ['x']"
    assert raises_exactly(DataError, read_source, source, YEAR_2011).startswith(expected)
    assert raises_exactly(DataError, read_chunks, source, YEAR_2011, 2).startswith(expected)


# --- SQL errors --------------------------------------------------------------------------------------------


WRONG_QUERIES = {
    "select * from nothing_here": "no such table: nothing_here",
    "select nothing_here from events": "no such column: nothing_here",
    "selec * from events": "syntax error",
    "select * from events where x = :other": "A value is required for bind parameter 'other'",
}


@pytest.mark.parametrize("query", sorted(WRONG_QUERIES))
def test_a_wrong_query_is_bad_input_naming_the_query_and_the_database_message(tmp_path: Path, query: str) -> None:
    url = sqlite_url(tmp_path, EVENTS)
    source = SourceSpec(sql=query, url=url)
    for call, args in (
        (read_source, (source, YEAR_2011)),
        (read_chunks, (source, YEAR_2011, 10)),
        (count_window_rows, (source, YEAR_2011)),
    ):
        message = raises_exactly(BadInputError, call, *args)
        assert message.startswith(f"query {query!r} failed: ") and WRONG_QUERIES[query] in message, message


def test_a_missing_time_column_in_the_count_is_bad_input(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, EVENTS)
    source = SourceSpec(sql="select x from events", url=url, time_column="year", time_unit="year")
    message = raises_exactly(BadInputError, count_window_rows, source, YEAR_2011)
    assert message.startswith("query 'select x from events' failed: no such column: q.year")


def test_a_long_query_is_cut_to_200_characters(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, EVENTS)
    query = "select x, " + ", ".join(f"x as x{n}" for n in range(60)) + " from nothing_here"
    message = raises_exactly(BadInputError, read_source, SourceSpec(sql=query, url=url), YEAR_2011)
    assert message.startswith(f"query {query[:200] + '...'!r} failed: no such table: nothing_here")


def test_a_database_that_cannot_be_reached_is_an_ordinary_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'x.db'}"
    source = SourceSpec(sql="select * from events", url=url)
    for call, args in ((read_source, (source, YEAR_2011)), (count_window_rows, (source, YEAR_2011))):
        with pytest.raises(sqlalchemy.exc.OperationalError, match="unable to open database file"):
            call(*args)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="unable to open database file"):
        list(read_chunks(source, YEAR_2011, 10))


# --- the contract ------------------------------------------------------------------------------------------


def contract_spec(task: str = "classification", categories: list[Any] | None = None) -> Any:
    return parse_spec(
        {
            "name": "inputs",
            "task": task,
            "source": {"path": "unused.csv"},
            "target": "y",
            "features": {"numeric": ["x"], "categorical": ["weathersit"]},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gates": {"metric": "accuracy" if task == "classification" else "rmse"},
            "contract": {"categories": {"weathersit": categories or ["clear", "cloudy"]}},
        }
    )


def weather(values: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {"x": np.arange(len(values), dtype=float), "weathersit": values, "y": [0, 1] * (len(values) // 2)}
    )


def test_a_category_violation_names_the_values_most_frequent_first() -> None:
    frame = weather(["clear"] * 14 + ["hail", "foggy", "foggy", None, "cloudy", "clear"])
    result, snapshot = validate_frame(frame.fillna({"weathersit": "clear"}), contract_spec())
    assert not result.passed and snapshot is not None
    assert result.violations == [
        "column 'weathersit': 3 rows hold values outside the allowed list ['clear', 'cloudy']: 'foggy' (2), 'hail' (1)"
    ]
    assert category_violations(frame, contract_spec()) == {"weathersit": result.violations[0]}  # nulls not counted


def test_a_category_violation_shows_ten_values_at_most() -> None:
    odd = [f"v{n:02d}" for n in range(12)]
    frame = weather(["clear"] * 8 + odd + odd[:1] + ["clear"])
    text = category_violations(frame, contract_spec())["weathersit"]
    assert text.startswith("column 'weathersit': 13 rows hold values outside the allowed list ['clear', 'cloudy']: ")
    assert text.endswith(
        "'v00' (2), 'v01' (1), 'v02' (1), 'v03' (1), 'v04' (1), 'v05' (1), 'v06' (1), "
        "'v07' (1), 'v08' (1), 'v09' (1) and 2 more values"
    )


def test_integer_categories_are_compared_as_integers() -> None:
    frame = weather([1] * 18 + [3, 3])
    assert category_violations(frame, contract_spec(categories=[1, 2])) == {
        "weathersit": "column 'weathersit': 2 rows hold values outside the allowed list [1, 2]: 3 (2)"
    }


@pytest.mark.parametrize("classes", [["yes", "no"], [True, False], [0, 1], [0.0, 1.0], [2, 7]])
def test_a_classification_target_of_any_type_with_two_classes_is_fine(classes: list[Any]) -> None:
    frame = weather(["clear"] * 20).assign(y=classes * 10)
    assert structural_violations(frame, contract_spec()) == []
    result, _ = validate_frame(frame, contract_spec())
    assert result.passed, result.violations


def test_a_classification_target_with_one_class_is_a_violation() -> None:
    frame = weather(["clear"] * 20).assign(y=True)
    assert structural_violations(frame, contract_spec()) == [
        "target 'y': a classification target needs 2 or more classes, found 1 (True)"
    ]


def test_duplicate_column_names_are_a_violation() -> None:
    frame = weather(["clear"] * 4)
    frame.columns = ["x", "weathersit", "x"]
    assert structural_violations(frame, contract_spec()) == [
        "columns ['x']: each name may be used once, but the data repeats them (columns: ['x', 'weathersit', 'x'])"
    ]
    result, snapshot = validate_frame(frame, contract_spec())
    assert not result.passed and snapshot is None


def test_filter_window_reads_times_through_to_times(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": [1301615999, 1301616000, 1304207999, 1304208000], "x": range(4)})
    kept = filter_window(frame, file_source(tmp_path / "x.csv", time_unit="s"), APRIL_2011)
    assert kept["x"].tolist() == [1, 2]

"""The product's own drift statistics reproduce Evidently 0.7.23's scores, methods and verdicts column by column."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from airflow_mlc.core import drift, drift_stats
from airflow_mlc.core.drift import column_drifts, compare_with_profile, drift_report
from airflow_mlc.core.drift_stats import (
    CATEGORICAL,
    NUMERIC,
    ColumnProfile,
    FrameColumns,
    column_drift,
    load_reference_profile,
    store_reference_profile,
)
from airflow_mlc.core.storage import ParquetColumns
from airflow_mlc.errors import BadInputError, DataError
from airflow_mlc.spec import ModelLifecycleSpec, parse_spec

pytestmark = pytest.mark.unit


def evidently(reference: pd.Series, current: pd.Series, kind: str, method: str | None, threshold: float | None):
    """Evidently's own verdict on one column, as its ``ValueDrift`` computes it (cleaning, choice, test)."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == NUMERIC else ColumnType.Categorical
    reference = reference.replace([-np.inf, np.inf], np.nan).dropna()
    current = current.replace([-np.inf, np.inf], np.nan).dropna()
    test = get_stattest(reference, current, column_type, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = test(reference, current, column_type, threshold)
    return test.name, float(result.drift_score), bool(result.drifted), result.actual_threshold


def ours(reference: pd.Series, current: pd.Series, kind: str, method: str | None, threshold: float | None):
    found = column_drift(
        "x",
        ColumnProfile.of("x", reference, kind, "ref"),
        ColumnProfile.of("x", current, kind, "cur"),
        method,
        threshold,
    )
    return found.method, found.score, found.drifted, found.threshold


def numeric(shape: str, rows: int, seed: int) -> pd.Series:
    g = np.random.default_rng(seed)
    if shape == "few values":
        return pd.Series(g.integers(0, 4, rows).astype(float))
    if shape == "two values":
        return pd.Series(g.integers(0, 2, rows).astype(float))
    if shape == "constant":
        return pd.Series(np.full(rows, 3.0))
    if shape == "integers":  # Sturges bins narrower than 1 widen to 1 for integers
        return pd.Series(g.integers(0, 25, rows))
    values = g.normal(0, 1, rows)
    values[g.random(rows) < 0.05] = np.nan
    values[:3] = [np.inf, -np.inf, np.nan]
    return pd.Series(values)


NUMERIC_CASES = {
    "no shift": lambda rows, seed: numeric("normal", rows, seed),
    "mean shift": lambda rows, seed: numeric("normal", rows, seed) + (0.4 if seed else 0),
    "scale shift": lambda rows, seed: numeric("normal", rows, seed) * (2.0 if seed else 1),
    "few values": lambda rows, seed: numeric("few values", rows, seed) + (seed == 1),  # a value new in the window
    "two values": lambda rows, seed: numeric("two values", rows, seed),
    "constant": lambda rows, seed: numeric("constant", rows, seed),
    "integers": lambda rows, seed: numeric("integers", rows, seed) + 2 * seed,
}


def categories(case: str, rows: int, seed: int) -> pd.Series:
    g = np.random.default_rng(seed)
    if case == "booleans":
        return pd.Series(g.random(rows) < (0.3 + 0.1 * seed))
    if case == "constant":
        return pd.Series(["same"] * rows)
    if case == "two":
        return pd.Series(g.choice(["yes", "no"], rows, p=[0.5 + 0.1 * seed, 0.5 - 0.1 * seed]))
    names = ["a b", "c.d", "e"] + (["new"] if seed == 1 else ["old only"])
    values = pd.Series(g.choice(names, rows), dtype=object)
    values[g.random(rows) < 0.05] = None
    return values


CATEGORICAL_CASES = ["strings", "booleans", "constant", "two"]
NUMERIC_METHODS = [None, "wasserstein", "ks", "jensenshannon", "psi", "kl_div", "ed", "t_test"]
CATEGORICAL_METHODS = [None, "jensenshannon", "psi", "kl_div", "chisquare", "z"]
THRESHOLDS = [None, 0.2, 0.01]


def assert_same(found, expected) -> None:
    method, score, drifted, threshold = found
    assert (method, drifted, threshold) == (expected[0], expected[2], expected[3])
    assert score == pytest.approx(expected[1], rel=1e-6, abs=1e-9, nan_ok=True)


@pytest.mark.parametrize("rows", [200, 3000])
@pytest.mark.parametrize("case", NUMERIC_CASES)
def test_numeric_columns_score_as_evidently_for_every_method_and_threshold(case: str, rows: int) -> None:
    reference, current = NUMERIC_CASES[case](rows, 0), NUMERIC_CASES[case](rows + 37, 1)
    for method in NUMERIC_METHODS:
        for threshold in THRESHOLDS:
            expected = evidently(reference, current, NUMERIC, method, threshold)
            assert_same(ours(reference, current, NUMERIC, method, threshold), expected)


@pytest.mark.parametrize("rows", [200, 3000])
@pytest.mark.parametrize("case", CATEGORICAL_CASES)
def test_categorical_columns_score_as_evidently_for_every_method_and_threshold(case: str, rows: int) -> None:
    reference, current = categories(case, rows, 0), categories(case, rows + 37, 1)
    for method in CATEGORICAL_METHODS:
        if method == "z" and case == "strings":
            continue  # Evidently's Z-test reads any value but the smallest as one category: not meant for three
        for threshold in THRESHOLDS:
            expected = evidently(reference, current, CATEGORICAL, method, threshold)
            assert_same(ours(reference, current, CATEGORICAL, method, threshold), expected)


def test_large_samples_take_the_chunked_paths_with_the_same_scores(monkeypatch) -> None:
    monkeypatch.setattr(drift_stats, "CHUNK_VALUES", 997)  # chunk boundaries fall anywhere
    reference, current = numeric("normal", 12_000, 0), numeric("normal", 15_000, 1) * 1.05 + 0.02
    for method in ["ks", "wasserstein", "ed", "jensenshannon"]:  # K-S is asymptotic above 10,000 values
        assert_same(
            ours(reference, current, NUMERIC, method, None), evidently(reference, current, NUMERIC, method, None)
        )


def mixed_spec(**drift_settings) -> ModelLifecycleSpec:
    return parse_spec(
        {
            "name": "mixed",
            "task": "regression",
            "source": {"path": "x.csv"},
            "target": "y",
            "features": {"numeric": ["temp °C", "wind.speed", "level"], "categorical": ["kind of day", "holiday"]},
            "model": {"estimator": "sklearn.linear_model.LinearRegression"},
            "gates": {"metric": "rmse"},
            "monitoring": {"drift": drift_settings},
        }
    )


def mixed_rows(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "temp °C": g.normal(10 + 5 * shift, 5, rows),
            "wind.speed": g.exponential(3, rows),
            "level": g.integers(0, 3, rows).astype(float),
            "kind of day": g.choice(["work day", "weekend"] + (["strike"] if shift else []), rows),
            "holiday": g.random(rows) < 0.05,
        }
    )


def evidently_preset(reference: pd.DataFrame, current: pd.DataFrame, spec: ModelLifecycleSpec) -> dict:
    """Evidently's whole ``DataDriftPreset`` on the frames, as the product ran it before."""
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = spec.drift_columns
    definition = drift._definition(spec, columns)
    settings = spec.monitoring.drift
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(
            [DataDriftPreset(columns=columns, method=settings.method, threshold=settings.threshold)], include_tests=True
        ).run(
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        )
    return {c.column: c for c in column_drifts(snapshot)}


@pytest.mark.parametrize("rows", [400, 2500])
def test_the_default_choice_matches_evidently_s_preset_on_odd_column_names(rows: int) -> None:
    spec = mixed_spec()
    reference, current = mixed_rows(rows, 0), mixed_rows(rows, 1, shift=0.5)
    expected = evidently_preset(reference, current, spec)
    result, _ = drift_report(reference, current, spec)
    for found in result.columns:
        assert found.score == pytest.approx(expected[found.column].score, rel=1e-6, abs=1e-9)
        assert found.drifted == expected[found.column].drifted


def test_scores_from_a_stored_profile_equal_those_from_the_frame(tmp_path) -> None:
    spec = mixed_spec(per_column={"wind.speed": {"method": "psi"}})
    reference, current = mixed_rows(3000, 0), mixed_rows(2000, 1, shift=0.3)
    reference.to_parquet(tmp_path / "reference.parquet")
    kinds = drift.drift_kinds(spec)
    folder = str(tmp_path / "profile")
    with ParquetColumns(str(tmp_path / "reference.parquet")) as source:
        store_reference_profile(source, kinds, folder, "v1", sample_rows=500, seed=0)
    stored = load_reference_profile(folder, kinds, "v1")
    assert stored is not None and stored.rows == 3000 and len(stored.sample) == 500
    from_stored, _ = compare_with_profile(stored, FrameColumns(current), spec)
    from_frame, _ = drift_report(reference, current, spec)
    assert from_stored == from_frame

    assert load_reference_profile(folder, kinds, "v2") is None  # the reference file changed: rebuilt
    assert load_reference_profile(folder, {**kinds, "level": CATEGORICAL}, "v1") is None  # other kinds: rebuilt


def test_the_report_of_a_bounded_sample_agrees_on_clear_drift_and_clear_stability(monkeypatch) -> None:
    monkeypatch.setattr(drift, "REPORT_SAMPLE_ROWS", 3000)
    spec = mixed_spec(method="wasserstein", per_column={"kind of day": {"method": "jensenshannon"}})
    spec = spec.model_copy(update={"features": spec.features.model_copy(update={"categorical": ["kind of day"]})})
    reference, current = mixed_rows(30_000, 0), mixed_rows(30_000, 1).assign(**{"temp °C": lambda f: f["temp °C"] + 4})
    current["kind of day"] = np.where(np.arange(len(current)) % 2, "strike", current["kind of day"])
    result, snapshot = drift_report(reference, current, spec)
    shown = {c.column: c for c in column_drifts(snapshot)}
    verdicts = {c.column: c.drifted for c in result.columns}
    assert verdicts == {"temp °C": True, "wind.speed": False, "level": False, "kind of day": True}
    assert {c: shown[c].drifted for c in verdicts} == verdicts
    assert all(shown[c.column].method == c.method and shown[c.column].threshold == c.threshold for c in result.columns)
    assert "3000" in snapshot.json() or len(snapshot.json()) > 0


def test_a_method_not_implemented_here_is_evidently_s_on_that_column_alone() -> None:
    assert "mannw" not in drift_stats.METHODS and "anderson" not in drift_stats.METHODS
    reference, current = numeric("normal", 800, 0), numeric("normal", 900, 1) + 0.2
    for method in ["mannw", "anderson", "cramer_von_mises"]:
        expected = evidently(reference, current, NUMERIC, method, None)
        assert_same(ours(reference, current, NUMERIC, method, None), expected[:0] + (method, *expected[1:]))
    spec = mixed_spec(per_column={"temp °C": {"method": "mannw", "threshold": 0.01}})
    result, _ = drift_report(mixed_rows(1500, 0), mixed_rows(1500, 1, shift=0.5), spec)
    assert [(c.column, c.method, c.threshold) for c in result.columns][0] == ("temp °C", "mannw", 0.01)


def test_a_method_that_does_not_fit_the_column_or_is_unknown_is_bad_input() -> None:
    reference, current = mixed_rows(1500, 0), mixed_rows(1500, 1)
    with pytest.raises(BadInputError, match="method 'z' does not apply to column 'temp °C', which is numeric"):
        drift_report(reference, current, mixed_spec(method="z"))
    with pytest.raises(BadInputError, match="No stattest found of name wasserstien"):
        drift_report(reference, current, mixed_spec(method="wasserstien"))
    with pytest.raises(DataError, match="column 'level' of the monitored window holds no values"):
        drift_report(reference, current.assign(level=np.nan), mixed_spec())
    with pytest.raises(DataError, match="column 'temp °C' of the monitored window should be numeric"):
        drift_report(reference, current.assign(**{"temp °C": "warm"}), mixed_spec())

"""Validate: the spec's data contract, checked by pandas and by Evidently data-summary tests."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from airflow_mlc.spec import ModelLifecycleSpec

#: Distinct offending values named in a category violation.
MAX_VALUES_SHOWN = 10


@dataclass(frozen=True)
class ValidationResult:
    passed: bool
    rows: int
    violations: list[str]
    report_uri: str | None = None
    tests_run: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def structural_violations(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> list[str]:
    """What Evidently cannot check: unique column names, columns present, their types, a usable target.

    A classification target needs 2 or more classes, of any type (text, booleans, integers).
    """
    names = [str(c) for c in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return [f"columns {repeated}: each name may be used once, but the data repeats them (columns: {names})"]
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        return [
            f"column {c!r}: required by the spec but missing (columns present: {list(frame.columns)})" for c in missing
        ]
    found = []
    for column in spec.features.numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            found.append(f"column {column!r}: must be numeric, found dtype {frame[column].dtype}")
    target = frame[spec.target]
    if target.notna().sum() == 0:
        found.append(f"target {spec.target!r}: has no values (all {len(frame)} rows are null)")
    elif spec.task == "regression" and not pd.api.types.is_numeric_dtype(target):
        found.append(f"target {spec.target!r}: a regression target must be numeric, found dtype {target.dtype}")
    elif spec.task == "classification":
        classes = target.dropna().astype(object).unique()
        if len(classes) < 2:
            found.append(
                f"target {spec.target!r}: a classification target needs 2 or more classes, found {len(classes)} "
                f"({', '.join(repr(_plain(c)) for c in classes)})"
            )
    return found


def category_violations(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> dict[str, str]:
    """The categorical columns holding values outside ``contract.categories``, each with its violation.

    Missing values are not counted here (``max_null_share`` is their rule).

    Returns:
        By column, e.g. ``column 'weathersit': 3 rows hold values outside the allowed list
        ['clear', 'cloudy']: 'foggy' (2), 'hail' (1)``, naming up to ``MAX_VALUES_SHOWN`` values,
        the most frequent first.
    """
    found = {}
    for column, allowed in spec.contract.categories.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        outside = values[values.notna() & ~values.isin(allowed)]
        if outside.empty:
            continue
        counts = outside.astype(object).value_counts(sort=False)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
        shown = ", ".join(f"{_plain(value)!r} ({count})" for value, count in ranked[:MAX_VALUES_SHOWN])
        more = len(ranked) - MAX_VALUES_SHOWN
        if more > 0:
            shown += f" and {more} more value{'s' if more > 1 else ''}"
        rows = len(outside)
        found[column] = (
            f"column {column!r}: {rows} row{'s hold' if rows > 1 else ' holds'} values outside the allowed list "
            f"{[_plain(value) for value in allowed]}: {shown}"
        )
    return found


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so it prints as ``3``, not ``np.int64(3)``."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str | bytes) else value


def _contract_metrics(spec: ModelLifecycleSpec, frame: pd.DataFrame) -> list[Any]:
    """Evidently metrics with the contract's rules attached as tests."""
    from evidently.metrics import (
        MaxValue,
        MeanValue,
        MinValue,
        MissingValueCount,
        OutListValueCount,
        RowCount,
        UniqueValueCount,
    )
    from evidently.tests import eq, gte, lte

    contract = spec.contract
    metrics: list[Any] = [RowCount(tests=[gte(contract.min_rows)])]
    for column in spec.columns:
        null_share = contract.max_null_share if column != spec.target or not spec.cleaning.drop_missing_target else 1.0
        metrics.append(MissingValueCount(column=column, share_tests=[lte(null_share)]))
    for column in spec.numeric_columns:
        bounds = contract.ranges.get(column)
        metrics.append(MinValue(column=column, tests=[gte(bounds.min)] if bounds and bounds.min is not None else []))
        metrics.append(MaxValue(column=column, tests=[lte(bounds.max)] if bounds and bounds.max is not None else []))
        metrics.append(MeanValue(column=column))
    for column in spec.features.categorical:
        allowed = contract.categories.get(column)
        if allowed is not None:
            metrics.append(OutListValueCount(column=column, values=allowed, tests=[eq(0)]))
        metrics.append(UniqueValueCount(column=column))
    return metrics


def _evidently_dataset(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> Any:
    from evidently import DataDefinition, Dataset

    numeric = spec.numeric_columns
    categorical = [c for c in spec.columns if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    return Dataset.from_pandas(frame[spec.columns], data_definition=definition)


def run_contract_report(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> Any:
    """Run the contract as an Evidently report; returns the snapshot."""
    from evidently import Report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = Report(_contract_metrics(spec, frame))
        return report.run(current_data=_evidently_dataset(frame, spec), reference_data=None)


def failed_tests(snapshot: Any) -> tuple[int, list[str]]:
    """How many Evidently tests ran, and the descriptions of those that failed."""
    tests = snapshot.dict()["tests"]
    failed = [t["description"] for t in tests if str(getattr(t["status"], "value", t["status"])) != "SUCCESS"]
    return len(tests), failed


def validate_frame(frame: pd.DataFrame, spec: ModelLifecycleSpec) -> tuple[ValidationResult, Any]:
    """Check ``frame`` against the spec; returns the result and the Evidently snapshot (or None)."""
    violations = structural_violations(frame, spec)
    if violations:
        return ValidationResult(passed=False, rows=len(frame), violations=violations), None
    snapshot = run_contract_report(frame, spec)
    tests_run, failed = failed_tests(snapshot)
    categories = category_violations(frame, spec)
    # An out-of-list test is described by pandas' exact count and values; any other failure as Evidently has it.
    violations = [text for text in failed if not any(_is_out_of_list(text, column) for column in categories)]
    violations += categories.values()
    return ValidationResult(
        passed=not violations, rows=len(frame), violations=violations, tests_run=tests_run
    ), snapshot


def _is_out_of_list(description: str, column: str) -> bool:
    """Whether an Evidently test description is the out-of-list test of ``column``."""
    return description.startswith(f"Column '{column}' values out of list")


def save_report(snapshot: Any, html_uri: str, options: dict[str, Any] | None = None, copy_to: str | None = None) -> str:
    """Write an Evidently snapshot as HTML at ``html_uri`` and as JSON beside it.

    The snapshot is rendered once; with ``copy_to`` (a local ``.html`` path), the same HTML and JSON
    are written there too (for logging to MLflow).
    """
    from airflow_mlc.core import storage

    html, json = snapshot.get_html_str(as_iframe=False), snapshot.json()
    destinations = [(html_uri, options), *([(copy_to, None)] if copy_to else [])]
    for uri, where in destinations:
        storage.write_text(html, uri, where)
        storage.write_text(json, uri.removesuffix(".html") + ".json", where)
    return html_uri

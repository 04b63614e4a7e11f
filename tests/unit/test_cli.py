"""The ``airflow-mlc`` command line."""

from __future__ import annotations

import pytest

from airflow_mlc.cli import main

pytestmark = pytest.mark.unit


def test_a_spec_that_cannot_be_read_is_one_clear_line_and_exit_code_2(tmp_path, capsys) -> None:
    missing = tmp_path / "churn.yaml"
    assert main(["history", "--spec", str(missing)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"airflow-mlc: {missing}: cannot read the spec") and error.count("\n") == 1

"""Fixtures of the end-to-end tier."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def specs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The DAG file reads its specs from this test's own folder."""
    folder = tmp_path / "specs"
    folder.mkdir()
    monkeypatch.setenv("MLC_SPECS_DIR", str(folder))
    return folder

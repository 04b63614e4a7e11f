"""Fixtures of the decision-quality suite: champions trained once per dataset and trial, shared by its tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.decisions.datasets import DATASETS
from tests.decisions.harness import Trained, train_champion


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_fit() -> Iterator[None]:
    """Fits and reports on one thread: the same results, and no oversubscription of shared cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def champion() -> Callable[[str, int], Trained]:
    """``champion(name, trial)``: the training path's model for the dataset's trial, trained on first use."""
    cache: dict[tuple[str, int], Trained] = {}

    def get(name: str, trial: int = 0) -> Trained:
        if (name, trial) not in cache:
            cache[(name, trial)] = train_champion(DATASETS[name], trial)
        return cache[(name, trial)]

    return get

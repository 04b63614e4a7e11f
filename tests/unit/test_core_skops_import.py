"""The faster import of skops: the same trusted type names as skops's own search, in a fraction of its time."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator

import pytest

from airflow_mlc.core.skops_import import ModuleIndex

pytestmark = pytest.mark.unit

#: Lists every trusted type name skops computed at import, after loading what a task process loads.
TRUSTED_NAMES = """
import json, sys, time, warnings
import airflow.sdk, airflow.models, airflow.sdk.execution_time.task_runner
import pandas, sklearn.ensemble
started = time.perf_counter()
if sys.argv[1] == "fast":
    from airflow_mlc.core.skops_import import import_skops
    import_skops()
else:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import skops.io
took = time.perf_counter() - started
from skops.io import _trusted_types, _utils
names = {k: v for k, v in vars(_trusted_types).items() if k.endswith("_TYPE_NAMES")}
print(json.dumps({"names": names, "seconds": took, "restored": _utils.whichmodule.__module__}))
"""


def _trusted_names(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", TRUSTED_NAMES, mode], capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_skops_trusts_the_same_type_names_with_the_faster_search() -> None:
    own, fast = _trusted_names("skops"), _trusted_names("fast")
    assert fast["names"] == own["names"]
    assert len(fast["names"]["SCIPY_UFUNC_TYPE_NAMES"]) > 100  # the ufuncs whose module is searched for
    assert fast["restored"] == "skops.io._utils"  # skops's own search is back for saving and loading
    assert fast["seconds"] < own["seconds"]


class _Lazy(types.ModuleType):
    """A module that answers some names through ``__getattr__`` only."""

    def __getattr__(self, name: str) -> object:
        if name == "gamma":
            return SHARED
        raise AttributeError(name)


SHARED = object()


@pytest.fixture
def modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Three modules appended to sys.modules in order: a plain one, a lazy one, another plain one."""
    names = ["mlc_test_plain_a", "mlc_test_lazy", "mlc_test_plain_b"]
    plain_a, lazy, plain_b = types.ModuleType(names[0]), _Lazy(names[1]), types.ModuleType(names[2])
    plain_a.alias = SHARED  # held under another name: not a match for "gamma"
    plain_b.gamma = SHARED
    for name, module in zip(names, (plain_a, lazy, plain_b), strict=True):
        monkeypatch.setitem(sys.modules, name, module)
    yield names


def _skops_like(obj: object, name: str) -> str:
    for module_name, module in sys.modules.copy().items():
        if module is not None and getattr(module, name, None) is obj:
            return module_name
    return "__main__"


def test_the_index_finds_the_first_holder_in_import_order(modules: list[str]) -> None:
    index = ModuleIndex()
    assert index.which_module(SHARED, "gamma", _skops_like) == _skops_like(SHARED, "gamma") == "mlc_test_lazy"
    assert index.which_module(SHARED, "alias", _skops_like) == "mlc_test_plain_a"
    assert index.which_module(SHARED, "missing", _skops_like) == "__main__"
    assert index.which_module(len, "len", _skops_like) == "builtins"  # an object with __module__ is not searched


def test_the_index_sees_modules_loaded_after_it_was_built(modules: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    index = ModuleIndex()
    late_object = object()
    assert index.which_module(late_object, "late", _skops_like) == "__main__"
    late = types.ModuleType("mlc_test_late")
    late.late = late_object
    monkeypatch.setitem(sys.modules, "mlc_test_late", late)
    assert index.which_module(late_object, "late", _skops_like) == "mlc_test_late"

"""Known-answer datasets for the product's decisions: what a champion trains on, and windows it is monitored on.

Each dataset gives a spec (as a mapping, as a user would write it) and, for a numbered trial:

* ``history(trial)``: the rows the training path cleans, splits, fits and evaluates on;
* ``window(trial, index)``: a stationary window, rows of the same distribution that no model of
  that trial trained on: fresh draws of the generator, or, for the small bundled scikit-learn sets,
  rows held out of that trial's history (a different random subset per trial);
* ``shifted(window, kind, reference)``: the window clearly changed. ``covariate``: every numeric
  drift column moved by one standard deviation of the reference, and every categorical drift column's
  mix flipped (its most frequent category becomes its least frequent); ``concept``: the labels
  shuffled among the window's rows, so the features (and the label mix) keep their distribution but
  no longer say anything about the labels.

``weak_features`` name features that carry little or no signal: a model fitted on them alone is
clearly worse than one fitted on every feature.

Everything is deterministic: the random draws are seeded by the dataset's name, the trial and the
window's index. Nothing is downloaded: the bundled sets ship with scikit-learn.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlc.spec import ModelLifecycleSpec, parse_spec

#: How a shifted window differs from a stationary one.
SHIFT_KINDS = ("covariate", "concept")
FAST_LOGISTIC = {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 2000}, "search": None}
FAST_RIDGE = {"estimator": "sklearn.linear_model.Ridge", "params": {"alpha": 1.0}, "search": None}


def _expit(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


@dataclass(frozen=True)
class Dataset:
    """A tabular problem with a spec that fits it, stationary windows and shifted ones.

    Attributes:
        name: The dataset's (and the spec's) name.
        spec_data: The spec as a mapping, as it would be written in YAML.
        weak_features: Features with little or no signal, for a clearly worse model.
        description: What the dataset stands for, in a few words.
    """

    name: str
    spec_data: dict[str, Any]
    weak_features: tuple[str, ...]
    description: str = ""

    @cached_property
    def spec(self) -> ModelLifecycleSpec:
        """The parsed spec."""
        return parse_spec(self.spec_data, origin=f"{self.name}.yaml")

    def rng(self, *parts: int) -> np.random.Generator:
        """A generator seeded by the dataset's name and ``parts`` (trial, window index, ...)."""
        return np.random.default_rng([zlib.crc32(self.name.encode()), *parts])

    def history(self, trial: int) -> pd.DataFrame:
        """The rows a champion of ``trial`` is trained and evaluated on."""
        raise NotImplementedError

    def frame_and_spec(self, trial: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The history of ``trial`` and a spec mapping that fits it (a copy: change it freely)."""
        return self.history(trial), copy.deepcopy(self.spec_data)

    def window(self, trial: int, index: int = 0) -> pd.DataFrame:
        """A stationary window of ``trial``: same distribution, rows no model of the trial trained on."""
        raise NotImplementedError

    def window_ids(self, count: int) -> list[tuple[int, int]]:
        """``count`` distinct stationary windows, as ``(trial, index)`` pairs: a trial's own windows first."""
        return [(0, index) for index in range(count)]

    def shifted(self, window: pd.DataFrame, kind: str, reference: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
        """``window`` clearly changed (see the module's description of ``covariate`` and ``concept``).

        Args:
            window: A stationary window.
            kind: ``covariate`` or ``concept``.
            reference: The data the shift is measured against (the champion's training rows).
            seed: Seeds the label shuffle of a concept change.

        Returns:
            A new frame.
        """
        spec = self.spec
        changed = window.copy()
        if kind == "covariate":
            for column in spec.drift_columns:
                if column in spec.numeric_columns:
                    changed[column] = changed[column].astype(float) + float(reference[column].std())
                else:
                    changed[column] = changed[column].map(flipped_mix(reference[column]))
        elif kind == "concept":
            labels = changed[spec.target].to_numpy()
            changed[spec.target] = self.rng(seed, 99).permutation(labels)
        else:
            raise ValueError(f"unknown shift {kind!r}: one of {SHIFT_KINDS}")
        return changed


def flipped_mix(values: pd.Series) -> dict[Any, Any]:
    """A mapping of categories that flips their mix: the most frequent becomes the least frequent, and so on."""
    ranked = list(values.value_counts().index)
    return dict(zip(ranked, reversed(ranked), strict=True))


# --- the bundled scikit-learn sets -----------------------------------------------------------------------


@dataclass(frozen=True)
class Bundled(Dataset):
    """A small bundled set: each trial holds a different random ``window_share`` of its rows out as its window.

    A trial has one window, all its held-out rows: its champion never trained, nor was evaluated, on
    them. More windows are more trials (each with its own champion).
    """

    loader: Callable[[], pd.DataFrame] = field(default=lambda: pd.DataFrame(), repr=False)
    window_share: float = 0.2

    @cached_property
    def frame(self) -> pd.DataFrame:
        return self.loader()

    def _held_out(self, trial: int) -> np.ndarray:
        rows = len(self.frame)
        held = np.zeros(rows, dtype=bool)
        held[self.rng(trial).permutation(rows)[: round(rows * self.window_share)]] = True
        return held

    def history(self, trial: int) -> pd.DataFrame:
        return self.frame[~self._held_out(trial)].reset_index(drop=True)

    def window(self, trial: int, index: int = 0) -> pd.DataFrame:
        if index != 0:
            raise ValueError(f"{self.name}: a trial holds one window of its own rows (index 0), not {index}")
        return self.frame[self._held_out(trial)].reset_index(drop=True)

    def window_ids(self, count: int) -> list[tuple[int, int]]:
        return [(trial, 0) for trial in range(count)]


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.copy()
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame


def _wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    return data.data.assign(cultivar=[f"cultivar_{k}" for k in data.target])


def _iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    return data.data.assign(species=np.asarray(data.target_names)[data.target])


def _diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.data.assign(progression=data.target)


_BREAST_CANCER_FEATURES = [
    "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness", "mean compactness",
    "mean concavity", "mean concave points", "mean symmetry", "mean fractal dimension", "radius error",
    "texture error", "perimeter error", "area error", "smoothness error", "compactness error", "concavity error",
    "concave points error", "symmetry error", "fractal dimension error", "worst radius", "worst texture",
    "worst perimeter", "worst area", "worst smoothness", "worst compactness", "worst concavity",
    "worst concave points", "worst symmetry", "worst fractal dimension",
]  # fmt: skip
_WINE_FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
    "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280/od315_of_diluted_wines", "proline",
]  # fmt: skip
_IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
_DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _spec(name: str, task: str, target: str, numeric: list[str], metric: str, **more: Any) -> dict[str, Any]:
    """A spec mapping with a fast estimator and no search; ``more`` adds or replaces top-level sections."""
    data: dict[str, Any] = {
        "name": name,
        "task": task,
        "source": {"path": f"{name}.csv"},
        "target": target,
        "features": {"numeric": numeric},
        "model": FAST_LOGISTIC if task == "classification" else FAST_RIDGE,
        "gates": {"metric": metric},
        # the decisions judged here do not read importance; the governance tests measure it themselves
        "explanations": {"importance": False},
    }
    data.update(more)
    return data


BREAST_CANCER = Bundled(
    name="breast_cancer",
    description="binary, labels 'malignant'/'benign', 30 numeric features, 569 rows",
    spec_data=_spec(
        "breast_cancer", "classification", "diagnosis", _BREAST_CANCER_FEATURES, "f1", positive_class="malignant"
    ),
    weak_features=("fractal dimension error",),
    loader=_breast_cancer,
)
WINE = Bundled(
    name="wine",
    description="3 classes, 13 numeric features, 178 rows",
    spec_data=_spec("wine", "classification", "cultivar", _WINE_FEATURES, "f1_macro", split={"test_size": 0.3}),
    weak_features=("ash",),
    loader=_wine,
)
IRIS = Bundled(
    name="iris",
    description="3 classes, 4 numeric features, 150 rows",
    spec_data=_spec("iris", "classification", "species", _IRIS_FEATURES, "accuracy", split={"test_size": 0.35}),
    weak_features=("sepal width (cm)",),
    loader=_iris,
)
DIABETES = Bundled(
    name="diabetes",
    description="regression, 10 numeric features, 442 rows",
    spec_data=_spec("diabetes", "regression", "progression", _DIABETES_FEATURES, "rmse", split={"test_size": 0.25}),
    weak_features=("sex",),
    loader=_diabetes,
)


# --- generated sets -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated(Dataset):
    """A synthetic problem: ``draw(rng, rows)`` samples rows; a trial's history and windows are independent draws."""

    draw: Callable[[np.random.Generator, int], pd.DataFrame] = field(default=lambda rng, rows: pd.DataFrame())
    history_rows: int = 2000
    window_rows: int = 300

    def history(self, trial: int) -> pd.DataFrame:
        return self.draw(self.rng(trial, 0), self.history_rows)

    def window(self, trial: int, index: int = 0) -> pd.DataFrame:
        return self.draw(self.rng(trial, 1 + index), self.window_rows)


def draw_churn(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Customers who churn ('Yes') or not ('No'), about 30 % 'Yes'; 2 % of the charges are missing."""
    tenure = rng.gamma(2.0, 12.0, rows).round(1)
    charges = rng.normal(70, 20, rows).clip(15, 150).round(2)
    calls = rng.poisson(1.5, rows)
    contract = rng.choice(["month-to-month", "one year", "two year"], rows, p=[0.55, 0.25, 0.20])
    payment = rng.choice(["card", "bank transfer", "check"], rows, p=[0.5, 0.3, 0.2])
    effect = pd.Series(contract).map({"month-to-month": 0.8, "one year": -0.4, "two year": -1.6}).to_numpy()
    logit = -1.0 - 0.05 * (tenure - 24) + 0.02 * (charges - 70) + 0.5 * (calls - 1.5) + effect
    churn = np.where(rng.random(rows) < _expit(logit), "Yes", "No")
    charges[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "contract": contract,
            "payment": payment,
            "churn": churn,
        }
    )


def draw_fraud(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Card payments, about 3 % of them fraud (label 1, the others 0)."""
    log_amount = rng.normal(3.5, 1.0, rows)
    hour = rng.integers(0, 24, rows)
    distance = rng.gamma(2.0, 10.0, rows)
    merchant_risk = rng.beta(2.0, 5.0, rows)
    account_age = rng.gamma(3.0, 200.0, rows)
    logit = (
        -6.2
        + 1.2 * (log_amount - 3.5)
        + 2.0 * (merchant_risk - 2 / 7) / 0.16
        + 0.8 * (distance - 20) / 14.14
        - 0.8 * (account_age - 600) / 346
    )
    fraud = (rng.random(rows) < _expit(logit)).astype(int)
    return pd.DataFrame(
        {
            "amount": np.exp(log_amount).round(2),
            "hour": hour,
            "distance_km": distance.round(2),
            "merchant_risk": merchant_risk.round(4),
            "account_age_days": account_age.round(),
            "fraud": fraud,
        }
    )


def draw_houses(rng: np.random.Generator, rows: int, first_year: int = 2005, years: int = 15) -> pd.DataFrame:
    """House sales over ``years`` calendar years (an integer ``year``), prices in thousands; no trend over time."""
    year = first_year + np.arange(rows) * years // rows
    area = rng.gamma(6.0, 15.0, rows).round(1)
    rooms = np.clip(np.round(area / 25 + rng.normal(0, 0.7, rows)), 1, 8)
    distance = rng.gamma(2.0, 4.0, rows).round(2)
    age = rng.uniform(0, 80, rows).round()
    district = rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1])
    premium = pd.Series(district).map({"north": 40.0, "south": 0.0, "east": -20.0, "west": 60.0}).to_numpy()
    price = 3.0 * area + 12.0 * rooms - 9.0 * distance - 0.3 * age + premium + rng.normal(0, 50, rows)
    return pd.DataFrame(
        {
            "year": year,
            "area_m2": area,
            "rooms": rooms,
            "distance_center_km": distance,
            "age_years": age,
            "district": district,
            "price_k": (100 + price).round(1),
        }
    )


def draw_turbine(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Wind-turbine readings with spaces, units and symbols in the column names; power from the power curve."""
    wind = rng.weibull(2.0, rows) * 8.5
    temp = rng.normal(12, 8, rows)
    density = 1.225 * 288.15 / (temp + 273.15) + rng.normal(0, 0.01, rows)
    pitch = rng.normal(2.0, 1.5, rows)
    kind = rng.choice(["V90 2MW", "E-82 2.3MW", "SWT 3.6"], rows, p=[0.5, 0.3, 0.2])
    rated = pd.Series(kind).map({"V90 2MW": 2000.0, "E-82 2.3MW": 2300.0, "SWT 3.6": 3600.0}).to_numpy()
    curve = np.where((wind >= 3) & (wind <= 25), np.clip((wind - 3) / 9, 0, 1) ** 3, 0.0)
    power = rated * curve * density / 1.225 + rng.normal(0, 60, rows)
    return pd.DataFrame(
        {
            "wind speed (m/s)": wind.round(2),
            "temp °C": temp.round(1),
            "air density (kg/m³)": density.round(4),
            "blade pitch (°)": pitch.round(2),
            "turbine type": kind,
            "power (kW)": power.round(1),
        }
    )


def draw_segments(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Customers in three segments: 'standard' (~60 %), 'premium' (~38 %) and a rare 'vip' (~2 %)."""
    spend = rng.gamma(3.0, 40.0, rows)
    visits = rng.poisson(6.0, rows)
    tenure = rng.uniform(0, 10, rows)
    channel = rng.choice(["web", "store", "app"], rows, p=[0.5, 0.3, 0.2])
    latent = (spend - 120) / 69 + 0.8 * (visits - 6) / 2.45 + 0.05 * (tenure - 5) + rng.normal(0, 0.6, rows)
    segment = np.select([latent < 0.25, latent < 3.2], ["standard", "premium"], "vip")
    return pd.DataFrame(
        {
            "spend": spend.round(2),
            "visits": visits,
            "tenure_years": tenure.round(2),
            "channel": channel,
            "segment": segment,
        }
    )


@dataclass(frozen=True)
class MissingClass(Generated):
    """Windows that happen to hold no row of the class ``missing`` (it is rare, and absent that week)."""

    missing: str = "vip"

    def window(self, trial: int, index: int = 0) -> pd.DataFrame:
        rows = super().window(trial, index)
        return rows[rows[self.spec.target] != self.missing].reset_index(drop=True)


def draw_renewals(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Subscriptions renewed or not, as booleans (about 35 % True)."""
    age = rng.normal(45, 12, rows).round()
    log_income = rng.normal(10.5, 0.4, rows)
    visits = rng.poisson(3.0, rows)
    discount = rng.choice(["none", "10%", "20%"], rows, p=[0.6, 0.25, 0.15])
    effect = pd.Series(discount).map({"none": 0.0, "10%": 0.5, "20%": 1.0}).to_numpy()
    logit = -1.0 + 0.6 * (visits - 3) + effect + 1.5 * (log_income - 10.5) / 0.4
    renewed = rng.random(rows) < _expit(logit)
    return pd.DataFrame(
        {
            "age": age,
            "income": np.exp(log_income).round(),
            "visits_last_month": visits,
            "discount": discount,
            "renewed": renewed,
        }
    )


CHURN = Generated(
    name="churn",
    description="binary 'Yes'/'No', numeric and categorical features, missing values, no time column",
    spec_data=_spec(
        "churn",
        "classification",
        "churn",
        ["tenure_months", "monthly_charges", "support_calls"],
        "roc_auc",
        features={
            "numeric": ["tenure_months", "monthly_charges", "support_calls"],
            "categorical": ["contract", "payment"],
        },
    ),
    weak_features=("payment",),
    draw=draw_churn,
    history_rows=3000,
    window_rows=500,
)
FRAUD = Generated(
    name="fraud",
    description="binary 1/0 with 3 % positives",
    spec_data=_spec(
        "fraud",
        "classification",
        "fraud",
        ["amount", "hour", "distance_km", "merchant_risk", "account_age_days"],
        "pr_auc",
    ),
    weak_features=("hour",),
    draw=draw_fraud,
    history_rows=10000,
    window_rows=2000,
)
HOUSES = Generated(
    name="houses",
    description="regression, an integer 'year' time column, split by time",
    spec_data=_spec(
        "houses",
        "regression",
        "price_k",
        [],
        "r2",
        source={"path": "houses.csv", "time_column": "year", "time_unit": "year"},
        features={
            "numeric": ["area_m2", "rooms", "distance_center_km", "age_years"],
            "categorical": ["district"],
        },
        split={"method": "time", "test_size": 0.2},
        monitoring={"window_days": 365},
    ),
    weak_features=("age_years",),
    draw=draw_houses,
    history_rows=4500,
    window_rows=300,
)
TURBINE = Generated(
    name="turbine",
    description="regression, column names with spaces, units and symbols, a non-linear model",
    spec_data=_spec(
        "turbine",
        "regression",
        "power (kW)",
        [],
        "mae",
        features={
            "numeric": ["wind speed (m/s)", "temp °C", "air density (kg/m³)", "blade pitch (°)"],
            "categorical": ["turbine type"],
        },
        model={
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 100, "random_state": 0},
            "search": None,
        },
    ),
    weak_features=("blade pitch (°)",),
    draw=draw_turbine,
    history_rows=2000,
    window_rows=300,
)
TURBINE_DAILY = replace(
    TURBINE,
    name="turbine_daily",
    description="the turbine data monitored a day at a time: windows of 144 ten-minute readings",
    spec_data={**TURBINE.spec_data, "name": "turbine_daily", "monitoring": {"window_days": 1}},
    window_rows=144,
)
SEGMENTS = MissingClass(
    name="segments",
    description="3 classes, one rare; the monitored windows hold none of it",
    spec_data=_spec(
        "segments",
        "classification",
        "segment",
        [],
        "f1_macro",
        features={"numeric": ["spend", "visits", "tenure_years"], "categorical": ["channel"]},
    ),
    weak_features=("channel",),
    draw=draw_segments,
    history_rows=1500,
    window_rows=400,
)
RENEWALS = Generated(
    name="renewals",
    description="booleans as labels (positive class True)",
    spec_data=_spec(
        "renewals",
        "classification",
        "renewed",
        [],
        "f1",
        positive_class=True,
        features={"numeric": ["age", "income", "visits_last_month"], "categorical": ["discount"]},
    ),
    weak_features=("age",),
    draw=draw_renewals,
    history_rows=1200,
    window_rows=200,
)

#: Every dataset, by name.
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (BREAST_CANCER, WINE, IRIS, DIABETES, CHURN, FRAUD, HOUSES, TURBINE, TURBINE_DAILY, SEGMENTS, RENEWALS)
}

"""Exceptions shared by the core and the Airflow adapters.

``BadInputError`` and its subclasses mean "retrying cannot help": the operators turn them into
``AirflowFailException`` so Airflow fails the task at once instead of retrying it.
"""

from __future__ import annotations


class MLCError(Exception):
    """Base class of every error raised by airflow-mlc."""


class BadInputError(MLCError):
    """The input (data, spec or arguments) is wrong; the same input will fail again."""


class SpecError(BadInputError):
    """A model spec is invalid; the message names the file, the field and the problem."""


class DataError(BadInputError):
    """The data breaks the spec's contract; the message names the column, the rule and the value."""


class EmptyWindowError(DataError):
    """The source holds no rows for the requested data window."""

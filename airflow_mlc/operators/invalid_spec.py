"""InvalidSpecOperator: the one task of the placeholder DAG of an invalid spec file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlc.serialized_fields import ParamsSerializedOnce

if TYPE_CHECKING:
    from airflow.sdk import Context


class InvalidSpecOperator(ParamsSerializedOnce, BaseOperator):
    """Fail at once, without retries, with why a model spec is invalid.

    The message is not templated: a spec error may quote YAML that looks like Jinja.

    Args:
        message: The spec error, ``<file>: <field>: <problem>``.
        **kwargs: Passed to ``BaseOperator``; ``retries`` defaults to 0.
    """

    ui_color = "#f5b7b1"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Context) -> NoReturn:
        """Raise ``AirflowFailException`` with the spec error, so the task fails and is not retried."""
        raise AirflowFailException(self.message)

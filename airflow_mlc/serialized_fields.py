"""What the provider's operators and sensors leave out of Airflow's generic field serialisation."""

from __future__ import annotations


class ParamsSerializedOnce:
    """Mixed into an operator class before ``BaseOperator``: its ``params`` are serialised once, not three times.

    Airflow 3.3 lists ``params`` among every operator's serialised fields, so serialising a task
    first compares its ``ParamsDict`` with ``{}`` and turns it into text, each of which validates every param
    against its JSON schema (a ``check_schema`` of the meta-schema per param), and then throws the text away:
    the serialiser writes the task's ``params`` itself, from ``_serialize_params_dict``. Every task carries
    its DAG's params, so on the template DAGs this was about 80 % of the DAG processor's serialisation time.
    Leaving ``params`` out of the generic fields changes nothing in the serialised DAG.
    """

    @classmethod
    def get_serialized_fields(cls) -> frozenset[str]:
        fields: frozenset[str] = super().get_serialized_fields()  # type: ignore[misc]
        return fields - {"params"}

"""airflow-mlc: the machine-learning life cycle as an Apache Airflow provider."""

__version__ = "0.1.0"

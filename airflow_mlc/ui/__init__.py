"""The Models page: the life cycle of every model, inside the Airflow UI (an Airflow plugin of this provider)."""

"""The plain-Python core of airflow-mlc: every life-cycle phase, with no Airflow import.

Heavy libraries (pandas, scikit-learn, mlflow, evidently) are imported by these modules, so DAG files
and operator modules import the core only inside ``execute``.
"""

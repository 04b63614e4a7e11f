"""Load the demo data into the source table ``bike_rentals`` of the deployment spec (docker/specs/bikes.yaml).

The data is ``dags/data/bikeshare_hourly_2011.csv``: the hourly rentals of the Capital Bikeshare system
(Washington, D.C.) in 2011, from the UCI Machine Learning Repository "Bike Sharing" data set (Fanaee-T, H. and
Gama, J., 2013), licensed CC BY 4.0. Its attribution is in ``dags/data/README.md``.

The table is created, or replaced when it exists, in one transaction, with the CSV's columns and ``timestamp``
as a timestamp column. Running it again leaves the same rows. The compose stack runs it in ``airflow-init``::

    python docker/load_source_table.py --url postgresql+psycopg2://airflow:...@postgres:5432/mlc
    MLC_SOURCE_DB_URL=postgresql+psycopg2://... python docker/load_source_table.py --csv path/to/data.csv

Any SQLAlchemy URL works (``sqlite:///source.db`` for a try on a laptop).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

TABLE = "bike_rentals"
TIME_COLUMN = "timestamp"
#: The CSV beside the template DAG file, in a checkout of the repository.
DEFAULT_CSV = Path(__file__).resolve().parents[1] / "dags" / "data" / "bikeshare_hourly_2011.csv"


def load(url: str, csv: str | os.PathLike[str], table: str = TABLE) -> int:
    """Create or replace ``table`` in the database at ``url`` with the rows of ``csv``.

    Args:
        url: SQLAlchemy URL of the database.
        csv: The CSV file; its ``timestamp`` column is parsed as a datetime.
        table: The name of the table.

    Returns:
        The number of rows loaded.
    """
    import pandas as pd
    import sqlalchemy

    frame = pd.read_csv(csv, parse_dates=[TIME_COLUMN])
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:  # readers see the old rows or the new ones, never an empty table
            frame.to_sql(table, connection, index=False, if_exists="replace", chunksize=1000, method="multi")
    finally:
        engine.dispose()
    return len(frame)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--url`` (or ``$MLC_SOURCE_DB_URL``), ``--csv`` (or ``$MLC_SOURCE_CSV``), ``--table``."""
    parser = argparse.ArgumentParser(description="Load the demo data into the source table of the deployment spec.")
    parser.add_argument(
        "--url", default=os.environ.get("MLC_SOURCE_DB_URL"), help="SQLAlchemy URL (default: $MLC_SOURCE_DB_URL)"
    )
    parser.add_argument(
        "--csv",
        default=os.environ.get("MLC_SOURCE_CSV", str(DEFAULT_CSV)),
        help="the CSV file (default: $MLC_SOURCE_CSV, else the demo data of this checkout)",
    )
    parser.add_argument("--table", default=TABLE, help=f"the table (default: {TABLE})")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give the database as --url or in MLC_SOURCE_DB_URL")
    if not Path(args.csv).is_file():
        parser.error(f"no CSV file at {args.csv}")
    rows = load(args.url, args.csv, args.table)
    print(f"loaded {rows} rows from {args.csv} into table {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

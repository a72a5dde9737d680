"""The database's plan and own time of every QIDO shape of bench/index_growth.py, on an index
that bench grew (run it while the bench runs; it only reads):

    python bench/index_plans.py \
        sqlite:////tmp/radpacs-index-growth-XXXX/sqlite/data/index.sqlite 100000
    python bench/index_plans.py \
        'postgresql+psycopg://postgres@127.0.0.1/index?options=-csearch_path%3Dgrowth_XX' 100000

The second argument is the number of instances stored (the shapes aim at data that exists).
SQLite: the minimum of 9 runs of the statement in process; PostgreSQL: the minimum of 3
EXPLAIN ANALYZE execution times. The engine is radpacs's own (its SQLite pragmas, its
PostgreSQL session settings); add ``-crandom_page_cost%3D4`` to the URL's options to see
PostgreSQL's default planner costs.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from index_growth import qido_shapes
from radpacs.archive import Level, Query, parse_query
from radpacs.archive.database import create_index_engine
from radpacs.archive.search import Search


def shape_query(path: str, params: dict[str, str]) -> Query:
    """The archive query that the DICOMweb route for ``path`` and ``params`` makes."""
    parts = path.strip("/").split("/")
    pairs = list(params.items())
    if parts == ["studies"]:
        return parse_query(Level.STUDY, pairs)
    if parts[-1] == "series":
        return parse_query(Level.SERIES, pairs, study_uid=parts[1])
    return parse_query(Level.INSTANCE, pairs, study_uid=parts[1], series_uid=parts[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("stored", type=int)
    parser.add_argument("--seed", type=int, default=24)
    args = parser.parse_args()
    engine = create_index_engine(args.url)
    postgresql = engine.dialect.name == "postgresql"
    for name, (path, params) in qido_shapes(args.seed, args.stored).items():
        query = shape_query(path, params)
        statement = Search._search_statement(query).limit(query.limit + 1)
        compiled = statement.compile(engine, compile_kwargs={"render_postcompile": True})
        bound: object = compiled.params
        if compiled.positiontup:  # SQLite's qmark style
            bound = tuple(compiled.params[key] for key in compiled.positiontup)
        best = float("inf")
        with engine.connect() as connection:
            if postgresql:
                for _ in range(3):
                    lines = [
                        str(row[0])
                        for row in connection.exec_driver_sql(f"EXPLAIN ANALYZE {compiled}", bound)
                    ]
                    found = re.search(r"Execution Time: ([\d.]+)", lines[-1])
                    best = min(best, float(found.group(1)) if found else best)
                plan = "; ".join(
                    re.sub(r"\s*\(cost.*", "", line).strip(" ->")
                    for line in lines
                    if "Scan" in line or "Sort  " in line
                )
            else:
                plan = "; ".join(
                    str(row[-1])
                    for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", bound)
                )
                for _ in range(9):
                    started = time.perf_counter()
                    connection.exec_driver_sql(str(compiled), bound).all()
                    best = min(best, (time.perf_counter() - started) * 1000)
            rows = len(connection.exec_driver_sql(str(compiled), bound).all())
        print(f"{name:<28} {best:8.3f} ms  {rows:5d} rows  {plan}", flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()

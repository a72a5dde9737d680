"""Migration 0009 on archives made with the old schema (DICOM JSON as text), on SQLite and
PostgreSQL: rows converted in batches with progress, an interrupted run resumed, metadata
unchanged; and the PostgreSQL patient-name prefix index that EXPLAIN shows in use."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zstandard
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text

from conftest import make_ct, to_bytes
from radpacs.archive import Archive, Level, parse_query
from radpacs.archive.database import _MIGRATIONS, create_index_engine, migrate
from radpacs.archive.index import Patient
from radpacs.archive.search import Search
from radpacs.settings import Settings


def _head() -> str:
    """The newest revision: the conversion is 0009, later migrations may follow it."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None and head >= "0009"
    return head


def _alembic(
    engine: Engine, action: Callable[[Config, str], None], revision: str, batch: int = 0
) -> None:
    """What migrate() does, to any revision, with ``batch`` rows per conversion commit."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if batch:
        config.attributes["metadata_batch"] = batch
    with engine.connect() as connection:
        connection.begin()
        config.attributes["connection"] = connection
        action(config, revision)
        connection.commit()


@pytest.fixture
def old_archive(settings: Settings) -> Iterator[tuple[Engine, dict[str, bytes]]]:
    """An archive of 3 studies x 5 instances whose index is back at revision 0008 (metadata
    as JSON text), and each study's /metadata answer before the change."""
    study_uids = [f"1.2.826.0.1.3680043.8.498.{9100 + n}" for n in range(3)]
    with Archive.from_settings(settings) as archive:
        for n, study_uid in enumerate(study_uids):
            series_uid = f"{study_uid}.1"
            archive.store_many(
                [
                    to_bytes(make_ct(study_uid, series_uid, PatientName=f"GAGNON^ANN{n}"))
                    for _ in range(5)
                ]
            )
        before = {uid: archive.metadata(uid) for uid in study_uids}
    engine = create_index_engine(settings.resolved_database_url)
    _alembic(engine, command.downgrade, "0008")
    try:
        yield engine, before
    finally:
        engine.dispose()


def _columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("instance")}


def _version(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.scalar(text("SELECT version_num FROM alembic_version")))


def test_old_schema_rows_are_converted_with_progress(
    old_archive: tuple[Engine, dict[str, bytes]],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, before = old_archive
    assert "metadata_json" in _columns(engine) and "metadata_zstd" not in _columns(engine)
    with engine.connect() as connection:
        texts = connection.scalars(text("SELECT metadata_json FROM instance")).all()
    assert len(texts) == 15 and all(json.loads(t)["00100010"] for t in texts)

    with caplog.at_level(logging.INFO, logger="radpacs.archive.migrations"):
        migrate(engine)
    assert _version(engine) == _head()
    assert "metadata_json" not in _columns(engine)
    assert any("15 of 15 instances compressed" in r.getMessage() for r in caplog.records)
    with Archive.from_settings(settings) as archive:
        for study_uid, answer in before.items():
            assert json.loads(archive.metadata(study_uid)) == json.loads(answer)


def test_an_interrupted_conversion_resumes(
    old_archive: tuple[Engine, dict[str, bytes]],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, before = old_archive
    real_compress = zstandard.compress
    calls = {"n": 0}

    def crash_after_six(data: bytes, level: int = 3) -> Any:
        calls["n"] += 1
        if calls["n"] > 6:
            raise RuntimeError("power cut")
        return real_compress(data, level)

    monkeypatch.setattr(zstandard, "compress", crash_after_six)
    with pytest.raises(RuntimeError, match="power cut"):
        _alembic(engine, command.upgrade, "head", batch=4)
    assert _version(engine) == "0008"
    with engine.connect() as connection:
        converted = connection.scalar(
            text("SELECT count(*) FROM instance WHERE metadata_zstd IS NOT NULL")
        )
    assert converted == 4  # the first batch was committed, the second one was not

    monkeypatch.setattr(zstandard, "compress", real_compress)
    with caplog.at_level(logging.INFO, logger="radpacs.archive.migrations"):
        _alembic(engine, command.upgrade, "head", batch=4)
    messages = [r.getMessage() for r in caplog.records]
    assert any("11 of 15 instances to compress" in m for m in messages)
    assert any("11 of 11 instances compressed" in m for m in messages)
    assert _version(engine) == _head()
    with Archive.from_settings(settings) as archive:
        for study_uid, answer in before.items():
            assert json.loads(archive.metadata(study_uid)) == json.loads(answer)


def test_patient_name_prefix_is_an_index_range_scan(archive: Archive) -> None:
    """PatientName=Gagn* is bounded by an index on both databases: PostgreSQL's pattern index
    (added by 0009), SQLite's plain one (its LIKE is case-sensitive, see database.py)."""
    archive.store_many([to_bytes(make_ct(PatientName=f"GAGNON^P{n}")) for n in range(3)])
    query = parse_query(Level.STUDY, [("PatientName", "Gagn*")])
    postgresql = archive.engine.dialect.name == "postgresql"
    # SQLite's planner starts from the (tiny) study table here; its patient lookup is checked
    statement = select(Patient.pk).where(*query.conditions)
    if postgresql:
        statement = Search._search_statement(query)
    compiled = statement.compile(archive.engine)
    params: Any = compiled.params
    if compiled.positiontup:  # SQLite's qmark style
        params = tuple(compiled.params[name] for name in compiled.positiontup)
    with archive.engine.connect() as connection:
        connection.execute(
            text(
                "INSERT INTO patient (patient_id, issuer, patient_name, patient_name_lower,"
                " birth_date, sex) SELECT 'FILL' || g, '', 'FILL^' || g, 'fill^' || g, '', ''"
                " FROM generate_series(1, 5000) AS g"
                if postgresql
                else "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g"
                " WHERE n < 5000) INSERT INTO patient (patient_id, issuer, patient_name,"
                " patient_name_lower, birth_date, sex) SELECT 'FILL' || n, '', 'FILL^' || n,"
                " 'fill^' || n, '', '' FROM g"
            )
        )
        connection.execute(text("ANALYZE patient" if postgresql else "ANALYZE"))
        if postgresql:
            connection.execute(text("SET LOCAL enable_seqscan = off"))
        explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
        plan = "\n".join(
            str(row[-1]) for row in connection.exec_driver_sql(explain + str(compiled), params)
        )
        connection.rollback()
    if postgresql:  # a plain or bitmap index scan of the pattern index, bounded by the prefix
        assert re.search(r"Index Scan (using|on) ix_patient_name_lower_pattern", plan), plan
        assert "Index Cond: (((patient_name_lower)::text ~>=~ 'gagn'" in plan, plan
    else:
        assert "INDEX ix_patient_patient_name_lower (patient_name_lower>? AND" in plan, plan
    assert len(archive.search(query).matches) == 3


def _plan(archive: Archive, query: Any) -> str:
    """The database's plan of the study search for ``query``, as the server runs it."""
    compiled = Search._search_statement(query).limit(query.limit + 1).compile(archive.engine)
    params: Any = compiled.params
    if compiled.positiontup:  # SQLite's qmark style
        params = tuple(compiled.params[name] for name in compiled.positiontup)
    postgresql = archive.engine.dialect.name == "postgresql"
    explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
    with archive.engine.connect() as connection:
        return "\n".join(
            str(row[-1]) for row in connection.exec_driver_sql(explain + str(compiled), params)
        )


def test_name_and_date_matches_reach_studies_by_index(archive: Archive) -> None:
    """On an archive of 20,000 studies, a name prefix that matches 2 % of the patients and a
    one-month date range read only the matching rows: no scan of every study or patient,
    which PostgreSQL chose with its default random_page_cost (database.py sets 1.1)."""
    postgresql = archive.engine.dialect.name == "postgresql"
    numbers = (
        "generate_series(1, {n}) AS g(n)"
        if postgresql
        else "(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {n})"
        " SELECT n FROM g)"
    )
    name = "CASE WHEN n % 50 = 0 THEN 'gagnon^p' ELSE 'fill^' END || n"
    day = (
        "to_char(DATE '2015-01-01' + (n * 7919) % 3650, 'YYYYMMDD')"
        if postgresql
        else "strftime('%Y%m%d', '2015-01-01', '+' || ((n * 7919) % 3650) || ' days')"
    )
    with archive.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO patient (pk, patient_id, issuer, patient_name, patient_name_lower,"
                f" birth_date, sex) SELECT n, 'P' || n, '', upper({name}), {name}, '', ''"
                f" FROM {numbers.format(n=10_000)}"
            )
        )
        connection.execute(
            text(
                "INSERT INTO study (pk, study_uid, patient_pk, study_date, study_time,"
                " accession_number, study_id, study_description, referring_physician,"
                " referring_physician_lower, version, created_at, updated_at) SELECT n,"
                f" '1.2.' || n, (n - 1) / 2 + 1, {day}, '120000', 'A' || n, '', '', '', '',"
                f" 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM {numbers.format(n=20_000)}"
            )
        )
        connection.execute(text("ANALYZE"))
    by_name = _plan(archive, parse_query(Level.STUDY, [("PatientName", "Gagn*")]))
    by_date = _plan(archive, parse_query(Level.STUDY, [("StudyDate", "20200101-20200131")]))
    if postgresql:
        assert "Seq Scan on study" not in by_name, by_name
        assert "Seq Scan on patient" not in by_name + by_date, by_name + by_date
        assert re.search(r"Index (Only )?Scan (using|on) ix_study_patient_pk", by_name), by_name
        assert re.search(r"Index Scan (Backward )?(using|on) ix_study_study_date", by_date), by_date
    else:
        assert "SEARCH study USING INDEX ix_study_patient_pk (patient_pk=?)" in by_name, by_name
        assert "SEARCH study USING INDEX ix_study_study_date (study_date>? AND" in by_date, by_date
    assert len(archive.search(parse_query(Level.STUDY, [("PatientName", "Gagn*")])).matches) == 400

"""What the store path, retrieval and delete share: the instance rows of a resource, the
metadata versions they bump, and removing a file no row refers to any more."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import BindParameter

from radpacs.archive.blobs import BlobStore
from radpacs.archive.index import Instance, Series, Study, utc_now
from radpacs.errors import StorageError

__all__ = ["bump_versions", "delete_unreferenced", "describe", "instance_rows"]

log = logging.getLogger("radpacs.archive")

_BUMPED_SERIES = Series.pk.in_(bindparam("series_pks", expanding=True))
_BUMP_SERIES = (
    update(Series)
    .where(_BUMPED_SERIES)
    .values(version=Series.version + 1, updated_at=bindparam("now"))
)
_BUMP_STUDIES = (
    update(Study)
    .where(Study.pk.in_(select(Series.study_pk).where(_BUMPED_SERIES).scalar_subquery()))
    .values(version=Study.version + 1, updated_at=bindparam("now"))
)


def instance_rows(
    study_uid: str | BindParameter[str],
    series_uid: str | BindParameter[str] | None,
    sop_uid: str | BindParameter[str] | None,
    *columns: Any,
) -> Any:
    """SELECT ``columns`` (default: the Instance row with its series and study UIDs) of
    the instances of a study, series or instance, in series and instance order."""
    statement = (
        select(*(columns or (Instance, Series.series_uid, Study.study_uid)))
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.study_uid == study_uid)
    )
    if series_uid is not None:
        statement = statement.where(Series.series_uid == series_uid)
    if sop_uid is not None:
        statement = statement.where(Instance.sop_uid == sop_uid)
    return statement.order_by(
        Series.series_number, Series.pk, Instance.instance_number, Instance.pk
    )


def describe(study_uid: str, series_uid: str | None, sop_uid: str | None) -> str:
    """How an error names a study, series or instance."""
    if sop_uid is not None:
        return f"instance {sop_uid} in series {series_uid} of study {study_uid}"
    if series_uid is not None:
        return f"series {series_uid} in study {study_uid}"
    return f"study {study_uid}"


def bump_versions(session: Session, series_pks: set[int]) -> None:
    """Raise the metadata versions (ETags) of these series and of their studies."""
    if not series_pks:
        return
    parameters = {"series_pks": sorted(series_pks), "now": utc_now()}
    connection = session.connection()  # Core statements: no ORM bookkeeping
    connection.execute(_BUMP_SERIES, parameters)
    connection.execute(_BUMP_STUDIES, parameters)


def delete_unreferenced(read: sessionmaker[Session], blobs: BlobStore, key: str) -> None:
    """Remove the file under ``key`` unless an index row still refers to it; a failure is
    logged (``radpacs check`` reports the orphan)."""
    with read() as session:
        referenced = session.scalar(select(Instance.pk).where(Instance.storage_key == key))
    if referenced is None:
        try:
            blobs.delete(key)
        except StorageError:
            log.warning("could not remove unreferenced blob %s; `radpacs check` will", key)

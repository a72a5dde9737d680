"""The archive: the only code that touches the index database and the stored files."""

from radpacs.archive.archive import (
    Archive,
    CheckReport,
    InstanceFile,
    Outcome,
    SearchResult,
    StoreResult,
)
from radpacs.archive.blobs import FileBlob
from radpacs.archive.query import Level, Query, parse_query

__all__ = [
    "Archive",
    "CheckReport",
    "FileBlob",
    "InstanceFile",
    "Level",
    "Outcome",
    "Query",
    "SearchResult",
    "StoreResult",
    "parse_query",
]

"""DICOM networking (DIMSE, PS3.7): radpacs as an SCP for remote nodes, and as their SCU.

The server (:class:`DimseServer`) answers C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET over the
same :class:`~radpacs.archive.Archive` as DICOMweb; :mod:`radpacs.dimse.nodes` says which
remote nodes may do what. No HTTP here: the API layer calls this package.
"""

from radpacs.dimse._ae import make_ae
from radpacs.dimse.find import QueryModel, find, instances_for, parse_identifier
from radpacs.dimse.handlers import DimseHandlers
from radpacs.dimse.nodes import Caller, NodeTable, RefusedCaller
from radpacs.dimse.server import DimseServer

__all__ = [
    "Caller",
    "DimseHandlers",
    "DimseServer",
    "NodeTable",
    "QueryModel",
    "RefusedCaller",
    "find",
    "instances_for",
    "make_ae",
    "parse_identifier",
]

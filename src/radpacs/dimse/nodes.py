"""Which remote DICOM nodes may do what: the ``dimse_nodes`` table of the settings.

A calling AE title is looked up among the configured nodes (Orthanc's DicomModalities). A
known node may do what its ``permissions`` list; when it has a ``host`` and ``check_host``,
the association must come from that host's address. An unknown AE title is refused, unless
``dimse_allow_unknown`` is set: then it may echo, store, find and get (a C-MOVE needs a known
destination in any case).

Example::

    table = NodeTable.from_settings(settings)
    caller = table.caller("CT1", "10.0.0.7")   # Caller, or RefusedCaller with the reason
    caller.may(DimsePermission.STORE)
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache

from radpacs.errors import NotFound
from radpacs.settings import DimseNode, DimsePermission, Settings

__all__ = ["UNKNOWN_PERMISSIONS", "Caller", "NodeTable", "RefusedCaller"]

UNKNOWN_PERMISSIONS = frozenset(
    {DimsePermission.ECHO, DimsePermission.STORE, DimsePermission.FIND, DimsePermission.GET}
)


@dataclass(frozen=True)
class Caller:
    """An accepted calling AE: its name in the table ('' when unknown) and permissions."""

    ae_title: str
    address: str
    name: str
    permissions: frozenset[DimsePermission]

    def may(self, permission: DimsePermission | str) -> bool:
        return DimsePermission(permission) in self.permissions


@dataclass(frozen=True)
class RefusedCaller:
    """A calling AE that may not associate, and why (for the audit and the log)."""

    ae_title: str
    address: str
    reason: str


@lru_cache(maxsize=256)
def _addresses(host: str) -> frozenset[str]:
    """The IP addresses ``host`` names (itself when it is an address); empty if unknown."""
    try:
        return frozenset({str(ipaddress.ip_address(host))})
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


class NodeTable:
    """The configured remote nodes, looked up by name or AE title."""

    def __init__(self, nodes: dict[str, DimseNode], allow_unknown: bool = False) -> None:
        self.nodes = dict(nodes)
        self.allow_unknown = allow_unknown
        self._by_title = {node.ae_title: (name, node) for name, node in nodes.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> NodeTable:
        return cls(settings.dimse_nodes, settings.dimse_allow_unknown)

    def caller(self, ae_title: str, address: str) -> Caller | RefusedCaller:
        """Who is calling from ``address`` as ``ae_title``, or why the call is refused."""
        title = ae_title.strip()
        known = self._by_title.get(title)
        if known is None:
            if self.allow_unknown:
                return Caller(title, address, "", UNKNOWN_PERMISSIONS)
            return RefusedCaller(title, address, f"calling AE title {title!r} is not configured")
        name, node = known
        if node.check_host and address not in _addresses(node.host):
            return RefusedCaller(
                title,
                address,
                f"calling AE title {title!r} is configured for host {node.host}, not {address}",
            )
        return Caller(title, address, name, node.permissions)

    def by_title(self, ae_title: str) -> DimseNode | None:
        """The node with this AE title (a C-MOVE destination), or None."""
        known = self._by_title.get(ae_title.strip())
        return known[1] if known else None

    def get(self, name: str) -> DimseNode:
        """The node called ``name`` in the settings (or whose AE title is ``name``)."""
        node = self.nodes.get(name) or self.by_title(name)
        if node is None:
            raise NotFound(
                f"no DICOM node {name!r}; configured: {', '.join(sorted(self.nodes)) or 'none'}"
            )
        return node

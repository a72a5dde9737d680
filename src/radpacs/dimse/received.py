"""A received C-STORE data set as the store path takes it, never whole in memory when large.

pynetdicom writes each incoming C-STORE data set to a temporary PS3.10 file as it arrives
(``STORE_RECV_CHUNKED_DATASET``, set by :func:`radpacs.dimse._ae.make_ae`) and removes it once
the handler has answered. :func:`received_instance` opens that file: its bytes when it is small,
a :class:`~radpacs.archive.blobs.FileBlob` over 16 MiB (read around its Pixel Data and copied
in chunks by the store path), and :class:`InstanceTooLarge` above the size limit.
:func:`sop_uids` reads the SOP Class and Instance UIDs of either without reading pixels.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pydicom
from pynetdicom.events import Event

from radpacs.archive.blobs import BlobData, FileBlob
from radpacs.dicom.large import split_pixel_data
from radpacs.dicom.limits import check_structure
from radpacs.errors import InvalidInput

__all__ = ["LARGE_BYTES", "InstanceTooLarge", "received_instance", "sop_uids"]

LARGE_BYTES = 16 * 1024 * 1024
"""A data set over this size is stored from its file."""


class InstanceTooLarge(InvalidInput):
    """The data set is larger than the limit (the handler answers 0xA700)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the data set of {size} bytes is larger than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


@contextmanager
def received_instance(event: Event, limit: int) -> Iterator[BlobData]:
    """The C-STORE data set of ``event`` as a PS3.10 file (see the module docstring)."""
    try:
        path = event.dataset_path
    except AttributeError:  # received in memory (STORE_RECV_CHUNKED_DATASET off)
        data = event.encoded_dataset()
        if len(data) > limit:
            raise InstanceTooLarge(len(data), limit) from None
        yield data
        return
    size = os.path.getsize(path)
    if size > limit:
        raise InstanceTooLarge(size, limit)
    with open(path, "rb") as file:
        yield file.read() if size <= LARGE_BYTES else FileBlob(file, size)


def sop_uids(payload: BlobData) -> tuple[str, str]:
    """SOP Class and SOP Instance UIDs of the data set ('' where absent); InvalidInput when it
    is beyond the structure limits or cannot be read around its Pixel Data."""
    if isinstance(payload, bytes):
        head = payload
    else:
        split = split_pixel_data(payload.file, payload.size)
        head = split.head if split is not None else b"".join(payload.chunks())
    check_structure(head)
    dataset = pydicom.dcmread(
        io.BytesIO(head),
        stop_before_pixels=True,
        specific_tags=["SOPClassUID", "SOPInstanceUID"],
    )
    return str(dataset.get("SOPClassUID", "")), str(dataset.get("SOPInstanceUID", ""))

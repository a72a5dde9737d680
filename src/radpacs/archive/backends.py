"""Which blob store the settings name: the folder (default) or an S3-compatible bucket."""

from __future__ import annotations

from radpacs.archive.blobs import BlobStore, FolderBlobStore
from radpacs.settings import BlobBackend, Settings

__all__ = ["open_blob_store"]


def open_blob_store(settings: Settings, backend: BlobBackend | None = None) -> BlobStore:
    """The store ``settings.blob_backend`` (or ``backend``) names: the folder
    ``data_dir/files``, or the bucket of the ``s3_*`` settings
    (:class:`~radpacs.archive.s3blobs.S3BlobStore`; boto3 is imported only then)."""
    if (backend or settings.blob_backend) is BlobBackend.S3:
        from radpacs.archive.s3blobs import S3BlobStore

        return S3BlobStore.from_settings(settings)
    return FolderBlobStore(settings.blob_dir)

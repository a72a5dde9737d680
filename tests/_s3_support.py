"""A real S3-compatible server on loopback for the tests: moto's server mode
(``ThreadedMotoServer``, a werkzeug HTTP server speaking the S3 REST API), and settings for a
fresh bucket on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from conftest import free_port
from radpacs.settings import Settings, load_settings

ACCESS_KEY = "radpacs-test"
SECRET_KEY = "radpacs-test-secret"


class S3Server:
    """moto in server mode on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self) -> str:
        name = f"radpacs-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self, bucket: str, prefix: str = "archive/") -> dict[str, str]:
        """``RADPACS_*`` variables that point radpacs at ``bucket`` on this server."""
        return {
            "RADPACS_BLOB_BACKEND": "s3",
            "RADPACS_S3_ENDPOINT_URL": self.endpoint,
            "RADPACS_S3_BUCKET": bucket,
            "RADPACS_S3_PREFIX": prefix,
            "RADPACS_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "RADPACS_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def settings(self, data_dir: Path, bucket: str, **extra: Any) -> Settings:
        return load_settings(
            data_dir=data_dir,
            blob_backend="s3",
            s3_endpoint_url=self.endpoint,
            s3_bucket=bucket,
            s3_prefix="archive/",
            s3_access_key_id=ACCESS_KEY,
            s3_secret_access_key=SECRET_KEY,
            **extra,
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.server.start()
    yield server
    server.server.stop()

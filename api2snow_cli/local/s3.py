"""Local S3: moto's threaded server on loopback, reached by boto3 through endpoint_url."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

LOCAL_AWS_KEY = "local-access-key"
LOCAL_AWS_SECRET = "local-secret-key"  # moto accepts any credentials; these only exist on loopback


class LocalS3:
    def __init__(self, region: str = "us-east-1", host: str = "127.0.0.1") -> None:
        self.region = region
        self.host = host
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> LocalS3:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=LOCAL_AWS_KEY, aws_secret_access_key=LOCAL_AWS_SECRET,
            config=Config(request_checksum_calculation="when_required"),
        )

    def ensure_bucket(self, bucket: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

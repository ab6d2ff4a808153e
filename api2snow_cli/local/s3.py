"""Local S3: moto's threaded server on loopback, reached by boto3 through endpoint_url.

moto keeps objects in memory, so the stack saves the bucket to a folder on stop and restores it on
start: a batch staged by one `api2snow run` is still there for the next, as it would be on S3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

LOCAL_AWS_KEY = "local-access-key"
LOCAL_AWS_SECRET = "local-secret-key"  # moto accepts any credentials; these only exist on loopback
LOCAL_AWS_ROLE_ARN = "arn:aws:iam::000000000000:role/api2snow-local"  # the local AWS_IAM integration's role


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
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=LOCAL_AWS_KEY,
            aws_secret_access_key=LOCAL_AWS_SECRET,
            config=Config(request_checksum_calculation="when_required"),
        )

    def ensure_bucket(self, bucket: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)

    def restore(self, bucket: str, folder: Path) -> int:
        """Upload the objects saved in `folder` (by `save`) into the bucket; returns how many."""
        client = self.client()
        count = 0
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []:
            client.put_object(
                Bucket=bucket,
                Key=path.relative_to(folder).as_posix(),
                Body=path.read_bytes(),
                ServerSideEncryption="AES256",
            )
            count += 1
        return count

    def save(self, bucket: str, folder: Path) -> int:
        """Write every object of the bucket under `folder`, keyed by its S3 key."""
        client = self.client()
        count = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                target = folder / obj["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                count += 1
        return count

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

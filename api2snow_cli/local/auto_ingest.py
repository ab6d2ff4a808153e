"""Local Snowpipe auto-ingest: S3 event notifications to an SQS queue, consumed by the local pipe loader.

In Snowflake, an AUTO_INGEST pipe's `notification_channel` is an SQS queue that the bucket's event
notification feeds, and Snowpipe loads each created file it hears of, asynchronously. Here the same
happens on moto: the queue lives in moto's SQS (the server that serves S3 serves SQS too), the bucket
gets the configuration `api2snow deploy` would put (api2snow_cli/s3_notification.py), moto sends an
event per created object, and a thread of this process consumes the queue into `load_notified`.

A message is deleted once handled; one whose load failed for a reason other than the file itself (the
warehouse, say) is left to become visible again, as an unacknowledged SQS message does. An SQS queue is
durable and moto's is not: messages of a killed process would be lost with its memory. So at start the
queue is given again the events it would still hold: one per file an AUTO_INGEST pipe covers, created
within SQS's retention, that the pipe has neither loaded nor failed. A notification lost for good is
what the REFRESH safety net of REFRESH_PIPE and WAIT_FOR_LOAD is for, as in Snowflake.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3

from .. import s3_notification
from .pipes import LocalPipeLoader

log = logging.getLogger(__name__)

QUEUE_NAME = "sf-snowpipe-local"  # Snowflake names its queues sf-snowpipe-<id>
RECEIVE_WAIT_SECONDS = 1  # long poll: the consumer wakes within a second of stop()
VISIBILITY_TIMEOUT_SECONDS = 5  # a message whose load failed is offered again after this
RETENTION = timedelta(days=4)  # SQS's default message retention


def created_objects(body: str) -> list[tuple[str, str]]:
    """(bucket, key) of each ObjectCreated record of an S3 event message; keys arrive URL-encoded.
    Other messages (s3:TestEvent when a configuration is put) hold none."""
    try:
        records = json.loads(body).get("Records", [])
    except (ValueError, AttributeError):
        return []
    return [
        (record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"]))
        for record in records
        if str(record.get("eventName", "")).startswith("ObjectCreated")
    ]


def object_created(bucket: str, key: str) -> dict[str, Any]:
    """An S3 ObjectCreated event message, in the fields `created_objects` and Snowpipe read."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
            }
        ]
    }


class LocalSnowpipeQueue:
    """The local pipes' notification channel and its consumer thread."""

    def __init__(self, loader: LocalPipeLoader, endpoint_url: str, region: str, credentials: tuple[str, str]):
        self.loader = loader
        self.region = region
        self._sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=credentials[0],
            aws_secret_access_key=credentials[1],
        )
        self.queue_url = self._sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        self.queue_arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def channels(self) -> list[s3_notification.PipeChannel]:
        """What SHOW PIPES would give for the local AUTO_INGEST pipes, as notification channels."""
        return [
            s3_notification.PipeChannel(pipe.name, bucket, root + pipe.path, self.queue_arn)
            for pipe, bucket, root in self.loader.auto_ingest_pipes()
        ]

    def subscribe(self, s3_client: Any) -> None:
        """Put the bucket notification for the local pipes, as `api2snow deploy --apply-s3-notification`."""
        channels = self.channels()
        if channels:
            s3_notification.apply(s3_client, channels)

    def redeliver(self) -> int:
        """Send again the events the queue would hold had it outlived the last process (module docstring)."""
        since = datetime.now(UTC) - RETENTION
        sent = 0
        for pipe, bucket, _ in self.loader.auto_ingest_pipes():
            for key in self.loader.unloaded_files(pipe, since):
                self._sqs.send_message(
                    QueueUrl=self.queue_url, MessageBody=json.dumps(object_created(bucket, key))
                )
                sent += 1
        return sent

    def start(self) -> LocalSnowpipeQueue:
        self._thread = threading.Thread(target=self._consume, name="local-snowpipe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=RECEIVE_WAIT_SECONDS * 5)
            self._thread = None

    def drain(self) -> int:
        """Handle every message now in the queue, on the caller's thread; returns how many were handled."""
        handled = 0
        while batch := self._receive(wait_seconds=0):
            handled += sum(self._handle(message) for message in batch)
        return handled

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                for message in self._receive(RECEIVE_WAIT_SECONDS):
                    self._handle(message)
            except Exception as exc:  # the stand-in stopped under us, or a transient error: go on
                if self._stop.is_set():
                    return
                log.debug("local Snowpipe queue: %s", exc)
                self._stop.wait(RECEIVE_WAIT_SECONDS)

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=VISIBILITY_TIMEOUT_SECONDS,
        )
        return response.get("Messages", [])

    def _handle(self, message: dict[str, Any]) -> bool:
        try:
            for bucket, key in created_objects(message["Body"]):
                self.loader.load_notified(bucket, key)
        except Exception as exc:  # not the file's fault: leave the message to be offered again
            log.warning("local Snowpipe could not load a notified file yet: %s", exc)
            return False
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return True

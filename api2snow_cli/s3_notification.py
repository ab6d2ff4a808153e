"""The landing bucket's event notification for Snowpipe auto-ingest, built from the pipes themselves.

An AUTO_INGEST pipe loads a file when S3 tells its queue that the file was created: SHOW PIPES gives each
pipe's `notification_channel` (an SQS ARN; pipes of one account and region usually share it). The bucket
needs one queue configuration per pipe, filtered to the pipe's own path, so no two overlap (S3 refuses
overlapping filters for the same event). `api2snow deploy` prints or applies it; the local stack applies
the same configuration to moto's bucket, pointing at the local pipes' queue.

Applying merges: configurations of the bucket that are not api2snow's are kept as they are.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ID_PREFIX = "api2snow-"
EVENTS = ["s3:ObjectCreated:*"]
FILE_SUFFIX = ".jsonl.gz"  # what the pipes load; manifests (.json) raise no event


class NotificationError(RuntimeError):
    """The pipes' channels cannot be turned into a bucket notification (no channel, or two buckets)."""


@dataclass(frozen=True)
class PipeChannel:
    """One auto-ingest pipe: its name, the bucket and key prefix it loads from, and its queue."""

    pipe: str
    bucket: str
    prefix: str
    queue_arn: str


def _row_value(row: Mapping[str, Any], name: str) -> Any:
    for key in (name, name.upper(), f'"{name}"'):
        if key in row:
            return row[key]
    return None


def channels_from_show_pipes(
    rows: Iterable[Mapping[str, Any]], bucket: str, stage_prefixes: Mapping[str, str]
) -> list[PipeChannel]:
    """SHOW PIPES rows as channels; `stage_prefixes` maps a pipe name to the key prefix it loads from.

    A pipe of `stage_prefixes` without a notification_channel was created without AUTO_INGEST (a pipe is
    never recreated by deploy): that is an error naming it, not a notification that silently misses it.
    """
    found = {str(_row_value(row, "name")).upper(): _row_value(row, "notification_channel") for row in rows}
    channels: list[PipeChannel] = []
    for pipe, prefix in sorted(stage_prefixes.items()):
        name = pipe.split(".")[-1].upper()
        arn = found.get(name)
        if not arn:
            raise NotificationError(
                f"pipe {pipe} has no notification_channel: it was created without AUTO_INGEST = TRUE; "
                "see docs/DEPLOY.md 'Snowpipe auto-ingest' for recreating it without reloading files"
            )
        channels.append(PipeChannel(pipe, bucket, prefix, str(arn)))
    return channels


def queue_configurations(channels: Iterable[PipeChannel]) -> list[dict[str, Any]]:
    """One QueueConfiguration per pipe: created files with the parts' suffix under the pipe's prefix."""
    return [
        {
            "Id": f"{ID_PREFIX}{channel.pipe.split('.')[-1].lower()}",
            "QueueArn": channel.queue_arn,
            "Events": list(EVENTS),
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": channel.prefix},
                        {"Name": "suffix", "Value": FILE_SUFFIX},
                    ]
                }
            },
        }
        for channel in channels
    ]


def merged(existing: Mapping[str, Any], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """The bucket's configuration with api2snow's queue configurations replaced by `ours`."""
    config = {key: value for key, value in existing.items() if key != "ResponseMetadata"}
    kept = [q for q in config.get("QueueConfigurations", []) if not str(q.get("Id", "")).startswith(ID_PREFIX)]
    config["QueueConfigurations"] = kept + ours
    return config


def apply(s3_client: Any, channels: list[PipeChannel]) -> dict[str, Any]:
    """Put the merged configuration on the bucket (read, merge, write: S3 replaces it as a whole)."""
    buckets = {channel.bucket for channel in channels}
    if len(buckets) != 1:
        raise NotificationError(f"the pipes load from {len(buckets)} buckets, expected one: {sorted(buckets)}")
    bucket = buckets.pop()
    config = merged(s3_client.get_bucket_notification_configuration(Bucket=bucket), queue_configurations(channels))
    s3_client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return config


def aws_cli_commands(channels: list[PipeChannel]) -> str:
    """What an operator without `--apply-s3-notification` runs, with the AWS CLI, to set it up."""
    bucket = channels[0].bucket if channels else "<bucket>"
    ours = json.dumps({"QueueConfigurations": queue_configurations(channels)}, indent=2)
    return (
        "# Merge these queue configurations into the bucket's notification configuration (S3 replaces it\n"
        "# as a whole: keep the bucket's other configurations), then put it back:\n"
        f"aws s3api get-bucket-notification-configuration --bucket {shlex.quote(bucket)} > current.json\n"
        f"{ours}\n"
        f"aws s3api put-bucket-notification-configuration --bucket {shlex.quote(bucket)} "
        "--notification-configuration file://merged.json\n"
    )

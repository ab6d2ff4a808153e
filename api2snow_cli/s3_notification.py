"""The landing bucket's event notification for Snowpipe auto-ingest, built from the pipes themselves.

An AUTO_INGEST pipe loads a file when S3 tells its queue that the file was created: SHOW PIPES gives each
pipe's `notification_channel` (an SQS ARN; pipes of one account and region usually share it). The bucket
needs one queue configuration per pipe, filtered to the pipe's own path, so no two overlap (S3 refuses
overlapping filters for the same event). `api2snow deploy` prints or applies it; the local stack may apply
the same configuration to moto's bucket, pointing at the local pipes' queue.

Applying merges: configurations of the bucket that are not api2snow's are kept as they are.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .local.pipes import PipeDefinition, is_pipe_statement

ID_PREFIX = "api2snow-"
EVENTS = ["s3:ObjectCreated:*"]
FILE_SUFFIX = ".jsonl.gz"  # what the pipes load; manifests (.json) raise no event
_STAGE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?STAGE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.$\"]+)"
    r".*?\bURL\s*=\s*'(?P<url>[^']*)'",
    re.IGNORECASE | re.DOTALL,
)


class NotificationError(RuntimeError):
    """The pipes' channels cannot be turned into a bucket notification (no channel, or two buckets)."""


@dataclass(frozen=True)
class PipeChannel:
    """One auto-ingest pipe: its name, the bucket and key prefix it loads from, and its queue."""

    pipe: str
    bucket: str
    prefix: str
    queue_arn: str


@dataclass(frozen=True)
class PipeSource:
    """Where a pipe loads from, read from the SQL that creates it: the stage URL's bucket and key prefix."""

    pipe: str
    bucket: str
    prefix: str

    @property
    def schema(self) -> str:
        return self.pipe.rsplit(".", 1)[0]


def pipe_sources(statements: Iterable[str]) -> list[PipeSource]:
    """Each CREATE PIPE's bucket and key prefix: its stage's URL (CREATE STAGE in the same statements) plus
    the pipe's path under the stage. A pipe on a stage these statements do not create is an error."""
    statements = list(statements)
    stages = {m.group("name").upper(): m.group("url") for s in statements if (m := _STAGE.match(s.strip()))}
    sources = []
    for statement in statements:
        if not is_pipe_statement(statement):
            continue
        pipe = PipeDefinition.parse(statement)
        if pipe.stage not in stages:
            raise NotificationError(
                f"pipe {pipe.name} loads from stage {pipe.stage}, which is not created here"
            )
        url = urlsplit(stages[pipe.stage])
        if url.scheme != "s3" or not url.netloc:
            raise NotificationError(f"stage {pipe.stage} is not on S3: {stages[pipe.stage]!r}")
        base = url.path.lstrip("/")
        if base and not base.endswith("/"):
            base += "/"
        sources.append(PipeSource(pipe.name, url.netloc, base + pipe.path))
    return sources


def _row_value(row: Mapping[str, Any], name: str) -> Any:
    for key in (name, name.upper(), f'"{name}"'):
        if key in row:
            return row[key]
    return None


def split_by_channel(
    rows: Iterable[Mapping[str, Any]], bucket: str, stage_prefixes: Mapping[str, str]
) -> tuple[list[PipeChannel], list[str]]:
    """SHOW PIPES rows as channels for the pipes of `stage_prefixes` (pipe name -> key prefix it loads from),
    and the pipes that have no channel: absent from the rows, or created without AUTO_INGEST."""
    found = {str(_row_value(row, "name")).upper(): _row_value(row, "notification_channel") for row in rows}
    channels: list[PipeChannel] = []
    missing: list[str] = []
    for pipe, prefix in sorted(stage_prefixes.items()):
        arn = found.get(pipe.split(".")[-1].upper())
        if arn:
            channels.append(PipeChannel(pipe, bucket, prefix, str(arn)))
        else:
            missing.append(pipe)
    return channels, missing


def channels_from_show_pipes(
    rows: Iterable[Mapping[str, Any]], bucket: str, stage_prefixes: Mapping[str, str]
) -> list[PipeChannel]:
    """SHOW PIPES rows as channels; `stage_prefixes` maps a pipe name to the key prefix it loads from.

    A pipe of `stage_prefixes` without a notification_channel was created without AUTO_INGEST (a pipe is
    never recreated by deploy): that is an error naming it, not a notification that silently misses it.
    """
    channels, missing = split_by_channel(rows, bucket, stage_prefixes)
    if missing:
        raise NotificationError(f"{missing_channel_message(missing[0])}")
    return channels


def missing_channel_message(pipe: str) -> str:
    return (
        f"pipe {pipe} has no notification_channel: it was created without AUTO_INGEST = TRUE (deploy never "
        "recreates a pipe), so only the REFRESH safety net loads its files; recreate it once, after every "
        "staged batch is LOADED: docs/DEPLOY.md 'Snowpipe auto-ingest'"
    )


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
    kept = [
        q for q in config.get("QueueConfigurations", []) if not str(q.get("Id", "")).startswith(ID_PREFIX)
    ]
    config["QueueConfigurations"] = kept + ours
    return config


def _one_bucket(channels: list[PipeChannel]) -> str:
    buckets = {channel.bucket for channel in channels}
    if len(buckets) != 1:
        raise NotificationError(
            f"the pipes load from {len(buckets)} buckets, expected one: {sorted(buckets)}"
        )
    return buckets.pop()


def apply(s3_client: Any, channels: list[PipeChannel]) -> dict[str, Any]:
    """Put the merged configuration on the bucket (read, merge, write: S3 replaces it as a whole)."""
    bucket = _one_bucket(channels)
    config = merged(
        s3_client.get_bucket_notification_configuration(Bucket=bucket), queue_configurations(channels)
    )
    s3_client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return config


def aws_cli_commands(channels: list[PipeChannel], region: str | None = None) -> str:
    """What an operator without `--apply-s3-notification` runs, with the AWS CLI, to set it up."""
    bucket = shlex.quote(_one_bucket(channels)) if channels else "<bucket>"
    where = f"--bucket {bucket}" + (f" --region {shlex.quote(region)}" if region else "")
    ours = json.dumps({"QueueConfigurations": queue_configurations(channels)}, indent=2)
    return (
        "# 1. Save the bucket's notification configuration (S3 replaces it as a whole on put):\n"
        f"aws s3api get-bucket-notification-configuration {where} > current.json\n"
        f"# 2. Write merged.json: current.json without the QueueConfigurations whose Id starts with\n"
        f"#    {ID_PREFIX}, plus these (keep every other configuration of the bucket as it is):\n"
        f"{ours}\n"
        "# 3. Put it back:\n"
        f"aws s3api put-bucket-notification-configuration {where} --notification-configuration file://merged.json\n"
    )

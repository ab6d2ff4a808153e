"""The Snowpipe auto-ingest notification step of scripts/deploy.sh: Python's standard library only.

`schema FILE` prints the schema of the pipes FILE creates (a template: `snow` renders it). `show FILE --var
key=value ...` reads `snow sql --format json -q 'SHOW PIPES ...'` on standard input and prints each pipe's
notification_channel and the bucket's queue configurations with the AWS CLI commands, exactly as
`api2snow deploy` prints them (api2snow_cli/s3_notification.py; tests/unit/test_deploy_scripts.py holds the
two to the same output). It changes nothing: applying is `api2snow deploy --apply-s3-notification`'s.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from urllib.parse import urlsplit

ID_PREFIX = "api2snow-"
EVENTS = ["s3:ObjectCreated:*"]
FILE_SUFFIX = ".jsonl.gz"
_NAME = r"(?:<%[^%]*%>|[\w.$\"])+"
_PIPE = re.compile(
    rf"^CREATE\s+(?:OR\s+REPLACE\s+)?PIPE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME}).*?"
    rf"\bFROM\s*@(?P<stage>{_NAME})(?P<path>/[^\s)]*)?",
    re.IGNORECASE | re.DOTALL,
)
_STAGE = re.compile(
    rf"^CREATE\s+(?:OR\s+REPLACE\s+)?STAGE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME}).*?"
    r"\bURL\s*=\s*'(?P<url>[^']*)'",
    re.IGNORECASE | re.DOTALL,
)
MISSING_CHANNEL = (  # as api2snow_cli/s3_notification.missing_channel_message words it
    "pipe {pipe} has no notification_channel: it was created without AUTO_INGEST = TRUE (deploy never "
    "recreates a pipe), so only the REFRESH safety net loads its files; recreate it once, after every "
    "staged batch is LOADED: docs/DEPLOY.md 'Snowpipe auto-ingest'"
)
_TEMPLATE = re.compile(r"<%\s*(?:ctx\.env\.)?([A-Za-z_][A-Za-z0-9_]*)\s*%>")


def _statements(path: str) -> list[str]:
    """The file's statements: comment lines dropped, split at a `;` that ends a line."""
    with open(path) as sql:
        text = "\n".join(line for line in sql.read().splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip('"').upper()


def _pipes(path: str) -> list[tuple[str, str, str]]:
    """(pipe name, stage URL, path under the stage) for each CREATE PIPE of the file, as written."""
    statements = _statements(path)
    stages = {_last(m["name"]): m["url"] for s in statements if (m := _STAGE.match(s))}
    pipes = []
    for statement in statements:
        match = _PIPE.match(statement)
        if not match:
            continue
        if _last(match["stage"]) not in stages:
            sys.exit(f"{path}: pipe {match['name']} loads from a stage the file does not create")
        pipes.append((match["name"], stages[_last(match["stage"])], (match["path"] or "/").lstrip("/")))
    if not pipes:
        sys.exit(f"{path} creates no pipe")
    return pipes


def _source(path: str, url: str, under: str, env: dict[str, str]) -> tuple[str, str]:
    """The bucket and key prefix of a pipe: its stage's URL, rendered, plus its path under the stage."""
    url = _TEMPLATE.sub(lambda m: _value(env, m.group(1), path), url)
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        sys.exit(f"{path}: a pipe's stage is not on S3: {url!r}")
    base = parts.path.lstrip("/")
    base += "/" if base and not base.endswith("/") else ""
    return parts.netloc, base + under


def _value(env: dict[str, str], name: str, path: str) -> str:
    if name not in env:
        sys.exit(f"{path}: undefined template variable {name!r} (pass it with --var)")
    return env[name]


def _rows() -> list[dict]:
    data = json.loads(sys.stdin.read() or "[]")
    if data and isinstance(data[0], list):  # several statements: the last one's rows
        data = data[-1]
    return [{str(k).lower().strip('"'): v for k, v in row.items()} for row in data]


def queue_configuration(pipe: str, arn: str, prefix: str) -> dict:
    return {
        "Id": f"{ID_PREFIX}{_last(pipe).lower()}",
        "QueueArn": arn,
        "Events": list(EVENTS),
        "Filter": {
            "Key": {
                "FilterRules": [{"Name": "prefix", "Value": prefix}, {"Name": "suffix", "Value": FILE_SUFFIX}]
            }
        },
    }


def show(path: str, env: dict[str, str]) -> int:
    rows = {str(row.get("name", "")).upper(): row for row in _rows()}
    ours = []
    for pipe, url, under in sorted(_pipes(path), key=lambda p: _last(p[0])):
        bucket, prefix = _source(path, url, under, env)
        row = rows.get(_last(pipe))
        name = f"{row['database_name']}.{row['schema_name']}.{row['name']}" if row else pipe
        if row is None:
            print(f"warning: pipe {_last(pipe)} is not in SHOW PIPES: the deploy role cannot see it")
        elif not row.get("notification_channel"):
            print(f"warning: {MISSING_CHANNEL.format(pipe=name)}")
        else:
            print(f"{name}: {row['notification_channel']} <- s3://{bucket}/{prefix}*{FILE_SUFFIX}")
            ours.append((bucket, queue_configuration(pipe, str(row["notification_channel"]), prefix)))
    if not ours:
        print("no pipe has a notification_channel: the bucket's event notification is left as it is")
        return 0
    buckets = sorted({bucket for bucket, _ in ours})
    if len(buckets) != 1:
        sys.exit(f"the pipes load from {len(buckets)} buckets, expected one: {buckets}")
    region = env.get("region")
    where = f"--bucket {shlex.quote(buckets[0])}" + (f" --region {shlex.quote(region)}" if region else "")
    print(
        "the bucket's event notification is not changed by deploy; to set it up, run "
        "`api2snow deploy --apply-s3-notification`, or with the AWS CLI:"
    )
    print(
        "# 1. Save the bucket's notification configuration (S3 replaces it as a whole on put):\n"
        f"aws s3api get-bucket-notification-configuration {where} > current.json\n"
        "# 2. Write merged.json: current.json without the QueueConfigurations whose Id starts with\n"
        f"#    {ID_PREFIX}, plus these (keep every other configuration of the bucket as it is):\n"
        f"{json.dumps({'QueueConfigurations': [q for _, q in ours]}, indent=2)}\n"
        "# 3. Put it back:\n"
        f"aws s3api put-bucket-notification-configuration {where} --notification-configuration file://merged.json"
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pipe_notifications.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["schema", "show"])
    parser.add_argument("sql_file")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE", help="an env value")
    args = parser.parse_args(argv)
    env = dict(item.partition("=")[::2] for item in args.var)
    if args.command == "show":
        return show(args.sql_file, env)
    schemas = sorted({pipe.rsplit(".", 1)[0] for pipe, _, _ in _pipes(args.sql_file)})
    if len(schemas) != 1:
        sys.exit(f"{args.sql_file}: expected auto-ingest pipes in one schema, found {schemas}")
    print(schemas[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

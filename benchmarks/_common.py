"""Shared plumbing of the benchmarks: mock APIs + local S3 in the parent, one tool per child process.

Each measured run happens in a fresh child process (this file's `run_worker` starts the calling script
again with `--worker <json>`), so peak RSS and CPU time belong to one tool and one run only. The mock APIs
and moto run in the parent; their CPU and memory are not counted against either tool.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

ANCHOR = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # frozen mock clock: the data set is identical every run
BUCKET = "api2snow-bench"
REGION = "us-east-1"


# ------------------------------------------------------------------------------------------------ parent side


def start_mock_apis(
    *,
    history_hours: float,
    events_per_hour_a: int = 120,
    events_per_hour_b: int = 120,
    rate_limits: dict[str, int] | None = None,
    page_cache: bool = False,
) -> Any:
    """MockApis on a frozen clock with the given per-minute limits (0 = off); index built before returning.

    `page_cache` memoises the data set's scan/render on the server, so repeated reads of the same pages
    cost the server little more than json.dumps and the socket: what is left of a run is the client's work.
    """
    from api2snow_cli.local.mock_apis.faults import Faults
    from api2snow_cli.local.mock_apis.server import MockApiConfig, MockApis

    limits = {"api_a": 100, "api_b": 60, "api_c": 60, **(rate_limits or {})}
    config = MockApiConfig(
        anchor=ANCHOR,
        follow_real_time=False,
        history_hours=history_hours,
        events_per_hour_a=events_per_hour_a,
        events_per_hour_b=events_per_hour_b,
        faults={api: Faults.for_api(api, rate_limit_per_min=limit) for api, limit in limits.items()},
    )
    apis = MockApis(config)
    apis.start()
    for source in ("api_a", "api_b"):  # the version index is built lazily on the first request: do it now
        apis.dataset.count(source, apis.clock.now())
    if page_cache:
        dataset = apis.dataset
        dataset.scan = functools.lru_cache(maxsize=4096)(dataset.scan)
        dataset.render = functools.lru_cache(maxsize=None)(dataset.render)
    return apis


def record_count(apis: Any, source: str) -> int:
    return apis.dataset.count(source, apis.clock.now())


def start_s3() -> Any:
    from api2snow_cli.local.s3 import LocalS3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    s3 = LocalS3(region=REGION).start()
    s3.ensure_bucket(BUCKET)
    return s3


def ingest_settings(urls: dict[str, str], s3_endpoint: str, **overrides: Any) -> dict[str, str]:
    """OPS.PIPELINE_CONFIG values for `api2snow.settings.Settings` (all strings, as in the warehouse)."""
    values = {
        "bucket": BUCKET,
        "region": REGION,
        "s3_endpoint_url": s3_endpoint,
        "api_a_base_url": urls["api_a"],
        "api_b_base_url": urls["api_b"],
        "api_c_base_url": urls["api_c"],
        "part_max_mb": str(deployed_setting("part_max_mb")),
        # API A exchanges client credentials itself, as dlt's OAuth2ClientCredentials does (in Snowflake the
        # default is a token from the OAuth2 integration; the benchmark compares like with like).
        "api_a_auth": "client_credentials",
    }
    values.update({key: str(value) for key, value in overrides.items()})
    return values


def run_worker(script: str, spec: dict[str, Any], timeout_s: float = 300) -> dict[str, Any]:
    """Run `script --worker <spec>` in a fresh interpreter; return the JSON dict it prints last."""
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false", RUNTIME__LOG_LEVEL="WARNING")
    proc = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {spec.get('tool')} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------------------------ child side


def rss_mb() -> float:
    """Current resident set size of this process."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it was exec'd (VmHWM, Linux).

    Not `ru_maxrss`: Linux keeps the pre-exec high-water mark in it, so a child started by subprocess
    reports at least the parent's RSS at fork time (here: the mock server with its data set).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """User+system CPU of this process (all threads) and of any children it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(run: Callable[[], int]) -> dict[str, Any]:
    """Time `run` (which returns the records it produced) with RSS before, peak RSS and CPU seconds."""
    baseline = rss_mb()
    cpu0, t0 = cpu_s(), time.perf_counter()
    records = run()
    seconds = time.perf_counter() - t0
    return {
        "records": records,
        "seconds": seconds,
        "cpu_s": cpu_s() - cpu0,
        "rss_baseline_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


class BenchPlatform:
    """The platform seam with the mock APIs' demo credentials and LocalS3's keys (nothing else is used)."""

    def secret_string(self, key: str) -> str:
        if key == "api_b_key":
            return "demo-key"
        raise KeyError(key)

    def username_password(self, key: str) -> tuple[str, str]:
        if key == "api_a_client":
            return "demo-client", "demo-secret"
        raise KeyError(key)

    def aws_credentials(self, key: str) -> Any:
        from api2snow.platform import AwsCredentials

        from api2snow_cli.local.s3 import LOCAL_AWS_KEY, LOCAL_AWS_SECRET

        return AwsCredentials(LOCAL_AWS_KEY, LOCAL_AWS_SECRET)


def bench_source(api: str) -> Any:
    """The production source, unchanged (its page size comes from the `<api>_page_size` setting)."""
    from api2snow.sources import get_source

    return get_source(api)


def max_page_size(api: str) -> int:
    """The largest page the source's API allows: the deployed default of `<api>_page_size`."""
    return int(bench_source(api).declaration.max_page_size)


def deployed_setting(name: str) -> Any:
    """A setting's deployed value: snowflake.yml's env where it sets one, else the declared default."""
    import yaml
    from api2snow.settings import SETTINGS

    from api2snow_cli.project import PROJECT_ROOT

    env = yaml.safe_load((PROJECT_ROOT / "snowflake.yml").read_text())["env"]
    return SETTINGS[name].parse(str(env[name])) if name in env else SETTINGS[name].default


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """The procedure's extract step `api2snow.ingest.extract`: pages -> RecordProcessor -> S3BatchWriter."""
    import uuid

    from api2snow import ingest, jsonl, wire
    from api2snow.settings import Settings

    if spec.get("stdlib_json"):  # the fallback where orjson is not importable: json.loads and json.dumps
        jsonl._orjson = None
        wire._orjson = None

    source = bench_source(spec["api"])
    settings = Settings(database="BENCH", values=spec["settings"])
    since = datetime.fromisoformat(spec["since"]) if spec.get("since") else None
    out: dict[str, Any] = {}

    def run() -> int:
        counts, _max_updated, manifest, stats = ingest.extract(
            source,
            BenchPlatform(),
            settings,
            since,
            str(uuid.uuid4()),
            ANCHOR.replace(tzinfo=None),
            earlier_requests=spec.get("earlier_requests", ()),  # what the ledger hands the next run
        )
        out.update(counts=counts, parts=len(manifest["parts"]), http=stats)
        return counts["staged"]

    return {**measure(run), **out}


def worker_main(handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> bool:
    """If started as a worker, run the handler named by the spec's `tool`, print its JSON and return True."""
    if len(sys.argv) < 3 or sys.argv[1] != "--worker":
        return False
    spec = json.loads(sys.argv[2])
    result = handlers[spec["tool"]](spec)
    print(json.dumps(result, default=str), flush=True)
    return True


# ------------------------------------------------------------------------------------------------ reporting


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def now_utc() -> datetime:
    return datetime.now(UTC)

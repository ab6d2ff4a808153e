"""Throughput of our ingest path against dlt's rest_api source on the same mock API data.

Ours: `api2snow.ingest.extract` exactly as the procedure runs it (ApiClient with rate limiter, retries and
auth -> RecordProcessor normalise/validate/dedupe -> S3BatchWriter gzip JSONL parts streamed to LocalS3/moto),
with the deployed settings (part_max_mb from snowflake.yml, the source's default page size: the largest its
API allows). Two variants:
- "deployed": as in Snowflake, where the ingest procedures take orjson from the PyPI artifact repository
  (snowflake.yml, mixin pypi_packages; benchmarks/README.md), so `api2snow.jsonl` encodes with orjson;
- "stdlib": the same without orjson (the fallback, for an account that drops the artifact repository).
dlt: `rest_api_source` with the same endpoint, auth, paginator and page size, `add_map` with the very same
`normalize` function, destination `filesystem` (local folder) with jsonl files (gzip, dlt's default).
fetch: the floor, in the same run: the same pages with plain requests + json.loads, nothing else.

Rate limits are switched off on both sides. The mock server memoises its data set (see
`_common.start_mock_apis`) so that the mock's own per-record cost does not hide the tools' cost;
`--no-page-cache` measures against the cold mock instead. Every run is a fresh child process, and the tools
take turns (fetch, deployed, stdlib, dlt, then again), so drift on a noisy machine hits each of them.

    .venv/bin/python benchmarks/bench_ingest_vs_dlt.py [--records 200000,1000000] [--runs 3] [--apis api_a]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

import _common as c

EVENTS_PER_HOUR = 20_000  # history_hours follows from --records (each event is served once, latest version)
WORKER_TIMEOUT_S = 1800  # dlt at 1M records on a loaded 2-core machine


# ------------------------------------------------------------------------------------------------ workers


def run_dlt(spec: dict[str, Any]) -> dict[str, Any]:
    """dlt: extract (rest_api) -> normalize -> load jsonl.gz files into a local filesystem destination."""
    import dlt
    from dlt.sources.helpers.rest_client.auth import APIKeyAuth, OAuth2ClientCredentials
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator, OffsetPaginator
    from dlt.sources.rest_api import rest_api_source

    api, page_size, settings = spec["api"], spec["page_size"], spec["settings"]
    normalize = c.bench_source(api).normalize  # the same field mapping as ours
    base_url = settings[f"{api}_base_url"]
    if api == "api_b":
        client = {
            "base_url": base_url,
            "auth": APIKeyAuth(name="X-API-Key", api_key="demo-key", location="header"),
            "paginator": OffsetPaginator(
                limit=page_size, offset_param="offset", limit_param="limit", total_path="total"
            ),
        }
        endpoint = {"path": "api/v2/detections", "data_selector": "items"}
    else:
        client = {
            "base_url": base_url,
            "auth": OAuth2ClientCredentials(
                access_token_url=f"{base_url}/oauth/token",
                client_id="demo-client",
                client_secret="demo-secret",
            ),
            "paginator": JSONResponseCursorPaginator(cursor_path="next_cursor", cursor_param="cursor"),
        }
        endpoint = {"path": "v1/events", "data_selector": "data", "params": {"limit": page_size}}

    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as tmp:

        def run() -> int:
            resources = [{"name": "events", "endpoint": endpoint}]
            source = rest_api_source({"client": client, "resources": resources})
            source.events.add_map(normalize)
            pipeline = dlt.pipeline(
                pipeline_name=f"bench_{api}",
                pipelines_dir=f"{tmp}/pipelines",
                dataset_name="bench",
                destination=dlt.destinations.filesystem(bucket_url=f"file://{tmp}/out"),
            )
            pipeline.run(source, loader_file_format="jsonl")
            counts = pipeline.last_trace.last_normalize_info.row_counts
            return int(counts.get("events", 0))

        return c.measure(run)


def run_fetch_only(spec: dict[str, Any]) -> dict[str, Any]:
    """Floor: the same pages with plain requests + json.loads, no processing or writing."""
    import requests

    api, settings, page_size = spec["api"], spec["settings"], spec["page_size"]
    base = settings[f"{api}_base_url"]

    def run_b(http: requests.Session) -> int:
        got, offset = 0, 0
        while True:
            params = {"offset": offset, "limit": page_size}
            payload = http.get(
                f"{base}/api/v2/detections", params=params, headers={"X-API-Key": "demo-key"}, timeout=60
            ).json()
            got += len(payload["items"])
            offset += len(payload["items"])
            if not payload["items"] or offset >= payload["total"]:
                return got

    def run_a(http: requests.Session) -> int:
        token = http.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("demo-client", "demo-secret"),
            timeout=60,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        got, params = 0, {"limit": page_size}
        while True:
            payload = http.get(f"{base}/v1/events", params=params, headers=headers, timeout=60).json()
            got += len(payload["data"])
            if not payload.get("next_cursor"):
                return got
            params = {"limit": page_size, "cursor": payload["next_cursor"]}

    def run() -> int:
        with requests.Session() as http:
            return run_a(http) if api == "api_a" else run_b(http)

    return c.measure(run)


# ------------------------------------------------------------------------------------------------ parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="200000,1000000", help="records per API, comma-separated sizes")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool, API and size (interleaved)")
    parser.add_argument("--apis", default="api_a", help="api_a and/or api_b")
    parser.add_argument("--no-page-cache", action="store_true", help="measure against the cold mock server")
    args = parser.parse_args()
    sizes = [int(n) for n in args.records.split(",") if n.strip()]
    apis_wanted = [a.strip() for a in args.apis.split(",") if a.strip()]
    started = time.perf_counter()
    print(f"bench_ingest_vs_dlt {c.now_utc():%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}")
    for size in sizes:
        for api in apis_wanted:
            bench_one(api, size, args.runs, page_cache=not args.no_page_cache)
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


def bench_one(api: str, records: int, runs: int, page_cache: bool) -> None:
    """One API at one size: every tool `runs` times, interleaved, against one mock data set."""
    started = time.perf_counter()
    mocks = c.start_mock_apis(
        history_hours=records / EVENTS_PER_HOUR,
        events_per_hour_a=EVENTS_PER_HOUR if api == "api_a" else 1,
        events_per_hour_b=EVENTS_PER_HOUR if api == "api_b" else 1,
        rate_limits={"api_a": 0, "api_b": 0},
        page_cache=page_cache,
    )
    s3 = c.start_s3()
    try:
        # The client-side limiter reads <source>_rate_limit_per_min: far above what a run needs.
        settings = c.ingest_settings(mocks.urls, s3.endpoint_url, **{f"{api}_rate_limit_per_min": 1_000_000})
        page_size = c.max_page_size(api)  # ours asks for it by default; dlt and the floor are given it
        base = {"api": api, "page_size": page_size, "settings": settings}
        print(
            f"\n== {api}: {c.record_count(mocks, api):,} records, page size {page_size}, part_max_mb "
            f"{settings['part_max_mb']}, server page cache {'on' if page_cache else 'off'}, "
            f"setup {time.perf_counter() - started:.1f}s"
        )
        if page_cache:  # a first pass renders every page once: after it, each tool reads the same warm pages
            c.run_worker(__file__, {**base, "tool": "fetch"}, timeout_s=WORKER_TIMEOUT_S)
        variants = {
            "fetch": {"tool": "fetch"},
            "deployed": {"tool": "ours"},
            "stdlib": {"tool": "ours", "stdlib_json": True},
            "dlt": {"tool": "dlt"},
        }
        results: dict[str, list[dict[str, Any]]] = {label: [] for label in variants}
        for _ in range(runs):
            for label, spec in variants.items():  # interleaved
                results[label].append(c.run_worker(__file__, {**base, **spec}, timeout_s=WORKER_TIMEOUT_S))
        report(results)
    finally:
        s3.stop()
        mocks.stop()


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """Per tool: records/s (median, best), client CPU, peak RSS; then ratios to dlt and to the floor."""
    rates = {tool: [r["records"] / r["seconds"] for r in runs] for tool, runs in results.items()}
    for tool, runs in results.items():
        last = runs[-1]
        extra = ""
        if tool in ("deployed", "stdlib"):
            extra = f", parts {last['parts']}, requests {last['http']['requests']:.0f}, {last['counts']}"
        cpu = c.median([r["records"] / r["cpu_s"] for r in runs])
        print(
            f"{tool:>9}: {last['records']:,} records, rec/s median {c.median(rates[tool]):,.0f} best "
            f"{max(rates[tool]):,.0f} (runs {', '.join(f'{r:,.0f}' for r in rates[tool])}); rec per client "
            f"CPU-s {cpu:,.0f}; peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB{extra}"
        )
    # Ratios per round (each round's tools ran back to back), then their median: drift cancels out.
    for tool in ("deployed", "stdlib"):
        vs_dlt = [ours / dlt for ours, dlt in zip(rates[tool], rates["dlt"], strict=True)]
        of_floor = [ours / floor for ours, floor in zip(rates[tool], rates["fetch"], strict=True)]
        print(
            f"{tool:>9}: {c.median(vs_dlt):.2f}x dlt (rounds {', '.join(f'{r:.2f}' for r in vs_dlt)}); "
            f"{c.median(of_floor):.2f} of the fetch-only floor "
            f"(rounds {', '.join(f'{r:.2f}' for r in of_floor)})"
        )
    dlt_floor = [dlt / floor for dlt, floor in zip(rates["dlt"], rates["fetch"], strict=True)]
    print(f"      dlt: {c.median(dlt_floor):.2f} of the fetch-only floor")


if __name__ == "__main__":
    if not c.worker_main({"ours": c.run_ours, "dlt": run_dlt, "fetch": run_fetch_only}):
        sys.exit(main())

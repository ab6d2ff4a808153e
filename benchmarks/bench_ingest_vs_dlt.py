"""Throughput of our ingest path against dlt's rest_api source on the same mock API data.

Ours: `api2snow.ingest._extract` exactly as the procedure runs it (ApiClient with rate limiter, retries and
auth -> RecordProcessor normalise/validate/dedupe -> S3BatchWriter gzip JSONL parts on LocalS3/moto).
"ours-stdlib" is the same with `api2snow.jsonl`'s optional orjson fast path switched off, as in Snowflake
(requirements.txt does not ship orjson; this venv has it because dlt depends on it).
dlt: `rest_api_source` with the same endpoint, auth, paginator and page size, `add_map` with the very same
`normalize` function, destination `filesystem` (local folder) with jsonl files (gzip, dlt's default).

Rate limits are switched off on both sides. By default the mock server memoises its data set (see
`_common.start_mock_apis`) so that the mock's own per-record cost (~55 us) does not hide the tools' cost;
`--no-page-cache` measures against the cold mock instead. Every run is a fresh child process.

    .venv/bin/python benchmarks/bench_ingest_vs_dlt.py [--records 50000] [--runs 3] [--apis api_b,api_a]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

import _common as c

EVENTS_PER_HOUR = 20_000  # history_hours follows from --records (each event is served once, latest version)


# ------------------------------------------------------------------------------------------------ workers


def run_dlt(spec: dict[str, Any]) -> dict[str, Any]:
    """dlt: extract (rest_api) -> normalize -> load jsonl.gz files into a local filesystem destination."""
    import dlt
    from dlt.sources.helpers.rest_client.auth import APIKeyAuth, OAuth2ClientCredentials
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator, OffsetPaginator
    from dlt.sources.rest_api import rest_api_source

    api, page_size, settings = spec["api"], spec["page_size"], spec["settings"]
    normalize = c.bench_source(api, page_size).normalize  # the same field mapping as ours
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
    """Floor: the same pages with plain requests + json, no processing or writing (B only: no OAuth)."""
    import requests

    url = spec["settings"]["api_b_base_url"] + "/api/v2/detections"

    def run() -> int:
        got, offset = 0, 0
        with requests.Session() as http:
            while True:
                params = {"offset": offset, "limit": spec["page_size"]}
                payload = http.get(url, params=params, headers={"X-API-Key": "demo-key"}, timeout=60).json()
                got += len(payload["items"])
                offset += len(payload["items"])
                if not payload["items"] or offset >= payload["total"]:
                    return got

    return c.measure(run)


# ------------------------------------------------------------------------------------------------ parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000, help="approximate records per API")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and API (interleaved)")
    parser.add_argument("--page-size", type=int, default=500, help="the same for both tools (API max 500)")
    parser.add_argument("--apis", default="api_b,api_a")
    parser.add_argument("--no-page-cache", action="store_true", help="measure against the cold mock server")
    args = parser.parse_args()
    apis_wanted = [a.strip() for a in args.apis.split(",") if a.strip()]
    history_hours = args.records / EVENTS_PER_HOUR

    print(f"bench_ingest_vs_dlt {c.now_utc():%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}")
    started = time.perf_counter()
    mocks = c.start_mock_apis(
        history_hours=history_hours,
        events_per_hour_a=EVENTS_PER_HOUR,
        events_per_hour_b=EVENTS_PER_HOUR,
        rate_limits={"api_a": 0, "api_b": 0},
        page_cache=not args.no_page_cache,
    )
    s3 = c.start_s3()
    try:
        # The client-side limiter reads <source>_rate_limit_per_min: far above what a run needs.
        settings = c.ingest_settings(
            mocks.urls,
            s3.endpoint_url,
            api_a_rate_limit_per_min=1_000_000,
            api_b_rate_limit_per_min=1_000_000,
        )
        counts = {api: c.record_count(mocks, api) for api in apis_wanted}
        cache = "off" if args.no_page_cache else "on"
        print(
            f"records served: {counts}, page size {args.page_size}, server page cache {cache}, "
            f"setup {time.perf_counter() - started:.1f}s"
        )
        base = {"page_size": args.page_size, "settings": settings}
        if "api_b" in apis_wanted:
            # Cold pass: fills the page cache (when on) and shows what the mock itself costs per record.
            cold = c.run_worker(__file__, {**base, "tool": "fetch", "api": "api_b"})
            warm = c.run_worker(__file__, {**base, "tool": "fetch", "api": "api_b"})
            print(
                f"fetch-only floor (requests + json, no processing), api_b: first pass "
                f"{cold['records'] / cold['seconds']:,.0f} rec/s, second pass "
                f"{warm['records'] / warm['seconds']:,.0f} rec/s"
            )
        for api in apis_wanted:
            if api == "api_a" and not args.no_page_cache:
                c.run_worker(__file__, {**base, "tool": "ours", "api": api})  # warm the cache for A's pages
            results: dict[str, list[dict[str, Any]]] = {"ours": [], "ours-stdlib": [], "dlt": []}
            for _ in range(args.runs):
                for label in results:  # interleaved, so drift on a noisy machine hits every tool
                    tool = "dlt" if label == "dlt" else "ours"
                    spec = {**base, "tool": tool, "api": api, "stdlib_json": label == "ours-stdlib"}
                    results[label].append(c.run_worker(__file__, spec))
            report(api, results)
    finally:
        s3.stop()
        mocks.stop()
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


def report(api: str, results: dict[str, list[dict[str, Any]]]) -> None:
    print(f"\n== {api}")
    summary: dict[str, dict[str, float]] = {}
    for tool, runs in results.items():
        rates = [r["records"] / r["seconds"] for r in runs]
        cpu_rates = [r["records"] / r["cpu_s"] for r in runs]
        summary[tool] = {
            "best": max(rates),
            "median": c.median(rates),
            "cpu_best": max(cpu_rates),
            "cpu_median": c.median(cpu_rates),
        }
        last = runs[-1]
        extra = ""
        if tool != "dlt":
            extra = f", parts {last['parts']}, requests {last['http']['requests']:.0f}, {last['counts']}"
        print(
            f"{tool:>11}: records {last['records']:,}  wall rec/s best {max(rates):,.0f} median "
            f"{c.median(rates):,.0f}  (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
        print(
            f"{'':>13}rec per client-CPU-s best {max(cpu_rates):,.0f} median {c.median(cpu_rates):,.0f}; "
            f"RSS before run {c.median([r['rss_baseline_mb'] for r in runs]):.0f} MB, peak "
            f"{max(r['peak_rss_mb'] for r in runs):.0f} MB{extra}"
        )
    dlt = summary["dlt"]
    for tool in ("ours", "ours-stdlib"):
        ours = summary[tool]
        print(
            f"ratio {tool}/dlt  wall rec/s: best {ours['best'] / dlt['best']:.2f}x, median "
            f"{ours['median'] / dlt['median']:.2f}x; per client CPU-s: best "
            f"{ours['cpu_best'] / dlt['cpu_best']:.2f}x, "
            f"median {ours['cpu_median'] / dlt['cpu_median']:.2f}x"
        )


if __name__ == "__main__":
    if not c.worker_main({"ours": c.run_ours, "dlt": run_dlt, "fetch": run_fetch_only}):
        sys.exit(main())

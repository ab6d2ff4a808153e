"""Does our ingest run in constant memory at the deployed settings? Peak RSS of `extract` at each size.

One mock data set as large as the largest size (API A events by default); a smaller run asks for the last
N records only (an incremental run with a watermark), the largest reads everything. Settings are the
deployed ones: `part_max_mb` from snowflake.yml (64: a part streams to S3 in 8 MiB multipart chunks), the
source's default page size (the largest its API allows). Peak RSS is the child's VmHWM; "growth" is peak
minus the RSS after imports, which is what the extract itself adds. A last line attributes part of the
growth: the size of a `BatchDeduper` fed the largest run's ids (tracemalloc).

    .venv/bin/python benchmarks/bench_memory.py [--records 200000,1000000] [--api api_a] [--part-max-mb 64]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

import _common as c

EVENTS_PER_HOUR = 40_000  # history_hours follows from the largest size


def deduper_mb(source_name: str, count: int) -> float:
    """tracemalloc size of a BatchDeduper fed `count` ids shaped like the source's normalised ids."""
    from api2snow.transform import BatchDeduper

    tracemalloc.start()
    deduper = BatchDeduper()
    prefix = "a-" if source_name == "api_a" else "b-"
    for i in range(count):
        deduper.offer(
            f"{prefix}{i + 1:08d}" if prefix == "a-" else f"{prefix}{i + 1}",
            f"2026-11-26T{i % 24:02d}:{i % 60:02d}:{i % 60:02d}.{i % 1_000_000:06d}",
        )
    size = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    del deduper
    return size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="200000,1000000", help="sizes, comma-separated (smallest first)")
    parser.add_argument("--api", default="api_a", choices=("api_a", "api_b"))
    parser.add_argument("--part-max-mb", type=int, default=c.deployed_setting("part_max_mb"))
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.records.split(",") if n.strip())

    print(f"bench_memory {c.now_utc():%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}")
    started = time.perf_counter()
    per_hour = {"events_per_hour_a": EVENTS_PER_HOUR, "events_per_hour_b": EVENTS_PER_HOUR}
    mocks = c.start_mock_apis(
        history_hours=sizes[-1] / EVENTS_PER_HOUR + 0.01, **per_hour, rate_limits={"api_a": 0, "api_b": 0}
    )
    s3 = c.start_s3()
    try:
        from api2snow_cli.local.mock_apis.dataset import from_ms

        rows = mocks.dataset.scan(args.api, mocks.clock.now())
        settings = c.ingest_settings(
            mocks.urls,
            s3.endpoint_url,
            part_max_mb=args.part_max_mb,
            **{f"{args.api}_rate_limit_per_min": 1_000_000},
        )
        print(
            f"{args.api}: {len(rows):,} records served in all, part_max_mb={args.part_max_mb}, page size "
            f"{c.max_page_size(args.api)}, setup {time.perf_counter() - started:.1f}s"
        )
        results = []
        for count in sizes:
            count = min(count, len(rows))
            # Watermark = updated_at of the record before the last `count`: the API returns exactly those.
            since = None
            if count < len(rows):
                since = from_ms(rows[-count - 1][0]).replace(tzinfo=None).isoformat()
            spec = {
                "tool": "ours",
                "api": args.api,
                "settings": settings,
                "since": since,
            }
            r = c.run_worker(__file__, spec, timeout_s=1800)
            results.append(r)
            growth = r["peak_rss_mb"] - r["rss_baseline_mb"]
            print(
                f"{r['records']:>9,} records: peak RSS {r['peak_rss_mb']:6.1f} MB "
                f"(after imports {r['rss_baseline_mb']:.1f} MB, growth {growth:5.1f} MB = "
                f"{growth * 2**20 / r['records']:.0f} B/record), parts {r['parts']}, "
                f"{r['records'] / r['seconds']:,.0f} rec/s"
            )
        small, big = results[0], results[-1]
        growth_small = small["peak_rss_mb"] - small["rss_baseline_mb"]
        growth_big = big["peak_rss_mb"] - big["rss_baseline_mb"]
        print(
            f"peak RSS ratio {big['records']:,}/{small['records']:,}: "
            f"{big['peak_rss_mb'] / small['peak_rss_mb']:.2f} (1.00 = constant; target <= 1.15, and under "
            f"150 MB: {big['peak_rss_mb']:.0f} MB); growth ratio: {growth_big / growth_small:.2f}"
        )
        print(
            f"attribution: a BatchDeduper fed {big['records']:,} ids takes "
            f"{deduper_mb(args.api, big['records']):.1f} MB "
            f"({small['records']:,}: {deduper_mb(args.api, small['records']):.1f} MB)"
        )
    finally:
        s3.stop()
        mocks.stop()
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    if not c.worker_main({"ours": c.run_ours}):
        sys.exit(main())

"""Does our client use an API's rate limit to the last request and record, without a 429?

Under a rate limit, what a run can fetch is requests x records per request. The figure that counts is
records a minute at the server-enforced limit, as a fraction of limit x the largest page the API allows.

API A's mock limit is scaled down to `--limit` requests per 60 s (the mock's sliding window is 60 s, and
`api2snow.ingest.api_client` builds its RateLimiter with 60 s too), and the client is told the same limit
through `api_a_rate_limit_per_min`; the page size is the deployed default (the largest the API allows). The
extract needs `--pages` full pages (default 2 x limit + 1, so it crosses two window boundaries and its last
request opens a third window). Run as the procedure runs it (`extract` in a child process); the server
records when each request arrived and whether it was let through. Records a minute are measured between the
first and the last request: the records of every request but the last, over that span.

With `--back-to-back`, a second extract starts right after the first, as a task retried at once or a manual
CALL during a scheduled run would: its limiter starts empty although the server's window is not.
That adds about a minute.

    .venv/bin/python benchmarks/bench_rate_limit.py [--limit 20] [--pages 40] [--back-to-back]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import _common as c

PAGE_SIZE = c.max_page_size("api_a")  # what the source asks for by default
EVENTS_PER_HOUR = 3600  # one event a second: history_hours gives the record count exactly


def recording_limiter() -> Any:
    """The mock's own SlidingWindowLimiter, also logging (monotonic time, allowed) for every request."""
    from api2snow_cli.local.mock_apis.faults import SlidingWindowLimiter

    class RecordingLimiter(SlidingWindowLimiter):
        def __init__(self) -> None:
            super().__init__(window_s=60.0)
            self.log: list[tuple[float, bool]] = []

        def hit(self, client: str, limit: int) -> int | None:
            retry_after = super().hit(client, limit)
            self.log.append((time.monotonic(), retry_after is None))
            return retry_after

    return RecordingLimiter()


def max_in_window(times: list[float], window_s: float = 60.0) -> int:
    """Most accepted requests inside any window of `window_s` (what the server's limit is about)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def describe(
    label: str, log: list[tuple[float, bool]], t0: float, limit: int, result: dict[str, Any]
) -> float | None:
    """Print what the server saw; return records a minute as a fraction of limit x largest page."""
    accepted = [t for t, ok in log if ok]
    rejected = [t for t, ok in log if not ok]
    http = result["http"]
    print(f"\n== {label}: {result['records']:,} records, elapsed {result['seconds']:.1f}s")
    print(
        f"requests sent (client) {http['requests']:.0f}, seen by server {len(log)}, "
        f"429s {len(rejected)} (client counted {http['throttled_429']:.0f}), "
        f"client waited {http['waited_s']:.1f}s, retries {http['retries']:.0f}"
    )
    if not accepted:
        return None
    peak = max_in_window(accepted)
    print(
        f"most requests in any 60 s window: {peak} of {limit} allowed "
        f"({100 * peak / limit:.0f}% of the limit)"
    )
    if len(accepted) > limit:
        # Request limit+1 may go once request 1 is 60 s old: anything beyond that is unused capacity.
        gap = accepted[limit] - accepted[0] - 60.0
        burst = accepted[limit - 1] - accepted[0]
        print(
            f"first window: {limit} requests in {burst:.2f}s; request {limit + 1} arrived "
            f"{gap:.2f}s after the window allowed it (client margin 0.25 s)"
        )
        span = accepted[-1] - accepted[0]
        print(
            f"achieved over the run: {len(accepted)} requests in {span:.1f}s between first and last "
            f"= {60 * (len(accepted) - 1) / span:.1f}/min on average (bursts: sliding-window limit)"
        )
    if rejected:
        print(f"429s at {', '.join(f'+{t - t0:.1f}s' for t in rejected)} from the start of the benchmark")
    if len(accepted) < 2:
        return None
    per_request = result["records"] / len(accepted)  # full pages: every request brought PAGE_SIZE records
    per_minute = 60 * (len(accepted) - 1) * per_request / (accepted[-1] - accepted[0])
    fraction = per_minute / (limit * PAGE_SIZE)
    print(
        f"records a minute at the limit: {per_minute:,.0f} of {limit} x {PAGE_SIZE} = {limit * PAGE_SIZE:,} "
        f"possible: {fraction:.3f} (target >= 0.95, with 0 responses 429)"
    )
    return fraction


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="requests per 60 s, server and client")
    parser.add_argument("--pages", type=int, default=0, help="pages to fetch (default 2 x limit + 1)")
    parser.add_argument("--back-to-back", action="store_true", help="then run a second extract at once")
    args = parser.parse_args()
    args.pages = args.pages or 2 * args.limit + 1
    records = args.pages * PAGE_SIZE  # full pages: records a request is the page size

    print(f"bench_rate_limit {c.now_utc():%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}")
    mocks = c.start_mock_apis(
        history_hours=(records - 1) / EVENTS_PER_HOUR,
        events_per_hour_a=EVENTS_PER_HOUR,
        rate_limits={"api_a": args.limit},
    )
    limiter = recording_limiter()
    mocks.context.limiters["api_a"] = limiter  # the handlers look the limiter up per request
    s3 = c.start_s3()
    try:
        settings = c.ingest_settings(mocks.urls, s3.endpoint_url, api_a_rate_limit_per_min=args.limit)
        print(
            f"api_a: {c.record_count(mocks, 'api_a'):,} records = {args.pages} pages of {PAGE_SIZE}; "
            f"limit {args.limit}/60 s on server and client"
        )
        spec = {"tool": "ours", "api": "api_a", "settings": settings}
        t0 = time.monotonic()
        first = c.run_worker(__file__, spec)
        describe("one extract", list(limiter.log), t0, args.limit, first)
        if args.back_to_back:
            start = len(limiter.log)
            # as the procedure does: the ledger hands the first run's recent request times to the next run
            earlier = first["http"]["recent_request_times"]
            second = c.run_worker(__file__, {**spec, "earlier_requests": earlier})
            describe("second extract started right after", limiter.log[start:], t0, args.limit, second)
            print(
                f"\nboth runs together: most requests in any 60 s window "
                f"{max_in_window([t for t, ok in limiter.log if ok])} of {args.limit}"
            )
        server = mocks.stats()["api_a"]
        print(
            f"\nmock API A stats: requests {server['requests']} (token endpoint included), "
            f"429s {server['throttled_429']}, status {server['status']}"
        )
    finally:
        s3.stop()
        mocks.stop()
    return 0


if __name__ == "__main__":
    if not c.worker_main({"ours": c.run_ours}):
        sys.exit(main())

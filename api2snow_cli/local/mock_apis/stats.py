"""Request counters of one mock API, for tests and the local dashboard (``GET /_admin/stats``)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe counters: requests, statuses, 401s, 429s, records served, injected faults; per path too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._records = 0
            self._status: Counter[int] = Counter()
            self._faults: Counter[str] = Counter()
            self._paths: dict[str, dict[str, Any]] = {}

    def record(self, path: str, status: int, records: int = 0, fault: str | None = None) -> None:
        """Count one answered request on ``path`` (without its query string)."""
        with self._lock:
            self._requests += 1
            self._records += records
            self._status[status] += 1
            if fault:
                self._faults[fault] += 1
            per_path = self._paths.setdefault(path, {"requests": 0, "records": 0, "status": Counter()})
            per_path["requests"] += 1
            per_path["records"] += records
            per_path["status"][status] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the counters (status codes as string keys)."""
        with self._lock:
            return {
                "requests": self._requests,
                "records_served": self._records,
                "unauthorized_401": self._status[401],
                "throttled_429": self._status[429],
                "status": {str(code): n for code, n in sorted(self._status.items())},
                "faults": dict(sorted(self._faults.items())),
                "paths": {
                    path: {
                        "requests": info["requests"],
                        "records": info["records"],
                        "status": {str(code): n for code, n in sorted(info["status"].items())},
                    }
                    for path, info in sorted(self._paths.items())
                },
            }

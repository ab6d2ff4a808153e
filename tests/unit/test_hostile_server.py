"""The hostile API server itself: contracts, ground truth and that each fault does what it says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.hostile import API_A, API_B, HostileServer
from tests.hostile.scenario import SEEDED_SPAN
from tests.hostile.server import decode_cursor

KEY = {"X-API-Key": "demo-key"}
EPOCH = datetime(1970, 1, 1)


@pytest.fixture(scope="module")
def running() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture
def server(running: HostileServer) -> HostileServer:
    running.reset()
    return running


def token(server: HostileServer) -> str:
    form = {"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"}
    response = requests.post(f"{server.url}/oauth/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def events(server: HostileServer, bearer: str, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"}
    return requests.get(f"{server.url}/v1/events", params=params, headers=headers, timeout=30)


def detections(server: HostileServer, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}/api/v2/detections", params=params, headers=KEY, timeout=30)


def walk_a(server: HostileServer, bearer: str, max_pages: int = 20, **params: Any) -> list[dict]:
    """Every page of API A by cursor, as a careful client would read it."""
    pages, cursor = [], None
    for _ in range(max_pages):
        extra = {"cursor": cursor} if cursor else {}
        response = events(server, bearer, limit=100, **params, **extra)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("API A did not end within max_pages")


def walk_b(server: HostileServer, limit: int = 100, **params: Any) -> list[dict]:
    """Every page of API B by offset, naively (advance by the records received up to limit, stop at total)."""
    pages, offset = [], 0
    while True:
        response = detections(server, offset=offset, limit=limit, **params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        offset += min(len(pages[-1]["items"]), limit)
        if not pages[-1]["items"] or offset >= pages[-1]["total"]:
            return pages


def a_records(pages: list[dict]) -> list[dict]:
    return [r for page in pages for r in page["data"]]


def b_records(pages: list[dict]) -> list[dict]:
    return [r for page in pages for r in page["items"]]


def normalize_a(raw: dict) -> tuple[str, dict]:
    """The contract's normalisation of a good A event, written independently of the server's."""

    def utc(text: str) -> datetime:
        return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)

    return raw["id"], {
        "event_type": raw["type"].lower(),
        "camera_id": raw["camera_id"],
        "category": raw["category"].lower(),
        "confidence": raw["confidence"],
        "occurred_at": utc(raw["occurred_at"]),
        "updated_at": utc(raw["updated_at"]),
        "duration_ms": raw["duration_ms"],
    }


def normalize_b(raw: dict) -> tuple[str, dict]:
    return f"b-{raw['eventId']}", {
        "event_type": raw["eventKind"].lower(),
        "camera_id": raw["cameraRef"],
        "category": raw["label"].lower(),
        "confidence": raw["score"] / 100,
        "occurred_at": EPOCH + timedelta(milliseconds=raw["timestampMs"]),
        "updated_at": EPOCH + timedelta(milliseconds=raw["modifiedMs"]),
        "duration_ms": round(raw["durationSec"] * 1000),
    }


def latest(records: list[dict], normalize: Any) -> dict[str, dict]:
    """What CLEAN should hold after reading ``records`` in order: the version served last wins."""
    result: dict[str, dict] = {}
    for raw in records:
        key, row = normalize(raw)
        result[key] = row
    return result


# ----- contracts --------------------------------------------------------------------------------------------


def test_token_endpoint_accepts_basic_and_post_and_refuses_the_rest(server):
    url = f"{server.url}/oauth/token"
    grant = {"grant_type": "client_credentials"}
    basic = requests.post(url, data={**grant, "scope": "events:read"}, auth=("demo-client", "demo-secret"))
    post = requests.post(url, data={**grant, "client_id": "demo-client", "client_secret": "demo-secret"})
    assert basic.status_code == post.status_code == 200
    assert basic.json()["token_type"] == "Bearer" and basic.headers["Cache-Control"] == "no-store"
    assert basic.json()["access_token"] != post.json()["access_token"]

    wrong = requests.post(url, data=grant, auth=("demo-client", "nope"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.post(
        url, data={"grant_type": "password"}, auth=("demo-client", "demo-secret")
    ).json() == {"error": "unsupported_grant_type"}
    assert (
        requests.post(url, data={}, auth=("demo-client", "demo-secret")).json()["error"] == "invalid_request"
    )
    assert requests.post(url, json=grant).status_code == 400
    assert server.issued_tokens == [basic.json()["access_token"], post.json()["access_token"]]
    assert len(server.token_requests()) == 6


def test_events_need_a_valid_bearer_and_detections_the_key(server):
    server.reset(a=5, b=5)
    missing = requests.get(f"{server.url}/v1/events", timeout=10)
    assert (missing.status_code, missing.json()) == (401, {"error": "invalid_token"})
    assert missing.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert events(server, "made-up").status_code == 401
    assert requests.get(f"{server.url}/api/v2/detections", headers={"X-API-Key": "x"}).json() == {
        "error": "unauthorized"
    }
    assert events(server, token(server), limit=501).status_code == 400
    assert detections(server, limit=0).status_code == 400


def test_api_a_pages_in_order_with_strict_updated_since_and_the_truth_matches_what_is_served(server):
    server.reset(a=250)
    bearer = token(server)
    pages = walk_a(server, bearer)
    served = a_records(pages)
    assert [len(p["data"]) for p in pages] == [100, 100, 50]
    order = [(r["updated_at"], r["id"]) for r in served]
    assert order == sorted(order) and len(set(order)) == 250
    assert latest(served, normalize_a) == server.truth(API_A)
    assert len({r["updated_at"] for r in served}) < 250, "some records must share their updated_at"

    pivot = served[120]["updated_at"]
    after = a_records(walk_a(server, bearer, updated_since=pivot))
    assert [r["id"] for r in after] == [r["id"] for r in served if r["updated_at"] > pivot]
    assert all(isinstance(decode_cursor(p["next_cursor"]), tuple) for p in pages[:-1])


def test_api_b_pages_by_offset_with_total_and_strict_modified_since(server):
    server.reset(b=250)
    pages = walk_b(server)
    served = b_records(pages)
    assert [(p["total"], p["offset"], p["limit"]) for p in pages] == [
        (250, 0, 100),
        (250, 100, 100),
        (250, 200, 100),
    ]
    order = [(r["modifiedMs"], r["eventId"]) for r in served]
    assert order == sorted(order) and len(set(order)) == 250
    assert latest(served, normalize_b) == server.truth(API_B)

    pivot = served[99]["modifiedMs"]
    after = b_records(walk_b(server, modified_since=pivot))
    assert [r["eventId"] for r in after] == [r["eventId"] for r in served if r["modifiedMs"] > pivot]
    assert after[0]["modifiedMs"] > pivot


def test_each_reset_gets_a_later_window_and_new_ids(server):
    server.reset(a=3, b=3)
    first_ids, first_end = set(server.truth(API_A)) | set(server.truth(API_B)), server.window[1]
    server.reset(a=3, b=3)
    assert server.window[0] >= first_end
    assert min(r["updated_at"] for r in server.truth(API_A).values()) > server.window_start
    assert not first_ids & (set(server.truth(API_A)) | set(server.truth(API_B)))


# ----- data faults ------------------------------------------------------------------------------------------


def test_surrogate_text_puts_a_literal_lone_surrogate_escape_in_the_body(server):
    server.reset(a=120, b=120)
    server.enable("surrogate_text")
    bearer = token(server)
    body = events(server, bearer, limit=500).content
    b_body = detections(server, limit=500).content
    assert body.count(b"\\ud800") == 3 and b_body.count(b"\\ud800") == 2
    served = json.loads(body)["data"]
    assert sum("\ud800" in json.dumps(r, ensure_ascii=False) for r in served) == 3
    assert len(server.poison(API_A)) == 3 and len(server.poison(API_B)) == 2
    assert len(served) == 123 and len(server.truth(API_A)) == 120


def test_huge_numbers_and_wrong_types_are_served_verbatim_and_are_poison(server):
    server.reset(a=60, b=60)
    server.enable("huge_number", "wrong_types")
    a = json.loads(events(server, token(server), limit=500).content)["data"]
    b = json.loads(detections(server, limit=500).content)["items"]
    durations = [r["duration_ms"] for r in a]
    assert 10**38 + 7 in durations and 10**18 + 7 in durations
    assert {12.5, "1200"} <= set(map(_hashable, durations)) and any(d is True for d in durations)
    assert any(r["id"] is True for r in a) and any(type(r["id"]) is int for r in a)
    assert any(r["type"] == ["x"] for r in a)
    event_ids = [r["eventId"] for r in b]
    assert any(type(e) is float for e in event_ids) and any(e is True for e in event_ids)
    assert any(type(e) is str for e in event_ids)
    assert any(r["eventKind"] == ["DETECTION"] for r in b) and any(r["score"] == "87" for r in b)
    assert any(r["durationSec"] is True for r in b) and any(r["durationSec"] == 10**38 + 1 for r in b)
    assert len(server.poison(API_A)) == 8 and len(server.poison(API_B)) == 8
    assert {"b-1", "b-True"} <= server.poison_ids(API_B)
    assert not server.poison_ids(API_A) & set(server.truth(API_A))
    assert not server.poison_ids(API_B) & set(server.truth(API_B))


def _hashable(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def test_huge_record_is_about_20_megabytes_and_the_rest_stays_readable(server):
    server.reset(a=30, b=30)
    server.enable("huge_record")
    a = events(server, token(server), limit=500)
    b = detections(server, limit=500)
    assert len(a.content) > 20_000_000 and len(b.content) > 20_000_000
    assert len(a.json()["data"]) == 31 and len(b.json()["items"]) == 31
    assert server.poison(API_A)[0].matches(a.text) and server.poison(API_B)[0].matches(b.text)


def test_poison_markers_match_their_own_reject_only(server):
    server.reset(a=40)
    server.enable("wrong_types")
    served = json.loads(events(server, token(server), limit=500).content)["data"]
    poison = server.poison(API_A)
    for entry in poison:
        hits = [r for r in served if entry.matches(json.dumps({"reason": "x", "record": r}))]
        assert len(hits) == 1


# ----- B offset faults --------------------------------------------------------------------------------------


def test_empty_page_before_total_is_transient_per_offset(server):
    server.reset(b=250)
    server.enable("empty_page_before_total")
    assert len(detections(server, offset=0, limit=100).json()["items"]) == 100
    first = detections(server, offset=100, limit=100).json()
    assert (first["items"], first["total"]) == ([], 250)
    assert len(detections(server, offset=100, limit=100).json()["items"]) == 100
    assert detections(server, offset=200, limit=100).json()["items"] == []
    assert len(detections(server, offset=200, limit=100).json()["items"]) == 50


def test_empty_page_always_stays_empty_at_one_offset(server):
    server.reset(b=250)
    server.enable("empty_page_always")
    for _ in range(3):
        page = detections(server, offset=100, limit=100).json()
        assert (page["items"], page["total"]) == ([], 250)
    assert len(detections(server, offset=200, limit=100).json()["items"]) == 50


def test_mutations_while_paging_make_naive_offsets_skip_records(server):
    server.reset(b=250)
    server.enable("mutate_while_paging")
    served = b_records(walk_b(server))
    truth = server.truth(API_B)
    assert len(truth) == 254  # two rounds of two inserts
    seen = set(latest(served, normalize_b))
    assert len(set(truth) - seen) == 6, "three records shift past the offset per round"
    moved = [k for k, row in truth.items() if row["updated_at"] >= server.window_start + SEEDED_SPAN]
    assert len(moved) == 10  # 2 rounds x (3 updates + 2 inserts), all at the store's 'now'
    # the final state, read again from the start, is exactly the truth
    assert latest(b_records(walk_b(server)), normalize_b) == truth


def test_ignore_offset_answers_the_first_page_with_the_true_total(server):
    server.reset(b=250)
    server.enable("ignore_offset")
    first, second = detections(server, offset=0).json(), detections(server, offset=100).json()
    assert first["items"] == second["items"] and second["total"] == 250 and second["offset"] == 100


def test_redirect_points_at_a_recording_host_that_refuses(server):
    server.reset(b=250)
    server.enable("redirect_other_host")
    assert detections(server, offset=0).status_code == 200
    redirect = requests.get(
        f"{server.url}/api/v2/detections", params={"offset": 100}, headers=KEY, allow_redirects=False
    )
    assert redirect.status_code == 302 and redirect.headers["Location"].startswith(server.recorder.url)
    followed = requests.get(redirect.headers["Location"], headers={"X-Trace": "1"})
    assert followed.status_code == 401
    assert [r.header("X-Trace") for r in server.recorder.requests] == ["1"]


# ----- A cursor faults --------------------------------------------------------------------------------------


def test_cursor_loop_goes_back_to_the_first_cursor(server):
    server.reset(a=450)
    server.enable("cursor_loop")
    bearer = token(server)
    c1 = events(server, bearer, limit=100).json()["next_cursor"]
    c2 = events(server, bearer, limit=100, cursor=c1).json()["next_cursor"]
    back = events(server, bearer, limit=100, cursor=c2).json()["next_cursor"]
    assert c1 != c2 and back == c1
    assert events(server, bearer, limit=100, cursor=back).json()["next_cursor"] == c2


def test_same_records_again_advances_the_cursor_but_not_the_data(server):
    server.reset(a=450)
    server.enable("same_records_again")
    bearer = token(server)
    cursor = events(server, bearer, limit=100).json()["next_cursor"]
    cursors, pages = [cursor], []
    for _ in range(3):
        page = events(server, bearer, limit=100, cursor=cursors[-1]).json()
        pages.append([r["id"] for r in page["data"]])
        cursors.append(page["next_cursor"])
    assert len(set(cursors)) == 4 and pages[0] == pages[1] == pages[2] and len(pages[0]) == 100


def test_has_more_serves_an_empty_page_with_a_next_cursor_first(server):
    server.reset(a=250)
    server.enable("has_more")
    pages = walk_a(server, token(server))
    assert [len(p["data"]) for p in pages] == [100, 0, 100, 50]
    assert pages[1]["next_cursor"] is not None
    assert latest(a_records(pages), normalize_a) == server.truth(API_A)


def test_revoke_token_kills_the_issued_token_after_n_pages_and_a_new_one_works(server):
    server.reset(a=250)
    server.enable("revoke_token", revoke_after_pages=2)
    old = token(server)
    c1 = events(server, old, limit=100).json()["next_cursor"]
    c2 = events(server, old, limit=100, cursor=c1).json()["next_cursor"]
    refused = events(server, old, limit=100, cursor=c2)
    assert refused.status_code == 401 and refused.json() == {"error": "invalid_token"}
    new = token(server)
    assert events(server, new, limit=100, cursor=c2).status_code == 200
    assert events(server, old, limit=100, cursor=c2).status_code == 401
    assert server.statuses_by_cursor() == {None: [200], c1: [200], c2: [401, 200, 401]}
    assert [r.bearer for r in server.page_requests(API_A)][-2] == new
    assert len(server.token_requests()) == 2


# ----- both APIs --------------------------------------------------------------------------------------------


def test_equal_updated_at_versions_serve_the_tie_again_with_new_content(server):
    server.reset(a=250, b=250)
    server.enable("equal_updated_at_versions")
    a = a_records(walk_a(server, token(server)))
    b = b_records(walk_b(server))
    for served, normalize, api in ((a, normalize_a, API_A), (b, normalize_b, API_B)):
        assert len(served) == 251
        key, first = normalize(served[99])
        again_key, again = normalize(served[100])
        assert key == again_key and first["updated_at"] == again["updated_at"] and first != again
        assert server.truth(api)[key] == again
        assert latest(served, normalize) == server.truth(api)


def test_rewrite_same_version_changes_content_only(server):
    server.reset(a=20, b=20)
    for api in (API_A, API_B):
        before = server.truth(api)
        key = server.rewrite_same_version(api)
        after = server.truth(api)
        assert key == max(before, key=lambda k: (before[k]["updated_at"], k))
        assert after[key]["updated_at"] == before[key]["updated_at"] and after[key] != before[key]
        assert {k: v for k, v in after.items() if k != key} == {k: v for k, v in before.items() if k != key}


def test_late_commits_land_at_and_just_before_the_last_served_time(server):
    server.reset(a=120, b=120)
    served_a = a_records(walk_a(server, token(server)))
    served_b = b_records(walk_b(server))
    late_a = server.commit_late(API_A, 4, seconds_back=3)
    late_b = server.commit_late(API_B, 4, seconds_back=3)
    newest_a, newest_b = served_a[-1]["updated_at"], served_b[-1]["modifiedMs"]
    assert len(server.truth(API_A)) == len(server.truth(API_B)) == 124
    assert {e.key for e in late_a} <= set(server.truth(API_A)) and {e.key for e in late_b} <= set(
        server.truth(API_B)
    )
    assert sorted({e.sort_ms for e in late_b}) == [newest_b - 3000, newest_b]
    # strict '>' from the last served time misses every one of them
    assert a_records(walk_a(server, token(server), updated_since=newest_a)) == []
    assert b_records(walk_b(server, modified_since=newest_b)) == []


def test_echo_secret_quotes_the_credentials_back(server):
    server.reset(a=10, b=10)
    server.enable("echo_secret")
    bearer = token(server)
    a = events(server, bearer)
    b = detections(server)
    assert a.status_code == b.status_code == 400
    assert bearer in a.json()["error_description"] and "demo-key" in b.json()["error_description"]
    server.enable("echo_secret_token")
    echoed = requests.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"},
    )
    assert echoed.status_code == 400 and "demo-secret" in echoed.json()["error_description"]


def test_noise_throttles_once_fails_every_second_page_once_and_caps_the_limit(server):
    server.reset(b=100)
    server.enable("throttle_once", "flaky_503", "short_pages", page_cap=37)
    throttled = detections(server, offset=0, limit=100)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert len(detections(server, offset=0, limit=100).json()["items"]) == 37
    flaky = detections(server, offset=37, limit=100)
    assert flaky.status_code == 503 and flaky.headers["Retry-After"] == "1"
    assert detections(server, offset=37, limit=100).status_code == 200
    assert server.statuses_by_offset() == {0: [429, 200], 37: [503, 200]}


def test_tripwire_stops_a_looping_client(server):
    server.reset(b=10)
    server.enable(tripwire=3)
    statuses = [detections(server).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 400]
    assert detections(server).json()["error"] == "hostile_tripwire"

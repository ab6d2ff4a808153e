"""Local egress control: network-rule matching, allowances from external_access/, and the urllib3 hook."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
import requests
import urllib3.connection
from botocore.config import Config

from api2snow_cli.local import egress
from api2snow_cli.local.egress import Allowance, EgressConfigError, EgressDenied, HostPort
from api2snow_cli.local.procedures import CallContext, _current
from api2snow_cli.local.secrets import external_access_statements
from api2snow_cli.project import SECRET_VARIABLES, Procedure, Project

try:
    from ._http_fixtures import MockServer, Script, json_reply
except ImportError:
    from _http_fixtures import MockServer, Script, json_reply

SECRETS = {
    "api_a_client_id": "id",
    "api_a_client_secret": "secret",
    "api_b_key": "key",
    "api_c_user": "user",
    "api_c_password": "password",
    "aws_role_arn": "arn:aws:iam::000000000000:role/x",
}
SECRETS.update(
    {name: f"value-of-{name}" for name in SECRET_VARIABLES if name not in SECRETS}
)  # other sources


def test_an_entry_without_port_means_443_and_ports_must_match() -> None:
    rule = HostPort.parse("API.example.com")
    assert rule == HostPort("api.example.com", 443)
    assert rule.matches("api.example.com", 443) and rule.matches("Api.Example.com.", 443)
    assert not rule.matches("api.example.com", 80) and not rule.matches("api.example.com", 8443)
    assert HostPort.parse("127.0.0.1:43121").matches("127.0.0.1", 43121)
    assert not HostPort.parse("127.0.0.1:43121").matches("127.0.0.1", 43122)


def test_a_wildcard_matches_exactly_one_label() -> None:
    rule = HostPort.parse("*.example.com")
    assert rule.matches("a.example.com", 443)
    assert not rule.matches("a.b.example.com", 443)
    assert not rule.matches("example.com", 443)
    assert not rule.matches("a.example.com.evil.net", 443)
    assert not rule.matches("aexample.com", 443)


def test_the_denial_names_the_destination_the_procedure_and_what_it_may_reach() -> None:
    allowance = Allowance("INGEST_API_B", (HostPort("127.0.0.1", 43121), HostPort("127.0.0.1", 5000)))
    allowance.check("127.0.0.1", 43121)
    with pytest.raises(EgressDenied) as info:
        allowance.check("10.0.0.5", 8080)
    assert str(info.value) == (
        "egress to 10.0.0.5:8080 is not allowed: procedure INGEST_API_B may reach only "
        "127.0.0.1:43121, 127.0.0.1:5000 (its network rules in external_access/)"
    )
    with pytest.raises(EgressDenied, match="may reach only no host"):
        Allowance("BUILD_CLEAN", ()).check("127.0.0.1", 43121)


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.load(
        overrides={
            "database": "LOCALDB",
            "api_a_base_url": "http://127.0.0.1:43120",
            "api_b_base_url": "http://127.0.0.1:43121",
            "api_c_base_url": "https://api-c.example.com",
        }
    )


def test_allowances_follow_each_procedures_integrations_and_rules(project: Project) -> None:
    statements = external_access_statements(project, SECRETS)
    allowed = egress.allowances(statements, project.procedures(), {".amazonaws.com": "127.0.0.1:5000"})
    ingest_b = allowed["INGEST_API_B"]
    assert set(ingest_b.rules) == {HostPort("127.0.0.1", 43121), HostPort("127.0.0.1", 5000)}
    assert ingest_b.allows("127.0.0.1", 43121) and not ingest_b.allows("127.0.0.1", 43120)
    assert allowed["INGEST_API_A"].allows("127.0.0.1", 43120)
    assert allowed["INGEST_API_C"].allows("api-c.example.com", 443)  # no port in the rule: 443
    assert not allowed["INGEST_API_C"].allows("127.0.0.1", 43121)
    assert allowed["BUILD_CLEAN"].rules == ()  # no integration, no egress


def test_an_integration_that_external_access_does_not_create_is_an_error(project: Project) -> None:
    proc = Procedure("e", "P", "OPS", "DB", "h.f", (), external_access_integrations=("MISSING_EAI",))
    with pytest.raises(EgressConfigError, match="P: external access integration MISSING_EAI"):
        egress.allowances(external_access_statements(project, SECRETS), {"P": proc})


# ---- the urllib3 hook -------------------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        srv.route("GET", "/x", Script(json_reply({})))
        yield srv


def in_call(allowance: Allowance | None):
    proc = Procedure("e", "INGEST_API_B", "OPS", "DB", "h.f", ())
    return _current.set(CallContext(proc, egress=allowance))


def test_a_call_cannot_reach_a_host_its_rules_do_not_allow(server: MockServer) -> None:
    egress.install()
    egress.install()  # idempotent: wrapped once
    for cls in (urllib3.connection.HTTPConnection, urllib3.connection.HTTPSConnection):
        assert cls.connect.api2snow_egress  # type: ignore[attr-defined]
        assert not getattr(cls.connect.__wrapped__, "api2snow_egress", False)  # type: ignore[attr-defined]
    token = in_call(Allowance("INGEST_API_B", (HostPort("127.0.0.1", 1),)))
    try:
        with pytest.raises(EgressDenied, match=r"egress to 127\.0\.0\.1:\d+ is not allowed"):
            requests.get(server.url + "/x", timeout=5)
        with egress.platform_side():  # Snowflake's own work for the call is not checked
            assert requests.get(server.url + "/x", timeout=5).status_code == 200
    finally:
        _current.reset(token)
    assert len(server.calls("/x")) == 1  # only the platform-side request arrived
    assert requests.get(server.url + "/x", timeout=5).status_code == 200  # outside a call: unchecked


def test_an_allowed_host_is_reachable_and_boto3_is_checked_too(server: MockServer) -> None:
    egress.install()
    port = int(server.url.rsplit(":", 1)[1])
    token = in_call(Allowance("INGEST_API_B", (HostPort("127.0.0.1", port),)))
    try:
        assert requests.get(server.url + "/x", timeout=5).status_code == 200
        s3 = boto3.client(
            "s3",
            endpoint_url="http://127.0.0.1:1",
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",
            config=Config(retries={"max_attempts": 1}),
        )
        with pytest.raises(Exception, match=r"egress to 127\.0\.0\.1:1 is not allowed"):
            s3.list_buckets()
    finally:
        _current.reset(token)


def test_the_warehouse_connection_uses_a_separate_urllib3() -> None:
    """snowflake-connector vendors its own urllib3: the local warehouse's traffic is never checked."""
    from snowflake.connector.vendored.urllib3 import connection as vendored

    egress.install()
    assert vendored.HTTPConnection is not urllib3.connection.HTTPConnection
    assert not getattr(vendored.HTTPConnection.connect, "api2snow_egress", False)
    assert not getattr(vendored.HTTPSConnection.connect, "api2snow_egress", False)

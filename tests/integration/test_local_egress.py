"""The local stack refuses egress that the network rules of external_access/ do not allow, like Snowflake."""

from __future__ import annotations

import pytest

from ..unit._http_fixtures import MockServer
from .helpers import scalar

pytestmark = pytest.mark.integration


def test_a_base_url_outside_the_network_rules_fails_before_any_request(stack) -> None:
    """The rules were rendered from the original api_b_base_url; pointing the setting elsewhere later (as an
    operator could in OPS.PIPELINE_CONFIG) must fail the call before a single request leaves."""
    config = f"{stack.database}.OPS.PIPELINE_CONFIG"
    original = scalar(stack, f"SELECT config_value FROM {config} WHERE config_key = 'api_b_base_url'")
    with MockServer() as elsewhere:
        port = elsewhere.url.rsplit(":", 1)[1]
        set_base = f"UPDATE {config} SET config_value = ? WHERE config_key = 'api_b_base_url'"
        stack.session.sql(set_base, params=[elsewhere.url]).collect()
        try:
            with pytest.raises(Exception) as info:
                stack.call(f"CALL {stack.database}.OPS.INGEST_API_B()")
        finally:
            stack.session.sql(set_base, params=[original]).collect()
        assert elsewhere.seen == []
    message = str(info.value)
    original_port = original.rsplit(":", 1)[1]
    expected = f"egress to 127.0.0.1:{port} is not allowed: procedure INGEST_API_B may reach only "
    assert message.startswith(expected + f"127.0.0.1:{original_port}"), message
    assert message.endswith("(its network rules in external_access/)")
    ledger = f"{stack.database}.OPS.BATCH_LEDGER"
    failed = stack.session.sql(
        f"SELECT error_message FROM {ledger} WHERE source = 'api_b' AND status = 'FAILED'"
    ).collect()
    assert any("is not allowed: procedure INGEST_API_B" in row["ERROR_MESSAGE"] for row in failed)


def test_the_same_procedure_still_reaches_its_own_host(stack) -> None:
    result = stack.call(f"CALL {stack.database}.OPS.INGEST_API_B()")
    assert '"status":"STAGED"' in result, result

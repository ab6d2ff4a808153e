"""The local stand-in for secrets reads external_access/ and enforces each secret's TYPE like Snowflake."""

from __future__ import annotations

import pytest
from api2snow.platform import AwsCredentials, PlatformError

from api2snow_cli.local.secrets import LocalSecrets, parse_properties
from api2snow_cli.project import SECRET_VARIABLES, Project

AWS = AwsCredentials("local-key", "local-secret")
VALUES = {
    "api_a_client_id": "client-a",
    "api_a_client_secret": "it's-a-\\secret",
    "api_b_key": "key-b",
    "api_c_user": "user-c",
    "api_c_password": "pass-c",
    "aws_role_arn": "arn:aws:iam::000000000000:role/local",
}
VALUES.update({name: f"value-of-{name}" for name in SECRET_VARIABLES if name not in VALUES})  # other sources


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.load(overrides={"database": "LOCALDB", "api_a_base_url": "http://127.0.0.1:8123"})


@pytest.fixture(scope="module")
def secrets(project) -> LocalSecrets:
    return LocalSecrets.from_project(project, VALUES, AWS)


def test_properties_unquote_strings_split_lists_and_upper_case_words():
    props = parse_properties(
        "TYPE = password USERNAME = 'o''brien' PASSWORD = 'a\\\\b' "
        "OAUTH_SCOPES = ('x', 'y''z') ENABLED = TRUE"
    )
    assert props == {
        "TYPE": "PASSWORD",
        "USERNAME": "o'brien",
        "PASSWORD": "a\\b",
        "OAUTH_SCOPES": ["x", "y'z"],
        "ENABLED": "TRUE",
    }


def test_each_secret_reads_only_as_its_type_allows(secrets):
    assert secrets.secret_string("LOCALDB.OPS.API_B_KEY_SECRET") == "key-b"
    assert secrets.username_password("localdb.ops.api_c_login_secret") == ("user-c", "pass-c")
    assert secrets.aws_credentials("LOCALDB.OPS.AWS_S3_SECRET") == AWS
    with pytest.raises(PlatformError, match="API_A_CLIENT_SECRET is TYPE = OAUTH2, not PASSWORD"):
        secrets.username_password("LOCALDB.OPS.API_A_CLIENT_SECRET")
    with pytest.raises(PlatformError, match="TYPE = PASSWORD, not GENERIC_STRING"):
        secrets.secret_string("LOCALDB.OPS.API_C_LOGIN_SECRET")
    with pytest.raises(PlatformError, match="LOCALDB.OPS.NOPE does not exist"):
        secrets.secret_string("LOCALDB.OPS.NOPE")


def test_the_oauth2_secret_exchanges_its_integrations_client_credentials(secrets, project):
    client = secrets.oauth_client("LOCALDB.OPS.API_A_CLIENT_SECRET")
    assert client.token_url == "http://127.0.0.1:8123/oauth/token"
    assert (client.client_id, client.scope) == ("client-a", "events:read")
    assert client.method == "client_secret_post"
    assert client._token_request()[0]["client_secret"] == "it's-a-\\secret"  # unescaped from its SQL literal
    assert "it's" not in repr(client) and "it's" not in repr(secrets._secrets)


def test_a_secret_whose_integration_is_missing_or_of_another_kind_fails_clearly():
    statements = [
        "CREATE SECRET IF NOT EXISTS DB.OPS.S TYPE = OAUTH2 API_AUTHENTICATION = MISSING_INT",
        "CREATE SECRET IF NOT EXISTS DB.OPS.T TYPE = CLOUD_PROVIDER_TOKEN API_AUTHENTICATION = 'OAUTH_INT'",
        "CREATE SECURITY INTEGRATION IF NOT EXISTS OAUTH_INT TYPE = API_AUTHENTICATION AUTH_TYPE = OAUTH2",
    ]
    secrets = LocalSecrets(statements, AWS)
    with pytest.raises(PlatformError, match="security integration MISSING_INT is not in external_access/"):
        secrets.oauth_client("DB.OPS.S")
    with pytest.raises(PlatformError, match="OAUTH_INT is not AUTH_TYPE = AWS_IAM"):
        secrets.aws_credentials("DB.OPS.T")

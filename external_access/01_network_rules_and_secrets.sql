-- api2snow external access, the part the owner role runs: network rules and secrets in <db>.OPS.
-- `api2snow deploy` runs it after external_access/02 part 1 (the AWS_IAM and OAuth2 integrations that
-- AWS_S3_SECRET and API_A_CLIENT_SECRET name must exist) and before part 2 (the external access
-- integrations that list these rules and secrets).
--
-- Idempotent without replacing anything: each object is created only if absent, then brought up to date with
-- ALTER. Replacing a rule or a secret would break the integrations and procedures that refer to it.
--
-- Template variables that are NOT in snowflake.yml's env block (the generated sections use them):
--   <src>_host  host[:port] of <src>_base_url (`api2snow deploy` derives them)
--   any other  a secret value of a source (api_b_key, api_c_user, api_c_password, api_d_token, ...)
-- `api2snow deploy` fills each secret value from the environment variable API2SNOW_<NAME> (API2SNOW_API_B_KEY,
-- ...) and sends the statements on standard input; it never prints them or writes them to a file. By hand:
-- snow sql -f external_access/01_network_rules_and_secrets.sql -D api_a_host=... -D api_b_key=...

-- api2snow:generated network_rules
-- Egress to API A: one host serves both the OAuth token endpoint and the events endpoint.
CREATE NETWORK RULE IF NOT EXISTS <% ctx.env.database %>.OPS.API_A_NETWORK_RULE
MODE = EGRESS
TYPE = HOST_PORT
VALUE_LIST = ('<% api_a_host %>')
COMMENT = 'api2snow: API A host';

-- API A's rule follows api_a_base_url when the host changes.
ALTER NETWORK RULE <% ctx.env.database %>.OPS.API_A_NETWORK_RULE SET
VALUE_LIST = ('<% api_a_host %>')
COMMENT = 'api2snow: API A host';

-- Egress to API B.
CREATE NETWORK RULE IF NOT EXISTS <% ctx.env.database %>.OPS.API_B_NETWORK_RULE
MODE = EGRESS
TYPE = HOST_PORT
VALUE_LIST = ('<% api_b_host %>')
COMMENT = 'api2snow: API B host';

-- API B's rule follows api_b_base_url when the host changes.
ALTER NETWORK RULE <% ctx.env.database %>.OPS.API_B_NETWORK_RULE SET
VALUE_LIST = ('<% api_b_host %>')
COMMENT = 'api2snow: API B host';

-- Egress to API C.
CREATE NETWORK RULE IF NOT EXISTS <% ctx.env.database %>.OPS.API_C_NETWORK_RULE
MODE = EGRESS
TYPE = HOST_PORT
VALUE_LIST = ('<% api_c_host %>')
COMMENT = 'api2snow: API C host';

-- API C's rule follows api_c_base_url when the host changes.
ALTER NETWORK RULE <% ctx.env.database %>.OPS.API_C_NETWORK_RULE SET
VALUE_LIST = ('<% api_c_host %>')
COMMENT = 'api2snow: API C host';

-- Egress to API D.
CREATE NETWORK RULE IF NOT EXISTS <% ctx.env.database %>.OPS.API_D_NETWORK_RULE
MODE = EGRESS
TYPE = HOST_PORT
VALUE_LIST = ('<% api_d_host %>')
COMMENT = 'api2snow: API D host';

-- API D's rule follows api_d_base_url when the host changes.
ALTER NETWORK RULE <% ctx.env.database %>.OPS.API_D_NETWORK_RULE SET
VALUE_LIST = ('<% api_d_host %>')
COMMENT = 'api2snow: API D host';
-- api2snow:end network_rules

-- Egress to the landing bucket for boto3, and to nothing else on AWS: the bucket's own virtual-hosted names,
-- regional and global (boto3 uses the global one in us-east-1). Not the regional path-style endpoint, which
-- serves every bucket in the region, and not STS: the credentials come from the AWS_S3_SECRET, so nothing
-- calls it. The procedures ask boto3 for virtual-hosted addressing.
CREATE NETWORK RULE IF NOT EXISTS <% ctx.env.database %>.OPS.S3_NETWORK_RULE
MODE = EGRESS
TYPE = HOST_PORT
VALUE_LIST = (
    '<% ctx.env.bucket %>.s3.<% ctx.env.region %>.amazonaws.com',
    '<% ctx.env.bucket %>.s3.amazonaws.com'
)
COMMENT = 'api2snow: landing bucket and STS hosts';

-- The S3 rule follows the bucket and region when they change.
ALTER NETWORK RULE <% ctx.env.database %>.OPS.S3_NETWORK_RULE SET
VALUE_LIST = (
    '<% ctx.env.bucket %>.s3.<% ctx.env.region %>.amazonaws.com',
    '<% ctx.env.bucket %>.s3.amazonaws.com'
)
COMMENT = 'api2snow: landing bucket and STS hosts';

-- api2snow:generated secrets
-- API A's bearer token, issued by Snowflake through the OAuth2 integration of external_access/02 part 1, which
-- holds the client id and secret. INGEST_API_A reads it with get_oauth_access_token('api_a_client').
CREATE SECRET IF NOT EXISTS <% ctx.env.database %>.OPS.API_A_CLIENT_SECRET
TYPE = OAUTH2
API_AUTHENTICATION = API2SNOW_API_A_OAUTH_INT<% ctx.env.eai_suffix %>
OAUTH_SCOPES = ('<% ctx.env.api_a_scope %>')
COMMENT = 'api2snow: API A OAuth2 token';

-- Keeps API A's token scope in line with api_a_scope.
ALTER SECRET <% ctx.env.database %>.OPS.API_A_CLIENT_SECRET SET
OAUTH_SCOPES = ('<% ctx.env.api_a_scope %>');

-- Alternative for API A (documented, not deployed): the procedure runs the client-credentials exchange itself
-- with the client id and secret of a PASSWORD secret (no OAuth2 integration, so no ACCOUNTADMIN for it):
--   CREATE SECRET IF NOT EXISTS <db>.OPS.API_A_CLIENT_SECRET
--   TYPE = PASSWORD
--   USERNAME = '<client id>'
--   PASSWORD = '<client secret>';
-- with api_a_auth = client_credentials in snowflake.yml's env, and API2SNOW_API_A_EAI without
-- ALLOWED_API_AUTHENTICATION_INTEGRATIONS (docs/DEPLOY.md).

-- API B's key, sent as the X-API-Key header; read with get_generic_secret_string('api_b_key').
CREATE SECRET IF NOT EXISTS <% ctx.env.database %>.OPS.API_B_KEY_SECRET
TYPE = GENERIC_STRING
SECRET_STRING = '<% api_b_key %>'
COMMENT = 'api2snow: API B key';

-- Rotates API B's key to the value given to this deploy.
ALTER SECRET <% ctx.env.database %>.OPS.API_B_KEY_SECRET SET
SECRET_STRING = '<% api_b_key %>';

-- API C's HTTP Basic login; read with get_username_password('api_c_login').
CREATE SECRET IF NOT EXISTS <% ctx.env.database %>.OPS.API_C_LOGIN_SECRET
TYPE = PASSWORD
USERNAME = '<% api_c_user %>'
PASSWORD = '<% api_c_password %>'
COMMENT = 'api2snow: API C user and password';

-- Rotates API C's login to the values given to this deploy.
ALTER SECRET <% ctx.env.database %>.OPS.API_C_LOGIN_SECRET SET
USERNAME = '<% api_c_user %>'
PASSWORD = '<% api_c_password %>';

-- API D's token, sent as Authorization: Bearer; read with get_generic_secret_string('api_d_token').
CREATE SECRET IF NOT EXISTS <% ctx.env.database %>.OPS.API_D_TOKEN_SECRET
TYPE = GENERIC_STRING
SECRET_STRING = '<% api_d_token %>'
COMMENT = 'api2snow: API D token';

-- Rotates API D's token to the value given to this deploy.
ALTER SECRET <% ctx.env.database %>.OPS.API_D_TOKEN_SECRET SET
SECRET_STRING = '<% api_d_token %>';
-- api2snow:end secrets

-- Short-lived AWS credentials for boto3, issued by Snowflake through the AWS_IAM security integration
-- (external_access/02 part 1, trust policy in docs/DEPLOY.md); read with get_cloud_provider_token('aws_s3').
CREATE SECRET IF NOT EXISTS <% ctx.env.database %>.OPS.AWS_S3_SECRET
TYPE = CLOUD_PROVIDER_TOKEN
API_AUTHENTICATION = 'API2SNOW_AWS_IAM_INT'
ENABLED = TRUE
COMMENT = 'api2snow: AWS credentials for writing to the landing bucket';

-- Alternative for AWS (documented, not deployed): a long-lived access key pair of an IAM user in a PASSWORD
-- secret; the platform seam falls back to get_username_password('aws_s3') when the secret is not a token.
--   CREATE SECRET IF NOT EXISTS <db>.OPS.AWS_S3_SECRET
--   TYPE = PASSWORD
--   USERNAME = '<aws access key id>'
--   PASSWORD = '<aws secret access key>';
-- Prefer CLOUD_PROVIDER_TOKEN: no long-lived key to rotate, and the role's trust policy pins this account.

-- The secret part of the alert webhook (docs/DEPLOY.md): a Slack or Teams webhook URL's secret path, or a
-- PagerDuty routing key. Only the webhook notification integration (external_access/02 part 2) reads it, in
-- place of SNOWFLAKE_WEBHOOK_SECRET in its URL or body template; no procedure declares it.
CREATE SECRET IF NOT EXISTS <% ctx.env.database %>.OPS.ALERT_WEBHOOK_SECRET
TYPE = GENERIC_STRING
SECRET_STRING = '<% alert_webhook_secret %>'
COMMENT = 'api2snow: the secret part of the alert webhook';

-- Rotates the alert webhook's secret to the value given to this deploy.
ALTER SECRET <% ctx.env.database %>.OPS.ALERT_WEBHOOK_SECRET SET
SECRET_STRING = '<% alert_webhook_secret %>';

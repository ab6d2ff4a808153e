-- api2snow, the account-level part that needs ACCOUNTADMIN (CREATE ROLE, CREATE INTEGRATION, account grants,
-- MANAGE GRANTS). Kept apart so an admin can run it once while everyone else deploys with --skip-admin.
--
-- Two parts, because the external access integrations (part 2) list the network rules and secrets that
-- external_access/01 creates, and AWS_S3_SECRET and API_A_CLIENT_SECRET there name part 1's AWS_IAM and
-- OAuth2 integrations.
-- `api2snow deploy` runs: part 1, sql/01 setup, external_access/01, part 2, then everything else.
--
-- Template variables that are NOT in snowflake.yml's env block: aws_role_arn, the IAM role that the
-- CLOUD_PROVIDER_TOKEN secret assumes, and api_a_client_id, api_a_client_secret, API A's OAuth2 client
-- (`api2snow deploy` reads them from API2SNOW_AWS_ROLE_ARN, API2SNOW_API_A_CLIENT_ID and
-- API2SNOW_API_A_CLIENT_SECRET, and sends the statements on standard input).
-- Nothing here is replaced: integrations are created only if absent and then brought up to date with ALTER.
-- Recreating the storage or AWS_IAM integration would change its external id and break the trust policy of
-- its IAM role (docs/DEPLOY.md); recreating an external access integration would drop its grants.

USE ROLE ACCOUNTADMIN;

-- Owns every api2snow object; the procedures and tasks run as this role.
CREATE ROLE IF NOT EXISTS <% ctx.env.owner_role %>
COMMENT = 'api2snow: owns the pipeline objects';

-- Runs and watches the task graph (EXECUTE TASK, OPERATE and MONITOR on the tasks).
CREATE ROLE IF NOT EXISTS <% ctx.env.operator_role %>
COMMENT = 'api2snow: runs and monitors the task graph';

-- Reads ANALYTICS and calls the analyst procedures; nothing on RAW, secrets or integrations.
CREATE ROLE IF NOT EXISTS <% ctx.env.analyst_role %>
COMMENT = 'api2snow: reads ANALYTICS';

-- The usual hierarchy: custom roles roll up to SYSADMIN, so SYSADMIN and ACCOUNTADMIN can manage the objects.
GRANT ROLE <% ctx.env.owner_role %> TO ROLE SYSADMIN;

-- The operator role rolls up to SYSADMIN too.
GRANT ROLE <% ctx.env.operator_role %> TO ROLE SYSADMIN;

-- The analyst role rolls up to SYSADMIN too.
GRANT ROLE <% ctx.env.analyst_role %> TO ROLE SYSADMIN;

-- The owner creates the pipeline's database.
GRANT CREATE DATABASE ON ACCOUNT TO ROLE <% ctx.env.owner_role %>;

-- The owner's tasks may run: EXECUTE TASK for any task, EXECUTE MANAGED TASK for serverless ones.
GRANT EXECUTE TASK, EXECUTE MANAGED TASK ON ACCOUNT TO ROLE <% ctx.env.owner_role %>;

-- The operator may run the graph by hand (EXECUTE TASK <db>.PIPELINE.ROOT); OPERATE on the tasks is in sql/07.
GRANT EXECUTE TASK ON ACCOUNT TO ROLE <% ctx.env.operator_role %>;

-- The ingest and backfill procedures take their packages (orjson, and with it every package they import)
-- from Snowflake's PyPI artifact repository, snowflake.snowpark.pypi_shared_repository: creating and
-- running them needs this database role (snowflake.yml, mixin pypi_packages).
GRANT DATABASE ROLE SNOWFLAKE.PYPI_REPOSITORY_USER TO ROLE <% ctx.env.owner_role %>;

-- The warehouse for deploy statements and for procedures called outside the (serverless) task graph.
CREATE WAREHOUSE IF NOT EXISTS <% ctx.env.warehouse %>
WAREHOUSE_SIZE = 'XSMALL'
AUTO_SUSPEND = 60
AUTO_RESUME = TRUE
INITIALLY_SUSPENDED = TRUE
COMMENT = 'api2snow: deploy and ad-hoc procedure calls';

-- The owner runs deploy statements and procedures on the warehouse.
GRANT USAGE ON WAREHOUSE <% ctx.env.warehouse %> TO ROLE <% ctx.env.owner_role %>;

-- The operator queries task history and run tables on the warehouse.
GRANT USAGE ON WAREHOUSE <% ctx.env.warehouse %> TO ROLE <% ctx.env.operator_role %>;

-- Analysts query ANALYTICS on the warehouse.
GRANT USAGE ON WAREHOUSE <% ctx.env.warehouse %> TO ROLE <% ctx.env.analyst_role %>;

-- Snowflake's read access to the landing bucket, used by the RAW.LANDING stage and so by the pipes.
-- DESC INTEGRATION gives STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID for the role's trust policy.
CREATE STORAGE INTEGRATION IF NOT EXISTS <% ctx.env.storage_integration %>
TYPE = EXTERNAL_STAGE
STORAGE_PROVIDER = 'S3'
ENABLED = TRUE
STORAGE_AWS_ROLE_ARN = '<% ctx.env.storage_aws_role_arn %>'
STORAGE_ALLOWED_LOCATIONS = ('s3://<% ctx.env.bucket %>/')
COMMENT = 'api2snow: landing bucket for the RAW.LANDING stage';

-- The storage integration follows the bucket when it changes (the external id stays the same).
ALTER STORAGE INTEGRATION <% ctx.env.storage_integration %> SET
STORAGE_ALLOWED_LOCATIONS = ('s3://<% ctx.env.bucket %>/');

-- The owner creates the RAW.LANDING stage on the storage integration.
GRANT USAGE ON INTEGRATION <% ctx.env.storage_integration %> TO ROLE <% ctx.env.owner_role %>;

-- Snowflake assumes this IAM role to hand the ingest procedures short-lived credentials for writing to the
-- bucket (AWS_S3_SECRET, TYPE = CLOUD_PROVIDER_TOKEN). DESC INTEGRATION gives API_AWS_IAM_USER_ARN and
-- API_AWS_EXTERNAL_ID for the role's trust policy.
CREATE SECURITY INTEGRATION IF NOT EXISTS API2SNOW_AWS_IAM_INT
TYPE = API_AUTHENTICATION
AUTH_TYPE = AWS_IAM
AWS_ROLE_ARN = '<% aws_role_arn %>'
ENABLED = TRUE
COMMENT = 'api2snow: AWS credentials for the ingest procedures';

-- The owner creates AWS_S3_SECRET on the AWS_IAM integration.
GRANT USAGE ON INTEGRATION API2SNOW_AWS_IAM_INT TO ROLE <% ctx.env.owner_role %>;

-- api2snow:generated oauth_integrations
-- API A's OAuth2 client credentials, held by Snowflake: it runs the client-credentials exchange against API A's
-- token endpoint and hands INGEST_API_A a bearer token (API_A_CLIENT_SECRET, TYPE = OAUTH2, in
-- external_access/01). Named per environment, since dev and prod may use different API A clients.
CREATE SECURITY INTEGRATION IF NOT EXISTS API2SNOW_API_A_OAUTH_INT<% ctx.env.eai_suffix %>
TYPE = API_AUTHENTICATION
AUTH_TYPE = OAUTH2
ENABLED = TRUE
OAUTH_TOKEN_ENDPOINT = '<% ctx.env.api_a_base_url %>/oauth/token'
OAUTH_CLIENT_AUTH_METHOD = CLIENT_SECRET_POST
OAUTH_CLIENT_ID = '<% api_a_client_id %>'
OAUTH_CLIENT_SECRET = '<% api_a_client_secret %>'
OAUTH_GRANT = 'CLIENT_CREDENTIALS'
OAUTH_ALLOWED_SCOPES = ('<% ctx.env.api_a_scope %>')
COMMENT = 'api2snow: API A OAuth2 client credentials';

-- Follows api_a_base_url and rotates API A's client credentials to the values given to this deploy.
ALTER SECURITY INTEGRATION API2SNOW_API_A_OAUTH_INT<% ctx.env.eai_suffix %> SET
ENABLED = TRUE
OAUTH_TOKEN_ENDPOINT = '<% ctx.env.api_a_base_url %>/oauth/token'
OAUTH_CLIENT_ID = '<% api_a_client_id %>'
OAUTH_CLIENT_SECRET = '<% api_a_client_secret %>'
OAUTH_ALLOWED_SCOPES = ('<% ctx.env.api_a_scope %>');

-- The owner creates API_A_CLIENT_SECRET on the OAuth2 integration.
GRANT USAGE ON INTEGRATION API2SNOW_API_A_OAUTH_INT<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;
-- api2snow:end oauth_integrations

-- PART 2: external access integrations and future grants. They need the network rules and secrets of
-- external_access/01 and the ANALYTICS schema of sql/01, so `api2snow deploy` runs this part after them.

USE ROLE ACCOUNTADMIN;

-- api2snow:generated external_access_integrations
-- What INGEST_API_A may reach: API A's host, with the OAuth2 token of its integration.
CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS API2SNOW_API_A_EAI<% ctx.env.eai_suffix %>
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_A_NETWORK_RULE)
ALLOWED_API_AUTHENTICATION_INTEGRATIONS = (API2SNOW_API_A_OAUTH_INT<% ctx.env.eai_suffix %>)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_A_CLIENT_SECRET)
ENABLED = TRUE
COMMENT = 'api2snow: API A for INGEST_API_A';

-- Keeps API A's integration pointed at this database's rule and secret, without replacing it.
ALTER EXTERNAL ACCESS INTEGRATION API2SNOW_API_A_EAI<% ctx.env.eai_suffix %> SET
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_A_NETWORK_RULE)
ALLOWED_API_AUTHENTICATION_INTEGRATIONS = (API2SNOW_API_A_OAUTH_INT<% ctx.env.eai_suffix %>)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_A_CLIENT_SECRET)
ENABLED = TRUE;

-- What INGEST_API_B may reach: API B's host, with its key.
CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS API2SNOW_API_B_EAI<% ctx.env.eai_suffix %>
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_B_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_B_KEY_SECRET)
ENABLED = TRUE
COMMENT = 'api2snow: API B for INGEST_API_B';

-- Keeps API B's integration pointed at this database's rule and secret, without replacing it.
ALTER EXTERNAL ACCESS INTEGRATION API2SNOW_API_B_EAI<% ctx.env.eai_suffix %> SET
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_B_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_B_KEY_SECRET)
ENABLED = TRUE;

-- What INGEST_API_C may reach: API C's host, with its login.
CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS API2SNOW_API_C_EAI<% ctx.env.eai_suffix %>
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_C_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_C_LOGIN_SECRET)
ENABLED = TRUE
COMMENT = 'api2snow: API C for INGEST_API_C';

-- Keeps API C's integration pointed at this database's rule and secret, without replacing it.
ALTER EXTERNAL ACCESS INTEGRATION API2SNOW_API_C_EAI<% ctx.env.eai_suffix %> SET
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_C_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_C_LOGIN_SECRET)
ENABLED = TRUE;

-- What INGEST_API_D may reach: API D's host, with its token.
CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS API2SNOW_API_D_EAI<% ctx.env.eai_suffix %>
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_D_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_D_TOKEN_SECRET)
ENABLED = TRUE
COMMENT = 'api2snow: API D for INGEST_API_D';

-- Keeps API D's integration pointed at this database's rule and secret, without replacing it.
ALTER EXTERNAL ACCESS INTEGRATION API2SNOW_API_D_EAI<% ctx.env.eai_suffix %> SET
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.API_D_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.API_D_TOKEN_SECRET)
ENABLED = TRUE;
-- api2snow:end external_access_integrations

-- What every ingest procedure may reach to stage its parts: the bucket and STS, with the AWS credentials.
CREATE EXTERNAL ACCESS INTEGRATION IF NOT EXISTS API2SNOW_S3_EAI<% ctx.env.eai_suffix %>
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.S3_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.AWS_S3_SECRET)
ENABLED = TRUE
COMMENT = 'api2snow: landing bucket for the ingest procedures';

-- Keeps the S3 integration pointed at this database's rule and secret, without replacing it.
ALTER EXTERNAL ACCESS INTEGRATION API2SNOW_S3_EAI<% ctx.env.eai_suffix %> SET
ALLOWED_NETWORK_RULES = (<% ctx.env.database %>.OPS.S3_NETWORK_RULE)
ALLOWED_AUTHENTICATION_SECRETS = (<% ctx.env.database %>.OPS.AWS_S3_SECRET)
ENABLED = TRUE;

-- api2snow:generated integration_grants
-- The owner creates the procedures that use API A's integration.
GRANT USAGE ON INTEGRATION API2SNOW_API_A_EAI<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;

-- The owner creates the procedures that use API B's integration.
GRANT USAGE ON INTEGRATION API2SNOW_API_B_EAI<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;

-- The owner creates the procedures that use API C's integration.
GRANT USAGE ON INTEGRATION API2SNOW_API_C_EAI<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;

-- The owner creates the procedures that use API D's integration.
GRANT USAGE ON INTEGRATION API2SNOW_API_D_EAI<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;
-- api2snow:end integration_grants

-- The owner creates the procedures that use the S3 integration.
GRANT USAGE ON INTEGRATION API2SNOW_S3_EAI<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;

-- Analysts read every view created later in ANALYTICS (future grants need MANAGE GRANTS, hence here;
-- sql/07 grants the existing ones).
GRANT SELECT ON FUTURE VIEWS IN SCHEMA <% ctx.env.database %>.ANALYTICS TO ROLE <% ctx.env.analyst_role %>;

-- Analysts read every table created later in ANALYTICS.
GRANT SELECT ON FUTURE TABLES IN SCHEMA <% ctx.env.database %>.ANALYTICS TO ROLE <% ctx.env.analyst_role %>;

-- Alerts (the finalizer, notifications.py): a webhook to Slack, Microsoft Teams or PagerDuty. Snowflake puts
-- OPS.ALERT_WEBHOOK_SECRET (external_access/01) where SNOWFLAKE_WEBHOOK_SECRET stands in the URL or the body
-- template, and the message where SNOWFLAKE_WEBHOOK_MESSAGE stands (alert_webhook_url and
-- alert_webhook_body_template in snowflake.yml's env; docs/DEPLOY.md has the Teams and PagerDuty forms).
CREATE NOTIFICATION INTEGRATION IF NOT EXISTS API2SNOW_ALERTS_WEBHOOK<% ctx.env.eai_suffix %>
TYPE = WEBHOOK
ENABLED = TRUE
WEBHOOK_URL = '<% ctx.env.alert_webhook_url %>'
WEBHOOK_SECRET = <% ctx.env.database %>.OPS.ALERT_WEBHOOK_SECRET
WEBHOOK_BODY_TEMPLATE = '<% ctx.env.alert_webhook_body_template %>'
WEBHOOK_HEADERS = ('Content-Type' = 'application/json')
COMMENT = 'api2snow: alerts of failed graph runs';

-- Keeps the webhook integration pointed at this environment's URL, secret and body template.
ALTER NOTIFICATION INTEGRATION API2SNOW_ALERTS_WEBHOOK<% ctx.env.eai_suffix %> SET
ENABLED = TRUE
WEBHOOK_URL = '<% ctx.env.alert_webhook_url %>'
WEBHOOK_SECRET = <% ctx.env.database %>.OPS.ALERT_WEBHOOK_SECRET
WEBHOOK_BODY_TEMPLATE = '<% ctx.env.alert_webhook_body_template %>'
WEBHOOK_HEADERS = ('Content-Type' = 'application/json');

-- Alerts by email, to the verified addresses of alert_email_recipients (none: the finalizer sends no email).
CREATE NOTIFICATION INTEGRATION IF NOT EXISTS API2SNOW_ALERTS_EMAIL<% ctx.env.eai_suffix %>
TYPE = EMAIL
ENABLED = TRUE
COMMENT = 'api2snow: alerts of failed graph runs, by email';

-- The owner's finalizer sends through the webhook integration.
GRANT USAGE ON INTEGRATION API2SNOW_ALERTS_WEBHOOK<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;

-- The owner's finalizer sends through the email integration.
GRANT USAGE ON INTEGRATION API2SNOW_ALERTS_EMAIL<% ctx.env.eai_suffix %> TO ROLE <% ctx.env.owner_role %>;

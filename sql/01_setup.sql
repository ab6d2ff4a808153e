-- api2snow setup: the database, one schema per layer, and the pipeline's own state tables.
-- Rendered by `snow sql -f` (or the local stack) with the env block of snowflake.yml.

-- The pipeline's database.
CREATE DATABASE IF NOT EXISTS <% ctx.env.database %>;

-- Every procedure in the database logs at INFO and traces on events, so its log lines reach the account's
-- event table (docs/DEPLOY.md, "Logs and traces", says how to point one and how to read a run's lines).
ALTER DATABASE <% ctx.env.database %> SET LOG_LEVEL = INFO;

ALTER DATABASE <% ctx.env.database %> SET TRACE_LEVEL = ON_EVENT;

-- RAW: payloads exactly as Snowpipe loaded them, with file name, row number and batch id.
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database %>.RAW;

-- CLEAN: typed tables, one row per record id (latest version).
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database %>.CLEAN;

-- ANALYTICS: what analysts read: views, daily summary, data-quality results.
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database %>.ANALYTICS;

-- OPS: procedures, secrets, configuration, watermarks, batch ledger, metrics.
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database %>.OPS;

-- PIPELINE: the task graph.
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database %>.PIPELINE;

-- Non-secret settings the procedures read (API base URLs, bucket, part size); secrets live in SECRET objects.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.OPS.PIPELINE_CONFIG (
    CONFIG_KEY STRING NOT NULL,
    CONFIG_VALUE STRING,
    UPDATED_AT TIMESTAMP_NTZ
);

-- Upsert this environment's settings into PIPELINE_CONFIG.
MERGE INTO <% ctx.env.database %>.OPS.PIPELINE_CONFIG AS cfg
USING (
    SELECT
        column1 AS config_key,
        column2 AS config_value
    FROM
        VALUES
        ('env_name', '<% ctx.env.env_name %>'),
        ('bucket', '<% ctx.env.bucket %>'),
        ('region', '<% ctx.env.region %>'),
        ('s3_endpoint_url', '<% ctx.env.s3_endpoint_url %>'),
        -- api2snow:generated pipeline_config
        ('api_a_base_url', '<% ctx.env.api_a_base_url %>'),
        ('api_a_auth', '<% ctx.env.api_a_auth %>'),
        ('api_a_scope', '<% ctx.env.api_a_scope %>'),
        ('api_b_base_url', '<% ctx.env.api_b_base_url %>'),
        ('api_c_base_url', '<% ctx.env.api_c_base_url %>'),
        ('api_d_base_url', '<% ctx.env.api_d_base_url %>'),
        -- api2snow:end pipeline_config
        ('part_max_mb', '<% ctx.env.part_max_mb %>'),
        ('alert_webhook_integration', 'API2SNOW_ALERTS_WEBHOOK<% ctx.env.eai_suffix %>'),
        ('alert_email_integration', 'API2SNOW_ALERTS_EMAIL<% ctx.env.eai_suffix %>'),
        ('alert_email_recipients', '<% ctx.env.alert_email_recipients %>'),
        ('alert_on_warnings', '<% ctx.env.alert_on_warnings %>')
) AS incoming
    ON cfg.config_key = incoming.config_key
WHEN MATCHED THEN
    UPDATE SET
        cfg.config_value = incoming.config_value,
        cfg.updated_at = CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ
WHEN NOT MATCHED THEN
    INSERT (config_key, config_value, updated_at)
    VALUES (incoming.config_key, incoming.config_value, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ);

-- Per source: the highest updated_at confirmed loaded; the next extract starts after it.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.OPS.WATERMARKS (
    SOURCE STRING NOT NULL,
    WATERMARK TIMESTAMP_NTZ,
    BATCH_ID STRING,
    UPDATED_AT TIMESTAMP_NTZ
);

-- One row per ingest batch: window, counts, parts, status (STARTED, STAGED, LOADED, MERGED, FAILED or
-- ABANDONED: never loaded, its files removed, its window read again).
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.OPS.BATCH_LEDGER (
    BATCH_ID STRING NOT NULL,
    SOURCE STRING NOT NULL,
    RUN_ID STRING,
    WINDOW_START TIMESTAMP_NTZ,
    WINDOW_END TIMESTAMP_NTZ,
    MAX_UPDATED_AT TIMESTAMP_NTZ,
    PARTITION_PREFIX STRING,
    STATUS STRING NOT NULL,
    FETCHED NUMBER,
    STAGED NUMBER,
    REJECTED NUMBER,
    DUPLICATES NUMBER,
    PARTS NUMBER,
    MANIFEST VARIANT,
    HTTP_STATS VARIANT,
    STARTED_AT TIMESTAMP_NTZ,
    STAGED_AT TIMESTAMP_NTZ,
    LOADED_AT TIMESTAMP_NTZ,
    MERGED_AT TIMESTAMP_NTZ,
    ERROR_MESSAGE STRING,
    COMPLETE BOOLEAN,
    REMAINING NUMBER,
    DQ_RUN_ID STRING,
    KIND STRING
);

-- Ledgers created by an earlier release: whether a batch read its source to the end (FALSE: it stopped at
-- its run budget and the next run goes on from its MAX_UPDATED_AT), and how many records the API still
-- declared then (NULL where the API gives no total).
ALTER TABLE <% ctx.env.database %>.OPS.BATCH_LEDGER ADD COLUMN IF NOT EXISTS COMPLETE BOOLEAN;

ALTER TABLE <% ctx.env.database %>.OPS.BATCH_LEDGER ADD COLUMN IF NOT EXISTS REMAINING NUMBER;

-- Ledgers created before the hourly checks became per batch: the graph run whose RUN_DQ checked the batch's
-- rows (NULL: not checked yet; the next graph run's RUN_DQ checks it).
ALTER TABLE <% ctx.env.database %>.OPS.BATCH_LEDGER ADD COLUMN IF NOT EXISTS DQ_RUN_ID STRING;

-- Ledgers created before OPS.BACKFILL: what started the batch, HOURLY (the graph's ingest; NULL in older rows)
-- or BACKFILL (an analyst's re-read of a past window, which never moves the watermark).
ALTER TABLE <% ctx.env.database %>.OPS.BATCH_LEDGER ADD COLUMN IF NOT EXISTS KIND STRING;

-- The (source, day) pairs of ANL_DAILY_SUMMARY a CLEAN merge changed and BUILD_ANALYTICS has not refreshed
-- yet: the days the merged records fall on and the days an update moved them from. A row with a NULL source
-- (a camera's site changed) asks for every day. BUILD_ANALYTICS deletes the rows it refreshed.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.OPS.SUMMARY_QUEUE (
    SOURCE STRING,
    EVENT_DATE DATE,
    QUEUED_AT TIMESTAMP_NTZ
);

-- One row per metric per run, written by PUBLISH_METRICS.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.OPS.PIPELINE_METRICS (
    RUN_ID STRING NOT NULL,
    METRIC_NAME STRING NOT NULL,
    SOURCE STRING,
    METRIC_VALUE FLOAT,
    RECORDED_AT TIMESTAMP_NTZ
);

-- One row per graph run group (RUN_ID), merged by the finalizer after each attempt: the last one's verdict.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.OPS.PIPELINE_RUNS (
    RUN_ID STRING NOT NULL,
    STATE STRING NOT NULL,
    TASKS_SUCCEEDED NUMBER,
    TASKS_FAILED NUMBER,
    FIRST_ERROR STRING,
    FINISHED_AT TIMESTAMP_NTZ
);

-- One row per alert the finalizer sent or tried to send (notifications.py): a channel with a SENT row for a run
-- group and kind does not send it again, and a failed send is kept here with its error.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.OPS.PIPELINE_ALERTS (
    RUN_ID STRING NOT NULL,
    ALERT_KIND STRING NOT NULL,
    CHANNEL STRING NOT NULL,
    INTEGRATION STRING,
    STATE STRING NOT NULL,
    ERROR_MESSAGE STRING,
    MESSAGE STRING,
    SENT_AT TIMESTAMP_NTZ
);

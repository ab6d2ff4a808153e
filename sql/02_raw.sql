-- RAW layer: the landing stage on S3, the RAW tables, and the pipes that load them.
-- Pipes are created only if absent: recreating a pipe drops its load history and could reload files.
-- Pipes auto-ingest: the bucket's event notification (put by the deploy from SHOW PIPES'
-- notification_channel) queues each created part; REFRESH_PIPE / WAIT_FOR_LOAD only refresh what a
-- notification missed, and COPY files older than REFRESH's 7-day window (docs/ARCHITECTURE.md).
-- LOADED_AT is the pipeline's one TIMESTAMP_LTZ column: Snowpipe's METADATA$START_SCAN_TIME, an absolute
-- instant (a pipe's COPY cannot be changed in place, and an LTZ value cannot be misread). Whatever reads it
-- converts it to naive UTC, CONVERT_TIMEZONE('UTC', loaded_at)::TIMESTAMP_NTZ, as VW_RAW_STATS does.

-- Gzip JSON Lines as the ingest procedures write them.
CREATE FILE FORMAT IF NOT EXISTS <% ctx.env.database %>.RAW.JSONL_GZ
    TYPE = JSON
    COMPRESSION = GZIP;

-- The landing bucket: source=<src>/dt=/hour=/batch_id=/part-NNNN.jsonl.gz, _rejects/..., _manifests/...
CREATE STAGE IF NOT EXISTS <% ctx.env.database %>.RAW.LANDING
    URL = 's3://<% ctx.env.bucket %>/'
    STORAGE_INTEGRATION = <% ctx.env.storage_integration %>
    FILE_FORMAT = <% ctx.env.database %>.RAW.JSONL_GZ
    COMMENT = 'api2snow landing bucket';

-- api2snow:generated raw_tables
-- API A events as staged: one normalised event per row.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.RAW.API_A_EVENTS (
    PAYLOAD VARIANT,
    FILE_NAME STRING,
    FILE_ROW_NUMBER NUMBER,
    BATCH_ID STRING,
    LOADED_AT TIMESTAMP_LTZ
);

-- API B events as staged: one normalised event per row.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.RAW.API_B_EVENTS (
    PAYLOAD VARIANT,
    FILE_NAME STRING,
    FILE_ROW_NUMBER NUMBER,
    BATCH_ID STRING,
    LOADED_AT TIMESTAMP_LTZ
);

-- API C camera directory as staged: one camera per row.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.RAW.API_C_CAMERAS (
    PAYLOAD VARIANT,
    FILE_NAME STRING,
    FILE_ROW_NUMBER NUMBER,
    BATCH_ID STRING,
    LOADED_AT TIMESTAMP_LTZ
);

-- API D events as staged: one normalised event per row.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.RAW.API_D_EVENTS (
    PAYLOAD VARIANT,
    FILE_NAME STRING,
    FILE_ROW_NUMBER NUMBER,
    BATCH_ID STRING,
    LOADED_AT TIMESTAMP_LTZ
);
-- api2snow:end raw_tables

-- Records that failed validation, with the reason, from every source.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.RAW.REJECTED_RECORDS (
    PAYLOAD VARIANT,
    FILE_NAME STRING,
    FILE_ROW_NUMBER NUMBER,
    BATCH_ID STRING,
    LOADED_AT TIMESTAMP_LTZ
);

-- api2snow:generated raw_pipes
-- Loads API A parts (not rejects, not manifests) into RAW.API_A_EVENTS.
CREATE PIPE IF NOT EXISTS <% ctx.env.database %>.RAW.API_A_EVENTS_PIPE
AUTO_INGEST = TRUE
COMMENT = 'api2snow: loads source=api_a parts'
AS
COPY INTO <% ctx.env.database %>.RAW.API_A_EVENTS (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT)
FROM (
    SELECT
        $1,
        metadata$filename,
        metadata$file_row_number,
        $1:_batch_id::STRING,
        metadata$start_scan_time
    FROM @<% ctx.env.database %>.RAW.LANDING/source=api_a/
)
PATTERN = '.*part-[0-9]+[.]jsonl[.]gz'
FILE_FORMAT = (FORMAT_NAME = '<% ctx.env.database %>.RAW.JSONL_GZ');

-- Loads API B parts into RAW.API_B_EVENTS.
CREATE PIPE IF NOT EXISTS <% ctx.env.database %>.RAW.API_B_EVENTS_PIPE
AUTO_INGEST = TRUE
COMMENT = 'api2snow: loads source=api_b parts'
AS
COPY INTO <% ctx.env.database %>.RAW.API_B_EVENTS (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT)
FROM (
    SELECT
        $1,
        metadata$filename,
        metadata$file_row_number,
        $1:_batch_id::STRING,
        metadata$start_scan_time
    FROM @<% ctx.env.database %>.RAW.LANDING/source=api_b/
)
PATTERN = '.*part-[0-9]+[.]jsonl[.]gz'
FILE_FORMAT = (FORMAT_NAME = '<% ctx.env.database %>.RAW.JSONL_GZ');

-- Loads API C parts into RAW.API_C_CAMERAS.
CREATE PIPE IF NOT EXISTS <% ctx.env.database %>.RAW.API_C_CAMERAS_PIPE
AUTO_INGEST = TRUE
COMMENT = 'api2snow: loads source=api_c parts'
AS
COPY INTO <% ctx.env.database %>.RAW.API_C_CAMERAS (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT)
FROM (
    SELECT
        $1,
        metadata$filename,
        metadata$file_row_number,
        $1:_batch_id::STRING,
        metadata$start_scan_time
    FROM @<% ctx.env.database %>.RAW.LANDING/source=api_c/
)
PATTERN = '.*part-[0-9]+[.]jsonl[.]gz'
FILE_FORMAT = (FORMAT_NAME = '<% ctx.env.database %>.RAW.JSONL_GZ');

-- Loads API D parts into RAW.API_D_EVENTS.
CREATE PIPE IF NOT EXISTS <% ctx.env.database %>.RAW.API_D_EVENTS_PIPE
AUTO_INGEST = TRUE
COMMENT = 'api2snow: loads source=api_d parts'
AS
COPY INTO <% ctx.env.database %>.RAW.API_D_EVENTS (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT)
FROM (
    SELECT
        $1,
        metadata$filename,
        metadata$file_row_number,
        $1:_batch_id::STRING,
        metadata$start_scan_time
    FROM @<% ctx.env.database %>.RAW.LANDING/source=api_d/
)
PATTERN = '.*part-[0-9]+[.]jsonl[.]gz'
FILE_FORMAT = (FORMAT_NAME = '<% ctx.env.database %>.RAW.JSONL_GZ');
-- api2snow:end raw_pipes

-- Loads rejects files of every source into RAW.REJECTED_RECORDS.
CREATE PIPE IF NOT EXISTS <% ctx.env.database %>.RAW.REJECTED_RECORDS_PIPE
AUTO_INGEST = TRUE
COMMENT = 'api2snow: loads _rejects files'
AS
COPY INTO <% ctx.env.database %>.RAW.REJECTED_RECORDS (PAYLOAD, FILE_NAME, FILE_ROW_NUMBER, BATCH_ID, LOADED_AT)
FROM (
    SELECT
        $1,
        metadata$filename,
        metadata$file_row_number,
        $1:_batch_id::STRING,
        metadata$start_scan_time
    FROM @<% ctx.env.database %>.RAW.LANDING/_rejects/
)
PATTERN = '.*rejects-[0-9]+[.]jsonl[.]gz'
FILE_FORMAT = (FORMAT_NAME = '<% ctx.env.database %>.RAW.JSONL_GZ');

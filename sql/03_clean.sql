-- CLEAN layer: typed tables keyed by record id, kept current by BUILD_CLEAN's incremental MERGE.
-- The STG_ views type the RAW payloads; BUILD_CLEAN merges the rows of loaded batches from them,
-- keeping for each id the row with the latest UPDATED_AT.

-- api2snow:generated staging_views
-- Typed rows of all 3 event sources, one per RAW row (not deduplicated).
-- The casts are the column types of the CLN_ tables; sources/entities.py EVENT_FIELDS reject at ingest any value
-- they cannot hold (tests/unit/test_schema_matches_sql.py keeps the two in step). DURATION_MS is
-- NUMBER(18, 0), not NUMBER(38, 0): that is what both Snowflake and the local warehouse hold exactly.
CREATE OR REPLACE VIEW <% ctx.env.database %>.CLEAN.STG_EVENTS AS
SELECT
    'api_a' AS source,
    raw_rows.payload:event_id::STRING AS event_id,
    raw_rows.payload:event_type::STRING AS event_type,
    raw_rows.payload:camera_id::STRING AS camera_id,
    raw_rows.payload:category::STRING AS category,
    raw_rows.payload:confidence::FLOAT AS confidence,
    raw_rows.payload:occurred_at::TIMESTAMP_NTZ AS occurred_at,
    raw_rows.payload:updated_at::TIMESTAMP_NTZ AS updated_at,
    raw_rows.payload:duration_ms::NUMBER(18, 0) AS duration_ms,
    raw_rows.payload:occurred_at::TIMESTAMP_NTZ::DATE AS event_date,
    raw_rows.batch_id,
    raw_rows.file_name,
    raw_rows.file_row_number,
    raw_rows.loaded_at
FROM <% ctx.env.database %>.RAW.API_A_EVENTS AS raw_rows
UNION ALL
SELECT
    'api_b' AS source,
    raw_rows.payload:event_id::STRING AS event_id,
    raw_rows.payload:event_type::STRING AS event_type,
    raw_rows.payload:camera_id::STRING AS camera_id,
    raw_rows.payload:category::STRING AS category,
    raw_rows.payload:confidence::FLOAT AS confidence,
    raw_rows.payload:occurred_at::TIMESTAMP_NTZ AS occurred_at,
    raw_rows.payload:updated_at::TIMESTAMP_NTZ AS updated_at,
    raw_rows.payload:duration_ms::NUMBER(18, 0) AS duration_ms,
    raw_rows.payload:occurred_at::TIMESTAMP_NTZ::DATE AS event_date,
    raw_rows.batch_id,
    raw_rows.file_name,
    raw_rows.file_row_number,
    raw_rows.loaded_at
FROM <% ctx.env.database %>.RAW.API_B_EVENTS AS raw_rows
UNION ALL
SELECT
    'api_d' AS source,
    raw_rows.payload:event_id::STRING AS event_id,
    raw_rows.payload:event_type::STRING AS event_type,
    raw_rows.payload:camera_id::STRING AS camera_id,
    raw_rows.payload:category::STRING AS category,
    raw_rows.payload:confidence::FLOAT AS confidence,
    raw_rows.payload:occurred_at::TIMESTAMP_NTZ AS occurred_at,
    raw_rows.payload:updated_at::TIMESTAMP_NTZ AS updated_at,
    raw_rows.payload:duration_ms::NUMBER(18, 0) AS duration_ms,
    raw_rows.payload:occurred_at::TIMESTAMP_NTZ::DATE AS event_date,
    raw_rows.batch_id,
    raw_rows.file_name,
    raw_rows.file_row_number,
    raw_rows.loaded_at
FROM <% ctx.env.database %>.RAW.API_D_EVENTS AS raw_rows;

-- Typed rows of the camera directory (API C), one per RAW row.
CREATE OR REPLACE VIEW <% ctx.env.database %>.CLEAN.STG_CAMERAS AS
SELECT
    'api_c' AS source,
    raw_rows.payload:camera_id::STRING AS camera_id,
    raw_rows.payload:site_id::STRING AS site_id,
    raw_rows.payload:site_name::STRING AS site_name,
    raw_rows.payload:city::STRING AS city,
    raw_rows.payload:country::STRING AS country,
    raw_rows.payload:timezone::STRING AS timezone,
    raw_rows.payload:latitude::FLOAT AS latitude,
    raw_rows.payload:longitude::FLOAT AS longitude,
    raw_rows.payload:installed_at::TIMESTAMP_NTZ AS installed_at,
    raw_rows.payload:active::BOOLEAN AS active,
    raw_rows.payload:updated_at::TIMESTAMP_NTZ AS updated_at,
    raw_rows.batch_id,
    raw_rows.file_name,
    raw_rows.file_row_number,
    raw_rows.loaded_at
FROM <% ctx.env.database %>.RAW.API_C_CAMERAS AS raw_rows;
-- api2snow:end staging_views

-- api2snow:generated clean_tables
-- API A events, typed, one row per EVENT_ID holding its latest version.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.CLEAN.CLN_API_A_EVENTS (
    EVENT_ID STRING NOT NULL,
    EVENT_TYPE STRING,
    CAMERA_ID STRING,
    CATEGORY STRING,
    CONFIDENCE FLOAT,
    OCCURRED_AT TIMESTAMP_NTZ,
    UPDATED_AT TIMESTAMP_NTZ,
    DURATION_MS NUMBER(18, 0),
    EVENT_DATE DATE,
    BATCH_ID STRING,
    MERGED_AT TIMESTAMP_NTZ
) CLUSTER BY (EVENT_DATE);

-- API A CLEAN tables made before EVENT_DATE was stored: add and fill it.
ALTER TABLE <% ctx.env.database %>.CLEAN.CLN_API_A_EVENTS ADD COLUMN IF NOT EXISTS EVENT_DATE DATE;

UPDATE <% ctx.env.database %>.CLEAN.CLN_API_A_EVENTS SET event_date = occurred_at::DATE
WHERE event_date IS NULL AND occurred_at IS NOT NULL;

ALTER TABLE <% ctx.env.database %>.CLEAN.CLN_API_A_EVENTS CLUSTER BY (EVENT_DATE);

-- API B events, typed, one row per EVENT_ID holding its latest version.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.CLEAN.CLN_API_B_EVENTS (
    EVENT_ID STRING NOT NULL,
    EVENT_TYPE STRING,
    CAMERA_ID STRING,
    CATEGORY STRING,
    CONFIDENCE FLOAT,
    OCCURRED_AT TIMESTAMP_NTZ,
    UPDATED_AT TIMESTAMP_NTZ,
    DURATION_MS NUMBER(18, 0),
    EVENT_DATE DATE,
    BATCH_ID STRING,
    MERGED_AT TIMESTAMP_NTZ
) CLUSTER BY (EVENT_DATE);

-- API B CLEAN tables made before EVENT_DATE was stored: add and fill it.
ALTER TABLE <% ctx.env.database %>.CLEAN.CLN_API_B_EVENTS ADD COLUMN IF NOT EXISTS EVENT_DATE DATE;

UPDATE <% ctx.env.database %>.CLEAN.CLN_API_B_EVENTS SET event_date = occurred_at::DATE
WHERE event_date IS NULL AND occurred_at IS NOT NULL;

ALTER TABLE <% ctx.env.database %>.CLEAN.CLN_API_B_EVENTS CLUSTER BY (EVENT_DATE);

-- The camera/site directory from API C, one row per CAMERA_ID; enriches events in ANALYTICS.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.CLEAN.DIM_CAMERAS (
    CAMERA_ID STRING NOT NULL,
    SITE_ID STRING,
    SITE_NAME STRING,
    CITY STRING,
    COUNTRY STRING,
    TIMEZONE STRING,
    LATITUDE FLOAT,
    LONGITUDE FLOAT,
    INSTALLED_AT TIMESTAMP_NTZ,
    ACTIVE BOOLEAN,
    UPDATED_AT TIMESTAMP_NTZ,
    BATCH_ID STRING,
    MERGED_AT TIMESTAMP_NTZ
);

-- API D events, typed, one row per EVENT_ID holding its latest version.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.CLEAN.CLN_API_D_EVENTS (
    EVENT_ID STRING NOT NULL,
    EVENT_TYPE STRING,
    CAMERA_ID STRING,
    CATEGORY STRING,
    CONFIDENCE FLOAT,
    OCCURRED_AT TIMESTAMP_NTZ,
    UPDATED_AT TIMESTAMP_NTZ,
    DURATION_MS NUMBER(18, 0),
    EVENT_DATE DATE,
    BATCH_ID STRING,
    MERGED_AT TIMESTAMP_NTZ
) CLUSTER BY (EVENT_DATE);

-- API D CLEAN tables made before EVENT_DATE was stored: add and fill it.
ALTER TABLE <% ctx.env.database %>.CLEAN.CLN_API_D_EVENTS ADD COLUMN IF NOT EXISTS EVENT_DATE DATE;

UPDATE <% ctx.env.database %>.CLEAN.CLN_API_D_EVENTS SET event_date = occurred_at::DATE
WHERE event_date IS NULL AND occurred_at IS NOT NULL;

ALTER TABLE <% ctx.env.database %>.CLEAN.CLN_API_D_EVENTS CLUSTER BY (EVENT_DATE);
-- api2snow:end clean_tables

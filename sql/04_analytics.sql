-- ANALYTICS layer: what analysts query. Views read CLEAN live; ANL_DAILY_SUMMARY is materialised
-- by BUILD_ANALYTICS from VW_DAILY_SUMMARY.

-- Every clean event of every source, enriched with its camera's site (NULL site when the camera is unknown).
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_EVENTS AS
WITH all_events AS (
    -- api2snow:generated events_union
    SELECT
        'api_a' AS source,
        event_id,
        event_type,
        camera_id,
        category,
        confidence,
        occurred_at,
        updated_at,
        duration_ms,
        event_date
    FROM <% ctx.env.database %>.CLEAN.CLN_API_A_EVENTS
    UNION ALL
    SELECT
        'api_b' AS source,
        event_id,
        event_type,
        camera_id,
        category,
        confidence,
        occurred_at,
        updated_at,
        duration_ms,
        event_date
    FROM <% ctx.env.database %>.CLEAN.CLN_API_B_EVENTS
    UNION ALL
    SELECT
        'api_d' AS source,
        event_id,
        event_type,
        camera_id,
        category,
        confidence,
        occurred_at,
        updated_at,
        duration_ms,
        event_date
    FROM <% ctx.env.database %>.CLEAN.CLN_API_D_EVENTS
    -- api2snow:end events_union
)

SELECT
    all_events.source,
    all_events.event_id,
    all_events.event_type,
    all_events.camera_id,
    all_events.category,
    all_events.confidence,
    all_events.occurred_at,
    all_events.updated_at,
    all_events.duration_ms,
    all_events.event_date,
    cameras.site_id,
    cameras.site_name,
    cameras.city,
    cameras.country
FROM all_events
LEFT JOIN <% ctx.env.database %>.CLEAN.DIM_CAMERAS AS cameras
    ON all_events.camera_id = cameras.camera_id;

-- Events per source, UTC day and category.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_DAILY_EVENT_COUNTS AS
SELECT
    source,
    event_date,
    category,
    COUNT(*) AS event_count,
    COUNT(DISTINCT camera_id) AS camera_count
FROM <% ctx.env.database %>.ANALYTICS.VW_EVENTS
GROUP BY source, event_date, category;

-- RAW as loaded, per event source: rows, distinct ids and the newest load (freshness and DQ read it).
-- RAW's LOADED_AT is TIMESTAMP_LTZ (Snowpipe's METADATA$START_SCAN_TIME, an instant); it is read here as
-- naive UTC, like every other timestamp of the pipeline.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_RAW_STATS AS
-- api2snow:generated raw_stats
SELECT
    'api_a' AS source,
    COUNT(*) AS raw_rows,
    COUNT(DISTINCT payload:event_id::STRING) AS raw_distinct_ids,
    CONVERT_TIMEZONE('UTC', MAX(loaded_at))::TIMESTAMP_NTZ AS last_loaded_at
FROM <% ctx.env.database %>.RAW.API_A_EVENTS
UNION ALL
SELECT
    'api_b' AS source,
    COUNT(*) AS raw_rows,
    COUNT(DISTINCT payload:event_id::STRING) AS raw_distinct_ids,
    CONVERT_TIMEZONE('UTC', MAX(loaded_at))::TIMESTAMP_NTZ AS last_loaded_at
FROM <% ctx.env.database %>.RAW.API_B_EVENTS
UNION ALL
SELECT
    'api_d' AS source,
    COUNT(*) AS raw_rows,
    COUNT(DISTINCT payload:event_id::STRING) AS raw_distinct_ids,
    CONVERT_TIMEZONE('UTC', MAX(loaded_at))::TIMESTAMP_NTZ AS last_loaded_at
FROM <% ctx.env.database %>.RAW.API_D_EVENTS;
-- api2snow:end raw_stats

-- How current each source is: newest event, newest update, newest RAW row, newest hourly batch confirmed
-- loaded (an empty batch counts: it proves the pipeline ran; a backfill's does not), and their age in
-- minutes. All naive UTC, measured against now in UTC, never against the session's time zone.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_DATA_FRESHNESS AS
WITH loads AS (
    SELECT
        source,
        last_loaded_at
    FROM <% ctx.env.database %>.ANALYTICS.VW_RAW_STATS
),

batches AS (
    SELECT
        source,
        MAX(loaded_at) AS last_batch_loaded_at
    FROM <% ctx.env.database %>.OPS.BATCH_LEDGER
    WHERE status IN ('LOADED', 'MERGED') AND COALESCE(kind, 'HOURLY') = 'HOURLY'
    GROUP BY source
),

events AS (
    SELECT
        source,
        MAX(occurred_at) AS last_event_at,
        MAX(updated_at) AS last_updated_at,
        COUNT(*) AS clean_rows
    FROM <% ctx.env.database %>.ANALYTICS.VW_EVENTS
    GROUP BY source
)

SELECT
    loads.source,
    events.last_event_at,
    events.last_updated_at,
    loads.last_loaded_at,
    batches.last_batch_loaded_at,
    COALESCE(events.clean_rows, 0) AS clean_rows,
    DATEDIFF(
        'minute', events.last_event_at, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ
    ) AS minutes_since_last_event,
    DATEDIFF(
        'minute', loads.last_loaded_at, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ
    ) AS minutes_since_last_load,
    DATEDIFF(
        'minute', batches.last_batch_loaded_at, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ
    ) AS minutes_since_last_batch
FROM loads
LEFT JOIN events
    ON loads.source = events.source
LEFT JOIN batches
    ON loads.source = batches.source;

-- Categories ranked by events over the last 7 days, all sources together.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_TOP_CATEGORIES AS
SELECT
    category,
    COUNT(*) AS event_count,
    COUNT(DISTINCT camera_id) AS camera_count,
    AVG(confidence) AS avg_confidence,
    RANK() OVER (ORDER BY COUNT(*) DESC) AS category_rank
FROM <% ctx.env.database %>.ANALYTICS.VW_EVENTS
WHERE occurred_at >= DATEADD('day', -7, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ)
GROUP BY category;

-- The daily summary as it should be now: per UTC day and source, volumes, reach and the top category.
-- Grouped by the stored EVENT_DATE, so BUILD_ANALYTICS's filter on the day prunes CLEAN beneath it.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_DAILY_SUMMARY AS
WITH per_category AS (
    SELECT
        source,
        event_date,
        category,
        COUNT(*) AS category_events
    FROM <% ctx.env.database %>.ANALYTICS.VW_EVENTS
    GROUP BY source, event_date, category
),

top_category AS (
    SELECT
        source,
        event_date,
        category
    FROM per_category
    QUALIFY ROW_NUMBER() OVER (PARTITION BY source, event_date ORDER BY category_events DESC, category ASC) = 1
)

SELECT
    daily.source,
    daily.event_date,
    daily.event_count,
    daily.camera_count,
    daily.site_count,
    daily.avg_confidence,
    top_category.category AS top_category
FROM (
    SELECT
        source,
        event_date,
        COUNT(*) AS event_count,
        COUNT(DISTINCT camera_id) AS camera_count,
        COUNT(DISTINCT site_id) AS site_count,
        AVG(confidence) AS avg_confidence
    FROM <% ctx.env.database %>.ANALYTICS.VW_EVENTS
    GROUP BY source, event_date
) AS daily
LEFT JOIN top_category
    ON daily.source = top_category.source AND daily.event_date = top_category.event_date;

-- Materialised VW_DAILY_SUMMARY, one row per (SOURCE, EVENT_DATE), refreshed by BUILD_ANALYTICS.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.ANALYTICS.ANL_DAILY_SUMMARY (
    SOURCE STRING NOT NULL,
    EVENT_DATE DATE NOT NULL,
    EVENT_COUNT NUMBER,
    CAMERA_COUNT NUMBER,
    SITE_COUNT NUMBER,
    AVG_CONFIDENCE FLOAT,
    TOP_CATEGORY STRING,
    REFRESHED_AT TIMESTAMP_NTZ
);

-- Rejected records per source, UTC day of loading and reason, without the records themselves (they stay in RAW,
-- which analysts cannot read): what the dashboard draws. The source is the `source=` part of the file's path.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_REJECTS_BY_REASON AS
SELECT
    payload:reason::STRING AS reason,
    SPLIT_PART(SPLIT_PART(file_name, 'source=', 2), '/', 1) AS source,
    CONVERT_TIMEZONE('UTC', loaded_at)::DATE AS loaded_date,
    COUNT(*) AS rejected_count
FROM <% ctx.env.database %>.RAW.REJECTED_RECORDS
GROUP BY
    payload:reason::STRING,
    SPLIT_PART(SPLIT_PART(file_name, 'source=', 2), '/', 1),
    CONVERT_TIMEZONE('UTC', loaded_at)::DATE;

-- The batch ledger of the last 14 days as analysts and the dashboard may read it: every batch of every source
-- with what started it (KIND: HOURLY, the graph's ingest, or BACKFILL, OPS.BACKFILL's re-read of WINDOW_START
-- to WINDOW_END), its state, counts and times (naive UTC). ERROR_MESSAGE is redacted when it is written.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_PIPELINE_BATCHES AS
SELECT
    source,
    batch_id,
    status,
    window_start,
    window_end,
    fetched,
    staged,
    rejected,
    duplicates,
    complete,
    started_at,
    staged_at,
    loaded_at,
    merged_at,
    error_message,
    COALESCE(kind, 'HOURLY') AS kind
FROM <% ctx.env.database %>.OPS.BATCH_LEDGER
WHERE started_at >= DATEADD('day', -14, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ);

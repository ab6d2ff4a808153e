-- Data quality over the full history: VW_DQ_CHECKS computes every check now, and the daily RECONCILE task
-- appends its rows to DQ_CHECK_RESULTS under its run id. The hourly RUN_DQ runs the same checks on the batches
-- merged since the last graph run checked them (snowpark_procs/api2snow/quality.py: per batch, so an hourly
-- run reads what is new, not the history); VALIDATE_DQ fails the graph run when one of its error-severity
-- checks did not pass.

-- Every check over the full history, evaluated now: one row per check with its severity, observed value,
-- threshold and verdict; RECONCILE records it. The hourly graph does not read this view.
CREATE OR REPLACE VIEW <% ctx.env.database %>.ANALYTICS.VW_DQ_CHECKS AS
WITH clean_stats AS (
    SELECT
        source,
        COUNT(*) AS row_count,
        COUNT(DISTINCT event_id) AS distinct_ids,
        COUNT_IF(event_id IS NULL) AS null_event_id,
        COUNT_IF(camera_id IS NULL) AS null_camera_id,
        COUNT_IF(category IS NULL) AS null_category,
        COUNT_IF(occurred_at IS NULL) AS null_occurred_at,
        COUNT_IF(updated_at IS NULL) AS null_updated_at,
        -- api2snow:generated dq_accepted_values
        COUNT_IF(category NOT IN ('person', 'vehicle', 'bicycle', 'animal', 'package')) AS bad_category,
        COUNT_IF(event_type NOT IN ('detection', 'motion', 'line_crossing', 'tamper')) AS bad_event_type,
        -- api2snow:end dq_accepted_values
        COUNT_IF(
            occurred_at >= DATEADD('hour', -24, CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ)
        ) AS rows_last_24h
    FROM <% ctx.env.database %>.ANALYTICS.VW_EVENTS
    GROUP BY source
),

-- RAW rows of batches the ledger says loaded: auto-ingest can land a part of a batch abandoned meanwhile
-- (CLEAN never reads it, and WAIT_FOR_LOAD removes it again), which no check may count.
raw_loaded AS (
    SELECT
        batches.source,
        COUNT(*) AS raw_rows,
        COUNT(DISTINCT raw.event_id) AS raw_distinct_ids
    FROM (
        -- api2snow:generated dq_raw_union
        SELECT
            batch_id,
            payload:event_id::STRING AS event_id
        FROM <% ctx.env.database %>.RAW.API_A_EVENTS
        UNION ALL
        SELECT
            batch_id,
            payload:event_id::STRING AS event_id
        FROM <% ctx.env.database %>.RAW.API_B_EVENTS
        UNION ALL
        SELECT
            batch_id,
            payload:event_id::STRING AS event_id
        FROM <% ctx.env.database %>.RAW.API_D_EVENTS
        -- api2snow:end dq_raw_union
    ) AS raw
    INNER JOIN <% ctx.env.database %>.OPS.BATCH_LEDGER AS batches
        ON raw.batch_id = batches.batch_id
    WHERE batches.status IN ('LOADED', 'MERGED')
    GROUP BY batches.source
),

raw_stats AS (
    SELECT
        sources.source,
        COALESCE(raw_loaded.raw_rows, 0) AS raw_rows,
        COALESCE(raw_loaded.raw_distinct_ids, 0) AS raw_distinct_ids
    -- api2snow:generated dq_sources
    FROM (SELECT column1 AS source FROM VALUES ('api_a'), ('api_b'), ('api_d')) AS sources
    -- api2snow:end dq_sources
    LEFT JOIN raw_loaded
        ON sources.source = raw_loaded.source
),

ledger_stats AS (
    SELECT
        source,
        SUM(staged) AS staged_rows
    FROM <% ctx.env.database %>.OPS.BATCH_LEDGER
    WHERE status IN ('LOADED', 'MERGED')
    GROUP BY source
),

open_batches AS (
    SELECT
        source,
        COUNT_IF(status = 'STAGED' AND error_message IS NOT NULL) AS stuck_batches
    FROM <% ctx.env.database %>.OPS.BATCH_LEDGER
    WHERE status IN ('STARTED', 'STAGED', 'FAILED')
    GROUP BY source
),

-- Days where the materialised summary differs from a fresh GROUP BY over CLEAN (missing, extra or changed).
summary_diff AS (
    SELECT
        COALESCE(fresh.source, stored.source) AS source,
        COUNT(*) AS differing_days
    FROM <% ctx.env.database %>.ANALYTICS.VW_DAILY_SUMMARY AS fresh
    FULL OUTER JOIN <% ctx.env.database %>.ANALYTICS.ANL_DAILY_SUMMARY AS stored
        ON fresh.source = stored.source AND fresh.event_date = stored.event_date
    WHERE
        fresh.source IS NULL
        OR stored.source IS NULL
        OR fresh.event_count IS DISTINCT FROM stored.event_count
        OR fresh.camera_count IS DISTINCT FROM stored.camera_count
        OR fresh.site_count IS DISTINCT FROM stored.site_count
        OR ROUND(fresh.avg_confidence, 9) IS DISTINCT FROM ROUND(stored.avg_confidence, 9)
        OR fresh.top_category IS DISTINCT FROM stored.top_category
    GROUP BY COALESCE(fresh.source, stored.source)
),

freshness AS (
    SELECT
        source,
        minutes_since_last_batch,
        minutes_since_last_event
    FROM <% ctx.env.database %>.ANALYTICS.VW_DATA_FRESHNESS
),

null_counts AS (
    SELECT
        source,
        'event_id' AS column_name,
        null_event_id AS null_rows,
        row_count
    FROM clean_stats
    UNION ALL
    SELECT
        source,
        'camera_id' AS column_name,
        null_camera_id AS null_rows,
        row_count
    FROM clean_stats
    UNION ALL
    SELECT
        source,
        'category' AS column_name,
        null_category AS null_rows,
        row_count
    FROM clean_stats
    UNION ALL
    SELECT
        source,
        'occurred_at' AS column_name,
        null_occurred_at AS null_rows,
        row_count
    FROM clean_stats
    UNION ALL
    SELECT
        source,
        'updated_at' AS column_name,
        null_updated_at AS null_rows,
        row_count
    FROM clean_stats
)

SELECT
    'freshness_load_minutes' AS check_name,
    source,
    'error' AS severity,
    minutes_since_last_batch::FLOAT AS observed_value,
    120::FLOAT AS threshold,
    COALESCE(minutes_since_last_batch <= 120, FALSE) AS passed,
    'minutes since a batch of the source was last confirmed loaded (empty batches count)' AS details
FROM freshness
UNION ALL
SELECT
    'freshness_event_minutes' AS check_name,
    source,
    'warn' AS severity,
    minutes_since_last_event::FLOAT AS observed_value,
    1440::FLOAT AS threshold,
    COALESCE(minutes_since_last_event <= 1440, FALSE) AS passed,
    'minutes since the newest event occurred' AS details
FROM freshness
UNION ALL
SELECT
    'volume_clean_rows' AS check_name,
    source,
    'error' AS severity,
    row_count::FLOAT AS observed_value,
    1::FLOAT AS threshold,
    row_count >= 1 AS passed,
    'CLEAN holds at least one row' AS details
FROM clean_stats
UNION ALL
SELECT
    'volume_last_24h' AS check_name,
    source,
    'warn' AS severity,
    rows_last_24h::FLOAT AS observed_value,
    1::FLOAT AS threshold,
    rows_last_24h >= 1 AS passed,
    'events that occurred in the last 24 hours' AS details
FROM clean_stats
UNION ALL
SELECT
    'null_rate_' || column_name AS check_name,
    source,
    'error' AS severity,
    DIV0(null_rows, row_count)::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    null_rows = 0 AS passed,
    'share of CLEAN rows where a required column is NULL' AS details
FROM null_counts
UNION ALL
SELECT
    'unique_event_id' AS check_name,
    source,
    'error' AS severity,
    (row_count - distinct_ids)::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    row_count = distinct_ids AS passed,
    'CLEAN rows beyond one per EVENT_ID' AS details
FROM clean_stats
UNION ALL
SELECT
    'accepted_values_category' AS check_name,
    source,
    'warn' AS severity,
    bad_category::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    bad_category = 0 AS passed,
    'rows whose CATEGORY is outside the accepted list' AS details
FROM clean_stats
UNION ALL
SELECT
    'accepted_values_event_type' AS check_name,
    source,
    'warn' AS severity,
    bad_event_type::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    bad_event_type = 0 AS passed,
    'rows whose EVENT_TYPE is outside the accepted list' AS details
FROM clean_stats
UNION ALL
SELECT
    'reconcile_raw_to_clean' AS check_name,
    raw_stats.source,
    'error' AS severity,
    (raw_stats.raw_distinct_ids - COALESCE(clean_stats.row_count, 0))::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    raw_stats.raw_distinct_ids = COALESCE(clean_stats.row_count, 0) AS passed,
    'distinct ids in RAW minus rows in CLEAN' AS details
FROM raw_stats
LEFT JOIN clean_stats
    ON raw_stats.source = clean_stats.source
UNION ALL
SELECT
    'reconcile_staged_to_raw' AS check_name,
    raw_stats.source,
    'error' AS severity,
    (COALESCE(ledger_stats.staged_rows, 0) - raw_stats.raw_rows)::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    COALESCE(ledger_stats.staged_rows, 0) = raw_stats.raw_rows AS passed,
    'rows staged by loaded batches minus rows in RAW' AS details
FROM raw_stats
LEFT JOIN ledger_stats
    ON raw_stats.source = ledger_stats.source
UNION ALL
SELECT
    'load_stuck' AS check_name,
    source,
    'error' AS severity,
    stuck_batches::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    stuck_batches = 0 AS passed,
    'staged batches Snowpipe refused or did not load in time (OPS.BATCH_LEDGER.ERROR_MESSAGE says why)' AS details
FROM open_batches
UNION ALL
SELECT
    'summary_matches_clean' AS check_name,
    raw_stats.source,
    'error' AS severity,
    COALESCE(summary_diff.differing_days, 0)::FLOAT AS observed_value,
    0::FLOAT AS threshold,
    COALESCE(summary_diff.differing_days, 0) = 0 AS passed,
    'days where ANL_DAILY_SUMMARY differs from a fresh GROUP BY over CLEAN (VW_DAILY_SUMMARY)' AS details
FROM raw_stats
LEFT JOIN summary_diff
    ON raw_stats.source = summary_diff.source;

-- Every check of every run, appended by RUN_DQ and RECONCILE under the run id. VALIDATE_DQ in a graph run judges that
-- run's own RUN_ID (the graph run group's id), so RUN_DQ called meanwhile by someone else changes nothing; a
-- manual CALL of VALIDATE_DQ judges the run recorded last.
CREATE TABLE IF NOT EXISTS <% ctx.env.database %>.ANALYTICS.DQ_CHECK_RESULTS (
    RUN_ID STRING NOT NULL,
    CHECK_NAME STRING NOT NULL,
    SOURCE STRING,
    SEVERITY STRING NOT NULL,
    OBSERVED_VALUE FLOAT,
    THRESHOLD FLOAT,
    PASSED BOOLEAN NOT NULL,
    DETAILS STRING,
    CHECKED_AT TIMESTAMP_NTZ
);

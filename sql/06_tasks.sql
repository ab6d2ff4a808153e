-- The task graph, declared once: the local stack's runner reads these same statements.
-- root (hourly) -> ingest per source (parallel) -> refresh_pipe per source -> wait_for_load -> clean
--   -> analytics -> dq -> validate_dq -> publish_metrics; FINALIZE runs after every run, failed or not.
-- RECONCILE (daily) is a graph of its own, declared last.
-- TASK_AUTO_RETRY_ATTEMPTS: a failed run is retried as a new run in the same graph run group (same run id),
-- from the tasks that failed; tasks that succeeded are not run again, the finalizer runs after each run.
-- CONFIG carries the same task_retry_attempts, so the finalizer alerts on a failed run's last attempt only.
-- Serverless tasks (no WAREHOUSE). Deploy suspends the root first and resumes the graph after with
-- SYSTEM$TASK_DEPENDENTS_ENABLE.

-- Root: fires hourly; its CONFIG is the graph config every task can read.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.ROOT
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    SCHEDULE = '<% ctx.env.task_schedule %>'
    CONFIG = '{"env": "<% ctx.env.env_name %>", "task_retry_attempts": <% ctx.env.task_retry_attempts %>}'
    TASK_AUTO_RETRY_ATTEMPTS = <% ctx.env.task_retry_attempts %>
    SUSPEND_TASK_AFTER_NUM_FAILURES = 3
    USER_TASK_TIMEOUT_MS = 3600000
    COMMENT = 'api2snow: hourly root of the ingest graph'
AS
    SELECT 'api2snow graph run started' AS status;

-- api2snow:generated ingest_tasks
-- Pulls API A (OAuth2, cursor pages) since its watermark and stages gzip JSONL parts on S3.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.INGEST_API_A
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    USER_TASK_TIMEOUT_MS = 1800000
    COMMENT = 'api2snow: extract API A to S3'
    AFTER <% ctx.env.database %>.PIPELINE.ROOT
AS
    CALL <% ctx.env.database %>.OPS.INGEST_API_A();

-- Pulls API B (API key, offset pages) since its watermark and stages gzip JSONL parts on S3.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.INGEST_API_B
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    USER_TASK_TIMEOUT_MS = 1800000
    COMMENT = 'api2snow: extract API B to S3'
    AFTER <% ctx.env.database %>.PIPELINE.ROOT
AS
    CALL <% ctx.env.database %>.OPS.INGEST_API_B();

-- Pulls the camera directory from API C (HTTP Basic, custom pages) and stages it on S3.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.INGEST_API_C
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    USER_TASK_TIMEOUT_MS = 1800000
    COMMENT = 'api2snow: extract API C (camera directory) to S3'
    AFTER <% ctx.env.database %>.PIPELINE.ROOT
AS
    CALL <% ctx.env.database %>.OPS.INGEST_API_C();

-- Pulls API D (bearer token, Link header pages) since its watermark and stages gzip JSONL parts on S3.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.INGEST_API_D
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    USER_TASK_TIMEOUT_MS = 1800000
    COMMENT = 'api2snow: extract API D to S3'
    AFTER <% ctx.env.database %>.PIPELINE.ROOT
AS
    CALL <% ctx.env.database %>.OPS.INGEST_API_D();
-- api2snow:end ingest_tasks

-- api2snow:generated refresh_pipe_tasks
-- Queues API A's new parts for Snowpipe (ALTER PIPE ... REFRESH PREFIX).
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_A
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: refresh the API A pipe for staged batches'
    AFTER <% ctx.env.database %>.PIPELINE.INGEST_API_A
AS
    CALL <% ctx.env.database %>.OPS.REFRESH_PIPE('api_a');

-- Queues API B's new parts for Snowpipe.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_B
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: refresh the API B pipe for staged batches'
    AFTER <% ctx.env.database %>.PIPELINE.INGEST_API_B
AS
    CALL <% ctx.env.database %>.OPS.REFRESH_PIPE('api_b');

-- Queues API C's new parts for Snowpipe.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_C
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: refresh the API C pipe for staged batches'
    AFTER <% ctx.env.database %>.PIPELINE.INGEST_API_C
AS
    CALL <% ctx.env.database %>.OPS.REFRESH_PIPE('api_c');

-- Queues API D's new parts for Snowpipe.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_D
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: refresh the API D pipe for staged batches'
    AFTER <% ctx.env.database %>.PIPELINE.INGEST_API_D
AS
    CALL <% ctx.env.database %>.OPS.REFRESH_PIPE('api_d');
-- api2snow:end refresh_pipe_tasks

-- Waits until every part of every staged batch is in RAW, then advances the watermarks.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.WAIT_FOR_LOAD
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: wait for Snowpipe to load every staged part'
    AFTER
    -- api2snow:generated wait_for_load_after
    <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_A,
    <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_B,
    <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_C,
    <% ctx.env.database %>.PIPELINE.REFRESH_PIPE_API_D
    -- api2snow:end wait_for_load_after
AS
    CALL <% ctx.env.database %>.OPS.WAIT_FOR_LOAD(900);

-- Merges loaded batches into the typed CLEAN tables.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.CLEAN
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: incremental MERGE RAW -> CLEAN'
    AFTER <% ctx.env.database %>.PIPELINE.WAIT_FOR_LOAD
AS
    CALL <% ctx.env.database %>.OPS.BUILD_CLEAN();

-- Refreshes ANL_DAILY_SUMMARY.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.ANALYTICS
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: refresh the ANALYTICS tables'
    AFTER <% ctx.env.database %>.PIPELINE.CLEAN
AS
    CALL <% ctx.env.database %>.OPS.BUILD_ANALYTICS();

-- Records every data-quality check in DQ_CHECK_RESULTS.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.DQ
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: run the data-quality checks'
    AFTER <% ctx.env.database %>.PIPELINE.ANALYTICS
AS
    CALL <% ctx.env.database %>.OPS.RUN_DQ();

-- Fails the graph run when an error-severity check of this run's DQ results failed.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.VALIDATE_DQ
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: gate on error-severity data-quality failures'
    AFTER <% ctx.env.database %>.PIPELINE.DQ
AS
    CALL <% ctx.env.database %>.OPS.VALIDATE_DQ();

-- Writes the run's counts and timings to OPS.PIPELINE_METRICS.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.PUBLISH_METRICS
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: publish run metrics'
    AFTER <% ctx.env.database %>.PIPELINE.VALIDATE_DQ
AS
    CALL <% ctx.env.database %>.OPS.PUBLISH_METRICS();

-- Finalizer: records the graph run in OPS.PIPELINE_RUNS and, when the run group failed, alerts through the
-- notification integrations of external_access/02 (once, on its last attempt).
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.FINALIZE
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    COMMENT = 'api2snow: record the graph run, alert on failure'
    FINALIZE = <% ctx.env.database %>.PIPELINE.ROOT
AS
    CALL <% ctx.env.database %>.OPS.FINALIZE_RUN();

-- Daily reconciliation, a standalone task off the hourly graph: merges what the hourly ledger lookback no
-- longer sees, then compares RAW, CLEAN and ANALYTICS over the full history (VW_DQ_CHECKS, ANL_DAILY_SUMMARY
-- against a fresh GROUP BY over CLEAN) into DQ_CHECK_RESULTS, and fails loudly on an error-severity finding.
CREATE OR ALTER TASK <% ctx.env.database %>.PIPELINE.RECONCILE
    USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
    SCHEDULE = '<% ctx.env.reconcile_schedule %>'
    USER_TASK_TIMEOUT_MS = 3600000
    COMMENT = 'api2snow: daily full-history reconciliation of RAW, CLEAN and ANALYTICS'
AS
    CALL <% ctx.env.database %>.OPS.RECONCILE();

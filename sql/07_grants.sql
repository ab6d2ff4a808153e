-- Grants to the operator and analyst roles, run last by the owner role, which owns every object named here.
-- The roles, the account-level privileges (EXECUTE TASK) and the future grants on ANALYTICS need an admin:
-- they are in external_access/02_admin_integrations.sql. Re-run on every deploy, so views that a deploy
-- replaced get their grants back. The local stack skips GRANT statements.
-- Procedures run as the owner (execute_as_caller: false), so granting USAGE on one lends the owner's rights
-- for that call only.

-- Operator: sees the database.
GRANT USAGE ON DATABASE <% ctx.env.database %> TO ROLE <% ctx.env.operator_role %>;

-- Operator: sees the task graph's schema.
GRANT USAGE ON SCHEMA <% ctx.env.database %>.PIPELINE TO ROLE <% ctx.env.operator_role %>;

-- Operator: sees OPS, for the run tables below (no privilege on its secrets).
GRANT USAGE ON SCHEMA <% ctx.env.database %>.OPS TO ROLE <% ctx.env.operator_role %>;

-- Operator: sees ANALYTICS, for the data-quality results below.
GRANT USAGE ON SCHEMA <% ctx.env.database %>.ANALYTICS TO ROLE <% ctx.env.operator_role %>;

-- Operator: sees the pipes' schema, for SYSTEM$PIPE_STATUS.
GRANT USAGE ON SCHEMA <% ctx.env.database %>.RAW TO ROLE <% ctx.env.operator_role %>;

-- Operator: runs (EXECUTE TASK), suspends, resumes and watches every task of the graph.
GRANT MONITOR, OPERATE ON ALL TASKS IN SCHEMA <% ctx.env.database %>.PIPELINE TO ROLE <% ctx.env.operator_role %>;

-- api2snow:generated pipe_grants
-- Operator: watches the API A pipe.
GRANT MONITOR ON PIPE <% ctx.env.database %>.RAW.API_A_EVENTS_PIPE TO ROLE <% ctx.env.operator_role %>;

-- Operator: watches the API B pipe.
GRANT MONITOR ON PIPE <% ctx.env.database %>.RAW.API_B_EVENTS_PIPE TO ROLE <% ctx.env.operator_role %>;

-- Operator: watches the API C pipe.
GRANT MONITOR ON PIPE <% ctx.env.database %>.RAW.API_C_CAMERAS_PIPE TO ROLE <% ctx.env.operator_role %>;

-- Operator: watches the API D pipe.
GRANT MONITOR ON PIPE <% ctx.env.database %>.RAW.API_D_EVENTS_PIPE TO ROLE <% ctx.env.operator_role %>;
-- api2snow:end pipe_grants

-- Operator: watches the rejects pipe.
GRANT MONITOR ON PIPE <% ctx.env.database %>.RAW.REJECTED_RECORDS_PIPE TO ROLE <% ctx.env.operator_role %>;

-- Operator: one row per finished graph run.
GRANT SELECT ON TABLE <% ctx.env.database %>.OPS.PIPELINE_RUNS TO ROLE <% ctx.env.operator_role %>;

-- Operator: run metrics.
GRANT SELECT ON TABLE <% ctx.env.database %>.OPS.PIPELINE_METRICS TO ROLE <% ctx.env.operator_role %>;

-- Operator: the alerts the finalizer sent, or failed to send.
GRANT SELECT ON TABLE <% ctx.env.database %>.OPS.PIPELINE_ALERTS TO ROLE <% ctx.env.operator_role %>;

-- Operator: the batch ledger, to follow a batch from staging to MERGE.
GRANT SELECT ON TABLE <% ctx.env.database %>.OPS.BATCH_LEDGER TO ROLE <% ctx.env.operator_role %>;

-- Operator: data-quality results of every run.
GRANT SELECT ON TABLE <% ctx.env.database %>.ANALYTICS.DQ_CHECK_RESULTS TO ROLE <% ctx.env.operator_role %>;

-- Analyst: sees the database.
GRANT USAGE ON DATABASE <% ctx.env.database %> TO ROLE <% ctx.env.analyst_role %>;

-- Analyst: sees ANALYTICS.
GRANT USAGE ON SCHEMA <% ctx.env.database %>.ANALYTICS TO ROLE <% ctx.env.analyst_role %>;

-- Analyst: reads every view in ANALYTICS (the views read CLEAN and RAW with the owner's rights).
GRANT SELECT ON ALL VIEWS IN SCHEMA <% ctx.env.database %>.ANALYTICS TO ROLE <% ctx.env.analyst_role %>;

-- Analyst: reads every table in ANALYTICS (ANL_DAILY_SUMMARY, DQ_CHECK_RESULTS).
GRANT SELECT ON ALL TABLES IN SCHEMA <% ctx.env.database %>.ANALYTICS TO ROLE <% ctx.env.analyst_role %>;

-- Analyst: sees the task graph's schema, for the run history below.
GRANT USAGE ON SCHEMA <% ctx.env.database %>.PIPELINE TO ROLE <% ctx.env.analyst_role %>;

-- Analyst: reads the graph's run history (INFORMATION_SCHEMA.TASK_HISTORY: did the last runs pass, where the
-- time went), as the dashboard shows it; MONITOR lets nobody run, suspend or change a task.
GRANT MONITOR ON ALL TASKS IN SCHEMA <% ctx.env.database %>.PIPELINE TO ROLE <% ctx.env.analyst_role %>;

-- Analyst: opens the dashboard (snowflake.yml's streamlit entity, deployed by the step before this file). It
-- runs with the owner's rights and reads only what the grants above let the analyst read.
GRANT USAGE ON STREAMLIT <% ctx.env.database %>.ANALYTICS.API2SNOW_DASHBOARD TO ROLE <% ctx.env.analyst_role %>;

-- Operator: opens the dashboard too.
GRANT USAGE ON STREAMLIT <% ctx.env.database %>.ANALYTICS.API2SNOW_DASHBOARD TO ROLE <% ctx.env.operator_role %>;

-- Analyst: sees OPS so the procedures below can be called; grants nothing on its tables or secrets.
GRANT USAGE ON SCHEMA <% ctx.env.database %>.OPS TO ROLE <% ctx.env.analyst_role %>;

-- Analyst procedure: refresh ANL_DAILY_SUMMARY now.
GRANT USAGE ON PROCEDURE <% ctx.env.database %>.OPS.BUILD_ANALYTICS() TO ROLE <% ctx.env.analyst_role %>;

-- Analyst procedure: evaluate the data-quality checks now and record them in DQ_CHECK_RESULTS.
GRANT USAGE ON PROCEDURE <% ctx.env.database %>.OPS.RUN_DQ() TO ROLE <% ctx.env.analyst_role %>;

-- Analyst procedure: reconcile RAW, CLEAN and ANALYTICS over the full history now (the daily task's work).
GRANT USAGE ON PROCEDURE <% ctx.env.database %>.OPS.RECONCILE() TO ROLE <% ctx.env.analyst_role %>;

-- Analyst procedure: per source, freshness, the last runs and batches, open DQ failures, rejects in the last day.
GRANT USAGE ON PROCEDURE <% ctx.env.database %>.OPS.PIPELINE_STATUS() TO ROLE <% ctx.env.analyst_role %>;

-- Analyst procedure: re-ingest a source's time window and merge it (it calls BACKFILL_<SOURCE>, owner-only).
GRANT USAGE ON PROCEDURE <% ctx.env.database %>.OPS.BACKFILL(STRING, STRING, STRING) TO ROLE <% ctx.env.analyst_role %>;

-- Analyst procedure: a source's rejected records with their reasons, secret-looking values masked.
GRANT USAGE ON PROCEDURE <% ctx.env.database %>.OPS.REJECTS(STRING, STRING) TO ROLE <% ctx.env.analyst_role %>;

-- Every statement notifyagent sends, by name (loaded by notifyagent/sqlfiles.py).
-- Parameters use psycopg's %(name)s style.

-- name: probe
-- What `check` and `serve` verify before anything else.
SELECT current_setting('server_version') AS server_version,
       to_regclass('pgagent.pga_job') IS NOT NULL AS has_pgagent,
       to_regprocedure('pgagent.pgagent_schema_version()') IS NOT NULL AS has_version_fn,
       (SELECT extversion FROM pg_extension WHERE extname = 'pgagent') AS extversion,
       to_regprocedure('notifyagent.version()') IS NOT NULL AS has_notifyagent,
       current_database() AS dbname

-- name: pgagent_schema_version
SELECT pgagent.pgagent_schema_version() AS version

-- name: notifyagent_version
SELECT notifyagent.version() AS version

-- name: install_lock
-- Serialises concurrent installs (several agents starting at once).
SELECT pg_advisory_xact_lock(hashtext('notifyagent.install'))

-- name: report_agents
SELECT jagpid, jagstation, jaglogintime FROM pgagent.pga_jobagent ORDER BY jaglogintime, jagpid

-- name: report_jobs
SELECT count(*) AS jobs, count(*) FILTER (WHERE jobenabled) AS enabled FROM pgagent.pga_job

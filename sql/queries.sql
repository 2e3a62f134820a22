-- Every statement notifyagent sends, by name (loaded by notifyagent/sqlfiles.py).
-- Parameters use psycopg's %(name)s style.

-- name: probe
-- What `check` and `serve` verify before anything else.
SELECT current_setting('server_version') AS server_version,
       to_regclass('pgagent.pga_job') IS NOT NULL AS has_pgagent,
       to_regprocedure('pgagent.pgagent_schema_version()') IS NOT NULL AS has_version_fn,
       (SELECT extversion FROM pg_extension WHERE extname = 'pgagent') AS extversion,
       -- the triggers go when the extension is dropped (CASCADE); our functions stay
       to_regprocedure('notifyagent.version()') IS NOT NULL
         AND EXISTS (SELECT 1 FROM pg_trigger
                      WHERE tgrelid = to_regclass('pgagent.pga_job')
                        AND tgname = 'notifyagent_job_update') AS has_notifyagent,
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

-- name: register
-- The agent's identity is the backend pid of its LISTEN connection, as pgAgent's is the pid
-- of its main connection; pgAdmin and a C++ pgAgent both read this row.
INSERT INTO pgagent.pga_jobagent (jagpid, jagstation) VALUES (pg_backend_pid(), %(station)s)
RETURNING jagpid, jaglogintime

-- name: lock_agent
-- Before adopt_jobs or reap_zombie, in the same transaction: a claim under this agent id that
-- is committing now holds the row (its foreign key check) until it commits, so the statement
-- that follows sees it. Without this, that statement's snapshot missed such a claim while its
-- DELETE of the agent row waited for it, and the foreign key's ON DELETE SET NULL then freed
-- the job the claim had just started: a running job free to be claimed again.
SELECT jagpid FROM pgagent.pga_jobagent WHERE jagpid = %(pid)s FOR UPDATE

-- name: adopt_jobs
-- After the LISTEN connection was replaced (new pid): move our running claims to the new
-- identity and drop the old row, before anybody takes the old pid for a dead agent. The old
-- row is ours only with our login time too; found = 0 after a DSN change means the new DSN
-- names another database, where the old identity never was. Locks the agent row first (after
-- lock_agent), then the job rows in job id order, as reap_zombie does (the two meet when other
-- agents see the old identity's server process gone).
WITH old AS (
  DELETE FROM pgagent.pga_jobagent WHERE jagpid = %(old)s AND jaglogintime = %(login)s
  RETURNING jagpid),
locked AS (
  SELECT jobid FROM pgagent.pga_job
   WHERE jobagentid = %(old)s AND EXISTS (SELECT 1 FROM old)
   ORDER BY jobid
     FOR UPDATE),
moved AS (
  UPDATE pgagent.pga_job SET jobagentid = %(new)s
   WHERE jobid IN (SELECT jobid FROM locked) AND jobagentid = %(old)s
  RETURNING jobid)
SELECT (SELECT count(*) FROM old) AS found, (SELECT count(*) FROM moved) AS moved

-- name: unregister
DELETE FROM pgagent.pga_jobagent WHERE jagpid = %(agent)s

-- name: connection_room
-- How many more connections the server accepts: max_connections less the slots reserved for
-- superusers (and, from PostgreSQL 16, for roles with pg_use_reserved_connections) and every
-- session open now (ours included).
SELECT current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int
       - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0)
       - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
       AS room

-- name: liveness
-- The periodic liveness check, one statement: a ping through the notification channel (it must
-- come back on our LISTEN connection) and the agents whose backend is gone.
-- Also counts the jobs due for longer than the grace period that nobody runs (NULL grace: 0),
-- so that the missed-run check (missed_round) costs an idle agent no statement of its own.
SELECT pg_notify('notifyagent', %(ping)s) AS sent,
       ARRAY(SELECT a.jagpid FROM pgagent.pga_jobagent a
              WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity p WHERE p.pid = a.jagpid)
              ORDER BY 1) AS zombies,
       (SELECT count(*) FROM notifyagent.overdue(%(grace)s)) AS overdue

-- name: reap_zombie
-- One dead agent per transaction: its running runs and steps become 'd' (aborted), its jobs
-- are released (the triggers recompute the next run) and its row is deleted. The agent row is
-- locked first (lock_agent, then here), then its job rows in job id order (as adopt_jobs does):
-- when the agent moved its claims to a new identity meanwhile, the row is gone and nothing is
-- touched.
WITH agent AS (
  SELECT jagpid FROM pgagent.pga_jobagent WHERE jagpid = %(pid)s FOR UPDATE),
jobs AS (
  SELECT jobid FROM pgagent.pga_job
   WHERE jobagentid = %(pid)s AND EXISTS (SELECT 1 FROM agent)
   ORDER BY jobid
     FOR UPDATE),
runs AS (
  UPDATE pgagent.pga_joblog SET jlgstatus = 'd'
   WHERE jlgstatus = 'r' AND jlgjobid IN (SELECT jobid FROM jobs)
  RETURNING jlgid),
steps AS (
  UPDATE pgagent.pga_jobsteplog SET jslstatus = 'd'
   WHERE jslstatus = 'r' AND jsljlgid IN (SELECT jlgid FROM runs)
  RETURNING jslid),
released AS (
  UPDATE pgagent.pga_job SET jobagentid = NULL, jobnextrun = NULL
   WHERE jobid IN (SELECT jobid FROM jobs)
  RETURNING jobid),
gone AS (
  DELETE FROM pgagent.pga_jobagent WHERE jagpid = %(pid)s RETURNING jagstation)
SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM steps) AS steps,
       (SELECT count(*) FROM released) AS jobs, (SELECT min(jagstation) FROM gone) AS station

-- name: session_settings
-- The agent's own sessions (not the steps'): JIT compilation only slows its statements down;
-- the planner chose it for the annotations of 100,000 jobs (~0.13 s of compiling for a 20 ms
-- read). The server's other sessions keep their setting.
SELECT set_config('jit', 'off', false) FROM pg_settings WHERE name = 'jit'

-- name: job_states
-- What the due-queue needs to know about jobs (all of them when ids is NULL). "server_now"
-- lets the agent keep its estimate of the server's clock, which decides due-ness
-- (jobnextrun <= now()). "retry": jobnextrun is the due time of a pending retry
-- (notifyagent.retry), which a resync leaves alone. "ran": the job already ran for its stored
-- next run (a recompute in a transaction that began before that time and committed after the
-- run), so that value is stale, not due. The columns are the fields of
-- notifyagent.core.model.JobState, in order.
SELECT j.jobid, j.jobname, j.jobenabled, j.jobhostagent, j.jobagentid,
       CASE WHEN isfinite(j.jobnextrun) THEN j.jobnextrun END AS jobnextrun,
       coalesce(j.jobnextrun = 'infinity', false) AS never,
       clock_timestamp() AS server_now, t.jobid IS NOT NULL AS retry,
       coalesce(j.joblastrun >= j.jobnextrun, false) AS ran
  FROM pgagent.pga_job j
  LEFT JOIN notifyagent.retry t ON t.jobid = j.jobid AND t.due = j.jobnextrun
 WHERE %(ids)s::int[] IS NULL OR j.jobid = ANY(%(ids)s::int[])

-- name: schedules
-- The schedules of some jobs (all when ids is NULL) with their exceptions, for the engine.
-- The five bool arrays come as one compact text ('t'/'f'/'n' per element, '|' between
-- arrays): schedules share few distinct patterns, and the agent parses each pattern once.
SELECT s.jscid, s.jscjobid, s.jscenabled, s.jscstart, s.jscend,
       concat_ws('|', array_to_string(s.jscminutes, '', 'n'), array_to_string(s.jschours, '', 'n'),
                 array_to_string(s.jscweekdays, '', 'n'), array_to_string(s.jscmonthdays, '', 'n'),
                 array_to_string(s.jscmonths, '', 'n')) AS pattern,
       e.exceptions
  FROM pgagent.pga_schedule s
  LEFT JOIN (SELECT jexscid, json_agg(json_build_array(jexdate, jextime)) AS exceptions
               FROM pgagent.pga_exception GROUP BY jexscid) e ON e.jexscid = s.jscid
 WHERE %(ids)s::int[] IS NULL OR s.jscjobid = ANY(%(ids)s::int[])

-- name: correct_next_runs
-- Write the engine's next run where the stored one differs, only for jobs nobody runs and
-- only if the row still holds what the agent saw ('-infinity' is stored as NULL). The rows are
-- locked in job id order first, as in every statement of ours that may wait for several
-- pga_job rows: agents writing the same jobs at once queue up instead of deadlocking.
WITH v AS (
  SELECT * FROM unnest(%(ids)s::int[], %(seen)s::timestamptz[], %(next)s::timestamptz[])
           AS v(jobid, seen, next)),
locked AS (
  SELECT j.jobid FROM pgagent.pga_job j
   WHERE j.jobid IN (SELECT jobid FROM v) AND j.jobagentid IS NULL AND j.jobenabled
   ORDER BY j.jobid
     FOR UPDATE)
UPDATE pgagent.pga_job j SET jobnextrun = v.next
  FROM v
 WHERE j.jobid = v.jobid AND j.jobid IN (SELECT jobid FROM locked)
   AND j.jobagentid IS NULL AND j.jobenabled
   AND (j.jobnextrun IS NOT DISTINCT FROM v.seen OR (v.seen IS NULL AND j.jobnextrun = 'infinity'))
RETURNING j.jobid

-- name: timezone
SELECT current_setting('TimeZone') AS tz, (SELECT source FROM pg_settings WHERE name = 'TimeZone') AS source

-- name: claim
-- The claim: take up to "limit" of the given jobs that are due within "ahead" seconds, enabled,
-- unclaimed and allowed on this station, skipping rows another session holds locked; start
-- their run log ('r') and the log row of their first step, and read their enabled steps in
-- pgAgent's order (jstname, jstid), all in one round trip. A job claimed before its due time
-- (the agent claims a few ms ahead, so the claim's round trip is not part of the start lag)
-- is logged as starting at its due time, and "wait" says how long the agent must wait for it
-- (server clock, measured when the statement ends: never early, whatever the clocks say).
-- "attempts": the failed attempts retried so far when this run is the retry a release asked
-- for (notifyagent.retry, due at this very time), whichever agent released it; else 0.
WITH candidates AS (
  SELECT jobid FROM pgagent.pga_job
   WHERE jobid = ANY(%(ids)s::int[]) AND jobenabled AND jobagentid IS NULL
     AND jobnextrun <= now() + make_interval(secs => %(ahead)s)
     AND (jobhostagent = '' OR jobhostagent = %(station)s)
   ORDER BY jobnextrun, jobid
   LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED),
claimed AS (
  UPDATE pgagent.pga_job j SET jobagentid = %(agent)s, joblastrun = greatest(now(), j.jobnextrun)
    FROM candidates c WHERE j.jobid = c.jobid
  RETURNING j.jobid, j.jobname, j.jobnextrun, j.joblastrun),
logged AS (
  INSERT INTO pgagent.pga_joblog (jlgjobid, jlgstatus, jlgstart)
  SELECT jobid, 'r', joblastrun FROM claimed
  RETURNING jlgid, jlgjobid, jlgstart),
requested AS (
  -- `run JOB --step NAME`: this run is that step alone (consumed here; stale ones dropped)
  DELETE FROM notifyagent.step_request r USING claimed c WHERE r.jobid = c.jobid
  RETURNING r.jobid, r.jstid, r.requested_at > now() - interval '10 minutes' AS fresh),
steps AS (
  SELECT s.jstjobid, json_agg(json_build_object(
           'id', s.jstid, 'name', s.jstname, 'kind', s.jstkind, 'code', s.jstcode,
           'connstr', s.jstconnstr, 'dbname', s.jstdbname, 'onerror', s.jstonerror)
           ORDER BY s.jstname, s.jstid) AS steps,
         (array_agg(s.jstid ORDER BY s.jstname, s.jstid))[1] AS first_step
    FROM pgagent.pga_jobstep s
    LEFT JOIN requested q ON q.jobid = s.jstjobid AND q.fresh
   WHERE s.jstjobid IN (SELECT jobid FROM claimed)
     AND CASE WHEN q.jobid IS NULL THEN s.jstenabled ELSE s.jstid = q.jstid END
   GROUP BY s.jstjobid),
first_logged AS (
  INSERT INTO pgagent.pga_jobsteplog (jsljlgid, jsljstid, jslstatus, jslstart)
  SELECT l.jlgid, s.first_step, 'r', l.jlgstart FROM logged l JOIN steps s ON s.jstjobid = l.jlgjobid
  RETURNING jslid, jsljlgid)
SELECT c.jobid, c.jobname, l.jlgid, f.jslid AS first_jslid, c.jobnextrun AS due,
       c.joblastrun AS claimed_at,
       extract(epoch FROM clock_timestamp() - c.jobnextrun)::float8 AS lag,
       coalesce(s.steps, '[]') AS steps, coalesce(t.attempts, 0) AS attempts
  FROM claimed c
  JOIN logged l ON l.jlgjobid = c.jobid
  LEFT JOIN steps s ON s.jstjobid = c.jobid
  LEFT JOIN first_logged f ON f.jsljlgid = l.jlgid
  LEFT JOIN notifyagent.retry t ON t.jobid = c.jobid AND t.due = c.jobnextrun
 ORDER BY c.jobnextrun, c.jobid

-- name: step_start
-- A step's log row ('r'); no row comes back when the step was deleted meanwhile.
INSERT INTO pgagent.pga_jobsteplog (jsljlgid, jsljstid, jslstatus)
SELECT %(jlgid)s, jstid, 'r' FROM pgagent.pga_jobstep WHERE jstid = %(jstid)s
RETURNING jslid

-- name: step_finish
-- The end of one or more steps (of runs whose steps ended at the same moment); returns the log
-- rows that were still running (another agent may have marked them 'd', taking us for dead).
UPDATE pgagent.pga_jobsteplog l
   SET jslduration = now() - l.jslstart, jslresult = r.result, jslstatus = r.status,
       jsloutput = r.output
  FROM unnest(%(jslids)s::int[], %(statuses)s::text[], %(results)s::int[], %(outputs)s::text[])
       AS r(jslid, status, result, output)
 WHERE l.jslid = r.jslid AND l.jslstatus = 'r'
RETURNING l.jslid

-- name: release
-- The release of one or more runs (those that ended at the same moment), one statement: finish
-- each run log (a 'd' run keeps no duration, as pgAgent's zombie cleanup leaves it) and hand
-- the job back with the engine's next run ('-infinity' = none, stored as NULL; NULL = let the
-- extension's trigger compute it). Rows another agent already marked 'd' (it took us for dead)
-- stay. "attempts" > 0: the next run is a retry, the chain so far is kept in notifyagent.retry
-- for whichever agent claims it; 0 ends any chain. The job rows are locked in job id order
-- (see correct_next_runs). Returns the jobs that were still ours.
WITH r AS (
  SELECT * FROM unnest(%(jlgids)s::int[], %(jobids)s::int[], %(statuses)s::text[],
                       %(agents)s::int[], %(nextruns)s::timestamptz[], %(attempts)s::int[])
           AS r(jlgid, jobid, status, agent, nextrun, attempts)),
log AS (
  UPDATE pgagent.pga_joblog l
     SET jlgstatus = r.status,
         jlgduration = CASE WHEN r.status = 'd' THEN NULL ELSE now() - l.jlgstart END
    FROM r
   WHERE l.jlgid = r.jlgid AND l.jlgstatus = 'r'
  RETURNING l.jlgid),
steps AS (
  UPDATE pgagent.pga_jobsteplog s SET jslstatus = 'd'
    FROM r
   WHERE s.jsljlgid = r.jlgid AND s.jslstatus = 'r' AND r.status = 'd'
  RETURNING s.jslid),
locked AS (
  SELECT j.jobid FROM pgagent.pga_job j
   WHERE j.jobid IN (SELECT jobid FROM r)
   ORDER BY j.jobid
     FOR UPDATE),
released AS (
  UPDATE pgagent.pga_job j SET jobagentid = NULL, jobnextrun = r.nextrun
    FROM r
   WHERE j.jobid = r.jobid AND j.jobid IN (SELECT jobid FROM locked) AND j.jobagentid = r.agent
  RETURNING j.jobid, j.jobnextrun, r.attempts),
retried AS (
  INSERT INTO notifyagent.retry (jobid, attempts, due)
  SELECT jobid, attempts, jobnextrun FROM released WHERE attempts > 0 AND jobnextrun IS NOT NULL
  ON CONFLICT (jobid) DO UPDATE SET attempts = excluded.attempts, due = excluded.due
  RETURNING jobid),
ended AS (
  DELETE FROM notifyagent.retry t USING released x
   WHERE t.jobid = x.jobid AND (x.attempts = 0 OR x.jobnextrun IS NULL)
  RETURNING t.jobid)
SELECT jobid, (SELECT count(*) FROM log) AS logged, (SELECT count(*) FROM steps) AS aborted
  FROM released

-- name: finish_log
-- Fallback when the release statement fails: the run log on its own.
UPDATE pgagent.pga_joblog
   SET jlgstatus = %(status)s::text,
       jlgduration = CASE WHEN %(status)s::text = 'd' THEN NULL ELSE now() - jlgstart END
 WHERE jlgid = %(jlgid)s AND jlgstatus = 'r'

-- name: release_only
-- Fallback release that does not ask the triggers for a next run ('infinity' = not scheduled
-- until its schedule is fixed; any later schedule edit recomputes it).
UPDATE pgagent.pga_job SET jobagentid = NULL, jobnextrun = 'infinity'
 WHERE jobid = %(jobid)s AND jobagentid = %(agent)s
RETURNING jobid

-- name: find_job
SELECT jobid, jobname FROM pgagent.pga_job
 WHERE jobid::text = %(job)s OR jobname = %(job)s
 ORDER BY jobid::text = %(job)s DESC, jobid

-- Operator commands (notifyagent status / run / history) ------------------------------------

-- name: status_agents
SELECT jagpid, jagstation, jaglogintime,
       EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = jagpid) AS alive
  FROM pgagent.pga_jobagent ORDER BY jaglogintime, jagpid

-- name: status_jobs
SELECT j.jobid, j.jobname, j.jobenabled, j.jobhostagent,
       CASE WHEN isfinite(j.jobnextrun) THEN j.jobnextrun END AS jobnextrun, j.joblastrun,
       (SELECT l.jlgstatus FROM pgagent.pga_joblog l WHERE l.jlgjobid = j.jobid
         ORDER BY l.jlgid DESC LIMIT 1) AS last_status,
       a.jagstation AS running_on
  FROM pgagent.pga_job j LEFT JOIN pgagent.pga_jobagent a ON a.jagpid = j.jobagentid
 ORDER BY j.jobid

-- name: run_now
-- pgAdmin's Run now, plus what `run --wait` needs to recognise the run it caused.
UPDATE pgagent.pga_job SET jobnextrun = now() WHERE jobid = %(jobid)s
RETURNING jobenabled, jobagentid,
          coalesce((SELECT max(jlgid) FROM pgagent.pga_joblog WHERE jlgjobid = %(jobid)s), 0)
            AS last_jlgid

-- name: cancel_job
SELECT notifyagent.cancel_job(%(jobid)s, %(step_only)s) AS running

-- name: find_step
SELECT jstid, jstname, jstenabled FROM pgagent.pga_jobstep
 WHERE jstjobid = %(jobid)s AND (jstid::text = %(step)s OR jstname = %(step)s)
 ORDER BY jstid::text = %(step)s DESC, jstid

-- name: lock_job
-- `run --step`: the job's row, locked until the step request and the Run now are written.
SELECT jobenabled, jobagentid FROM pgagent.pga_job WHERE jobid = %(jobid)s FOR UPDATE

-- name: request_step
INSERT INTO notifyagent.step_request (jobid, jstid) VALUES (%(jobid)s, %(jstid)s)
ON CONFLICT (jobid) DO UPDATE
   SET jstid = excluded.jstid, requested_at = excluded.requested_at,
       requested_by = excluded.requested_by

-- name: runs
SELECT l.jlgid, l.jlgstatus, l.jlgstart, l.jlgduration
  FROM pgagent.pga_joblog l
 WHERE l.jlgjobid = %(jobid)s AND l.jlgid > %(after)s
 ORDER BY l.jlgid DESC LIMIT %(limit)s

-- name: run_steps
SELECT sl.jsljlgid, sl.jslid, s.jstname, sl.jslstatus, sl.jslresult, sl.jslstart,
       sl.jslduration, sl.jsloutput
  FROM pgagent.pga_jobsteplog sl JOIN pgagent.pga_jobstep s ON s.jstid = sl.jsljstid
 WHERE sl.jsljlgid = ANY(%(runs)s::int[])
 ORDER BY sl.jsljlgid, sl.jslid

-- ---------------------------------------------------------------------------------------------
-- jobs files (notifyagent apply/export): notifyagent/jobsfile/database.py
-- ---------------------------------------------------------------------------------------------

-- name: jobsfile_read
-- Every job with its class, steps, schedules and exceptions, in one statement (one snapshot),
-- as JSON. Ordered by name, then id: the order of export, and the order in which jobs, steps
-- and schedules that share a name are matched.
SELECT current_database() AS dbname,
       (SELECT json_agg(json_build_object('id', jclid, 'name', jclname) ORDER BY jclid)
          FROM pgagent.pga_jobclass) AS classes,
       (SELECT json_agg(json_build_object(
                 'id', j.jobid, 'name', j.jobname, 'enabled', j.jobenabled, 'class', c.jclname,
                 'description', j.jobdesc, 'host_agent', j.jobhostagent,
                 'steps', (SELECT coalesce(json_agg(json_build_object(
                                    'id', s.jstid, 'name', s.jstname, 'kind', s.jstkind,
                                    'code', s.jstcode, 'database', s.jstdbname,
                                    'connstr', s.jstconnstr, 'on_error', s.jstonerror,
                                    'enabled', s.jstenabled, 'description', s.jstdesc)
                                    ORDER BY s.jstname, s.jstid), '[]')
                             FROM pgagent.pga_jobstep s WHERE s.jstjobid = j.jobid),
                 'schedules', (SELECT coalesce(json_agg(json_build_object(
                                    'id', s.jscid, 'name', s.jscname, 'enabled', s.jscenabled,
                                    'description', s.jscdesc, 'start', s.jscstart,
                                    'end', s.jscend, 'minutes', s.jscminutes,
                                    'hours', s.jschours, 'weekdays', s.jscweekdays,
                                    'monthdays', s.jscmonthdays, 'months', s.jscmonths,
                                    'exceptions', (SELECT coalesce(json_agg(json_build_object(
                                                           'date', e.jexdate, 'time', e.jextime)
                                                           ORDER BY e.jexid), '[]')
                                                     FROM pgagent.pga_exception e
                                                    WHERE e.jexscid = s.jscid))
                                    ORDER BY s.jscname, s.jscid), '[]')
                                 FROM pgagent.pga_schedule s WHERE s.jscjobid = j.jobid))
                 ORDER BY j.jobname, j.jobid)
          FROM pgagent.pga_job j JOIN pgagent.pga_jobclass c ON c.jclid = j.jobjclid) AS jobs

-- name: jobsfile_lock
-- Serialises concurrent applies (the diff is computed from what this transaction reads).
SELECT pg_advisory_xact_lock(hashtext('notifyagent.apply'))

-- name: jobsfile_insert_job
INSERT INTO pgagent.pga_job (jobjclid, jobname, jobdesc, jobhostagent, jobenabled)
VALUES (%(class)s, %(name)s, %(description)s, %(host_agent)s, %(enabled)s)
RETURNING jobid

-- name: jobsfile_update_job
UPDATE pgagent.pga_job
   SET jobjclid = %(class)s, jobdesc = %(description)s, jobhostagent = %(host_agent)s,
       jobenabled = %(enabled)s, jobchanged = current_timestamp
 WHERE jobid = %(id)s

-- name: jobsfile_delete_job
DELETE FROM pgagent.pga_job WHERE jobid = %(id)s

-- name: jobsfile_insert_step
INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname, jstconnstr,
                                 jstonerror, jstenabled, jstdesc)
VALUES (%(job)s, %(name)s, %(kind)s, %(code)s, %(database)s, %(connstr)s, %(on_error)s,
        %(enabled)s, %(description)s)

-- name: jobsfile_update_step
UPDATE pgagent.pga_jobstep
   SET jstkind = %(kind)s, jstcode = %(code)s, jstdbname = %(database)s,
       jstconnstr = %(connstr)s, jstonerror = %(on_error)s, jstenabled = %(enabled)s,
       jstdesc = %(description)s
 WHERE jstid = %(id)s

-- name: jobsfile_delete_step
DELETE FROM pgagent.pga_jobstep WHERE jstid = %(id)s

-- name: jobsfile_insert_schedule
-- Without a start the schedule starts now (to the minute, as pgAdmin's dialog does).
INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscdesc, jscenabled, jscstart, jscend,
                                  jscminutes, jschours, jscweekdays, jscmonthdays, jscmonths)
VALUES (%(job)s, %(name)s, %(description)s, %(enabled)s,
        coalesce(%(start)s::timestamptz, date_trunc('minute', current_timestamp)),
        %(end)s::timestamptz, %(minutes)s::bool[], %(hours)s::bool[], %(weekdays)s::bool[],
        %(monthdays)s::bool[], %(months)s::bool[])
RETURNING jscid

-- name: jobsfile_update_schedule
UPDATE pgagent.pga_schedule
   SET jscdesc = %(description)s, jscenabled = %(enabled)s, jscstart = %(start)s::timestamptz,
       jscend = %(end)s::timestamptz, jscminutes = %(minutes)s::bool[],
       jschours = %(hours)s::bool[], jscweekdays = %(weekdays)s::bool[],
       jscmonthdays = %(monthdays)s::bool[], jscmonths = %(months)s::bool[]
 WHERE jscid = %(id)s

-- name: jobsfile_delete_schedule
DELETE FROM pgagent.pga_schedule WHERE jscid = %(id)s

-- name: jobsfile_insert_exception
INSERT INTO pgagent.pga_exception (jexscid, jexdate, jextime)
VALUES (%(schedule)s, %(date)s::date, %(time)s::time)

-- name: jobsfile_delete_exception
DELETE FROM pgagent.pga_exception
 WHERE jexscid = %(schedule)s AND jexdate IS NOT DISTINCT FROM %(date)s::date
   AND jextime IS NOT DISTINCT FROM %(time)s::time

-- name: jobsfile_snapshot
-- export: the jobs and their policies (two statements) from one snapshot
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- name: jobsfile_policy_table
-- Whether notifyagent's own schema is installed (it may not be: apply/export need only pgagent).
SELECT to_regclass('notifyagent.job_policy') IS NOT NULL AS present

-- name: jobsfile_read_policies
SELECT jobid, job_timeout, step_timeout, retries, retry_delay, overlap, catchup, every,
       max_failures, alert_to, alert_on
  FROM notifyagent.job_policy

-- name: jobsfile_upsert_policy
-- Every column is written: a key left out of [jobs.policy] means the column's default.
INSERT INTO notifyagent.job_policy (jobid, job_timeout, step_timeout, retries, retry_delay,
                                    overlap, catchup, every, max_failures, alert_to, alert_on)
VALUES (%(job)s, %(job_timeout)s::interval, %(step_timeout)s::interval, %(retries)s,
        %(retry_delay)s::interval, %(overlap)s, %(catchup)s, %(every)s::interval,
        %(max_failures)s, %(alert_to)s, %(alert_on)s)
ON CONFLICT (jobid) DO UPDATE
   SET job_timeout = excluded.job_timeout, step_timeout = excluded.step_timeout,
       retries = excluded.retries, retry_delay = excluded.retry_delay,
       overlap = excluded.overlap, catchup = excluded.catchup, every = excluded.every,
       max_failures = excluded.max_failures, alert_to = excluded.alert_to,
       alert_on = excluded.alert_on

-- name: jobsfile_delete_policy
-- No [jobs.policy] in the file: no row, which is pgAgent's behaviour.
DELETE FROM notifyagent.job_policy WHERE jobid = %(job)s

-- name: policies
SELECT jobid, job_timeout, step_timeout, retries, retry_delay, overlap, catchup, every,
       max_failures, alert_to, alert_on
  FROM notifyagent.job_policy
 WHERE %(ids)s::int[] IS NULL OR jobid = ANY(%(ids)s::int[])

-- name: descriptions
-- Annotations in pgAdmin's fields: the job comment and the step descriptions of the jobs that
-- have any (all jobs when ids is NULL); the agent parses them (notifyagent/core/annotations.py).
SELECT j.jobid, coalesce(j.jobdesc, '') AS jobdesc,
       coalesce((SELECT json_agg(json_build_object('id', s.jstid, 'name', s.jstname,
                                                   'desc', s.jstdesc) ORDER BY s.jstname, s.jstid)
                   FROM pgagent.pga_jobstep s
                  WHERE s.jstjobid = j.jobid AND s.jstenabled AND s.jstdesc LIKE '%%@%%'), '[]')
         AS steps
  FROM pgagent.pga_job j
 WHERE (%(ids)s::int[] IS NULL OR j.jobid = ANY(%(ids)s::int[]))
   AND (j.jobdesc LIKE '%%@%%' OR EXISTS (SELECT 1 FROM pgagent.pga_jobstep s
                                         WHERE s.jstjobid = j.jobid AND s.jstdesc LIKE '%%@%%'))

-- History retention (off by default) ----------------------------------------------------------

-- name: retention_lock
-- Only one agent prunes at a time (session lock on the connection doing the deletes).
SELECT pg_try_advisory_lock(hashtext('notifyagent.retention')) AS locked

-- name: retention_unlock
SELECT pg_advisory_unlock(hashtext('notifyagent.retention'))

-- name: retention_delete
-- One batch of finished runs older than "days" and/or beyond the newest "keep" of their job;
-- their step logs go by ON DELETE CASCADE. Running runs ('r') are never touched.
WITH ranked AS (
  SELECT jlgid, jlgstart, jlgstatus,
         row_number() OVER (PARTITION BY jlgjobid ORDER BY jlgid DESC) AS newest
    FROM pgagent.pga_joblog),
doomed AS (
  SELECT jlgid FROM ranked
   WHERE jlgstatus <> 'r'
     AND ((%(days)s::float8 IS NOT NULL
           AND jlgstart < now() - make_interval(secs => %(days)s::float8 * 86400))
       OR (%(keep)s::int IS NOT NULL AND newest > %(keep)s::int))
   LIMIT %(batch)s)
DELETE FROM pgagent.pga_joblog WHERE jlgid IN (SELECT jlgid FROM doomed)

-- name: alert_facts
-- A finished run as its alert tells it (notifyagent/core/alerts.py): the run, the status of the
-- job's previous finished run, the failed runs in a row (this one included) after the last
-- success and the last enable, and the first failed step (else the last step) with the start
-- of its output.
WITH run AS (
  SELECT l.jlgid, l.jlgjobid, l.jlgstatus, l.jlgstart,
         extract(epoch FROM l.jlgduration)::float8 AS duration
    FROM pgagent.pga_joblog l WHERE l.jlgid = %(jlgid)s AND l.jlgjobid = %(job)s),
since AS (
  SELECT coalesce((SELECT max(p.jlgid) FROM pgagent.pga_joblog p
                    WHERE p.jlgjobid = %(job)s AND p.jlgid < %(jlgid)s AND p.jlgstatus = 's'),
                  0) AS success,
         coalesce((SELECT e.enabled_at FROM notifyagent.job_enabled e WHERE e.jobid = %(job)s),
                  '-infinity') AS enabled_at)
SELECT r.jlgid, r.jlgstatus AS status, r.jlgstart AS started, r.duration,
       j.jobid, j.jobname, j.jobenabled AS enabled,
       (SELECT p.jlgstatus FROM pgagent.pga_joblog p
         WHERE p.jlgjobid = %(job)s AND p.jlgid < %(jlgid)s AND p.jlgstatus <> 'r'
         ORDER BY p.jlgid DESC LIMIT 1) AS previous,
       (SELECT count(*) FROM pgagent.pga_joblog p, since
         WHERE p.jlgjobid = %(job)s AND p.jlgid > since.success AND p.jlgid <= %(jlgid)s
           AND p.jlgstart >= since.enabled_at AND p.jlgstatus IN ('f', 'i')) AS failures,
       st.jstname AS step_name, st.jslstatus AS step_status, st.jslresult AS step_result,
       st.output AS step_output
  FROM run r
  JOIN pgagent.pga_job j ON j.jobid = r.jlgjobid
  LEFT JOIN LATERAL (
    SELECT s.jstname, sl.jslstatus, sl.jslresult, left(sl.jsloutput, %(output)s) AS output
      FROM pgagent.pga_jobsteplog sl JOIN pgagent.pga_jobstep s ON s.jstid = sl.jsljstid
     WHERE sl.jsljlgid = r.jlgid
     ORDER BY sl.jslstatus IN ('f', 'd') DESC, sl.jslid DESC
     LIMIT 1) st ON r.jlgstatus <> 's'

-- name: alert_disable
-- max_failures reached: disable the job as pgAdmin does (its trigger clears jobnextrun); a row
-- only when it was still enabled, so one alert says so.
UPDATE pgagent.pga_job SET jobenabled = false WHERE jobid = %(job)s AND jobenabled
RETURNING jobid

-- name: overdue
-- Jobs due for longer than the grace period that nobody runs (`notifyagent status`).
SELECT * FROM notifyagent.overdue(%(grace)s)

-- name: missed_round
-- The overdue jobs, those not reported yet for this due time recorded as reported (new =
-- true): by one agent at a time (advisory lock; the others get no new rows), and exactly once
-- per due time even so, as the upsert only changes a row whose due time differs. Rows of
-- jobs no longer overdue are forgotten, so a later miss is reported again.
WITH lock AS (
  SELECT pg_try_advisory_xact_lock(hashtext('notifyagent.missed')) AS got),
overdue AS (
  SELECT * FROM notifyagent.overdue(%(grace)s)),
recorded AS (
  INSERT INTO notifyagent.job_missed AS m (jobid, due)
  SELECT o.jobid, o.due FROM overdue o, lock WHERE lock.got
  ON CONFLICT (jobid) DO UPDATE SET due = excluded.due WHERE m.due <> excluded.due
  RETURNING m.jobid),
forgotten AS (
  DELETE FROM notifyagent.job_missed m USING lock
   WHERE lock.got AND m.jobid NOT IN (SELECT jobid FROM overdue)
  RETURNING m.jobid)
SELECT o.*, o.jobid IN (SELECT jobid FROM recorded) AS new,
       (SELECT count(*) FROM forgotten) AS forgotten
  FROM overdue o
 ORDER BY o.due, o.jobid

-- The soak's own statements (tests/soak), by name; the agents' are in sql/queries.sql.

-- name: agent_pid
-- The pid (identity) of a station's agent.
SELECT jagpid FROM pgagent.pga_jobagent WHERE jagstation = %s

-- name: dead_agent_left
-- What a killed agent left that the others must clean up: its row and its claims.
SELECT (SELECT count(*) FROM pgagent.pga_jobagent WHERE jagpid = %(p)s)
     + (SELECT count(*) FROM pgagent.pga_job WHERE jobagentid = %(p)s) AS left

-- name: slow_steps
-- The server processes running the slow jobs' pg_sleep steps.
SELECT pid FROM pg_stat_activity
 WHERE datname = 'soak' AND state = 'active' AND query LIKE '%%soak slow%%'
   AND pid <> pg_backend_pid()

-- name: burst_schedules
-- Every schedule but the edited jobs' (whose minutes the workload changes).
SELECT jscid FROM pgagent.pga_schedule s JOIN pgagent.pga_job j ON j.jobid = s.jscjobid
 WHERE j.jobname NOT LIKE 'soak edited %%'

-- name: burst
UPDATE pgagent.pga_schedule SET jscdesc = %s WHERE jscid = ANY(%s)

-- name: probes_done
-- How many of the probe requests (job, time) a finished run started after.
SELECT count(*) FROM unnest(%s::int[], %s::timestamptz[]) a(j, t)
 WHERE EXISTS (SELECT 1 FROM pgagent.pga_joblog
                WHERE jlgjobid = a.j AND jlgstart >= a.t AND jlgstatus <> 'r')

-- name: on_demand_state
-- The latest run of each on-demand job, and whether one is running.
SELECT j.jobid, max(l.jlgstart) AS started, bool_or(l.jlgstatus = 'r') AS running
  FROM unnest(%s::int[]) j(jobid) LEFT JOIN pgagent.pga_joblog l ON l.jlgjobid = j.jobid
 GROUP BY j.jobid

-- name: edited_schedules
SELECT jscjobid, jscid FROM pgagent.pga_schedule WHERE jscjobid = ANY(%s)

-- name: due_untaken
-- Jobs due for more than 5 s that no agent took.
SELECT count(*) FROM pgagent.pga_job
 WHERE jobenabled AND jobagentid IS NULL AND jobnextrun < now() - interval '5 s'

-- name: orphan_claims
-- Jobs claimed by an agent whose row or server process is gone.
SELECT count(*) FROM pgagent.pga_job j
 WHERE jobagentid IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pgagent.pga_jobagent a JOIN pg_stat_activity s ON s.pid = a.jagpid
                    WHERE a.jagpid = j.jobagentid)

-- name: left_behind
-- After every agent stopped: nothing may still be running, claimed or registered.
SELECT (SELECT count(*) FROM pgagent.pga_joblog WHERE jlgstatus = 'r') AS runs,
       (SELECT count(*) FROM pgagent.pga_jobsteplog WHERE jslstatus = 'r') AS steps,
       (SELECT count(*) FROM pgagent.pga_job WHERE jobagentid IS NOT NULL) AS claims,
       (SELECT count(*) FROM pgagent.pga_jobagent) AS agents

-- name: runs
SELECT jlgjobid, jlgid, jlgstart, jlgstart + jlgduration AS jlgend, jlgstatus
  FROM pgagent.pga_joblog ORDER BY jlgjobid, jlgstart, jlgid

-- name: ticks
SELECT jobid, ran_at, app FROM public.soak_tick ORDER BY jobid, ran_at

-- notifyagent's own database objects (schema version 6).
-- Applied in one transaction by `notifyagent install` (and by `serve` when missing or older).
-- Every statement is idempotent (CREATE OR REPLACE / IF NOT EXISTS), so the same script installs
-- and upgrades an earlier version in place.
-- The pgagent extension's objects are never altered: we only add triggers that call our
-- functions. None of them writes a pgagent row (only job_enabled, our own table, when a job
-- is enabled again), so pgAdmin's `xmin = txid_current()` lookup still finds exactly the job
-- it created.

CREATE SCHEMA IF NOT EXISTS notifyagent;
COMMENT ON SCHEMA notifyagent IS 'notifyagent: change notifications and safety triggers for the pgagent schema';

CREATE OR REPLACE FUNCTION notifyagent.version() RETURNS int
LANGUAGE sql IMMUTABLE AS 'SELECT 6';

-- Per-job policies: what pgAgent cannot express. A job without a row behaves like pgAgent.
-- Rows go with their job (ON DELETE CASCADE), so pgAdmin's job deletion keeps working.
CREATE TABLE IF NOT EXISTS notifyagent.job_policy (
  jobid int PRIMARY KEY REFERENCES pgagent.pga_job (jobid) ON DELETE CASCADE,
  job_timeout interval CHECK (job_timeout > interval '0'),
  step_timeout interval CHECK (step_timeout > interval '0'),
  retries int NOT NULL DEFAULT 0 CHECK (retries BETWEEN 0 AND 100),
  retry_delay interval NOT NULL DEFAULT '1 minute' CHECK (retry_delay >= interval '0'),
  overlap text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue-one')),
  catchup text NOT NULL DEFAULT 'once' CHECK (catchup IN ('once', 'skip'))
);
-- Version 4: a sub-minute interval, run besides the job's schedules, on anchored ticks.
ALTER TABLE notifyagent.job_policy ADD COLUMN IF NOT EXISTS every interval
  CHECK (every >= interval '1 second' AND every < interval '1 minute');
-- Version 5: alerts. max_failures disables the job after that many failed runs in a row;
-- alert_to (Apprise URLs) and alert_on (events) are the job's own alert settings.
ALTER TABLE notifyagent.job_policy ADD COLUMN IF NOT EXISTS max_failures int
  CHECK (max_failures BETWEEN 1 AND 1000);
ALTER TABLE notifyagent.job_policy ADD COLUMN IF NOT EXISTS alert_to text;
ALTER TABLE notifyagent.job_policy ADD COLUMN IF NOT EXISTS alert_on text;
COMMENT ON TABLE notifyagent.job_policy IS
  'notifyagent per-job policies: job_timeout / step_timeout cancel and fail a run; retries '
  'failed runs after retry_delay, doubling each time; overlap skip (pgAgent) or queue-one '
  '(a run due while the job runs follows right after); catchup once (pgAgent: one run after '
  'downtime) or skip (no run for missed times); every (1 s to under 1 min) runs the job at '
  'that interval besides its schedules, on ticks counted from the Unix epoch; max_failures '
  'disables the job after that many failed runs in a row; alert_to / alert_on: the job''s '
  'alert destinations (Apprise URLs) and events';

-- Version 5: when each job was last enabled (jobenabled false -> true, e.g. in pgAdmin): the
-- failed runs counted for max_failures are those after it. Written by a row trigger that
-- fires only on an UPDATE setting jobenabled, so the agent's claims and releases never run it.
CREATE TABLE IF NOT EXISTS notifyagent.job_enabled (
  jobid int PRIMARY KEY REFERENCES pgagent.pga_job (jobid) ON DELETE CASCADE,
  enabled_at timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION notifyagent.job_enabled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO notifyagent.job_enabled (jobid, enabled_at) VALUES (NEW.jobid, now())
  ON CONFLICT (jobid) DO UPDATE SET enabled_at = excluded.enabled_at;
  RETURN NULL;
END $$;

-- Version 5: the enabled jobs due for longer than `grace` seconds that nobody runs, with what
-- the agents' table tells about why (missed runs: `notifyagent status`, the liveness check,
-- the missed-run alerts).
CREATE OR REPLACE FUNCTION notifyagent.overdue(grace float8)
RETURNS TABLE (jobid int, jobname text, due timestamptz, host_agent text, host_alive boolean,
               agents bigint)
LANGUAGE sql STABLE AS $$
  SELECT j.jobid, j.jobname::text, j.jobnextrun, j.jobhostagent::text,
         EXISTS (SELECT 1 FROM pgagent.pga_jobagent a WHERE a.jagstation = j.jobhostagent),
         (SELECT count(*) FROM pgagent.pga_jobagent)
    FROM pgagent.pga_job j
   WHERE j.jobenabled AND j.jobagentid IS NULL
     AND j.jobnextrun < now() - make_interval(secs => grace)
   ORDER BY j.jobnextrun, j.jobid
$$;

-- Version 5: the due time of each job last reported as missed, so that a missed run is
-- reported once by one agent (a new due time is a new miss).
CREATE TABLE IF NOT EXISTS notifyagent.job_missed (
  jobid int PRIMARY KEY REFERENCES pgagent.pga_job (jobid) ON DELETE CASCADE,
  due timestamptz NOT NULL
);

-- Version 6: the retry in progress of a job whose policy retries failed runs, so that any agent
-- (another one, or the same one after a restart) continues the count: the failed attempts
-- retried so far and the due time of the next retry. The release writes it (and deletes it
-- when no retry is pending); a claim of the job at exactly that due time continues the chain,
-- any other run (a Run now, the schedule) starts a new one.
CREATE TABLE IF NOT EXISTS notifyagent.retry (
  jobid int PRIMARY KEY REFERENCES pgagent.pga_job (jobid) ON DELETE CASCADE,
  attempts int NOT NULL,
  due timestamptz NOT NULL
);
COMMENT ON TABLE notifyagent.retry IS
  'notifyagent: the retry in progress (policy retries): the attempts made so far and the due '
  'time of the next retry; a run claimed at exactly that due time continues the chain';

-- `notifyagent run JOB --step NAME`: the next claim of the job runs only this step, as a run of
-- the job (one pga_joblog row, one pga_jobsteplog row). The claim consumes the row; a request
-- older than 10 minutes (no agent ran meanwhile) is dropped unused. Rows go with their job or
-- step (ON DELETE CASCADE).
CREATE TABLE IF NOT EXISTS notifyagent.step_request (
  jobid int PRIMARY KEY REFERENCES pgagent.pga_job (jobid) ON DELETE CASCADE,
  jstid int NOT NULL REFERENCES pgagent.pga_jobstep (jstid) ON DELETE CASCADE,
  requested_at timestamptz NOT NULL DEFAULT now(),
  requested_by text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE notifyagent.step_request IS
  'notifyagent run JOB --step NAME: the next run of the job runs only this step (consumed by '
  'the claim; ignored after 10 minutes)';

-- Cancel a running job from any session, e.g. pgAdmin's Query Tool:
--   SELECT notifyagent.cancel_job(42);        -- the whole run: it ends 'd' (aborted)
--   SELECT notifyagent.cancel_job(42, true);  -- only its running step (its on-error rule decides)
-- Returns whether the job was running (claimed by an agent); only then is the agent holding it
-- told (channel notifyagent, "cancel:<id>:<who>", sent at commit), with the caller's session
-- user and application name for the step's output. Nothing is written.
CREATE OR REPLACE FUNCTION notifyagent.cancel_job(job_id int, step_only boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  app text := current_setting('application_name');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pgagent.pga_job j
                  WHERE j.jobid = job_id AND j.jobagentid IS NOT NULL) THEN
    RETURN false;
  END IF;
  PERFORM pg_notify('notifyagent',
                    CASE WHEN step_only THEN 'cancel-step:' ELSE 'cancel:' END || job_id || ':'
                    || session_user || CASE WHEN app <> '' THEN ' (' || app || ')' ELSE '' END);
  RETURN true;
END $$;
COMMENT ON FUNCTION notifyagent.cancel_job(int, boolean) IS
  'notifyagent: stop a running job (step_only: its running step); false when it is not running';

-- Send the ids of the jobs a statement touched on channel "notifyagent" as "<kind>:<id>,<id>,...".
-- Chunks of 700 ids keep each payload under NOTIFY's 8000-byte limit; a change too large to
-- describe usefully sends "resync" instead.
CREATE OR REPLACE FUNCTION notifyagent.notify_jobs(kind text, ids int[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  n int := coalesce(array_length(ids, 1), 0);
  i int := 1;
BEGIN
  IF n = 0 THEN
    RETURN;
  END IF;
  IF n > 100000 THEN
    PERFORM pg_notify('notifyagent', 'resync');
    RETURN;
  END IF;
  WHILE i <= n LOOP
    PERFORM pg_notify('notifyagent', kind || ':' || array_to_string(ids[i:i + 699], ','));
    i := i + 700;
  END LOOP;
END $$;

-- A jobnextrun as notification payload text: microseconds since the Unix epoch, 'i' for
-- 'infinity', '' for NULL.
CREATE OR REPLACE FUNCTION notifyagent.payload_time(v timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN v = 'infinity' THEN 'i'
              WHEN isfinite(v) THEN round(extract(epoch FROM v) * 1000000)::bigint::text
              ELSE '' END
$$;

-- Like notify_jobs, with the jobnextrun the transaction left for each job: "<kind>:<id>=<time>,...".
-- The agent reads the row later; a value other than the one named here was written after this
-- transaction (a Run now right after a schedule change), so it is not corrected away. Chunks of
-- 250 keep each payload under 8000 bytes.
CREATE OR REPLACE FUNCTION notifyagent.notify_next_runs(kind text, ids int[], next_runs timestamptz[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(array_length(ids, 1), 0) > 100000 THEN
    PERFORM pg_notify('notifyagent', 'resync');
    RETURN;
  END IF;
  PERFORM pg_notify('notifyagent',
                    kind || ':' || string_agg(id || '=' || notifyagent.payload_time(at), ','
                                              ORDER BY k))
     FROM unnest(ids, next_runs) WITH ORDINALITY AS u(id, at, k)
    GROUP BY (k - 1) / 250
    ORDER BY (k - 1) / 250;
END $$;

-- notify_next_runs for some jobs with their jobnextrun as this transaction sees it now (after
-- the extension's triggers recomputed it); a job deleted meanwhile is sent with ''.
CREATE OR REPLACE FUNCTION notifyagent.notify_current_next_runs(kind text, ids int[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  found int[];
  next_runs timestamptz[];
BEGIN
  SELECT array_agg(u.id ORDER BY u.id), array_agg(j.jobnextrun ORDER BY u.id)
    INTO found, next_runs
    FROM (SELECT DISTINCT unnest(ids) AS id) u LEFT JOIN pgagent.pga_job j ON j.jobid = u.id
   WHERE u.id IS NOT NULL;
  PERFORM notifyagent.notify_next_runs(kind, found, next_runs);
END $$;

-- pga_job: only changes that matter for scheduling (next run, enabled, host, release) notify,
-- so the agent's own claim (jobagentid, joblastrun) does not wake anybody. Kind "recompute"
-- marks a statement whose jobnextrun came from the extension's recompute (someone wrote NULL:
-- a schedule edit, enabling a job, a release), which the agent then checks against its own
-- engine (the payload names the value computed); kind "job" is an explicit value a client wrote
-- (Run now), which the agent honours.
CREATE OR REPLACE FUNCTION notifyagent.job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  kind text := 'job';
  ids int[];
  next_runs timestamptz[];
BEGIN
  IF current_setting('notifyagent.recomputed', true) = 'on' THEN
    kind := 'recompute';
    PERFORM set_config('notifyagent.recomputed', '', true);
  END IF;
  IF pg_trigger_depth() > coalesce(
       nullif(current_setting('notifyagent.schedule_statement', true), '')::int, 2147483647) THEN
    -- the extension's schedule or exception trigger recomputing jobnextrun: that statement's
    -- own trigger names these jobs with their final value once all its rows are done; a
    -- notification per row now would let the agent recompute with schedules not yet read
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM notifyagent.notify_jobs(kind, ARRAY(SELECT jobid FROM new_rows ORDER BY 1));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM notifyagent.notify_jobs(kind, ARRAY(SELECT jobid FROM old_rows ORDER BY 1));
  ELSIF TG_OP = 'UPDATE' THEN
    SELECT array_agg(n.jobid ORDER BY n.jobid), array_agg(n.jobnextrun ORDER BY n.jobid)
      INTO ids, next_runs
      FROM new_rows n JOIN old_rows o USING (jobid)
     WHERE n.jobnextrun IS DISTINCT FROM o.jobnextrun
        OR n.jobenabled IS DISTINCT FROM o.jobenabled
        OR n.jobhostagent IS DISTINCT FROM o.jobhostagent
        OR (o.jobagentid IS NOT NULL AND n.jobagentid IS NULL);
    -- with the values: a recompute's is checked against the agent's engine; since version 5
    -- an explicit one (Run now: one job, or a few) lets the agent claim the job before it
    -- reads the row; a bulk explicit change is named by ids alone, in fewer notifications
    IF kind = 'recompute' OR coalesce(array_length(ids, 1), 0) <= 250 THEN
      PERFORM notifyagent.notify_next_runs(kind, ids, next_runs);
    ELSE
      PERFORM notifyagent.notify_jobs(kind, ids);
    END IF;
  ELSE  -- TRUNCATE
    PERFORM pg_notify('notifyagent', 'resync');
  END IF;
  RETURN NULL;
END $$;

-- A schedule or exception statement is under way (at this trigger depth): the jobnextrun
-- updates the extension's row triggers make meanwhile, one level deeper, are reported once, by
-- the statement's own trigger below. Statements at this depth or above still notify.
CREATE OR REPLACE FUNCTION notifyagent.schedule_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- the outermost such statement counts (deleting a schedule cascades to its exceptions)
  IF coalesce(nullif(current_setting('notifyagent.schedule_statement', true), '')::int,
              2147483647) > pg_trigger_depth() THEN
    PERFORM set_config('notifyagent.schedule_statement', pg_trigger_depth()::text, true);
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION notifyagent.schedule_statement_done() RETURNS void
LANGUAGE sql AS $$
  SELECT set_config('notifyagent.schedule_statement', '', true)
   WHERE current_setting('notifyagent.schedule_statement', true) = pg_trigger_depth()::text
$$;

-- Schedule and exception changes name each job's jobnextrun after the extension's row triggers
-- (AFTER ROW, fired before these statement triggers) recomputed it.
CREATE OR REPLACE FUNCTION notifyagent.schedule_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM notifyagent.schedule_statement_done();
  IF TG_OP = 'INSERT' THEN
    PERFORM notifyagent.notify_current_next_runs('schedule', ARRAY(SELECT jscjobid FROM new_rows));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM notifyagent.notify_current_next_runs('schedule', ARRAY(SELECT jscjobid FROM old_rows));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM notifyagent.notify_current_next_runs('schedule', ARRAY(
      SELECT jscjobid FROM new_rows UNION SELECT jscjobid FROM old_rows));
  ELSE
    PERFORM pg_notify('notifyagent', 'resync');
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION notifyagent.exception_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM notifyagent.schedule_statement_done();
  IF TG_OP = 'INSERT' THEN
    PERFORM notifyagent.notify_current_next_runs('exception', ARRAY(
      SELECT s.jscjobid FROM new_rows e JOIN pgagent.pga_schedule s ON s.jscid = e.jexscid));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM notifyagent.notify_current_next_runs('exception', ARRAY(
      SELECT s.jscjobid FROM old_rows e JOIN pgagent.pga_schedule s ON s.jscid = e.jexscid));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM notifyagent.notify_current_next_runs('exception', ARRAY(
      SELECT s.jscjobid FROM (SELECT jexscid FROM new_rows UNION SELECT jexscid FROM old_rows) e
        JOIN pgagent.pga_schedule s ON s.jscid = e.jexscid));
  ELSE
    PERFORM pg_notify('notifyagent', 'resync');
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION notifyagent.policy_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(SELECT jobid FROM new_rows ORDER BY 1));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(SELECT jobid FROM old_rows ORDER BY 1));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(
      SELECT jobid FROM new_rows UNION SELECT jobid FROM old_rows ORDER BY 1));
  ELSE
    PERFORM pg_notify('notifyagent', 'resync');
  END IF;
  RETURN NULL;
END $$;

-- Annotations live in pgAdmin's own fields (job Comment, step Description): a changed text is
-- a changed policy for the agent ("policy:<jobid>,..."), sent only when the old or the new
-- text holds an '@' (a cosmetic edit of a plain comment wakes nobody).
CREATE OR REPLACE FUNCTION notifyagent.description_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'pga_job' AND TG_OP = 'INSERT' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(
      SELECT jobid FROM new_rows WHERE jobdesc LIKE '%@%' ORDER BY 1));
  ELSIF TG_TABLE_NAME = 'pga_job' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(
      SELECT n.jobid FROM new_rows n JOIN old_rows o USING (jobid)
       WHERE n.jobdesc IS DISTINCT FROM o.jobdesc
         AND (n.jobdesc LIKE '%@%' OR o.jobdesc LIKE '%@%') ORDER BY 1));
  ELSIF TG_OP = 'INSERT' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(
      SELECT DISTINCT jstjobid FROM new_rows WHERE jstdesc LIKE '%@%' ORDER BY 1));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(
      SELECT DISTINCT jstjobid FROM old_rows WHERE jstdesc LIKE '%@%' ORDER BY 1));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM notifyagent.notify_jobs('policy', ARRAY(
      SELECT DISTINCT n.jstjobid FROM new_rows n JOIN old_rows o USING (jstid)
       WHERE (n.jstdesc IS DISTINCT FROM o.jstdesc OR n.jstenabled IS DISTINCT FROM o.jstenabled)
         AND (n.jstdesc LIKE '%@%' OR o.jstdesc LIKE '%@%') ORDER BY 1));
  ELSE
    PERFORM pg_notify('notifyagent', 'resync');
  END IF;
  RETURN NULL;
END $$;

-- A claim of a job that is not due (disabled, no next run, or next run in the future) is stale:
-- pgAgent's poll thread can arrive after another agent already ran and released the job, and
-- would run it a second time. Skipping the row makes that claim affect 0 rows instead.
-- Version 5: notifyagent claims up to a second ahead of the due time (the run then waits for
-- it), so "in the future" means more than a second ahead; a released job's next run is later.
CREATE OR REPLACE FUNCTION notifyagent.claim_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT OLD.jobenabled OR OLD.jobnextrun IS NULL
     OR OLD.jobnextrun > now() + interval '1 second' THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END $$;

-- Runs before the extension's pga_job_trigger (triggers fire in name order) and does the same
-- recompute, but a schedule that pga_next_schedule() cannot compute (the 31st in a 30-day
-- month, 30 February) yields 'infinity' instead of aborting the statement: saving such a
-- schedule in pgAdmin works, releasing the job works, and the agent then writes the real time.
-- NULL array elements count as false, as in the agent's engine: the extension's function never
-- returns for some of them (a row saved before notifyagent.schedule_without_nulls() existed).
-- It also flags the statement as a recompute for notifyagent.job_changed().
-- Version 6: a recompute asked for a job that is due and not taken yet (a schedule or exception
-- saved, any column of it, at the moment the job falls due) keeps the due time: the run that
-- had fallen due still happens, then the new schedule applies. The extension recomputes from
-- now(), which dropped that run (pgAgent's poll makes the window seconds wide; a burst of
-- schedule changes during a herd of due jobs dropped hundreds). A release or a zombie cleanup
-- (the job was claimed), enabling a job (it was disabled) and a time the job already ran for
-- (joblastrun) recompute as before.
CREATE OR REPLACE FUNCTION notifyagent.safe_nextrun() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('notifyagent.recomputed', true) IS DISTINCT FROM 'on' THEN
    PERFORM set_config('notifyagent.recomputed', 'on', true);
  END IF;
  IF OLD.jobenabled AND OLD.jobagentid IS NULL AND NEW.jobagentid IS NULL
     AND OLD.jobnextrun <= now() AND OLD.jobnextrun > coalesce(OLD.joblastrun, '-infinity') THEN
    NEW.jobnextrun := OLD.jobnextrun;
    RETURN NEW;
  END IF;
  BEGIN
    NEW.jobnextrun := (
      SELECT min(pgagent.pga_next_schedule(jscid, jscstart, jscend,
               array_replace(jscminutes, NULL, false), array_replace(jschours, NULL, false),
               array_replace(jscweekdays, NULL, false), array_replace(jscmonthdays, NULL, false),
               array_replace(jscmonths, NULL, false)))
        FROM pgagent.pga_schedule WHERE jscenabled AND jscjobid = OLD.jobid);
  EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR numeric_value_out_of_range THEN
    NEW.jobnextrun := 'infinity';
  END;
  RETURN NEW;
END $$;

-- Runs after the extension's pga_job_trigger: the agent writes '-infinity' to mean "no next
-- run" (NULL) without asking the extension to recompute one; it is never stored.
CREATE OR REPLACE FUNCTION notifyagent.store_no_next_run() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.jobnextrun := NULL;
  RETURN NEW;
END $$;

-- A schedule with NULL array elements (possible in SQL, never sent by pgAdmin) is stored with
-- false in their place. pgagent.pga_next_schedule() treats some such rows as matching no time
-- and searches forever, so the statement that saves them would hang; notifyagent's engine
-- already reads NULL as false, so the stored row now says what the agent runs. Rejecting the
-- row instead would break scripts pgAgent accepts (a NULL next to a true value acts as false
-- there). A BEFORE ROW trigger: it runs before the extension's pga_schedule_trigger, which is
-- AFTER ROW and so sees the stored row whatever the names.
CREATE OR REPLACE FUNCTION notifyagent.schedule_without_nulls() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  fixed text[] := '{}';
  row_json jsonb := to_jsonb(NEW);
  col text;
BEGIN
  FOREACH col IN ARRAY ARRAY['jscminutes', 'jschours', 'jscweekdays', 'jscmonthdays', 'jscmonths']
  LOOP
    IF row_json -> col @> '[null]' THEN
      NEW := jsonb_populate_record(NEW, jsonb_build_object(col, (
        SELECT jsonb_agg(CASE WHEN e = 'null' THEN 'false'::jsonb ELSE e END ORDER BY n)
          FROM jsonb_array_elements(row_json -> col) WITH ORDINALITY AS x(e, n))));
      fixed := fixed || col;
    END IF;
  END LOOP;
  RAISE WARNING 'notifyagent: schedule % (jscid %) of job %: NULL elements in % stored as false',
    quote_literal(NEW.jscname), NEW.jscid, NEW.jscjobid, array_to_string(fixed, ', ')
    USING DETAIL = 'pgagent.pga_next_schedule() can search forever for a schedule with NULL '
                   'elements; notifyagent reads NULL as false.',
          HINT = 'Write true or false for every element of the schedule arrays (pgAdmin does).';
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER notifyagent_job_insert AFTER INSERT ON pgagent.pga_job
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.job_changed();
CREATE OR REPLACE TRIGGER notifyagent_job_update AFTER UPDATE ON pgagent.pga_job
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.job_changed();
CREATE OR REPLACE TRIGGER notifyagent_job_delete AFTER DELETE ON pgagent.pga_job
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.job_changed();
CREATE OR REPLACE TRIGGER notifyagent_job_truncate AFTER TRUNCATE ON pgagent.pga_job
  FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.job_changed();
CREATE OR REPLACE TRIGGER notifyagent_claim_guard BEFORE UPDATE OF jobagentid ON pgagent.pga_job
  FOR EACH ROW WHEN (OLD.jobagentid IS NULL AND NEW.jobagentid IS NOT NULL)
  EXECUTE FUNCTION notifyagent.claim_guard();
CREATE OR REPLACE TRIGGER notifyagent_safe_nextrun BEFORE UPDATE ON pgagent.pga_job
  FOR EACH ROW WHEN (NEW.jobnextrun IS NULL AND NEW.jobenabled)
  EXECUTE FUNCTION notifyagent.safe_nextrun();
CREATE OR REPLACE TRIGGER pga_zz_notifyagent_no_next_run BEFORE UPDATE ON pgagent.pga_job
  FOR EACH ROW WHEN (NEW.jobnextrun = '-infinity')
  EXECUTE FUNCTION notifyagent.store_no_next_run();

CREATE OR REPLACE TRIGGER notifyagent_schedule_no_nulls BEFORE INSERT OR UPDATE ON pgagent.pga_schedule
  FOR EACH ROW WHEN (array_position(NEW.jscminutes, NULL) IS NOT NULL
                     OR array_position(NEW.jschours, NULL) IS NOT NULL
                     OR array_position(NEW.jscweekdays, NULL) IS NOT NULL
                     OR array_position(NEW.jscmonthdays, NULL) IS NOT NULL
                     OR array_position(NEW.jscmonths, NULL) IS NOT NULL)
  EXECUTE FUNCTION notifyagent.schedule_without_nulls();
CREATE OR REPLACE TRIGGER notifyagent_schedule_statement BEFORE INSERT OR UPDATE OR DELETE
  ON pgagent.pga_schedule FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.schedule_statement();
CREATE OR REPLACE TRIGGER notifyagent_exception_statement BEFORE INSERT OR UPDATE OR DELETE
  ON pgagent.pga_exception FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.schedule_statement();
CREATE OR REPLACE TRIGGER notifyagent_schedule_insert AFTER INSERT ON pgagent.pga_schedule
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.schedule_changed();
CREATE OR REPLACE TRIGGER notifyagent_schedule_update AFTER UPDATE ON pgagent.pga_schedule
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.schedule_changed();
CREATE OR REPLACE TRIGGER notifyagent_schedule_delete AFTER DELETE ON pgagent.pga_schedule
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.schedule_changed();
CREATE OR REPLACE TRIGGER notifyagent_schedule_truncate AFTER TRUNCATE ON pgagent.pga_schedule
  FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.schedule_changed();

CREATE OR REPLACE TRIGGER notifyagent_exception_insert AFTER INSERT ON pgagent.pga_exception
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.exception_changed();
CREATE OR REPLACE TRIGGER notifyagent_exception_update AFTER UPDATE ON pgagent.pga_exception
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.exception_changed();
CREATE OR REPLACE TRIGGER notifyagent_exception_delete AFTER DELETE ON pgagent.pga_exception
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.exception_changed();
CREATE OR REPLACE TRIGGER notifyagent_exception_truncate AFTER TRUNCATE ON pgagent.pga_exception
  FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.exception_changed();

CREATE OR REPLACE TRIGGER notifyagent_policy_insert AFTER INSERT ON notifyagent.job_policy
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.policy_changed();
CREATE OR REPLACE TRIGGER notifyagent_policy_update AFTER UPDATE ON notifyagent.job_policy
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.policy_changed();
CREATE OR REPLACE TRIGGER notifyagent_policy_delete AFTER DELETE ON notifyagent.job_policy
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.policy_changed();
CREATE OR REPLACE TRIGGER notifyagent_policy_truncate AFTER TRUNCATE ON notifyagent.job_policy
  FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.policy_changed();

CREATE OR REPLACE TRIGGER notifyagent_job_desc_insert AFTER INSERT ON pgagent.pga_job
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.description_changed();
CREATE OR REPLACE TRIGGER notifyagent_job_desc_update AFTER UPDATE ON pgagent.pga_job
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.description_changed();
CREATE OR REPLACE TRIGGER notifyagent_job_enabled AFTER UPDATE OF jobenabled ON pgagent.pga_job
  FOR EACH ROW WHEN (NOT OLD.jobenabled AND NEW.jobenabled)
  EXECUTE FUNCTION notifyagent.job_enabled();
CREATE OR REPLACE TRIGGER notifyagent_step_insert AFTER INSERT ON pgagent.pga_jobstep
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.description_changed();
CREATE OR REPLACE TRIGGER notifyagent_step_update AFTER UPDATE ON pgagent.pga_jobstep
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.description_changed();
CREATE OR REPLACE TRIGGER notifyagent_step_delete AFTER DELETE ON pgagent.pga_jobstep
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.description_changed();
CREATE OR REPLACE TRIGGER notifyagent_step_truncate AFTER TRUNCATE ON pgagent.pga_jobstep
  FOR EACH STATEMENT EXECUTE FUNCTION notifyagent.description_changed();

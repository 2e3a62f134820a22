-- Example jobs of the demo (python -m notifyagent.demo), made as pgAdmin would make them.
CREATE TABLE public.heartbeat (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
DO $$
DECLARE jid int;
BEGIN
  INSERT INTO pgagent.pga_job (jobjclid, jobname, jobdesc)
  VALUES (1, 'heartbeat', 'SQL step, every minute') RETURNING jobid INTO jid;
  INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname)
  VALUES (jid, 'insert a heartbeat', 's', 'INSERT INTO public.heartbeat DEFAULT VALUES', 'postgres');
  INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes)
  VALUES (jid, 'every minute', array_fill(true, ARRAY[60]));

  INSERT INTO pgagent.pga_job (jobjclid, jobname, jobdesc)
  VALUES (5, 'disk report', 'batch step, every 2 minutes') RETURNING jobid INTO jid;
  INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode)
  VALUES (jid, 'df', 'b', E'#!/bin/sh\ndf -h / | tail -n 1');
  INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes)
  VALUES (jid, 'even minutes', (SELECT array_agg(g % 2 = 0 ORDER BY g) FROM generate_series(0, 59) g));

  INSERT INTO pgagent.pga_job (jobjclid, jobname, jobdesc)
  VALUES (1, 'purge heartbeats', 'two steps, every 5 minutes') RETURNING jobid INTO jid;
  INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, jstdbname) VALUES
    (jid, '1 delete old rows', 's',
     'DELETE FROM public.heartbeat WHERE at < now() - interval ''10 minutes''', 'postgres'),
    (jid, '2 vacuum', 's', 'VACUUM public.heartbeat', 'postgres');
  INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscminutes)
  VALUES (jid, 'every 5 minutes', (SELECT array_agg(g % 5 = 0 ORDER BY g) FROM generate_series(0, 59) g));
END $$;
-- "Run now" for every job, as pgAdmin does it, so the demo shows runs right away
UPDATE pgagent.pga_job SET jobnextrun = now();

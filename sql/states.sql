-- states: the CHECK on state, and every allowed and refused move
-- an unknown state cannot be stored
SELECT split_part(bd_try($$INSERT INTO bulkdelete.operation (owner, kind, state) VALUES ('bd_alice', 'query', 'running')$$), ' [', 1);
SELECT split_part(bd_try($$INSERT INTO bulkdelete.operation (owner, kind, state) VALUES ('bd_alice', 'delete', 'queued')$$), ' [', 1);
-- nor can a final state be left by updating the row, even by the owner
SELECT bd_fake_job('bd_alice', 'succeeded') AS job \gset
SET ROLE bd_alice;
SELECT bd_try(format('UPDATE bulkdelete.operation SET state = %L WHERE id = %s', 'queued', :job));
RESET ROLE;

-- each action from each state: the resulting state, or the error
CREATE TEMP TABLE moves AS
SELECT s AS from_state, a AS action
FROM unnest(ARRAY['open', 'scheduled', 'queued', 'in_progress', 'pausing',
                  'paused', 'canceling', 'canceled', 'succeeded', 'failed']) s,
     unnest(ARRAY['cancel', 'pause', 'resume']) a;

SELECT from_state, action,
       (SELECT bd_try(format('SELECT bulkdelete.%s(%s)', action,
                             bd_fake_job('bd_alice', from_state)))) AS outcome
FROM moves ORDER BY action, from_state;

-- the state actually stored after a move
SELECT bd_fake_job('bd_alice', 'in_progress') AS job \gset
SELECT bulkdelete.cancel(:job);
SELECT state, finished_at IS NULL AS unfinished FROM bulkdelete.operation WHERE id = :job;
SELECT bd_fake_job('bd_alice', 'queued') AS job \gset
SELECT bulkdelete.cancel(:job);
SELECT state, finished_at IS NOT NULL AS finished FROM bulkdelete.operation WHERE id = :job;

-- postpone: only jobs that have not started, to a finite time
SELECT bd_fake_job('bd_alice', 'queued') AS job \gset
SELECT bulkdelete.postpone(:job, '2100-01-01 00:00+00');
SELECT state, start_after FROM bulkdelete.operation WHERE id = :job;
SELECT bd_try(format('SELECT bulkdelete.postpone(%s, %L)', :job, 'infinity'));
SELECT bd_try(format('SELECT bulkdelete.postpone(%s, now())', bd_fake_job('bd_alice', 'succeeded')));

-- a job that does not exist
SELECT bd_try('SELECT bulkdelete.cancel(-1)');
SELECT bulkdelete.cancel(NULL);

-- RunNow: CALL bulkdelete.run runs a scheduled or paused job at once; a
-- job paused before it started counts no paused time
CREATE TABLE public.st_runnow (id int PRIMARY KEY);
INSERT INTO public.st_runnow SELECT generate_series(1, 20);
SELECT bulkdelete.submit('public.st_runnow', 'id <= 10',
	start_after => now() + interval '1 day') AS job \gset
CALL bulkdelete.run(:job);
SELECT state, success_count, started_at IS NOT NULL AS started,
	   paused_at, paused_time FROM bulkdelete.operation WHERE id = :job;
BEGIN;
SELECT bulkdelete.submit('public.st_runnow', 'id > 10') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
SELECT paused_at IS NOT NULL AS paused_at_set FROM bulkdelete.operation WHERE id = :job;
CALL bulkdelete.run(:job);
SELECT state, success_count, paused_at, paused_time FROM bulkdelete.operation WHERE id = :job;
SELECT count(*) FROM public.st_runnow;
-- a finished job does not run again
\set VERBOSITY sqlstate
CALL bulkdelete.run(:job);
\set VERBOSITY default
SELECT replace(:'LAST_ERROR_MESSAGE', :'job', 'N') AS error;
DROP TABLE public.st_runnow;

DELETE FROM bulkdelete.operation;

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

DELETE FROM bulkdelete.operation;

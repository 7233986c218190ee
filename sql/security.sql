-- security: row-level security on the job tables, the BulkDelete privilege
SELECT bd_fake_job('bd_alice', 'queued') AS alice_job \gset
SELECT bd_fake_job('bd_bob', 'queued') AS bob_job \gset
SELECT bd_fake_job('bd_team', 'queued') AS team_job \gset
INSERT INTO bulkdelete.failure (operation_id, relation, record_key, sqlstate, message)
VALUES (:alice_job, 'pg_class', '{"id": 1}', '23503', 'alice failure'),
       (:bob_job, 'pg_class', '{"id": 2}', '23503', 'bob failure');

-- a superuser sees every job
SELECT count(*) FROM bulkdelete.operation
WHERE id IN (:alice_job, :bob_job, :team_job);

-- alice sees her own jobs and those of the roles she is a member of
SET ROLE bd_alice;
SELECT owner, state FROM bulkdelete.operation ORDER BY id;
SELECT owner, state FROM bulkdelete.jobs ORDER BY id;
SELECT message FROM bulkdelete.failure ORDER BY id;
-- and cannot change rows directly, hers or bob's
SELECT bd_try(format('UPDATE bulkdelete.operation SET state = %L WHERE id = %s', 'canceled', :alice_job));
SELECT bd_try(format('DELETE FROM bulkdelete.operation WHERE id = %s', :bob_job));
SELECT bd_try(format('INSERT INTO bulkdelete.operation (owner, kind, state) VALUES (%L, %L, %L)', 'bd_alice', 'query', 'queued'));
SELECT bd_try(format('DELETE FROM bulkdelete.failure WHERE operation_id = %s', :bob_job));
-- bob's job does not exist for her: it cannot be controlled
SELECT bd_try(format('SELECT bulkdelete.cancel(%s)', :bob_job));
SELECT bd_try(format('SELECT bulkdelete.pause(%s)', :bob_job));
-- her own and her team's can
SELECT bulkdelete.pause(:alice_job);
SELECT bulkdelete.pause(:team_job);
RESET ROLE;

-- bob sees only his
SET ROLE bd_bob;
SELECT owner, state FROM bulkdelete.operation ORDER BY id;
SELECT message FROM bulkdelete.failure ORDER BY id;
SELECT bd_try(format('SELECT bulkdelete.resume(%s)', :alice_job));
RESET ROLE;

-- nothing was changed by the refused attempts
SELECT owner, state FROM bulkdelete.operation
WHERE id IN (:alice_job, :bob_job, :team_job) ORDER BY id;
SELECT count(*) FROM bulkdelete.failure;

-- carol has no USAGE on the schema: she can call nothing and read nothing
SET ROLE bd_carol;
SELECT bd_try(format('SELECT bulkdelete.cancel(%s)', :alice_job));
SELECT bd_try('SELECT count(*) FROM bulkdelete.operation');
SELECT bd_try('SELECT count(*) FROM bulkdelete.jobs');
RESET ROLE;

DELETE FROM bulkdelete.operation;

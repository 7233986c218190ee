-- views: a query set's entity (or submit's target) may be a view that
-- PostgreSQL could DELETE through; the job deletes from its base table the
-- rows the view shows at the start, with the view's security_barrier and
-- security_invoker semantics.  Any other view is refused at submit with
-- PostgreSQL's own reason and SQLSTATE.  Jobs run in this session (CALL
-- bulkdelete.run), each submitted and paused in one transaction so that no
-- worker takes it first.
CREATE SCHEMA vw;
SELECT count(*) AS jobs_before FROM bulkdelete.operation \gset
CREATE TABLE vw.contact (id int PRIMARY KEY, name text NOT NULL,
	status int NOT NULL, owner text NOT NULL, hidden bool NOT NULL DEFAULT false);
CREATE TABLE vw.activity (id serial PRIMARY KEY,
	contact_id int NOT NULL REFERENCES vw.contact ON DELETE CASCADE);
CREATE FUNCTION vw.reset() RETURNS void LANGUAGE sql AS $$
	TRUNCATE vw.contact CASCADE;
	INSERT INTO vw.contact
	SELECT g, 'n' || g, g % 3, CASE WHEN g % 2 = 0 THEN 'alice' ELSE 'bob' END,
	       g % 10 = 0
	FROM generate_series(1, 60) g;
	INSERT INTO vw.activity (contact_id) SELECT g FROM generate_series(1, 60, 5) g;
$$;
SELECT vw.reset();
-- an updatable view with a computed column, a view of it, a barrier view
CREATE VIEW vw.inactive AS
	SELECT id, name, upper(name) AS uname, owner FROM vw.contact WHERE status = 0;
CREATE VIEW vw.inactive_bob AS SELECT * FROM vw.inactive WHERE owner = 'bob';
CREATE VIEW vw.visible WITH (security_barrier) AS
	SELECT id, name, status FROM vw.contact WHERE NOT hidden;
CREATE VIEW vw.visible_old AS SELECT * FROM vw.visible WHERE status = 2;
-- what PostgreSQL cannot delete through
CREATE VIEW vw.joined AS
	SELECT c.id FROM vw.contact c JOIN vw.activity a ON a.contact_id = c.id;
CREATE VIEW vw.counted AS SELECT status, count(*) FROM vw.contact GROUP BY status;
CREATE VIEW vw.distinct_owner AS SELECT DISTINCT owner FROM vw.contact;
CREATE VIEW vw.unioned AS
	SELECT id FROM vw.contact WHERE status = 0 UNION SELECT id FROM vw.contact WHERE status = 1;
CREATE VIEW vw.limited AS SELECT id FROM vw.contact LIMIT 5;
CREATE VIEW vw.of_joined AS SELECT * FROM vw.joined;
-- deletable by PostgreSQL, but not by rows of the base table
CREATE VIEW vw.triggered AS SELECT id, name FROM vw.contact;
CREATE FUNCTION vw.triggered_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE vw.contact SET status = 9 WHERE id = OLD.id;
	RETURN OLD;
END
$$;
CREATE TRIGGER triggered_delete INSTEAD OF DELETE ON vw.triggered
	FOR EACH ROW EXECUTE FUNCTION vw.triggered_delete();
CREATE VIEW vw.ruled AS SELECT id, name FROM vw.contact;
CREATE RULE ruled_delete AS ON DELETE TO vw.ruled DO INSTEAD
	UPDATE vw.contact SET status = 9 WHERE id = OLD.id;
CREATE VIEW vw.of_triggered AS SELECT * FROM vw.triggered;

-- preview through a view counts what the view shows, and names the base
-- table, whose cascade tree it follows
SELECT relation, sql, matching_rows, cascade
FROM bulkdelete.preview('{"entity": "vw.inactive", "criteria": {"conditions":
	[{"attribute": "id", "operator": "le", "values": [30]}]}}');
SELECT count(*) FROM vw.inactive WHERE id <= 30;
-- a computed column of the view is what the view computes
SELECT sql, matching_rows
FROM bulkdelete.preview('{"entity": "vw.inactive_bob", "criteria": {"conditions":
	[{"attribute": "uname", "operator": "begins-with", "values": ["N2"]}]}}');
SELECT count(*) FROM vw.inactive_bob WHERE uname LIKE 'N2%';
-- a barrier view guards the condition above it
SELECT sql, matching_rows
FROM bulkdelete.preview('{"entity": "vw.visible_old", "criteria": {}}');
SELECT count(*) FROM vw.visible_old;

-- refused at submit, with PostgreSQL's reason and SQLSTATE, by every entry point
SELECT v, bd_try(format($$SELECT bulkdelete.submit(%L::regclass, 'true')$$, v)) AS filter_form,
       bd_try(format($$SELECT bulkdelete.submit('{"entity": %s, "criteria": {}}')$$,
                     to_jsonb(v))) AS json_form
FROM unnest(ARRAY['vw.joined', 'vw.counted', 'vw.distinct_owner', 'vw.unioned',
                  'vw.limited', 'vw.of_joined', 'vw.triggered', 'vw.ruled',
                  'vw.of_triggered']) v;
SELECT bd_try($$SELECT * FROM bulkdelete.preview('{"entity": "vw.counted", "criteria": {}}')$$);
SELECT bd_try($$SELECT * FROM bulkdelete.preview('[{"entity": "vw.contact", "criteria": {}},
	{"entity": "vw.unioned", "criteria": {}}]')$$);
-- PostgreSQL's own refusal, for comparison
SELECT bd_try('DELETE FROM vw.counted');
SELECT count(*) - :jobs_before AS new_jobs FROM bulkdelete.operation;

-- a job through a view of a view deletes exactly what the view shows
BEGIN;
SELECT bulkdelete.submit('vw.inactive_bob'::regclass, $$uname LIKE 'N1%'$$) AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
SELECT query_set->'queries'->0->'through' AS through, relations
FROM bulkdelete.operation WHERE id = :job;
CREATE TEMP TABLE expected AS SELECT id FROM vw.inactive_bob WHERE uname LIKE 'N1%';
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, skipped_count, cascade_count
FROM bulkdelete.operation WHERE id = :job;
SELECT (SELECT count(*) FROM expected) AS expected,
       (SELECT count(*) FROM vw.contact WHERE id IN (SELECT id FROM expected)) AS left_of_them,
       (SELECT count(*) FROM vw.contact) AS contacts_left;
DROP TABLE expected;

-- the JSON form, the view renamed after submit: the job keeps its view
SELECT vw.reset();
BEGIN;
SELECT bulkdelete.submit('{"entity": "vw.inactive", "criteria": {"conditions":
	[{"attribute": "owner", "operator": "eq", "values": ["alice"]}]}}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
ALTER VIEW vw.inactive RENAME TO inactive_renamed;
ALTER TABLE vw.contact RENAME owner TO owned_by;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, cascade_count
FROM bulkdelete.operation WHERE id = :job;
SELECT count(*) FILTER (WHERE status = 0 AND owned_by = 'alice') AS matching_left,
       count(*) AS contacts_left FROM vw.contact;
ALTER TABLE vw.contact RENAME owned_by TO owner;
ALTER VIEW vw.inactive_renamed RENAME TO inactive;

-- a view redefined on another relation after submit: the job fails, deleting nothing
CREATE TABLE vw.other (id int PRIMARY KEY, name text, status int, owner text);
CREATE VIEW vw.moving AS SELECT id, name, status, owner FROM vw.contact WHERE status = 1;
BEGIN;
SELECT bulkdelete.submit('vw.moving'::regclass, 'true') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CREATE OR REPLACE VIEW vw.moving AS SELECT id, name, status, owner FROM vw.other;
-- (the CALL's error leaves the job to a worker, which records it)
\set SHOW_CONTEXT never
CALL bulkdelete.run(:job);
SELECT bulkdelete.wait(:job, '60 s');
SELECT state, success_count, error_sqlstate, error_message
FROM bulkdelete.operation WHERE id = :job;
-- an INSTEAD OF trigger added after submit: refused when the job starts
CREATE OR REPLACE VIEW vw.moving AS SELECT id, name, status, owner FROM vw.contact WHERE status = 1;
BEGIN;
SELECT bulkdelete.submit('vw.moving'::regclass, 'true') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CREATE TRIGGER moving_delete INSTEAD OF DELETE ON vw.moving
	FOR EACH ROW EXECUTE FUNCTION vw.triggered_delete();
CALL bulkdelete.run(:job);
\set SHOW_CONTEXT errors
SELECT bulkdelete.wait(:job, '60 s');
SELECT state, success_count, error_sqlstate FROM bulkdelete.operation WHERE id = :job;
SELECT count(*) AS contacts FROM vw.contact;

-- security_barrier: a leaky function of the caller's condition never sees
-- a row the view hides, in a job as in PostgreSQL's own SELECT
SELECT vw.reset();
CREATE FUNCTION public.bd_leak(id int) RETURNS bool LANGUAGE plpgsql COST 0.000001 AS $$
BEGIN
	RAISE NOTICE 'bd_leak saw %', id;
	RETURN id % 2 = 0;
END
$$;
-- the hidden rows are 10, 20, ..., 60
SELECT bd_try($$SELECT count(*) FROM vw.visible WHERE public.bd_leak(id) AND id > 45$$);
BEGIN;
SELECT bulkdelete.submit('vw.visible'::regclass, 'public.bd_leak(id) AND id > 45') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
SELECT array_agg(id ORDER BY id) AS left_over_45 FROM vw.contact WHERE id > 45;
-- through the barrier view of a view: the same
SELECT vw.reset();
BEGIN;
SELECT bulkdelete.submit('{"entity": "vw.visible", "criteria": {"conditions":
	[{"attribute": "id", "operator": "gt", "values": [45]}]}}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
SELECT array_agg(id ORDER BY id) AS left_over_45 FROM vw.contact WHERE id > 45;

-- privileges: a definer view is checked as its owner on the base table, an
-- invoker view as the caller; the caller needs DELETE and SELECT on the view
SELECT vw.reset();
CREATE ROLE bd_view_owner;
GRANT USAGE ON SCHEMA vw TO bd_view_owner, bd_alice, bd_bob;
GRANT SELECT, DELETE ON vw.contact TO bd_view_owner;
GRANT SELECT ON vw.activity TO bd_view_owner;
CREATE VIEW vw.alice_definer AS SELECT id, name, owner FROM vw.contact WHERE status = 1;
CREATE VIEW vw.alice_invoker WITH (security_invoker) AS
	SELECT id, name, owner FROM vw.contact WHERE status = 1;
ALTER VIEW vw.alice_definer OWNER TO bd_view_owner;
ALTER VIEW vw.alice_invoker OWNER TO bd_view_owner;
GRANT SELECT, DELETE ON vw.alice_definer, vw.alice_invoker TO bd_alice;
GRANT SELECT ON vw.alice_definer TO bd_bob;
SET ROLE bd_alice;
-- alice has no privilege on vw.contact: PostgreSQL deletes through the definer
-- view, not through the invoker view; so does a bulk delete
SELECT bd_try('DELETE FROM vw.alice_invoker WHERE false');
SELECT bd_try($$SELECT bulkdelete.submit('vw.alice_invoker'::regclass, 'id < 10')$$);
SELECT bd_try($$SELECT * FROM bulkdelete.preview('{"entity": "vw.alice_invoker", "criteria": {}}')$$);
SELECT matching_rows FROM bulkdelete.preview('{"entity": "vw.alice_definer", "criteria": {}}');
BEGIN;
SELECT bulkdelete.submit('vw.alice_definer'::regclass, 'id < 30') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, failure_count
FROM bulkdelete.operation WHERE id = :job;
RESET ROLE;
SELECT count(*) AS matching_left FROM vw.contact WHERE status = 1 AND id < 30;
-- bob may read the view but not delete through it
SET ROLE bd_bob;
SELECT bd_try($$SELECT bulkdelete.submit('vw.alice_definer'::regclass, 'true')$$);
RESET ROLE;
-- the view's owner cannot delete from the base table: refused at submit
REVOKE DELETE ON vw.contact FROM bd_view_owner;
SET ROLE bd_alice;
SELECT bd_try($$SELECT bulkdelete.submit('vw.alice_definer'::regclass, 'true')$$);
RESET ROLE;
GRANT DELETE ON vw.contact TO bd_view_owner;
-- DELETE on the view revoked while a job waits: its rows fail with 42501
SET ROLE bd_alice;
BEGIN;
SELECT bulkdelete.submit('vw.alice_definer'::regclass, 'id < 50') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
RESET ROLE;
REVOKE DELETE ON vw.alice_definer FROM bd_alice;
SET ROLE bd_alice;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, failure_count
FROM bulkdelete.operation WHERE id = :job;
SELECT DISTINCT sqlstate, message FROM bulkdelete.failure WHERE operation_id = :job;
RESET ROLE;

-- row-level security on the base table applies as PostgreSQL applies it:
-- as the definer view's owner, or as the caller of an invoker view
SELECT vw.reset();
GRANT SELECT, DELETE ON vw.contact TO bd_alice;
GRANT DELETE ON vw.alice_definer TO bd_alice;
ALTER TABLE vw.contact ENABLE ROW LEVEL SECURITY;
CREATE POLICY contact_owner_alice ON vw.contact TO bd_alice USING (owner = 'alice');
CREATE POLICY contact_owner_view ON vw.contact TO bd_view_owner USING (id <= 20);
SET ROLE bd_alice;
SELECT (SELECT count(*) FROM vw.alice_definer) AS definer_shows,
       (SELECT count(*) FROM vw.alice_invoker) AS invoker_shows;
SELECT (SELECT matching_rows FROM bulkdelete.preview('{"entity": "vw.alice_definer", "criteria": {}}')) AS definer_preview,
       (SELECT matching_rows FROM bulkdelete.preview('{"entity": "vw.alice_invoker", "criteria": {}}')) AS invoker_preview;
BEGIN;
SELECT bulkdelete.submit('vw.alice_invoker'::regclass, 'true') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
BEGIN;
SELECT bulkdelete.submit('vw.alice_definer'::regclass, 'true') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
RESET ROLE;
-- left: status 1 rows that were neither alice's nor among the first 20
SELECT array_agg(id ORDER BY id) AS status_1_left FROM vw.contact WHERE status = 1;
ALTER TABLE vw.contact DISABLE ROW LEVEL SECURITY;

-- a link entity may name a view: a subquery through it, as the caller
SELECT vw.reset();
SELECT sql, matching_rows FROM bulkdelete.preview('{"entity": "vw.activity", "criteria": {},
	"link_entities": [{"entity": "vw.visible", "from": "contact_id", "to": "id",
	                   "link_type": "exists"}]}');
SELECT count(*) FROM vw.activity a WHERE EXISTS (SELECT 1 FROM vw.visible v WHERE v.id = a.contact_id);
-- and a view target may have links
SELECT sql, matching_rows FROM bulkdelete.preview('{"entity": "vw.inactive", "criteria": {},
	"link_entities": [{"entity": "vw.activity", "from": "id", "to": "contact_id",
	                   "link_type": "exists"}]}');
SELECT count(*) FROM vw.inactive i WHERE EXISTS (SELECT 1 FROM vw.activity a WHERE a.contact_id = i.id);

-- schedules take views like submit
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT bulkdelete.schedule('vw nightly', '0 3 * * *',
	'{"entity": "vw.inactive_bob", "criteria": {}}') > 0 AS scheduled;
SELECT bd_try($$SELECT bulkdelete.schedule('vw bad', '0 3 * * *',
	'{"entity": "vw.counted", "criteria": {}}')$$);
SELECT bulkdelete.unschedule('vw nightly');

DROP SCHEMA vw CASCADE;
DROP FUNCTION public.bd_leak(int);
DROP ROLE bd_view_owner;

-- setup: the extension, the roles and the helper every other test uses
CREATE EXTENSION bulkdelete;

CREATE ROLE bd_alice LOGIN;
CREATE ROLE bd_bob LOGIN;
CREATE ROLE bd_carol LOGIN;                -- no BulkDelete privilege
CREATE ROLE bd_team NOLOGIN;
GRANT bd_team TO bd_alice;
GRANT USAGE ON SCHEMA bulkdelete TO bd_alice, bd_bob, bd_team;

-- bd_try(sql): run sql, return 'ok' or the error's SQLSTATE and message, so
-- that tests show the exact code of every error
CREATE FUNCTION public.bd_try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	det text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || msg || COALESCE(' [' || NULLIF(det, '') || ']', '');
END
$$;
GRANT EXECUTE ON FUNCTION public.bd_try(text) TO PUBLIC;

-- bd_fake_job(owner, state): a job row made by hand, for tests of the job
-- tables that do not need a worker
CREATE FUNCTION public.bd_fake_job(o regrole, st text, k text DEFAULT 'query')
RETURNS bigint LANGUAGE sql AS $$
	INSERT INTO bulkdelete.operation (owner, kind, state, name)
	VALUES (o, k, st, 'fake ' || st) RETURNING id
$$;

-- lifecycle: the end of a job never depends on what its notification
-- carries, and bulkdelete.wait refuses a null job.  Jobs run in this session
-- with CALL bulkdelete.run, submitted and paused in one transaction so that
-- no worker takes them first.

-- wait(NULL) is a null argument (22004), not a job that does not exist
SELECT bd_try('SELECT bulkdelete.wait(NULL)');
SELECT bd_try($$SELECT bulkdelete.wait(NULL, '1 second')$$);
SELECT bd_try('SELECT bulkdelete.wait(-1)');

-- the payload a job's end is announced with (pg_regress cannot show a
-- NOTIFY's payload: psql prints the pid of the session that sent it)
CREATE FUNCTION public.bd_notify_payload(job bigint) RETURNS text
	AS '$libdir/bulkdelete', 'bulkdelete_test_notify_payload' LANGUAGE C STRICT;

CREATE SCHEMA life;
CREATE TABLE life.contact (id int PRIMARY KEY);
INSERT INTO life.contact SELECT generate_series(1, 100);

-- a plain job: every field, nothing cut
BEGIN;
SELECT bulkdelete.submit('life.contact'::regclass, 'id > 90', name => 'small',
	notify => true, to_recipients => '{a@example.com, b@example.com}',
	cc_recipients => '{c@example.com}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT bd_notify_payload(:job)::jsonb - '{id,started_at,finished_at}'::text[] AS payload;
-- the times are the job's own, as JSON writes a timestamptz
SELECT p->'started_at' = to_jsonb(o.started_at) AS started_at,
	   p->'finished_at' = to_jsonb(o.finished_at) AS finished_at
FROM bulkdelete.operation o,
	 LATERAL (SELECT bd_notify_payload(o.id)::jsonb AS p) x
WHERE o.id = :job;

-- 400 recipients and a 5,000-byte name would pass PostgreSQL's 8000-byte
-- limit on a payload: the job used to stay in_progress for good, its end
-- failing in pg_notify.  Now it ends; the payload holds the first
-- recipients that fit, whole, a cut name, and "truncated".
BEGIN;
SELECT bulkdelete.submit('life.contact'::regclass, 'id > 80',
	name => repeat('long name ', 500), notify => true,
	to_recipients => ARRAY(SELECT 'recipient' || i || '@example.com'
						   FROM generate_series(1, 400) i),
	cc_recipients => '{cc@example.com}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
SELECT octet_length(p) < 8000 AS fits,
	   p::jsonb->'truncated' AS truncated,
	   p::jsonb->>'state' AS state,
	   p::jsonb->'success_count' AS success_count,
	   jsonb_array_length(p::jsonb->'to_recipients') BETWEEN 100 AND 399 AS some_recipients,
	   (SELECT bool_and(r = o.to_recipients[i])
		FROM jsonb_array_elements_text(p::jsonb->'to_recipients') WITH ORDINALITY e(r, i))
		 AS first_in_order,
	   octet_length(p::jsonb->>'name') <= 256 AS name_cut,
	   starts_with(o.name, p::jsonb->>'name') AS name_prefix
FROM bulkdelete.operation o, bd_notify_payload(o.id) p WHERE o.id = :job;
-- the relay reads the whole lists from the job's row
SELECT cardinality(to_recipients), cc_recipients FROM bulkdelete.operation WHERE id = :job;

-- the same for a cancel (a scheduled job ends canceled at once) and for a long
-- job-level error message
SELECT bulkdelete.submit('life.contact'::regclass, 'id > 80', notify => true,
	start_after => now() + interval '1 day',
	to_recipients => ARRAY(SELECT repeat('x', 100) || i FROM generate_series(1, 400) i))
	AS job \gset
SELECT bulkdelete.cancel(:job);
UPDATE bulkdelete.operation SET error_sqlstate = 'XX000',
	error_message = repeat('é', 5000) WHERE id = :job;
SELECT octet_length(p) < 8000 AS fits, p::jsonb->'truncated' AS truncated,
	   octet_length(p::jsonb->>'error_message') <= 1024 AS message_cut,
	   p::jsonb->>'state' AS state
FROM bd_notify_payload(:job) p;

-- a channel name longer than an identifier is refused (it would make every
-- job's end fail)
ALTER SYSTEM SET bulkdelete.notify_channel = 'a_channel_name_that_is_longer_than_sixty_three_bytes_is_no_identifier';

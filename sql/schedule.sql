-- schedule: recurring bulk deletes through pg_cron (SPEC 3.4, Schedules).
-- pg_cron is preloaded and keeps its jobs in this database, but runs none
-- (test/regress.conf: cron.max_running_jobs = 0): the tests run the command
-- a schedule's pg_cron job would run themselves.
CREATE TABLE public.sched_contact (id int PRIMARY KEY, closed boolean NOT NULL);
INSERT INTO public.sched_contact SELECT g, g % 2 = 0 FROM generate_series(1, 20) g;
GRANT SELECT, DELETE ON public.sched_contact TO bd_alice, bd_bob, bd_team;
CREATE TABLE public.sched_private (id int PRIMARY KEY);
GRANT SELECT ON public.sched_private TO bd_alice;
-- a role that can log in, of which alice is a member
CREATE ROLE bd_sched_team LOGIN;
GRANT bd_sched_team TO bd_alice;
GRANT USAGE ON SCHEMA bulkdelete TO bd_sched_team;
GRANT SELECT, DELETE ON public.sched_contact TO bd_sched_team;

-- without the pg_cron extension in this database: 55000 and a hint
SET ROLE bd_alice;
SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'closed');
RESET ROLE;
CREATE EXTENSION pg_cron;

-- Recurrence syntax.  Dataverse RRULEs that map exactly onto cron: runs at
-- 00:00 UTC, weekly on Sunday, monthly and yearly on day 1.
SELECT r AS recurrence, bulkdelete.recurrence_to_cron(r) AS cron
FROM unnest(ARRAY['FREQ=DAILY;INTERVAL=1;', 'FREQ=DAILY;', 'FREQ=WEEKLY;',
	'FREQ=MONTHLY;', 'FREQ=HOURLY;', 'FREQ=HOURLY;INTERVAL=6;',
	'freq=minutely;interval=15', 'FREQ=MINUTELY', 'FREQ=DAILY;INTERVAL=7;',
	'FREQ=MONTHLY;INTERVAL=3;', 'FREQ=MONTHLY;INTERVAL=12',
	'FREQ=YEARLY;', 'RRULE:FREQ=HOURLY;INTERVAL=24',
	'FREQ=MINUTELY;INTERVAL=120', 'INTERVAL=2;FREQ=HOURLY']) r;
-- cron schedules are kept as given (trimmed)
SELECT r AS recurrence, bulkdelete.recurrence_to_cron(r) AS cron
FROM unnest(ARRAY['  30 2 * * 1-5 ', '*/10 8-18 * jan-mar,Dec MON-FRI',
	'0 0 1,15 * 7', '@daily', '@reboot', '5-50/5	*/2 * * *']) r;
-- RRULEs that do not map exactly, and malformed ones: 22023 saying why
SELECT r AS recurrence, bd_try(format('SELECT bulkdelete.recurrence_to_cron(%L)', r))
FROM unnest(ARRAY['FREQ=DAILY;INTERVAL=2;', 'FREQ=DAILY;INTERVAL=30;',
	'FREQ=WEEKLY;INTERVAL=2', 'FREQ=HOURLY;INTERVAL=5', 'FREQ=MINUTELY;INTERVAL=7',
	'FREQ=MINUTELY;INTERVAL=90', 'FREQ=MONTHLY;INTERVAL=5', 'FREQ=YEARLY;INTERVAL=2',
	'FREQ=SECONDLY', 'FREQ=FORTNIGHTLY', 'FREQ=DAILY;BYHOUR=3', 'FREQ=DAILY;COUNT=5',
	'INTERVAL=2', 'FREQ=DAILY;INTERVAL=0', 'FREQ=DAILY;INTERVAL=x',
	'FREQ=DAILY;INTERVAL=99999999', 'FREQ=DAILY;FREQ=WEEKLY', 'FREQ=DAILY;garbage',
	'', '   ']) r;
-- bad cron schedules: 22023 naming the field
SELECT r AS recurrence, bd_try(format('SELECT bulkdelete.recurrence_to_cron(%L)', r))
FROM unnest(ARRAY['61 * * * *', '* 24 * * *', '0 0 0 * *', '* * * 13 *',
	'* * * * 8', '* * * *', '* * * * * *', '5/10 * * * *', '10-5 * * * *',
	'*/0 * * * *', '@sometimes', '@DAILY', '1,,2 * * * *', '* * * foo *',
	'* * * * sun-foo', '5; * * * *', '*/mon * * * *', 'abc',
	'1234567890 * * * *']) r;

-- Next run time, in UTC like pg_cron 1.4
SELECT s AS schedule, a AS after,
	   bulkdelete.next_run_time(s, a::timestamptz) AT TIME ZONE 'UTC' AS next_run
FROM (VALUES
	('* * * * *', '2024-02-28 23:59:30+00'),
	('* * * * *', '2024-01-01 00:00:00+00'),
	('* * * * *', '1999-12-31 23:59:59.5+00'),
	('0 0 * * *', '2024-02-28 23:59:30+00'),
	('30 2 * * 1-5', '2024-03-01 03:00+00'),
	('0 0 29 2 *', '2024-02-28 12:00+00'),
	('0 0 29 2 *', '2024-03-01 00:00+00'),
	('0 0 1 * *', '2024-12-15 00:00+00'),
	('@weekly', '2024-02-28 00:00+00'),
	('@yearly', '2024-02-28 00:00+00'),
	('@hourly', '2024-02-28 10:59:59+00'),
	('FREQ=HOURLY;INTERVAL=6', '2024-02-28 12:00:00+00'),
	('59 23 31 12 *', '2024-12-31 23:59:00+00'),
	-- neither day field starts with *: either may match (13th or a Friday)
	('0 12 13 * 5', '2024-03-02 00:00+00'),
	-- a day field starts with *: both must match (a 13th that is a Friday)
	('0 12 13 * */5', '2024-03-02 00:00+00'),
	('0 12 13 * fri', '2024-03-02 00:00+00'),
	('@reboot', '2024-03-02 00:00+00'),
	('0 0 30 2 *', '2024-03-02 00:00+00')) v(s, a);

-- Permissions and prerequisites
-- carol has no USAGE on the schema
SET ROLE bd_carol;
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'closed')$$);
RESET ROLE;
-- pg_cron logs in as the scheduling role: one without LOGIN cannot schedule
SET ROLE bd_team;
SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'closed');
RESET ROLE;
SET ROLE bd_alice;
SELECT bd_try($$SELECT bulkdelete.schedule(NULL, '@daily', 'public.sched_contact'::regclass, 'closed')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('', '@daily', 'public.sched_contact'::regclass, 'closed')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', NULL::regclass, 'closed')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', NULL::jsonb)$$);
-- the query set is validated exactly as by submit
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_private'::regclass, 'true')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'no_such_column')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'true; DROP TABLE x')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', '{"entity": "public.sched_contact", "criteria": {"conditions": [{"attribute": "closed", "operator": "eq", "values": []}]}}'::jsonb)$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', '{"entity": "public.no_such_table", "criteria": {"conditions": []}}'::jsonb)$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '0 0 31 2 *', 'public.sched_contact'::regclass, 'closed')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', 'FREQ=DAILY;INTERVAL=2', 'public.sched_contact'::regclass, 'closed')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '* * * * * *', 'public.sched_contact'::regclass, 'closed')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'closed', options => '{"batch_size": 0}')$$);
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'closed', options => '{"colour": 1}')$$);
RESET ROLE;
-- pg_cron logs in as the scheduling role: it needs CONNECT on the database
REVOKE CONNECT ON DATABASE contrib_regression FROM PUBLIC;
SET ROLE bd_alice;
SELECT bd_try($$SELECT bulkdelete.schedule('purge', '@daily', 'public.sched_contact'::regclass, 'closed')$$);
RESET ROLE;
GRANT CONNECT ON DATABASE contrib_regression TO PUBLIC;
-- nothing was created by the refused calls
SELECT count(*) FROM bulkdelete.schedule_definition;
SELECT count(*) FROM cron.job;

-- every schedule accepted here is accepted by pg_cron too
SET ROLE bd_alice;
SELECT r AS recurrence, bd_try(format('SELECT bulkdelete.schedule(%L, %L, %L::regclass, %L)',
	'check ' || r, r, 'public.sched_contact', 'false'))
FROM unnest(ARRAY['FREQ=DAILY;INTERVAL=1;', 'FREQ=WEEKLY;', 'FREQ=MONTHLY;',
	'FREQ=HOURLY;INTERVAL=6;', 'freq=minutely;interval=15', 'FREQ=MONTHLY;INTERVAL=3;',
	'FREQ=YEARLY;', '30 2 * * 1-5', '*/10 8-18 * jan-mar,Dec MON-FRI', '0 0 1,15 * 7',
	'@daily', '@reboot', '@annually', '@midnight', '5-50/5	*/2 * * *',
	'0 12 13 * */5', '0 0 29 2 *']) r;
SELECT count(*) AS registered FROM bulkdelete.schedules;
SELECT count(bulkdelete.unschedule(name)) FROM bulkdelete.schedules;
RESET ROLE;
SELECT count(*) FROM cron.job;

-- A schedule, and the pg_cron job that runs it as alice in this database
SET ROLE bd_alice;
SELECT bulkdelete.schedule('purge closed', 'FREQ=DAILY;INTERVAL=1;',
	'public.sched_contact'::regclass, 'closed', notify => true,
	to_recipients => '{dba@example.com}', options => '{"batch_size": 3}') AS sched \gset
SELECT name, owner, recurrence, schedule, relations, query_count, notify,
	   options, runs, last_run_id
FROM bulkdelete.schedules;
RESET ROLE;
SELECT jobname = 'bulkdelete schedule ' || :sched AS jobname_ok, schedule,
	   command = format('SELECT bulkdelete.start_scheduled_run(%s)', :sched) AS command_ok,
	   database, username, active
FROM cron.job;
SELECT jobid AS cron_jobid FROM cron.job \gset
-- a schedule whose pg_cron job is gone runs no more, and the view says so
SELECT cron_job_present, next_run IS NOT NULL AS has_next_run FROM bulkdelete.schedules;
BEGIN;
DELETE FROM cron.job WHERE jobid = :cron_jobid;
SELECT cron_job_present, next_run IS NOT NULL AS has_next_run FROM bulkdelete.schedules;
ROLLBACK;

-- scheduling the same name again replaces the schedule and the query set:
-- same definition, same pg_cron job
SET ROLE bd_alice;
SELECT bulkdelete.schedule('purge closed', '30 2 * * *',
	'public.sched_contact'::regclass, 'closed AND id > 4', notify => true,
	cc_recipients => '{ops@example.com}', options => '{"batch_size": 3}') = :sched AS same_id;
SELECT name, recurrence, schedule, relations, notify, to_recipients,
	   cc_recipients, to_char(next_run AT TIME ZONE 'UTC', 'HH24:MI') AS next_run_utc,
	   next_run > now() AND next_run <= now() + interval '1 day' AS next_run_within_a_day
FROM bulkdelete.schedules;
RESET ROLE;
SELECT jobid = :cron_jobid AS same_job, schedule, username FROM cron.job;

-- in one transaction: a schedule rolled back leaves no pg_cron job behind
BEGIN;
SET ROLE bd_alice;
SELECT bulkdelete.schedule('short-lived', '@hourly', 'public.sched_contact'::regclass, 'closed') > 0 AS created;
RESET ROLE;
SELECT count(*) FROM cron.job;
ROLLBACK;
SELECT count(*) FROM cron.job;

-- bob sees no schedule of alice's, and can neither take its name, nor
-- remove it, nor run it
SET ROLE bd_bob;
SELECT count(*) FROM bulkdelete.schedules;
SELECT count(*) FROM bulkdelete.schedule_definition;
SELECT bd_try($$SELECT bulkdelete.schedule('purge closed', '@daily', 'public.sched_contact'::regclass, 'true')$$);
SELECT bd_try($$SELECT bulkdelete.unschedule('purge closed')$$);
SELECT replace(bd_try(format('SELECT bulkdelete.start_scheduled_run(%s)', :sched)), :'sched', 'N');
SELECT bd_try('SELECT bulkdelete.start_scheduled_run(-1)');
-- and cannot write the definitions directly
SELECT bd_try($$UPDATE bulkdelete.schedule_definition SET schedule = '* * * * *'$$);
SELECT bd_try($$INSERT INTO bulkdelete.schedule_definition (name, owner, recurrence, schedule, query_set, query_count) VALUES ('x', 'bd_bob', '@daily', '@daily', '[]', 0)$$);
RESET ROLE;
SELECT schedule FROM bulkdelete.schedule_definition;

-- The command pg_cron runs, run as alice: a run of its own, linked to the
-- definition, owned by alice, with the schedule's name and cron schedule
SET ROLE bd_alice;
SELECT bulkdelete.start_scheduled_run(:sched) AS run1 \gset
SELECT bulkdelete.wait(:run1, '60 s');
SELECT owner, kind, name, state, parent_id = :sched AS linked, schedule,
	   recurrence, candidate_count, success_count, notify, to_recipients,
	   cc_recipients, options
FROM bulkdelete.operation WHERE id = :run1;
SELECT count(*) AS left, count(*) FILTER (WHERE closed) AS closed_left
FROM public.sched_contact;
-- its end is announced with its schedule and its database
RESET ROLE;
CREATE FUNCTION pg_temp.bd_notify_payload(job bigint) RETURNS text
	AS '$libdir/bulkdelete', 'bulkdelete_test_notify_payload' LANGUAGE C STRICT;
SELECT p->'parent_id' = to_jsonb(:sched) AS parent_id_ok,
	   p->>'schedule_name' AS schedule_name,
	   p->>'database' = current_database() AS database_ok
FROM (SELECT pg_temp.bd_notify_payload(:run1)::jsonb AS p) x;
SET ROLE bd_alice;
SELECT runs, last_run_id = :run1 AS last_is_run1, last_run_state,
	   last_run_success_count, last_run_failure_count, last_run_skipped_count,
	   last_run_at IS NOT NULL AS has_time, last_run_finished_at IS NOT NULL AS finished
FROM bulkdelete.schedules;

-- Overlap: a run that has not ended (here paused before any worker took
-- it) makes the next one a skipped run: canceled, with the reason
RESET ROLE;
INSERT INTO public.sched_contact VALUES (100, true), (102, true);
SET ROLE bd_alice;
BEGIN;
SELECT bulkdelete.start_scheduled_run(:sched) AS run2 \gset
SELECT bulkdelete.pause(:run2);
COMMIT;
SET client_min_messages = warning;
SELECT bulkdelete.start_scheduled_run(:sched) AS run3 \gset
RESET client_min_messages;
SELECT state, error_sqlstate,
	   error_message = format('skipped: run %s of schedule "purge closed" was still running', :run2) AS reason_ok,
	   parent_id = :sched AS linked, finished_at IS NOT NULL AS finished,
	   success_count, started_at
FROM bulkdelete.operation WHERE id = :run3;
SELECT runs, last_run_id = :run3 AS last_is_run3, last_run_state,
	   replace(last_run_error, :'run2', 'N') AS last_run_error
FROM bulkdelete.schedules;
-- a skipped run changed nothing; once the paused run ends, runs start again
SELECT count(*) FROM public.sched_contact WHERE id >= 100;
SELECT bulkdelete.resume(:run2);
SELECT bulkdelete.wait(:run2, '60 s');
SELECT count(*) FROM public.sched_contact WHERE id >= 100;
SELECT bulkdelete.start_scheduled_run(:sched) AS run4 \gset
SELECT bulkdelete.wait(:run4, '60 s');
SELECT id = :run4 AS is_run4, state, candidate_count, success_count
FROM bulkdelete.operation WHERE parent_id = :sched ORDER BY id DESC LIMIT 1;
RESET ROLE;

-- a schedule with a JSON query set runs the same way
SET ROLE bd_alice;
SELECT bulkdelete.schedule('json purge', '@weekly', '[{"entity": "public.sched_contact",
	"criteria": {"conditions": [{"attribute": "id", "operator": "le", "values": [3]}]}}]'::jsonb) AS json_sched \gset
SELECT name, schedule, relations, query_count FROM bulkdelete.schedules WHERE id = :json_sched;
SELECT bulkdelete.start_scheduled_run(:json_sched) AS json_run \gset
SELECT bulkdelete.wait(:json_run, '60 s');
SELECT success_count, parent_id = :json_sched AS linked FROM bulkdelete.operation WHERE id = :json_run;
SELECT array_agg(id ORDER BY id) FROM public.sched_contact WHERE id <= 4;
SELECT bulkdelete.unschedule('json purge');
RESET ROLE;

-- A schedule of a role alice is a member of: she sees it, and may start a
-- run, which is the owner's job, not hers
SET ROLE bd_sched_team;
SELECT bulkdelete.schedule('team purge', '0 4 * * 0', 'public.sched_contact'::regclass, 'false') AS team_sched \gset
RESET ROLE;
SET ROLE bd_alice;
SELECT name, owner FROM bulkdelete.schedules ORDER BY name;
SELECT bulkdelete.start_scheduled_run(:team_sched) AS team_run \gset
SELECT owner, schedule, parent_id = :team_sched AS linked
FROM bulkdelete.operation WHERE id = :team_run;
SELECT bulkdelete.wait(:team_run, '60 s');
RESET ROLE;
SELECT d.name, j.username, j.schedule FROM cron.job j
	JOIN bulkdelete.schedule_definition d ON j.jobname = 'bulkdelete schedule ' || d.id
ORDER BY d.name;
-- when she schedules it anew, it becomes hers, and so does the pg_cron job
SET ROLE bd_alice;
SELECT bulkdelete.schedule('team purge', '0 5 * * 0', 'public.sched_contact'::regclass, 'false') = :team_sched AS same_id;
RESET ROLE;
SELECT d.name, j.username, j.schedule FROM cron.job j
	JOIN bulkdelete.schedule_definition d ON j.jobname = 'bulkdelete schedule ' || d.id
ORDER BY d.name;
SET ROLE bd_sched_team;
SELECT count(*) FROM bulkdelete.schedules;
RESET ROLE;

-- Unscheduling removes the pg_cron job and the definition; the runs stay
SET ROLE bd_alice;
SELECT bulkdelete.unschedule('purge closed');
SELECT bd_try($$SELECT bulkdelete.unschedule('purge closed')$$);
SELECT name FROM bulkdelete.schedules;
SELECT count(*) AS runs, count(parent_id) AS linked, min(schedule) AS schedule
FROM bulkdelete.operation WHERE id IN (:run1, :run2, :run3, :run4);
SELECT bulkdelete.unschedule('team purge');
RESET ROLE;
SELECT count(*) FROM cron.job;
SELECT count(*) FROM bulkdelete.schedule_definition;

DELETE FROM bulkdelete.operation;
DROP TABLE public.sched_contact, public.sched_private;
DROP EXTENSION pg_cron;

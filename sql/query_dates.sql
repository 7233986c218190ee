-- query_dates: every date operator of SPEC 5 against a hand-written query of
-- the same rows.  crm.log has a row every 7 hours from 400 days before to
-- 400 days after the fixture's now(), so every range holds rows whatever
-- the date; the counts themselves vary with it and are not printed.
-- The hand-written bounds follow the semantics of README.md: periods are
-- [start, end) in the session time zone, weeks start on Sunday.
CREATE TEMP VIEW b AS
SELECT date_trunc('day', now()) AS d0,
	   date_trunc('day', now()) - extract(dow FROM now())::int * interval '1 day' AS w0,
	   date_trunc('month', now()) AS m0,
	   date_trunc('year', now()) AS y0,
	   current_date - 3 AS x_day;

SELECT op, bd_preview_count(q) = bd_count(handwritten) AS same,
	   bd_count(handwritten) > 0 AS has_rows
FROM (VALUES
	('today', bd_cond('crm.log', 'at', 'today'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 AND at < d0 + interval '1 day'$$),
	('yesterday', bd_cond('crm.log', 'at', 'yesterday'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 - interval '1 day' AND at < d0$$),
	('tomorrow', bd_cond('crm.log', 'at', 'tomorrow'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 + interval '1 day' AND at < d0 + interval '2 days'$$),
	('last-seven-days', bd_cond('crm.log', 'at', 'last-seven-days'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 - interval '7 days' AND at <= now()$$),
	('next-seven-days', bd_cond('crm.log', 'at', 'next-seven-days'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= now() AND at < d0 + interval '8 days'$$),
	('last-week', bd_cond('crm.log', 'at', 'last-week'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= w0 - interval '7 days' AND at < w0$$),
	('this-week', bd_cond('crm.log', 'at', 'this-week'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= w0 AND at < w0 + interval '7 days'$$),
	('next-week', bd_cond('crm.log', 'at', 'next-week'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= w0 + interval '7 days' AND at < w0 + interval '14 days'$$),
	('last-month', bd_cond('crm.log', 'at', 'last-month'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= m0 - interval '1 month' AND at < m0$$),
	('this-month', bd_cond('crm.log', 'at', 'this-month'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= m0 AND at < m0 + interval '1 month'$$),
	('next-month', bd_cond('crm.log', 'at', 'next-month'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= m0 + interval '1 month' AND at < m0 + interval '2 months'$$),
	('last-year', bd_cond('crm.log', 'at', 'last-year'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= y0 - interval '1 year' AND at < y0$$),
	('this-year', bd_cond('crm.log', 'at', 'this-year'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= y0 AND at < y0 + interval '1 year'$$),
	('next-year', bd_cond('crm.log', 'at', 'next-year'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= y0 + interval '1 year' AND at < y0 + interval '2 years'$$),
	('on', bd_cond('crm.log', 'at', 'on', to_jsonb(ARRAY[(current_date - 3)::text])),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= x_day AND at < x_day + 1$$),
	('on-or-before', bd_cond('crm.log', 'at', 'on-or-before', to_jsonb(ARRAY[(current_date - 3)::text])),
	 $$SELECT count(*) FROM crm.log, b WHERE at < x_day + 1$$),
	('on-or-after', bd_cond('crm.log', 'at', 'on-or-after', to_jsonb(ARRAY[(current_date - 3)::text])),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= x_day$$),
	('last-x-hours', bd_cond('crm.log', 'at', 'last-x-hours', '[30]'),
	 $$SELECT count(*) FROM crm.log WHERE at >= now() - interval '30 hours' AND at <= now()$$),
	('next-x-hours', bd_cond('crm.log', 'at', 'next-x-hours', '[30]'),
	 $$SELECT count(*) FROM crm.log WHERE at >= now() AND at <= now() + interval '30 hours'$$),
	('last-x-days', bd_cond('crm.log', 'at', 'last-x-days', '[10]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 - interval '10 days' AND at <= now()$$),
	('next-x-days', bd_cond('crm.log', 'at', 'next-x-days', '[10]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= now() AND at < d0 + interval '11 days'$$),
	('last-x-weeks', bd_cond('crm.log', 'at', 'last-x-weeks', '[3]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 - interval '21 days' AND at <= now()$$),
	('next-x-weeks', bd_cond('crm.log', 'at', 'next-x-weeks', '[3]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= now() AND at < d0 + interval '22 days'$$),
	('last-x-months', bd_cond('crm.log', 'at', 'last-x-months', '[4]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 - interval '4 months' AND at <= now()$$),
	('next-x-months', bd_cond('crm.log', 'at', 'next-x-months', '[4]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= now() AND at < d0 + interval '4 months 1 day'$$),
	('last-x-years', bd_cond('crm.log', 'at', 'last-x-years', '[1]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= d0 - interval '1 year' AND at <= now()$$),
	('next-x-years', bd_cond('crm.log', 'at', 'next-x-years', '[1]'),
	 $$SELECT count(*) FROM crm.log, b WHERE at >= now() AND at < d0 + interval '1 year 1 day'$$),
	('olderthan-x-minutes', bd_cond('crm.log', 'at', 'olderthan-x-minutes', '[90]'),
	 $$SELECT count(*) FROM crm.log WHERE at < now() - interval '90 minutes'$$),
	('olderthan-x-hours', bd_cond('crm.log', 'at', 'olderthan-x-hours', '[50]'),
	 $$SELECT count(*) FROM crm.log WHERE at < now() - interval '50 hours'$$),
	('olderthan-x-days', bd_cond('crm.log', 'at', 'olderthan-x-days', '[20]'),
	 $$SELECT count(*) FROM crm.log WHERE at < now() - interval '20 days'$$),
	('olderthan-x-weeks', bd_cond('crm.log', 'at', 'olderthan-x-weeks', '[6]'),
	 $$SELECT count(*) FROM crm.log WHERE at < now() - interval '6 weeks'$$),
	('olderthan-x-months', bd_cond('crm.log', 'at', 'olderthan-x-months', '[7]'),
	 $$SELECT count(*) FROM crm.log WHERE at < now() - interval '7 months'$$),
	('olderthan-x-years', bd_cond('crm.log', 'at', 'olderthan-x-years', '["1"]'),
	 $$SELECT count(*) FROM crm.log WHERE at < now() - interval '1 year'$$)
) AS t(op, q, handwritten);

-- on a timestamp column the bounds are local times; on a date column they
-- are the local dates of the bounds
SELECT op, bd_preview_count(q) = bd_count(handwritten) AS same,
	   bd_count(handwritten) > 0 AS has_rows
FROM (VALUES
	('today, timestamp', bd_cond('crm.log', 'at_local', 'today'),
	 $$SELECT count(*) FROM crm.log WHERE at_local >= current_date AND at_local < current_date + 1$$),
	('this-week, timestamp', bd_cond('crm.log', 'at_local', 'this-week'),
	 $$SELECT count(*) FROM crm.log, b WHERE at_local >= w0::timestamp AND at_local < (w0 + interval '7 days')::timestamp$$),
	('last-x-hours, timestamp', bd_cond('crm.log', 'at_local', 'last-x-hours', '[30]'),
	 $$SELECT count(*) FROM crm.log WHERE at_local >= localtimestamp - interval '30 hours' AND at_local <= localtimestamp$$),
	('olderthan-x-days, timestamp', bd_cond('crm.log', 'at_local', 'olderthan-x-days', '[20]'),
	 $$SELECT count(*) FROM crm.log WHERE at_local < localtimestamp - interval '20 days'$$),
	('today, date', bd_cond('crm.log', 'on_day', 'today'),
	 $$SELECT count(*) FROM crm.log WHERE on_day = current_date$$),
	('last-month, date', bd_cond('crm.log', 'on_day', 'last-month'),
	 $$SELECT count(*) FROM crm.log WHERE on_day >= date_trunc('month', current_date) - interval '1 month' AND on_day < date_trunc('month', current_date)$$),
	('on, date', bd_cond('crm.log', 'on_day', 'on', to_jsonb(ARRAY[(current_date - 3)::text])),
	 $$SELECT count(*) FROM crm.log WHERE on_day = current_date - 3$$),
	('last-x-hours, date', bd_cond('crm.log', 'on_day', 'last-x-hours', '[30]'),
	 $$SELECT count(*) FROM crm.log WHERE on_day >= (now() - interval '30 hours')::date AND on_day <= current_date$$),
	('last-x-days, date', bd_cond('crm.log', 'on_day', 'last-x-days', '[10]'),
	 $$SELECT count(*) FROM crm.log WHERE on_day >= current_date - 10 AND on_day <= current_date$$),
	('next-x-days, date', bd_cond('crm.log', 'on_day', 'next-x-days', '[10]'),
	 $$SELECT count(*) FROM crm.log WHERE on_day >= current_date AND on_day < current_date + 11$$),
	('olderthan-x-days, date', bd_cond('crm.log', 'on_day', 'olderthan-x-days', '[20]'),
	 $$SELECT count(*) FROM crm.log WHERE on_day < current_date - 20$$)
) AS t(op, q, handwritten);

-- the same operator twice, and a date operator in an "or"
SELECT bd_preview_count('{"entity": "crm.log", "criteria": {"filter_operator": "or", "conditions": [
		{"attribute": "at", "operator": "yesterday"},
		{"attribute": "at", "operator": "tomorrow"},
		{"attribute": "id", "operator": "eq", "values": [1400]}]}}') =
	   (SELECT count(*) FROM crm.log, b
		WHERE (at >= d0 - interval '1 day' AND at < d0)
		   OR (at >= d0 + interval '1 day' AND at < d0 + interval '2 days')
		   OR id = 1400) AS same;

-- Relative dates are computed in the submitter's time zone, stored with the
-- set, whatever the zone of the session that compiles it.  Submitted in
-- Auckland, compiled in Honolulu: "today" is Auckland's today.
SET TimeZone = 'Pacific/Auckland';
CREATE TEMP TABLE auckland AS
SELECT n.normalized, n.relations,
	   (SELECT count(*) FROM crm.log, b WHERE at >= d0 AND at < d0 + interval '1 day') AS handwritten
FROM bd_normalize(bd_cond('crm.log', 'at', 'today')) n;
SELECT normalized ->> 'timezone' AS stored_zone FROM auckland;
SET TimeZone = 'Pacific/Honolulu';
SELECT (SELECT matching_rows FROM bd_preview_stored(normalized, relations)) = handwritten
	   AS auckland_today
FROM auckland;
SHOW TimeZone;
RESET TimeZone;

-- Values are read in the submitter's date order too: 03/04 is the 3rd of
-- April for a DMY submitter, even when compiled by an MDY session.
SET DateStyle = 'SQL, DMY';
CREATE TEMP TABLE dmy AS
SELECT * FROM bd_normalize(bd_cond('crm.contact', 'birthday', 'le', '["03/04/1975"]'));
RESET DateStyle;
SELECT (SELECT matching_rows FROM bd_preview_stored(normalized, relations)) AS preview,
	   (SELECT count(*) FROM crm.contact WHERE birthday <= '1975-04-03') AS handwritten,
	   (SELECT sql FROM bd_preview_stored(normalized, relations)) AS sql
FROM dmy;

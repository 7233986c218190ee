-- The sample CRM database of test/demo: foreign keys of several ON DELETE
-- kinds, a few hundred thousand rows.
CREATE SCHEMA crm;

CREATE TABLE crm.account (
	id bigint PRIMARY KEY,
	name text NOT NULL,
	status text NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE TABLE crm.contact (
	id bigint PRIMARY KEY,
	account_id bigint REFERENCES crm.account ON DELETE CASCADE,
	email text NOT NULL,
	status text NOT NULL,
	created_at timestamptz NOT NULL,
	modified_at timestamptz NOT NULL
);
CREATE INDEX ON crm.contact (account_id);
CREATE INDEX ON crm.contact (status, modified_at);

-- activities go with their contact
CREATE TABLE crm.activity (
	id bigint PRIMARY KEY,
	contact_id bigint NOT NULL REFERENCES crm.contact ON DELETE CASCADE,
	kind text NOT NULL,
	occurred_at timestamptz NOT NULL
);
CREATE INDEX ON crm.activity (contact_id);

-- a saved "custom view" (Zoho CRM): contacts inactive for a year; a bulk
-- delete can delete through it (doc/query-sets.md, "Views")
CREATE VIEW crm.inactive_contacts AS
	SELECT id, account_id, email, modified_at FROM crm.contact
	WHERE status = 'inactive' AND modified_at < now() - interval '1 year';

-- support cases outlive their contact
CREATE TABLE crm.support_case (
	id bigint PRIMARY KEY,
	contact_id bigint REFERENCES crm.contact ON DELETE SET NULL,
	subject text NOT NULL
);
CREATE INDEX ON crm.support_case (contact_id);

-- a signed contract keeps its contact
CREATE TABLE crm.contract (
	id bigint PRIMARY KEY,
	contact_id bigint NOT NULL REFERENCES crm.contact ON DELETE RESTRICT,
	signed_on date NOT NULL
);
CREATE INDEX ON crm.contract (contact_id);

INSERT INTO crm.account
SELECT i, 'Account ' || i, CASE WHEN i % 10 = 0 THEN 'closed' ELSE 'active' END,
	   now() - (i % 1500) * interval '1 day'
FROM generate_series(1, 20000) i;

INSERT INTO crm.contact
SELECT i, 1 + (i::bigint * 7919) % 20000, 'contact' || i || '@example.com',
	   CASE WHEN i % 3 = 0 THEN 'inactive' ELSE 'active' END,
	   now() - (i % 1400) * interval '1 day',
	   now() - (i % 1000) * interval '1 day'
FROM generate_series(1, 200000) i;

INSERT INTO crm.activity
SELECT i, 1 + (i::bigint * 104729) % 200000,
	   (ARRAY['call', 'email', 'meeting'])[1 + i % 3],
	   now() - (i % 900) * interval '1 day'
FROM generate_series(1, 400000) i;

INSERT INTO crm.support_case
SELECT i, 1 + (i * 31) % 200000, 'Case ' || i
FROM generate_series(1, 20000) i;

INSERT INTO crm.contract
SELECT i, i * 97, current_date - i
FROM generate_series(1, 2000) i;

ANALYZE;

# bulkdelete: PGXS build.  `make && make install`; tests: `bash test/run`.

EXTENSION = bulkdelete
MODULE_big = bulkdelete
OBJS = \
	src/bulkdelete.o \
	src/candidates.o \
	src/count.o \
	src/api.o \
	src/archive.o \
	src/archive_cascade.o \
	src/archive_image.o \
	src/batch.o \
	src/bin.o \
	src/csv.o \
	src/fkeys.o \
	src/guard.o \
	src/isolate.o \
	src/keys.o \
	src/keys_cache.o \
	src/names.o \
	src/options.o \
	src/job.o \
	src/job_claim.o \
	src/job_history.o \
	src/job_fixed.o \
	src/job_notify.o \
	src/job_state.o \
	src/job_task.o \
	src/launcher.o \
	src/pace.o \
	src/preview.o \
	src/progress.o \
	src/query_catalog.o \
	src/query_compile.o \
	src/query_date.o \
	src/query_fetchxml.o \
	src/query_filter.o \
	src/query_form.o \
	src/query_json.o \
	src/query_normalize.o \
	src/query_oper.o \
	src/query_view.o \
	src/records.o \
	src/records_store.o \
	src/recurrence.o \
	src/run.o \
	src/schedule.o \
	src/shmem.o \
	src/source_ids.o \
	src/source_query.o \
	src/source_task.o \
	src/source_remote.o \
	src/source_restore.o \
	src/spi_util.o \
	src/target.o \
	src/worker.o

DATA = bulkdelete--1.0.sql bulkdelete--1.0--1.1.sql
PGFILEDESC = "bulkdelete - bulk delete jobs in background workers"

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Werror=implicit-function-declaration
# FetchXML is parsed with the server's libxml2 (its headers: libxml2-dev;
# pg_config's CPPFLAGS name their directory)
SHLIB_LINK += $(filter -lxml2, $(LIBS))
# shard tasks talk to their servers with libpq (source_remote.c)
PG_CPPFLAGS += -I$(libpq_srcdir)
SHLIB_LINK_INTERNAL = $(libpq)

# pg_regress tests (sql/, expected/), in this order
REGRESS = setup objects security states engine query_fixture query_ops \
	query_dates query_links query_errors query_filter fetchxml preview query_jobs \
	query_fixed \
	records records_upload records_bulk schedule targets filter_names records_rls \
	records_chunks records_cache \
	errors lifecycle views tasks archive archive_cascade
REGRESS_OPTS = --temp-config=$(srcdir)/test/bulkdelete.conf \
	--temp-config=$(srcdir)/test/regress.conf

# isolation specs
ISOLATION = state_race job_concurrency upload_race records_lock records_cache job_snapshot job_ddl job_view \
	task_pause job_small job_fixed restore_race archive_race
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation --load-extension=bulkdelete \
	--temp-config=$(srcdir)/test/bulkdelete.conf

TAP_TESTS = 1

# `make installcheck` runs the pg_regress and isolation tests against the
# running server (PGHOST, PGPORT, ...), as PGXS does, but that server ignores
# the --temp-config files above: test/installcheck-tests asks it first, and
# skips every test when it does not preload bulkdelete, and the REGRESS_CRON
# tests (which need pg_cron) when pg_cron is not set up as test/regress.conf
# sets it.  Before a run it drops the test databases (WITH (FORCE): pg_cron
# and job workers stay connected to them) and the roles the tests create, so
# that it can run again on the same server.  The TAP tests start servers of
# their own: `bash test/run tap`.
REGRESS_CRON = schedule targets views
BD_TEST_ROLES = $(sort $(shell sed -n 's/.*CREATE ROLE \(bd_[a-z_]*\).*/\1/p' $(srcdir)/sql/*.sql))
NO_INSTALLCHECK = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# TAP tests live in test/t rather than the PGXS default t/
PROVE_TESTS = test/t/*.pl

installcheck:
	@tests=`REGRESS_CRON='$(REGRESS_CRON)' $(srcdir)/test/installcheck-tests \
		'$(bindir)/psql' $(srcdir)/test $(REGRESS)` || exit 1; \
	if [ -z "$$tests" ]; then exit 0; fi; \
	'$(bindir)/psql' -X -q -d postgres -v ON_ERROR_STOP=1 \
		-c 'SET client_min_messages = warning' \
		-c 'DROP DATABASE IF EXISTS $(CONTRIB_TESTDB) WITH (FORCE)' \
		-c 'DROP DATABASE IF EXISTS $(ISOLATION_TESTDB) WITH (FORCE)' \
		$(foreach r,$(BD_TEST_ROLES),-c 'DROP ROLE IF EXISTS $(r)') || exit 1; \
	$(pg_regress_installcheck) $(REGRESS_OPTS) $$tests && \
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)
.PHONY: installcheck

# used by test/run to read the test lists
print-%:
	@echo $($*)

# every object depends on every header: the build is small, and a changed
# struct must never meet an object compiled against its old layout
$(OBJS): $(wildcard $(srcdir)/src/*.h)

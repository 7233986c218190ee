# bulkdelete: PGXS build.  `make && make install`; tests: `bash test/run`.

EXTENSION = bulkdelete
MODULE_big = bulkdelete
OBJS = \
	src/bulkdelete.o \
	src/candidates.o \
	src/api.o \
	src/batch.o \
	src/csv.o \
	src/isolate.o \
	src/keys.o \
	src/job.o \
	src/launcher.o \
	src/pace.o \
	src/preview.o \
	src/query.o \
	src/records.o \
	src/recurrence.o \
	src/schedule.o \
	src/shmem.o \
	src/spi_util.o \
	src/worker.o

DATA = bulkdelete--1.0.sql bulkdelete--1.0--1.1.sql
PGFILEDESC = "bulkdelete - bulk delete jobs in background workers"

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Werror=implicit-function-declaration

# pg_regress tests (sql/, expected/), in this order
REGRESS = setup objects security states engine query_fixture query_ops \
	query_dates query_links query_errors query_filter preview query_jobs \
	records records_upload records_bulk schedule
REGRESS_OPTS = --temp-config=$(srcdir)/test/bulkdelete.conf \
	--temp-config=$(srcdir)/test/regress.conf

# isolation specs
ISOLATION = state_race job_concurrency upload_race records_lock
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation --load-extension=bulkdelete \
	--temp-config=$(srcdir)/test/bulkdelete.conf

TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# TAP tests live in test/t rather than the PGXS default t/
PROVE_TESTS = test/t/*.pl

# used by test/run to read the test lists
print-%:
	@echo $($*)

# every object depends on every header: the build is small, and a changed
# struct must never meet an object compiled against its old layout
$(OBJS): $(wildcard $(srcdir)/src/*.h)

/*-------------------------------------------------------------------------
 *
 * options.h
 *		A job's options (the options jsonb of submit, create_job and
 *		schedule) in both directions: validated when a job is submitted,
 *		read when it runs, from one table of names and bounds (options.c).
 *		Also the recipients arguments that go with them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_OPTIONS_H
#define BULKDELETE_OPTIONS_H

#include "compat.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "datatype/timestamp.h"

/*
 * The settings a job runs with: each its option when the job has it, else
 * the bulkdelete.* setting of the same name.
 */
typedef struct BdJobSettings
{
	int			batch_size;		/* rows of the first batch */
	int			batch_time;		/* ms a batch should take */
	int			batch_delay;	/* ms between batches */
	int			lock_timeout;	/* ms, per batch */
	int			max_rows_per_second;
	int			busy_wal_rate;	/* kB per second while others write */
	int			parallel;		/* workers the job may run at once */
} BdJobSettings;

/* the largest "parallel" option */
#define BD_MAX_PARALLEL 64

/* At submit: an options argument, checked (22023); {} when null */
extern Jsonb *bd_options_arg(FunctionCallInfo fcinfo, int argno);
/* The same for a schedule, whose options may also say keep_runs */
extern Jsonb *bd_options_schedule_arg(FunctionCallInfo fcinfo, int argno);

/* At submit: a recipients argument; an empty text[] when null */
extern ArrayType *bd_options_recipients(FunctionCallInfo fcinfo, int argno);

/* At run: the settings of a job with these (checked) options */
extern void bd_options_settings(Jsonb *options, BdJobSettings *settings);

/*
 * At run: does a job with these options archive what it deletes (SPEC 8)?
 * *retention is how long its archive is kept.
 */
extern bool bd_options_archive(Jsonb *options, Interval **retention);

#endif							/* BULKDELETE_OPTIONS_H */

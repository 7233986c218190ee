/*-------------------------------------------------------------------------
 *
 * archive.h
 *		The recycle bin's capture (SPEC 8): what a job's DELETE removes or
 *		changes, written to bulkdelete.archive in the same subtransaction as
 *		the DELETE, so that a row is never deleted without its archive row
 *		nor archived without being deleted.  Also the row images' fixed
 *		settings (read back by source_restore.c), purging a job's archive
 *		and the workers' expiry pass.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_ARCHIVE_H
#define BULKDELETE_ARCHIVE_H

#include "compat.h"

#include "datatype/timestamp.h"
#include "utils/elog.h"

typedef struct BdArchive BdArchive;

/*
 * One DELETE to run with its capture: the statement without RETURNING,
 * the caller's own RETURNING list (or NULL), and "FROM ... WHERE ..." of
 * the same rows (alias t) to lock them with first, all over the same
 * parameters; generic: plan them without looking at the values (a
 * statement driven by a long TID array, bd_spi_try_generic).
 */
typedef struct BdArchiveDelete
{
	const char *delete_sql;
	const char *returning;
	const char *from_where;
	int			nargs;
	Oid		   *types;
	Datum	   *values;
	const char *nulls;
	bool		generic;
} BdArchiveDelete;

extern BdArchive *bd_archive_create(int64 job_id, Oid relid,
									Interval *retention, MemoryContext cxt);
extern bool bd_archive_delete(BdArchive *ar, const BdArchiveDelete *stmt,
							  uint64 *processed, ErrorData **edata);
extern void bd_archive_end_batch(BdArchive *ar);

extern int	bd_archive_settings_begin(void);
extern void bd_archive_settings_end(int nestlevel);
extern char *bd_archive_key_sql(Oid relid, const char *alias);

extern bool bd_archive_installed(void);
extern int64 bd_archive_purge(int64 job_id);
extern TimestampTz bd_archive_expire(void);

#endif							/* BULKDELETE_ARCHIVE_H */

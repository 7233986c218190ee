/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *		Checked SPI wrappers: run a statement with typed parameters, fail
 *		loudly on anything unexpected, and read columns of the result; and
 *		the few catalog and system-view look-ups the modules need.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_SPI_UTIL_H
#define BULKDELETE_SPI_UTIL_H

#include "compat.h"

#include "access/xlogdefs.h"
#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/array.h"

extern uint64 bd_spi_exec(const char *sql, int nargs, Oid *argtypes,
						  Datum *values, const char *nulls, bool read_only,
						  int expected);
extern Datum bd_spi_datum(uint64 row, int col, bool *isnull);
extern int64 bd_spi_int64(uint64 row, int col, int64 if_null);
extern char *bd_spi_text(uint64 row, int col);
extern char *bd_qualified_relname(Oid relid);
extern Oid	bd_relation_filenode(Oid relid);
extern char *bd_jsonb_value_text(JsonbValue *v);
extern ArrayType *bd_text_array(char **vals, int n);
extern void bd_standby_replay(XLogRecPtr *current, XLogRecPtr *replayed,
							  long *lag_ms);

extern bool bd_try_subxact(void (*fn) (void *arg), void *arg,
						   ErrorData **edata);
extern bool bd_spi_try(const char *sql, int nargs, Oid *argtypes,
					   Datum *values, const char *nulls, int expected,
					   uint64 *processed, ErrorData **edata);
extern bool bd_spi_try_generic(const char *sql, int nargs, Oid *argtypes,
							   Datum *values, const char *nulls, int expected,
							   uint64 *processed, ErrorData **edata);
extern bool bd_spi_try_saved(SPIPlanPtr *saved, int options, const char *sql,
							 int nargs, Oid *argtypes, Datum *values,
							 const char *nulls, int expected,
							 uint64 *processed, ErrorData **edata);

/*
 * Run a piece of code as another role, e.g. the owner of the job tables,
 * with search_path fixed to pg_catalog, pg_temp so that no object of the
 * caller's can stand in for a built-in.  The previous user and search_path
 * come back at bd_switch_user_end, or, on error, when the (sub)transaction
 * aborts.
 */
typedef struct BdUserSwitch
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
} BdUserSwitch;

extern void bd_switch_user_begin(BdUserSwitch *sw, Oid userid);
extern void bd_switch_to_owner(BdUserSwitch *sw, Oid owner,
							   const char *search_path);
extern void bd_switch_user_end(BdUserSwitch *sw);

#endif							/* BULKDELETE_SPI_UTIL_H */

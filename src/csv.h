/*-------------------------------------------------------------------------
 *
 * csv.h
 *		A strict RFC 4180 CSV reader for uploads: quoted fields with embedded
 *		commas, quotes and line breaks, CRLF or LF line ends, an optional
 *		UTF-8 byte order mark, blank lines ignored.  Anything else is
 *		malformed and raises 22P04 naming the line.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_CSV_H
#define BULKDELETE_CSV_H

#include "compat.h"

/*
 * One record of the data.  fields[i] is the text of field i, or NULL for an
 * empty unquoted field (an empty quoted field "" is the empty string).  line
 * is the 1-based line on which the record starts.  Valid only during the
 * callback.
 */
typedef struct BdCsvRecord
{
	int			line;
	int			nfields;
	char	  **fields;
} BdCsvRecord;

typedef void (*BdCsvCallback) (BdCsvRecord *record, void *arg);

extern void bd_csv_malformed(int line, const char *detail) pg_attribute_noreturn();
extern void bd_csv_read(const char *data, int len, BdCsvCallback callback,
						void *arg);

#endif							/* BULKDELETE_CSV_H */

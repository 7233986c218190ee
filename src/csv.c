/*-------------------------------------------------------------------------
 *
 * csv.c
 *		A strict RFC 4180 CSV reader.  Uploads to id-list jobs are CSV; this
 *		file knows nothing of keys or jobs, it only splits the data into
 *		records of fields and hands each one to a callback.
 *
 *		Accepted: fields separated by commas; fields in double quotes, which
 *		may hold commas, line breaks and doubled quotes ("" for "); records
 *		ended by CRLF or LF, the last one possibly by the end of the data; a
 *		UTF-8 byte order mark at the start (in a UTF-8 database); empty
 *		lines, which are skipped.  Refused with 22P04, naming the line: a
 *		quote inside an unquoted field, text after a closing quote, a quoted
 *		field that is never closed, and a carriage return that is not part
 *		of a CRLF outside quotes.
 *
 *		Only the ASCII bytes , " CR and LF are looked at, which is safe in
 *		every server encoding: none of them uses those bytes inside a
 *		multibyte character.
 *
 *-------------------------------------------------------------------------
 */
#include "csv.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

/* The reader's position in the data, and the record being read */
typedef struct CsvReader
{
	const char *p;
	const char *end;
	int			line;			/* line of *p, 1-based */
	StringInfoData quoted;		/* the quoted field being read */
	BdCsvRecord record;
	int			maxfields;
} CsvReader;

/* Raise 22P04 for malformed data on line line; detail is a sentence. */
void
bd_csv_malformed(int line, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
			 errmsg("malformed CSV data on line %d", line),
			 errdetail_internal("%s", detail)));
}

static void
csv_add_field(CsvReader *r, char *field)
{
	if (r->record.nfields == r->maxfields)
	{
		r->maxfields *= 2;
		r->record.fields = repalloc(r->record.fields,
									sizeof(char *) * r->maxfields);
	}
	r->record.fields[r->record.nfields++] = field;
}

/* Read one quoted field; *r->p is its opening quote. */
static char *
csv_read_quoted(CsvReader *r)
{
	int			start_line = r->line;

	resetStringInfo(&r->quoted);
	r->p++;
	for (;;)
	{
		char		c;

		if (r->p == r->end)
			bd_csv_malformed(start_line,
							 "A quoted field that starts on this line is not closed.");
		c = *r->p++;
		if (c == '"')
		{
			if (r->p < r->end && *r->p == '"')
			{
				appendStringInfoChar(&r->quoted, '"');
				r->p++;
				continue;
			}
			break;
		}
		if (c == '\n')
			r->line++;
		appendStringInfoChar(&r->quoted, c);
	}
	if (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r')
		bd_csv_malformed(r->line, "Text follows the closing quote of a field.");
	return pnstrdup(r->quoted.data, r->quoted.len);
}

/* Read one unquoted field: NULL when it is empty. */
static char *
csv_read_plain(CsvReader *r)
{
	const char *start = r->p;

	while (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r')
	{
		if (*r->p == '"')
			bd_csv_malformed(r->line,
							 "A double quote appears inside an unquoted field; quote the whole field and double the quote.");
		r->p++;
	}
	return r->p == start ? NULL : pnstrdup(start, r->p - start);
}

/*
 * Read the record that starts at r->p into r->record, consuming its line
 * end.
 */
static void
csv_read_record(CsvReader *r)
{
	r->record.line = r->line;
	r->record.nfields = 0;
	for (;;)
	{
		if (r->p < r->end && *r->p == '"')
			csv_add_field(r, csv_read_quoted(r));
		else
			csv_add_field(r, csv_read_plain(r));

		if (r->p == r->end)
			return;
		if (*r->p == ',')
		{
			r->p++;
			continue;
		}
		if (*r->p == '\n')
		{
			r->p++;
			r->line++;
			return;
		}
		if (*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n')
		{
			r->p += 2;
			r->line++;
			return;
		}
		bd_csv_malformed(r->line,
						 "A carriage return outside quotes is not followed by a line feed.");
	}
}

/*
 * Read len bytes of CSV data and call callback for every record, in order.
 * Raises 22P04 on malformed data; records before the error have been passed
 * to the callback, so a caller that must take all or nothing collects them
 * and acts only after this returns.  Each record's memory is freed after
 * its callback.
 */
void
bd_csv_read(const char *data, int len, BdCsvCallback callback, void *arg)
{
	CsvReader	r;
	MemoryContext recordcxt;
	MemoryContext oldcxt;

	recordcxt = AllocSetContextCreate(CurrentMemoryContext, "bulkdelete CSV record",
									  ALLOCSET_SMALL_SIZES);
	r.p = data;
	r.end = data + len;
	r.line = 1;
	initStringInfo(&r.quoted);

	if (GetDatabaseEncoding() == PG_UTF8 && len >= 3 &&
		memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		r.p += 3;

	while (r.p < r.end)
	{
		/* an empty line is no record */
		if (*r.p == '\n')
		{
			r.p++;
			r.line++;
			continue;
		}
		if (*r.p == '\r' && r.p + 1 < r.end && r.p[1] == '\n')
		{
			r.p += 2;
			r.line++;
			continue;
		}

		oldcxt = MemoryContextSwitchTo(recordcxt);
		r.maxfields = 8;
		r.record.fields = palloc(sizeof(char *) * r.maxfields);
		csv_read_record(&r);
		callback(&r.record, arg);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(recordcxt);
	}
	MemoryContextDelete(recordcxt);
	pfree(r.quoted.data);
}

/*-------------------------------------------------------------------------
 *
 * archive_image.h
 *		The recycle bin's row image format (archive_image.c): a row's
 *		binary image, the layout of its relation's columns it was written
 *		with, and reading an image back as a value of the relation's row
 *		type today, or as text.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_ARCHIVE_IMAGE_H
#define BULKDELETE_ARCHIVE_IMAGE_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"

/* The columns of a chunk's images as they were, against the relation today */
typedef struct BdImageLayout
{
	Oid			relid;
	TupleDesc	desc;			/* today's row type (a copy) */
	TupleDesc	old;			/* the images' columns */
	int			natts;			/* old->natts */
	bool		same;			/* the images are values of today's row type */
	bool	   *convert;		/* by today's column: through text */
	FmgrInfo   *out;			/* old columns' output (convert, text) */
	FmgrInfo   *in;				/* today's columns' input (convert) */
	Oid		   *ioparams;
	AttrNumber	gone;			/* a column whose old type is gone, or 0 */
	bool	   *domain;			/* by today's column: a domain, checked */
	void	  **domextra;		/* domain_check's cache, by column */
	int			ndomains;
	MemoryContext cxt;			/* where the layout lives */
} BdImageLayout;

extern bool bd_image_type_as_text(Oid type);
extern int	bd_image_append(StringInfo buf, TupleDesc desc, Datum *values,
							bool *nulls);
extern int	bd_image_elements(Datum array, HeapTupleHeader **images);
extern void bd_image_layout_arrays(Oid relid, Datum *types, Datum *typmods);
extern BdImageLayout *bd_image_layout(Oid relid, ArrayType *types,
									  ArrayType *typmods);
extern bool bd_image_column_kept(BdImageLayout *l, AttrNumber att);
extern Datum bd_image_row(BdImageLayout *l, HeapTupleHeader image);
extern char *bd_image_text(BdImageLayout *l, HeapTupleHeader image);

#endif							/* BULKDELETE_ARCHIVE_IMAGE_H */

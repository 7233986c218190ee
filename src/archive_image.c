/*-------------------------------------------------------------------------
 *
 * archive_image.c
 *		The recycle bin's row image format (SPEC 8).  An image is the row's
 *		composite datum, a HeapTupleHeader of the relation's row type as a
 *		whole-row value is (values stored out of line fetched into it,
 *		compressed inline values kept as they are, a dropped column null),
 *		formed from the values the capture has (the DELETE's per-column
 *		RETURNING, or the deleted version itself) straight into the chunk's
 *		bytea[] buffer: no output function, no text, and a restore uses the
 *		datum as the row value without record_in.  It is marked as a datum
 *		of the row type as heap_form_tuple marks one (compat.h's
 *		bd_datum_mark: with its row type's version where the server
 *		versions row types).  Each image's length is a multiple of MAXALIGN
 *		(zeros after the data), so that in an array whose data starts
 *		maxaligned every image does too: a reader makes one maxaligned copy
 *		of a chunk's images array and deforms every image where it lies in
 *		it (bd_image_elements), no copy per image.
 *
 *		A column whose type's binary form names other objects by OID (an
 *		enum's label, a reg* type, a composite's or an array's element type
 *		header: every type not built in but a domain over a built-in one)
 *		is written as its text form instead (bd_image_type_as_text, under
 *		the fixed settings), so that an archive dumped and restored into
 *		another database, where those OIDs are others, still reads back.
 *
 *		Each chunk keeps the layout its images were written with: the type
 *		(regtype, so that a dump names it) and typmod of every attribute
 *		(0, shown "-": dropped then; text: written as text), by attribute
 *		number.  A restore compares it with the relation today
 *		(bd_image_layout):
 *
 *		- every column still there has the same type and typmod (columns
 *		  dropped since are ignored, columns added since are left to the
 *		  INSERT, which does not name them: their default): the images are
 *		  values of today's row type as they are;
 *		- else (ALTER COLUMN TYPE since) each image is deformed with its old
 *		  types and the changed columns are converted through the old
 *		  type's output and the new type's input with its typmod, under the
 *		  image settings (bd_archive_settings_begin), as an assignment from
 *		  text would; a value that does not convert is that row's failure
 *		  with the input function's SQLSTATE.  An old type that no longer
 *		  exists fails every row of the chunk (42704).
 *
 *		Either way a restored value meets today's domain constraints, as an
 *		INSERT of it would: a column of a domain (over a built-in type,
 *		written binary) is checked with domain_check; a domain inside a
 *		column (an array of a domain, a composite with a domain field, a
 *		domain over such an array) is in a type not built in, so the column
 *		was written as text and its input function, which checks every
 *		element and field, reads it back.
 *
 *		bd_image_text gives an image's text form for archived_records: the
 *		row type's text form as it was (record_out's, every value quoted).
 *
 *-------------------------------------------------------------------------
 */
#include "archive_image.h"
#include "compat.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

/*
 * Is a column of type written into images as its text form?  When its
 * binary form holds OIDs of other objects (see the file header).
 */
bool
bd_image_type_as_text(Oid type)
{
	Oid			base = getBaseType(type);
	Oid			elem = get_element_type(base);

	if (OidIsValid(elem))
		base = elem;
	if (base >= FirstNormalObjectId)
		return true;
	switch (base)
	{
		case REGCLASSOID:
		case REGTYPEOID:
		case REGPROCOID:
		case REGPROCEDUREOID:
		case REGOPEROID:
		case REGOPERATOROID:
		case REGCONFIGOID:
		case REGDICTIONARYOID:
		case REGNAMESPACEOID:
		case REGROLEOID:
		case REGCOLLATIONOID:
			return true;
		default:
			return false;
	}
}

/*
 * Append the image of a row (desc's row type; values/nulls by attribute,
 * dropped ones null) to a chunk's images buffer as one element; returns
 * its offset.  Values stored out of line are fetched (into the current
 * memory context; values[] gets them), which needs an active snapshot.
 */
int
bd_image_append(StringInfo buf, TupleDesc desc, Datum *values, bool *nulls)
{
	int			off = buf->len;
	bool		hasnull = false;
	Size		hoff;
	Size		datalen;
	Size		len;
	HeapTupleHeader td;

	if (off != MAXALIGN(off))
		elog(ERROR, "row image at unaligned offset %d", off);
	for (int i = 0; i < desc->natts; i++)
	{
		if (TupleDescAttr(desc, i)->attisdropped)
			nulls[i] = true;	/* what a deleted version still stores */
		if (nulls[i])
			hasnull = true;
		else if (TupleDescAttr(desc, i)->attlen == -1 &&
				 VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
			values[i] = PointerGetDatum(detoast_external_attr((struct varlena *)
															  DatumGetPointer(values[i])));
	}
	hoff = offsetof(HeapTupleHeaderData, t_bits);
	if (hasnull)
		hoff += BITMAPLEN(desc->natts);
	hoff = MAXALIGN(hoff);
	datalen = heap_compute_data_size(desc, values, nulls);
	len = MAXALIGN(hoff + datalen);
	if (len > MaxAllocSize - (Size) buf->len)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a batch's archived rows exceed the size of one archive row"),
				 errhint("Use a smaller batch size.")));
	enlargeStringInfo(buf, (int) len);
	td = (HeapTupleHeader) (buf->data + off);
	memset(td, 0, len);
	HeapTupleHeaderSetNatts(td, desc->natts);
	td->t_hoff = hoff;
	heap_fill_tuple(desc, values, nulls, (char *) td + hoff, datalen,
					&td->t_infomask, hasnull ? td->t_bits : NULL);
	/* length, row type (and its version), as heap_form_tuple marks a datum */
	bd_datum_mark(td, desc, len);
	buf->len = off + (int) len;
	buf->data[buf->len] = '\0';
	return off;
}

/*
 * The images of a chunk's images array (a bytea[] datum, toasted or not)
 * where they lie: one maxaligned copy of the array (the caller's, in the
 * current memory context) and a pointer to each element in it, into
 * *images; returns their number.  Every image of a chunk starts maxaligned
 * in it (see the file header); one that does not (an array not written by
 * bd_image_append) is copied alone.  The images' headers may be changed
 * (bd_image_row, bd_image_text): each belongs to this copy.
 */
int
bd_image_elements(Datum array, HeapTupleHeader **images)
{
	ArrayType  *a = DatumGetArrayTypePCopy(array);
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	char	   *p = ARR_DATA_PTR(a);

	if (ARR_ELEMTYPE(a) != BYTEAOID || ARR_HASNULL(a))
		elog(ERROR, "row images are not a bytea[] without nulls");
	*images = palloc(sizeof(HeapTupleHeader) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		Datum		elem = PointerGetDatum(p);

		if (VARATT_IS_4B_U(p) && p == (char *) MAXALIGN(p))
			(*images)[i] = (HeapTupleHeader) p;
		else
			(*images)[i] = (HeapTupleHeader) PG_DETOAST_DATUM_COPY(elem);
		p = att_addlength_pointer(p, -1, p);
		p = (char *) att_align_nominal(p, TYPALIGN_INT);
	}
	return n;
}

/*
 * The layout of relid's images as written now: its attributes' types (0
 * for a dropped one, text for one written as text) and typmods, as
 * regtype[] and int4[].  In a transaction.
 */
void
bd_image_layout_arrays(Oid relid, Datum *types, Datum *typmods)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *t = palloc(sizeof(Datum) * (desc->natts + 1));
	Datum	   *m = palloc(sizeof(Datum) * (desc->natts + 1));

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		bool		astext = !att->attisdropped &&
			bd_image_type_as_text(att->atttypid);

		t[i] = ObjectIdGetDatum(att->attisdropped ? InvalidOid :
								astext ? TEXTOID : att->atttypid);
		m[i] = Int32GetDatum(att->attisdropped || astext ? -1 : att->atttypmod);
	}
	*types = PointerGetDatum(construct_array(t, desc->natts, REGTYPEOID,
											 sizeof(Oid), true, TYPALIGN_INT));
	*typmods = PointerGetDatum(construct_array(m, desc->natts, INT4OID,
											   sizeof(int32), true,
											   TYPALIGN_INT));
	relation_close(rel, AccessShareLock);
}

/*
 * The layout of a chunk of relid's images (types[], typmods[] as the
 * chunk has them) against relid today, for bd_image_row and bd_image_text.
 * In a transaction; the relation exists.
 */
BdImageLayout *
bd_image_layout(Oid relid, ArrayType *types, ArrayType *typmods)
{
	BdImageLayout *l = palloc0(sizeof(BdImageLayout));
	Datum	   *t;
	Datum	   *m;
	int			nt;
	int			nm;

	deconstruct_array(types, REGTYPEOID, sizeof(Oid), true, TYPALIGN_INT, &t,
					  NULL, &nt);
	deconstruct_array(typmods, INT4OID, sizeof(int32), true, TYPALIGN_INT,
					  &m, NULL, &nm);
	l->relid = relid;
	l->desc = lookup_rowtype_tupdesc_copy(get_rel_type_id(relid), -1);
	if (nt != nm || nt > l->desc->natts)
		elog(ERROR, "archived row images of relation %u have %d columns, the relation %d",
			 relid, nt, l->desc->natts);
	l->natts = nt;
	l->old = CreateTemplateTupleDesc(nt);
	l->old->tdtypeid = RECORDOID;
	l->old->tdtypmod = -1;
	l->convert = palloc0(sizeof(bool) * (l->desc->natts + 1));
	l->out = palloc0(sizeof(FmgrInfo) * (nt + 1));
	l->in = palloc0(sizeof(FmgrInfo) * (l->desc->natts + 1));
	l->ioparams = palloc0(sizeof(Oid) * (l->desc->natts + 1));
	l->domain = palloc0(sizeof(bool) * (l->desc->natts + 1));
	l->domextra = palloc0(sizeof(void *) * (l->desc->natts + 1));
	l->cxt = CurrentMemoryContext;
	l->same = true;
	for (int i = 0; i < nt; i++)
	{
		Form_pg_attribute cur = TupleDescAttr(l->desc, i);
		Oid			type = DatumGetObjectId(t[i]);
		int32		typmod = DatumGetInt32(m[i]);
		Oid			out;
		bool		varlena;

		if (!OidIsValid(type))
		{
			/* dropped then: null in every image, any layout reads it */
			TupleDescCopyEntry(l->old, i + 1, l->desc, i + 1);
			continue;
		}
		if (!SearchSysCacheExists1(TYPEOID, ObjectIdGetDatum(type)) &&
			cur->attisdropped)
		{
			/* dropped since, its type too: today's entry keeps its storage */
			TupleDescCopyEntry(l->old, i + 1, l->desc, i + 1);
			continue;
		}
		if (!SearchSysCacheExists1(TYPEOID, ObjectIdGetDatum(type)))
		{
			l->gone = i + 1;
			l->same = false;
			TupleDescCopyEntry(l->old, i + 1, l->desc, i + 1);
			continue;
		}
		TupleDescInitEntry(l->old, i + 1, NameStr(cur->attname), type, typmod, 0);
		getTypeOutputInfo(type, &out, &varlena);
		fmgr_info(out, &l->out[i]);
		if (cur->attisdropped)
		{
			int16		typlen;
			bool		typbyval;
			char		typalign;

			/* read past as today's dropped column: the same storage? */
			get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
			if (cur->attlen != typlen || cur->attbyval != typbyval ||
				cur->attalign != typalign)
				l->same = false;
			continue;
		}
		if (cur->atttypid == type && cur->atttypmod == typmod)
		{
			/* a domain's value is checked against its constraints today */
			if (get_typtype(type) == TYPTYPE_DOMAIN)
			{
				l->domain[i] = true;
				l->ndomains++;
			}
			continue;
		}
		l->same = false;
		l->convert[i] = true;
		getTypeInputInfo(cur->atttypid, &out, &l->ioparams[i]);
		fmgr_info(out, &l->in[i]);
	}
	return l;
}

/*
 * Does an image of layout l hold today's column att (not added since, not
 * dropped then)?  The INSERT of a restore names only those.
 */
bool
bd_image_column_kept(BdImageLayout *l, AttrNumber att)
{
	return att <= l->natts && !TupleDescAttr(l->old, att - 1)->attisdropped;
}

/*
 * An image's values (a copy the caller owns: its header is changed),
 * deformed with its own layout into values/nulls
 */
static void
im_deform(BdImageLayout *l, HeapTupleHeader image, Datum *values, bool *nulls)
{
	HeapTupleData tup;

	if (l->gone > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the type column %d of relation \"%s\" had when archived no longer exists",
						l->gone, get_rel_name(l->relid))));
	/*
	 * Read as an anonymous record of the old columns: the image's row type
	 * may have changed since (its version with it), the old layout is
	 * exactly what the image was written with.
	 */
	HeapTupleHeaderSetTypeId(image, RECORDOID);
	HeapTupleHeaderSetTypMod(image, -1);
	ItemPointerSetInvalid(&image->t_ctid);
	tup.t_len = HeapTupleHeaderGetDatumLength(image);
	ItemPointerSetInvalid(&tup.t_self);
	tup.t_tableOid = InvalidOid;
	tup.t_data = image;
	heap_deform_tuple(&tup, l->old, values, nulls);
}

/*
 * Check the values of today's domain columns that an image holds as they
 * were (not converted through text, whose input checks them) against the
 * domains' constraints today: a restored row meets what an INSERT of its
 * values would.  Raises the constraint's error.
 */
static void
im_check_domains(BdImageLayout *l, Datum *values, bool *nulls)
{
	for (int i = 0; i < l->natts && l->ndomains > 0; i++)
		if (l->domain[i])
			domain_check(values[i], nulls[i], TupleDescAttr(l->desc, i)->atttypid,
						 &l->domextra[i], l->cxt);
}

/*
 * An image (a maxaligned copy the caller owns) as a value of the
 * relation's row type today: the image itself when the layout is the
 * same, else its values with the changed columns converted (see the file
 * header), under the image settings.  Raises the conversion's error.
 */
Datum
bd_image_row(BdImageLayout *l, HeapTupleHeader image)
{
	int			natts = l->desc->natts;
	Datum	   *ov;
	bool	   *on;
	Datum	   *values;
	bool	   *nulls;

	if (l->same)
	{
		if (l->ndomains > 0)
		{
			/* the domains' constraints, as an INSERT of the values checks */
			ov = palloc(sizeof(Datum) * (l->natts + 1));
			on = palloc(sizeof(bool) * (l->natts + 1));
			im_deform(l, image, ov, on);
			im_check_domains(l, ov, on);
		}
		/* a value of today's row type (marked with its version) */
		bd_datum_retype(image, l->desc);
		return PointerGetDatum(image);
	}
	ov = palloc(sizeof(Datum) * (l->natts + 1));
	on = palloc(sizeof(bool) * (l->natts + 1));
	values = palloc0(sizeof(Datum) * (natts + 1));
	nulls = palloc(sizeof(bool) * (natts + 1));
	im_deform(l, image, ov, on);
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute cur = TupleDescAttr(l->desc, i);

		nulls[i] = true;
		if (i >= l->natts || cur->attisdropped || on[i])
			continue;
		nulls[i] = false;
		if (!l->convert[i])
			values[i] = ov[i];
		else
			values[i] = InputFunctionCall(&l->in[i],
										  OutputFunctionCall(&l->out[i], ov[i]),
										  l->ioparams[i], cur->atttypmod);
	}
	im_check_domains(l, values, nulls);
	return HeapTupleGetDatum(heap_form_tuple(l->desc, values, nulls));
}

/* Append s in double quotes, '"' and '\\' doubled */
static void
im_append_quoted(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			appendStringInfoChar(buf, *s);
		appendStringInfoChar(buf, *s);
	}
	appendStringInfoChar(buf, '"');
}

/*
 * An image's text form, the row type's as it was when archived: the
 * columns it had (dropped since included), record_out's form with every
 * value quoted, a null as nothing.  Under the image settings.
 */
char *
bd_image_text(BdImageLayout *l, HeapTupleHeader image)
{
	Datum	   *values = palloc(sizeof(Datum) * (l->natts + 1));
	bool	   *nulls = palloc(sizeof(bool) * (l->natts + 1));
	StringInfoData buf;
	bool		first = true;

	im_deform(l, image, values, nulls);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (int i = 0; i < l->natts; i++)
	{
		if (!bd_image_column_kept(l, i + 1))
			continue;
		if (!first)
			appendStringInfoChar(&buf, ',');
		first = false;
		if (!nulls[i])
			im_append_quoted(&buf, OutputFunctionCall(&l->out[i], values[i]));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

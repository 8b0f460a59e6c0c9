/* subs.c: the subs database, records of the subscription APIs under
 * byte-string keys. What the records mean is the core's (core/subs.c);
 * here they are only bytes. */
#include "store/internal.h"

#include <string.h>

int store_sub_get(struct store_txn *t, const void *key, size_t klen, const void **val, size_t *vlen)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc = mdb_get(t->txn, t->st->subs, &k, &v);
	if (rc == MDB_NOTFOUND)
		return ST_NOTFOUND;
	if (rc)
		return map_rc(t->st, rc, "get subscription record");
	*val = v.mv_data;
	*vlen = v.mv_size;
	return ST_OK;
}

int store_sub_put(struct store_txn *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	return map_rc(t->st, mdb_put(t->txn, t->st->subs, &k, &v, 0), "put subscription record");
}

int store_sub_del(struct store_txn *t, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	int rc = mdb_del(t->txn, t->st->subs, &k, NULL);
	return rc == MDB_NOTFOUND ? ST_OK : map_rc(t->st, rc, "delete subscription record");
}

int store_sub_scan(struct store_txn *t, const void *prefix, size_t plen, store_sub_fn fn, void *ctx)
{
	MDB_cursor *c;
	MDB_val k = { plen, (void *)prefix }, v;
	int rc = mdb_cursor_open(t->txn, t->st->subs, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	for (rc = plen ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
	     rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))
			break;
		if (fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? ST_OK : map_rc(t->st, rc, "scan subscriptions");
}

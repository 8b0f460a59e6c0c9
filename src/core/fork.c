/* fork.c: forks (PROTOCOL.md section 4.2; docs/forks.md): a new stream
 * that starts with the history of another up to a fork point, sharing its
 * stored messages instead of copying them. */
#include "core/core.h"
#include "lib/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first message at or after seq, copied. */
struct first_msg {
	char *data;
	size_t len;
	int found;
};

static int copy_first(void *vctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct first_msg *f = vctx;
	(void)seq;
	(void)end_bytes;
	f->data = malloc(len ? len : 1);
	if (f->data)
		memcpy(f->data, data, len);
	f->len = len;
	f->found = 1;
	return 1;
}

/* Where a fork starts in the source. */
struct fork_point {
	uint64_t seq, bytes;      /* the offset asked for, resolved */
	uint64_t fseq;            /* the fork's first own message */
	uint64_t first, first_bytes;  /* the source's earliest retained offset */
	struct first_msg msg;     /* a binary fork point inside a message: its bytes */
};

static int refuse(struct proto_response *resp, enum proto_err e)
{
	proto_fail(resp, e);
	return ST_REFUSED;
}

/* Resolves Stream-Fork-Offset against the source. */
static int fork_offset(struct store_txn *w, const struct req *q, const struct stream_meta *src,
                       struct fork_point *p, struct proto_response *resp)
{
	const struct offset *o = &q->fork_offset;
	if (!q->has_fork_offset || o->kind == OFFSET_NOW) {
		p->seq = src->tail_seq;
		p->bytes = src->tail_bytes;
	} else if (o->kind == OFFSET_START) {
		p->seq = p->bytes = 0;
	} else {
		p->seq = o->seq;
		if (p->seq > src->tail_seq)
			return refuse(resp, E_FORK_BEYOND_TAIL);
		if (p->seq < p->first) {
			p->bytes = 0;
		} else if (p->seq == p->first) {
			p->bytes = p->first_bytes;
		} else {
			int rc = store_stream_end_bytes(w, src, p->seq, &p->bytes);
			if (rc)
				return rc;
		}
		if (p->seq >= p->first && p->bytes != o->bytes)
			return refuse(resp, E_FORK_NOT_OFFSET);
	}
	if (p->seq < p->first)
		return refuse(resp, E_FORK_BEFORE_EARLIEST);
	return ST_OK;
}

/* Stream-Fork-Sub-Offset: messages into a JSON stream, bytes into the
 * message at the fork offset otherwise. Sets p->fseq. */
static int fork_sub_offset(struct store_txn *w, const struct req *q, const struct stream_meta *src,
                           struct fork_point *p, struct proto_response *resp)
{
	p->fseq = p->seq;
	if (!q->fork_sub)
		return ST_OK;
	if (p->seq >= src->tail_seq)
		return refuse(resp, E_FORK_SUB_NO_DATA);
	if (src->media == MEDIA_JSON) {
		/* JSON messages are stored one per value: count them. */
		if (q->fork_sub > src->tail_seq - p->seq)
			return refuse(resp, E_FORK_SUB_PAST_LAST);
		p->fseq = p->seq + q->fork_sub;
		return ST_OK;
	}
	int rc = store_stream_scan(w, src, p->seq, copy_first, &p->msg);
	if (rc)
		return rc;
	if (!p->msg.found || !p->msg.data)
		return p->msg.found ? ST_BUSY : ST_ERROR;
	if (q->fork_sub > p->msg.len)
		return refuse(resp, E_FORK_SUB_PAST_END);
	if (q->fork_sub == p->msg.len) {
		p->fseq = p->seq + 1;
		p->msg.len = 0; /* the whole message is inherited: nothing to copy */
	}
	return ST_OK;
}

/* The source as a fork may start from it: present, not deleted, not a
 * State stream, of the content type the request names (if it names one). */
static int fork_source(struct store_txn *w, const struct req *q, int64_t now, struct stream_meta *src,
                       struct proto_response *resp)
{
	int rc = store_meta_get(w, q->fork_src.s, q->fork_src.len, src);
	if (rc == ST_NOTFOUND || (rc == ST_OK && core_expired(src, now)))
		return refuse(resp, E_SOURCE_NOT_FOUND);
	if (rc)
		return rc;
	if (src->soft_deleted)
		return refuse(resp, E_SOURCE_DELETED);
	if (src->state)
		return refuse(resp, E_SOURCE_STATE);
	if (q->ct.raw && !media_same(src->content_type, q->ct.raw))
		return refuse(resp, E_SOURCE_TYPE);
	return ST_OK;
}

/* Whether a fork of src keeps within the limits: max_forks forks of one
 * stream at once, and LS_MAX_FORK_DEPTH forks in a chain, counting those
 * with no data of their own (each pins its source's metadata). */
static int fork_limits(struct store_txn *w, const struct stream_meta *src, int max_forks,
                       struct proto_response *resp)
{
	if (src->fork_refs >= (uint64_t)max_forks)
		return refuse(resp, E_FORK_TOO_MANY);
	struct stream_meta *up = malloc(sizeof *up);
	if (!up)
		return ST_BUSY;
	int depth = 1, rc = ST_OK;
	const struct stream_meta *at = src;
	while (at->is_fork && rc == ST_OK) {
		if (++depth > LS_MAX_FORK_DEPTH) {
			rc = refuse(resp, E_FORK_TOO_DEEP);
			break;
		}
		uint64_t want = at->source_id;
		rc = store_meta_get(w, at->source, at->source_len, up);
		if (rc == ST_NOTFOUND || (rc == ST_OK && up->id != want)) {
			rc = ST_OK; /* a missing link ends the chain (logged where it is released) */
			break;
		}
		at = up;
	}
	free(up);
	return rc;
}

/* Links the fork m to the source at p and inherits the source's expiry
 * unless the request set its own (4.2). */
static int fork_link(struct store_txn *w, const struct req *q, struct stream_meta *m,
                     struct stream_meta *src, struct fork_point *p, struct proto_response *resp)
{
	int rc;
	m->first_seq = p->first;
	m->first_bytes = p->first_bytes;
	if (store_fork_link(m, src, q->fork_src.s, q->fork_src.len, p->fseq))
		return refuse(resp, E_FORK_TOO_DEEP);
	m->fork_seq = p->seq;
	m->fork_bytes = p->bytes;
	m->fork_sub = q->fork_sub;
	m->tail_seq = p->fseq;
	if (p->fseq == p->first)
		m->tail_bytes = p->first_bytes;
	else if ((rc = store_stream_end_bytes(w, src, p->fseq, &m->tail_bytes)))
		return rc;
	if (p->msg.len && q->fork_sub) {
		/* A binary fork point inside a message: the fork's first own
		 * message is that prefix (at most one message is copied). */
		m->tail_bytes = p->bytes + q->fork_sub;
		if ((rc = store_msg_put(w, m->id, p->seq, m->tail_bytes, p->msg.data, (size_t)q->fork_sub)))
			return rc;
		m->tail_seq = p->seq + 1;
	}
	if (!q->has_ttl && !q->expires_at) {
		m->has_ttl = src->has_ttl;
		m->ttl_s = src->ttl_s;
		m->ttl_inherited = src->has_ttl;
		m->expires_ms = src->expires_ms;
		memcpy(m->expires_at, src->expires_at, sizeof m->expires_at);
		m->expires_inherited = src->expires_at[0] != '\0';
	}
	return store_meta_put(w, q->fork_src.s, q->fork_src.len, src);
}

int fork_make(struct store_txn *w, const struct req *q, int64_t now, int max_forks,
              struct stream_meta *m, struct proto_response *resp)
{
	struct stream_meta *src = malloc(sizeof *src);
	struct fork_point p;
	memset(&p, 0, sizeof p);
	if (!src)
		return ST_BUSY;
	int rc = fork_source(w, q, now, src, resp);
	if (rc == ST_OK)
		rc = fork_limits(w, src, max_forks, resp);
	if (rc == ST_OK) {
		store_meta_set_type(m, src->content_type);
		store_meta_set_json(m, src->media == MEDIA_JSON); /* the source's mode, recorded or not */
		/* History the source no longer keeps is not the fork's either. */
		p.first = store_first_seq(src, now, &p.first_bytes);
		if (!(rc = fork_offset(w, q, src, &p, resp)) && !(rc = fork_sub_offset(w, q, src, &p, resp)))
			rc = fork_link(w, q, m, src, &p, resp);
	}
	free(p.msg.data);
	free(src);
	return rc;
}

int fork_same_config(const struct stream_meta *m, const struct req *q, const char *ct)
{
	int inherit = q->is_fork && !q->has_ttl && !q->expires_at;
	if (m->is_fork != q->is_fork || m->closed != q->closed)
		return 0;
	if (!(q->is_fork && !q->ct.raw) && !media_same(m->content_type, ct))
		return 0;
	if (inherit) {
		if ((m->has_ttl && !m->ttl_inherited) || (m->expires_at[0] && !m->expires_inherited))
			return 0;
	} else if (m->has_ttl != q->has_ttl || (m->has_ttl && m->ttl_s != q->ttl_s) ||
	           strcmp(m->expires_at, q->expires_at ? q->expires_at : "")) {
		return 0;
	}
	if (!q->is_fork)
		return 1;
	if (m->source_len != q->fork_src.len || memcmp(m->source, q->fork_src.s, q->fork_src.len) ||
	    m->fork_sub != q->fork_sub)
		return 0;
	if (q->has_fork_offset) {
		uint64_t seq = q->fork_offset.kind == OFFSET_AT ? q->fork_offset.seq : 0;
		if (q->fork_offset.kind == OFFSET_NOW || seq != m->fork_seq)
			return q->fork_offset.kind == OFFSET_NOW;
	}
	return 1;
}

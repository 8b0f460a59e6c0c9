// If-Match on appends (an lmstream extension), on lmstream-live alone
// (standalone) and behind lighttpd (FastCGI workers, several processes):
//
// - the precondition is the stream's ETag as HEAD gives it: an append with
//   it succeeds and answers the next one; an append with an older one is
//   412 with the current ETag and Stream-Next-Offset, and stores nothing;
// - the ETag of a GET names the range it read: a read from the start to the
//   tail has HEAD's ETag and may be used; a catch-up read from a middle
//   offset has another, which is refused (412) and answered with HEAD's;
// - If-Match with the idempotent-producer headers is 400 and stores nothing;
// - closing with If-Match, and appending to a closed stream (409 whatever
//   If-Match says);
// - writers that hold the same ETag and append at once: exactly one 2xx, the
//   others 412 (the check runs in the append's write transaction).
//
// No timing is asserted: the concurrent writers are started together and
// only the outcome is counted.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, STREAM_PREFIX, IS_REFERENCE } from './lib/server.mjs'
import { rawRequest } from './lib/http.mjs'

const JSON_CT = { 'Content-Type': 'application/json' }
const WRITERS = 8
const ROUNDS = 5

for (const server of ['standalone', 'lighttpd']) {
  describe(`If-Match on POST (${server})`, { skip: IS_REFERENCE }, () => {
    let srv
    before(async () => { srv = await startServer({ label: `ifmatch-${server}`, server }) })
    after(async () => { await srv?.stop() })

    const req = (opts) => rawRequest(srv.url, opts)
    const head = async (p) => {
      const r = await req({ method: 'HEAD', path: p })
      assert.equal(r.status, 200, `HEAD ${p}`)
      return r.headers
    }
    const post = (p, body, headers = {}) => req({ method: 'POST', path: p, body, headers: { ...JSON_CT, ...headers } })
    const all = async (p) => {
      const r = await req({ path: `${p}?offset=-1` })
      assert.equal(r.status, 200)
      assert.equal(r.headers['stream-up-to-date'], 'true')
      return JSON.parse(r.body)
    }
    const create = async (p, body) => {
      const r = await req({ method: 'PUT', path: p, headers: JSON_CT, body })
      assert.equal(r.status, 201, `PUT ${p}: ${r.status} ${r.body}`)
    }

    test('HEAD\'s ETag appends and the answer carries the next; an older one is 412 and stores nothing', async () => {
      const p = `${STREAM_PREFIX}im/basic`
      await create(p, '[{"n":0}]')
      const h0 = await head(p)
      assert.ok(h0.etag, 'HEAD has an ETag')

      const ok = await post(p, '{"n":1}', { 'If-Match': h0.etag })
      assert.equal(ok.status, 204, `${ok.status} ${ok.body}`)
      const h1 = await head(p)
      assert.notEqual(h1.etag, h0.etag, 'an append changes the ETag')
      assert.equal(ok.headers.etag, h1.etag, 'the answer carries the ETag HEAD now gives')
      assert.equal(ok.headers['stream-next-offset'], h1['stream-next-offset'])

      // The ETag from before that append: refused, with where the stream is.
      const stale = await post(p, '{"n":"lost"}', { 'If-Match': h0.etag })
      assert.equal(stale.status, 412, `${stale.status} ${stale.body}`)
      assert.equal(stale.headers.etag, h1.etag)
      assert.equal(stale.headers['stream-next-offset'], h1['stream-next-offset'])
      assert.match(stale.body.toString(), /If-Match does not match the stream's current ETag/)
      // A weak form of the current tag is not a strong match.
      assert.equal((await post(p, '{"n":"weak"}', { 'If-Match': `W/${h1.etag}` })).status, 412)
      assert.deepEqual(await all(p), [{ n: 0 }, { n: 1 }])
      assert.equal((await head(p)).etag, h1.etag, 'the refusals changed nothing')

      // The ETag the 412 gave is good for the retry; the answer's for the next.
      const retry = await post(p, '{"n":2}', { 'If-Match': stale.headers.etag })
      assert.equal(retry.status, 204)
      assert.equal((await post(p, '{"n":3}', { 'If-Match': retry.headers.etag })).status, 204)
      assert.deepEqual(await all(p), [{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }])
      // Without If-Match nothing changes for other writers.
      assert.equal((await post(p, '{"n":4}')).status, 204)
      assert.equal((await post(p, '{"n":5}', { 'If-Match': retry.headers.etag })).status, 412)
    })

    test('the ETag of a GET: from the start to the tail it is HEAD\'s; from a middle offset it is refused', async () => {
      const p = `${STREAM_PREFIX}im/reads`
      await create(p, '[{"r":0}]')
      const middle = (await head(p))['stream-next-offset'] // after the first message
      assert.equal((await post(p, '[{"r":1},{"r":2}]')).status, 204)
      const h = await head(p)
      // A read of everything has HEAD's ETag: it may be used.
      const full = await req({ path: `${p}?offset=-1` })
      assert.equal(full.status, 200)
      assert.equal(full.headers.etag, h.etag)

      // A catch-up read from the middle: its ETag names the range it read.
      const mid = await req({ path: `${p}?offset=${middle}` })
      assert.equal(mid.status, 200, `${mid.status} ${mid.body}`)
      assert.deepEqual(JSON.parse(mid.body), [{ r: 1 }, { r: 2 }])
      assert.equal(mid.headers['stream-up-to-date'], 'true')
      assert.ok(mid.headers.etag)
      assert.notEqual(mid.headers.etag, h.etag, 'a read from the middle has its own ETag')

      // If-Match takes HEAD's ETag: the middle read's is refused, though
      // nothing was appended since, and the 412 gives HEAD's.
      const r = await post(p, '{"r":3}', { 'If-Match': mid.headers.etag })
      assert.equal(r.status, 412)
      assert.equal(r.headers.etag, h.etag)
      assert.equal(r.headers['stream-next-offset'], h['stream-next-offset'])
      assert.deepEqual(await all(p), [{ r: 0 }, { r: 1 }, { r: 2 }])
      // The ETag of the full read succeeds.
      assert.equal((await post(p, '{"r":3}', { 'If-Match': full.headers.etag })).status, 204)
      assert.deepEqual(await all(p), [{ r: 0 }, { r: 1 }, { r: 2 }, { r: 3 }])
    })

    test('If-Match with producer headers is 400 and stores nothing; "*" needs the stream to exist', async () => {
      const p = `${STREAM_PREFIX}im/producer`
      await create(p, '[1]')
      const h = await head(p)
      const r = await post(p, '2', { 'If-Match': h.etag, 'Producer-Id': 'w', 'Producer-Epoch': '0', 'Producer-Seq': '0' })
      assert.equal(r.status, 400)
      assert.match(r.body.toString(), /If-Match cannot be combined with Producer-Id/)
      assert.deepEqual(await all(p), [1])
      assert.equal((await head(p)).etag, h.etag)
      assert.equal((await post(p, '3', { 'If-Match': '*' })).status, 204)
      assert.equal((await post(`${STREAM_PREFIX}im/none`, '3', { 'If-Match': '*' })).status, 404)
      assert.deepEqual(await all(p), [1, 3])
    })

    test('closing with If-Match; a closed stream refuses appends whatever the ETag', async () => {
      const p = `${STREAM_PREFIX}im/close`
      await create(p, '[1]')
      const h0 = await head(p)
      assert.equal((await post(p, '2')).status, 204)
      const stale = await req({ method: 'POST', path: p, headers: { 'Stream-Closed': 'true', 'If-Match': h0.etag } })
      assert.equal(stale.status, 412)
      assert.equal((await head(p))['stream-closed'], undefined, 'a refused close leaves the stream open')
      const h1 = await head(p)
      const close = await req({ method: 'POST', path: p, headers: { 'Stream-Closed': 'true', 'If-Match': h1.etag } })
      assert.equal(close.status, 204)
      assert.equal(close.headers['stream-closed'], 'true')
      const h2 = await head(p)
      assert.equal(h2['stream-closed'], 'true')
      assert.notEqual(h2.etag, h1.etag, 'closing changes the ETag')
      const r = await post(p, '3', { 'If-Match': h2.etag })
      assert.equal(r.status, 409)
      assert.deepEqual(await all(p), [1, 2])
    })

    test(`${WRITERS} writers with the same ETag at once: exactly one appends, the others get 412 (${ROUNDS} rounds)`, async (t) => {
      const p = `${STREAM_PREFIX}im/race`
      await create(p, '[]')
      const counts = { ok: 0, refused: 0, other: 0 }
      for (let round = 0; round < ROUNDS; round++) {
        const h = await head(p)
        const rs = await Promise.all(Array.from({ length: WRITERS }, (_, w) =>
          post(p, JSON.stringify({ round, w }), { 'If-Match': h.etag })))
        const ok = rs.filter((r) => r.status === 204)
        const refused = rs.filter((r) => r.status === 412)
        counts.ok += ok.length
        counts.refused += refused.length
        counts.other += rs.length - ok.length - refused.length
        assert.equal(ok.length, 1, `round ${round}: ${rs.map((r) => r.status).join(' ')}`)
        assert.equal(refused.length, WRITERS - 1, `round ${round}: ${rs.map((r) => r.status).join(' ')}`)
        // Every refusal names the state the winner left.
        const after = await head(p)
        assert.equal(ok[0].headers.etag, after.etag)
        for (const r of refused) {
          assert.equal(r.headers.etag, after.etag)
          assert.equal(r.headers['stream-next-offset'], after['stream-next-offset'])
        }
      }
      const got = await all(p)
      assert.equal(got.length, ROUNDS, 'one message per round')
      assert.deepEqual(got.map((m) => m.round), Array.from({ length: ROUNDS }, (_, i) => i))
      t.diagnostic(`${server}: ${counts.ok} appended (2xx), ${counts.refused} refused (412), ${counts.other} other`)
    })
  })
}

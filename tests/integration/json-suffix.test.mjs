// +json media types (an lmstream extension): application/vnd.example+json
// and every type with the +json suffix are JSON mode, on lmstream-live alone
// (standalone) and behind lighttpd (FastCGI workers): appends of arrays are
// flattened, invalid JSON is 400 and stores nothing, reads are arrays, SSE
// sends the messages as JSON data events.
//
// The mode is fixed at creation and recorded per stream. A store written by
// the release before (tests/fixtures/store-format-2, format 2) holds +json
// streams that were byte streams then: opened by this lmstream-live it is
// upgraded to format 3, and those streams (and a fork of one) stay byte
// streams, while a +json stream created now in the same store is JSON, also
// after a restart.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import { startServer, STREAM_PREFIX, REPO_ROOT, IS_REFERENCE } from './lib/server.mjs'
import { startLiveAlone } from './lib/live.mjs'
import { rawRequest, openSse, sseMessages } from './lib/http.mjs'

const VND = { 'Content-Type': 'application/vnd.example+json' }
const FIXTURE = path.join(REPO_ROOT, 'tests', 'fixtures', 'store-format-2', 'data.mdb.gz')

for (const server of ['standalone', 'lighttpd']) {
  describe(`+json types are JSON (${server})`, { skip: IS_REFERENCE }, () => {
    let srv
    before(async () => { srv = await startServer({ label: `json-suffix-${server}`, server }) })
    after(async () => { await srv?.stop() })
    const req = (opts) => rawRequest(srv.url, opts)

    test('flattened, validated, read as an array, framed as JSON in SSE', async () => {
      const p = `${STREAM_PREFIX}vnd/events`
      const put = await req({ method: 'PUT', path: p, headers: VND, body: '[{"a":1},{"b":2}]' })
      assert.equal(put.status, 201)
      // An array is its elements: two messages (offsets are "<messages>_<bytes>").
      assert.equal(Number(put.headers['stream-next-offset'].split('_')[0]), 2)
      const post = await req({
        method: 'POST', path: p, body: '[3, [4]]',
        headers: { 'Content-Type': 'application/vnd.example+json; charset=utf-8' },
      })
      assert.equal(post.status, 204, `${post.status} ${post.body}`)
      // Invalid JSON and an empty array: 400, nothing stored.
      for (const body of ['not json', '[]', '{"a":']) {
        const r = await req({ method: 'POST', path: p, headers: VND, body })
        assert.equal(r.status, 400, body)
      }
      const all = await req({ path: `${p}?offset=-1` })
      assert.equal(all.status, 200)
      assert.equal(all.headers['content-type'], 'application/vnd.example+json')
      assert.deepEqual(JSON.parse(all.body), [{ a: 1 }, { b: 2 }, 3, [4]])
      // One message from the second on.
      const from1 = await req({ path: `${p}?offset=${put.headers['stream-next-offset']}` })
      assert.deepEqual(JSON.parse(from1.body), [3, [4]])

      const sub = openSse(srv.url, `${p}?offset=-1&live=sse`)
      const res = await sub.response
      assert.equal(res.status, 200)
      assert.equal(res.headers['stream-sse-data-encoding'], undefined, 'JSON data events, not base64')
      await sub.waitFor(() => sseMessages(sub).length >= 4, 10_000, 'the four messages')
      sub.close()
      assert.deepEqual(sseMessages(sub).slice(0, 4), [{ a: 1 }, { b: 2 }, 3, [4]])
    })

    test('another +json type and application/json do not mix; a State stream may be +json', async () => {
      const p = `${STREAM_PREFIX}vnd/typed`
      assert.equal((await req({ method: 'PUT', path: p, headers: { 'Content-Type': 'application/ld+json' } })).status, 201)
      assert.equal((await req({ method: 'POST', path: p, headers: VND, body: '1' })).status, 409)
      assert.equal((await req({ method: 'POST', path: p, headers: { 'Content-Type': 'application/json' }, body: '1' })).status, 409)
      const s = await req({ method: 'PUT', path: `${STREAM_PREFIX}vnd/state?state`, headers: VND })
      assert.equal(s.status, 201, `${s.status} ${s.body}`)
      // Types that only look like it are bytes.
      const q = `${STREAM_PREFIX}vnd/not`
      const h = { 'Content-Type': 'application/x+json+xml' }
      assert.equal((await req({ method: 'PUT', path: q, headers: h, body: '[1,2]' })).status, 201)
      assert.equal((await req({ path: `${q}?offset=-1` })).body.toString(), '[1,2]')
    })
  })
}


describe('+json streams of a store from before (format 2)', { skip: IS_REFERENCE }, () => {
  test('keep the byte mode they had; new +json streams in that store are JSON', async (t) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-it-json-suffix-'))
    t.after(() => fs.rmSync(root, { recursive: true, force: true }))
    const dir = path.join(root, 'data')
    fs.mkdirSync(dir)
    fs.writeFileSync(path.join(dir, 'data.mdb'), zlib.gunzipSync(fs.readFileSync(FIXTURE)))

    let live = await startLiveAlone(dir)
    t.after(() => live.stop())
    assert.ok(live.up, `lmstream-live did not start: ${live.log()}`)
    assert.match(live.log(), /upgraded from format 2 to 3/)
    const get = (p, q = 'offset=-1') => rawRequest(live.url, { path: `${STREAM_PREFIX}old/${p}?${q}` })
    const post = (p, body, headers = VND) => rawRequest(live.url, { method: 'POST', path: `${STREAM_PREFIX}old/${p}`, headers, body })

    // As the old release wrote them: bytes, concatenated.
    let r = await get('vnd')
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'application/vnd.example+json')
    assert.equal(r.body.toString(), '{"a":1}[{"b":2},{"c":3}]')
    assert.equal((await get('vndfork')).body.toString(), '{"a":1}[{"b":2},{"c":3}]x')
    assert.deepEqual(JSON.parse((await get('json')).body), [{ j: 1 }, { j: 2 }])

    // Appends to them are stored as they are: no flattening, no validation.
    const before = (await rawRequest(live.url, { method: 'HEAD', path: `${STREAM_PREFIX}old/vnd` })).headers['stream-next-offset']
    assert.equal((await post('vnd', '[5,6]')).status, 204)
    assert.equal((await post('vnd', 'not json')).status, 204)
    assert.equal((await post('vndfork', '[7]')).status, 204)
    // Two messages (one per append), not three.
    const [seqBefore] = before.split('_').map(Number)
    const after = (await rawRequest(live.url, { method: 'HEAD', path: `${STREAM_PREFIX}old/vnd` })).headers['stream-next-offset']
    assert.equal(Number(after.split('_')[0]), seqBefore + 2)
    assert.equal((await get('vnd')).body.toString(), '{"a":1}[{"b":2},{"c":3}][5,6]not json')
    assert.equal((await get('vndfork')).body.toString(), '{"a":1}[{"b":2},{"c":3}]x[7]')
    // SSE sends them as bytes (base64).
    const sub = openSse(live.url, `${STREAM_PREFIX}old/vnd?offset=-1&live=sse`)
    assert.equal((await sub.response).headers['stream-sse-data-encoding'], 'base64')
    sub.close()
    // application/json streams are JSON as before.
    assert.equal((await post('json', '[{"j":3},{"j":4}]', { 'Content-Type': 'application/json' })).status, 204)
    assert.equal((await post('json', 'not json', { 'Content-Type': 'application/json' })).status, 400)

    // A +json stream created now, in the same store: JSON.
    const put = await rawRequest(live.url, { method: 'PUT', path: `${STREAM_PREFIX}old/new`, headers: VND, body: '[{"n":1},{"n":2}]' })
    assert.equal(put.status, 201)
    assert.equal((await post('new', 'not json')).status, 400)
    // A fork of a JSON +json stream is JSON; of an old byte one, bytes (above).
    const fork = await rawRequest(live.url, { method: 'PUT', path: `${STREAM_PREFIX}old/newfork`, headers: { 'Stream-Forked-From': `${STREAM_PREFIX}old/new` } })
    assert.equal(fork.status, 201)
    assert.equal((await post('newfork', '[{"n":3}]')).status, 204)

    // After a restart: each stream keeps its mode, and nothing is upgraded again.
    await live.stop()
    live = await startLiveAlone(dir)
    assert.ok(live.up, live.log())
    assert.doesNotMatch(live.log(), /upgraded/)
    assert.equal((await get('vnd')).body.toString(), '{"a":1}[{"b":2},{"c":3}][5,6]not json')
    assert.deepEqual(JSON.parse((await get('new')).body), [{ n: 1 }, { n: 2 }])
    assert.deepEqual(JSON.parse((await get('newfork')).body), [{ n: 1 }, { n: 2 }, { n: 3 }])
    assert.deepEqual(JSON.parse((await get('json')).body), [{ j: 1 }, { j: 2 }, { j: 3 }, { j: 4 }])
  })
})

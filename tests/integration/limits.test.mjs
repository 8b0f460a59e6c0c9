// Resource exhaustion: a full LMDB map answers 507 with Retry-After, keeps
// every acknowledged byte, writes nothing partial, and keeps serving reads.

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { rawRequest } from './lib/http.mjs'
import { IS_REFERENCE, startServer } from './lib/server.mjs'

let srv
const path = '/v1/stream/limits/full'

before(async () => {
  if (IS_REFERENCE) return
  // 1 MiB is the smallest map lmstream accepts: a few hundred KiB fill it.
  srv = await startServer({ label: 'limits', config: { map_size: '1M', max_body: '256K' } })
})
after(async () => { await srv?.stop() })

test('a full map gives 507 with Retry-After and changes nothing', { skip: IS_REFERENCE }, async () => {
  const base = srv.url
  const put = await rawRequest(base, { method: 'PUT', path, headers: { 'Content-Type': 'application/octet-stream' } })
  assert.equal(put.status, 201)

  const chunk = Buffer.alloc(64 * 1024)
  let acked = 0
  let full
  for (let i = 0; i < 64 && !full; i++) {
    chunk.fill(i % 251)
    const r = await rawRequest(base, { method: 'POST', path, headers: { 'Content-Type': 'application/octet-stream' }, body: chunk })
    if (r.status === 204) acked++
    else full = r
  }
  assert.ok(full, 'the map never filled up')
  assert.ok(acked > 0, 'not a single append fit')
  assert.equal(full.status, 507, `expected 507, got ${full.status}: ${full.body}`)
  assert.ok(Number(full.headers['retry-after']) > 0, 'Retry-After is missing')
  assert.match(full.body.toString(), /^[^\n]{1,200}\n?$/)

  // Everything acknowledged is still there, byte for byte; nothing else is.
  let offset = '-1'
  const got = []
  for (;;) {
    const r = await rawRequest(base, { path: `${path}?offset=${offset}` })
    assert.equal(r.status, 200)
    got.push(r.body)
    offset = r.headers['stream-next-offset']
    if (r.headers['stream-up-to-date'] === 'true') break
  }
  const all = Buffer.concat(got)
  assert.equal(all.length, acked * chunk.length)
  for (let i = 0; i < acked; i++) assert.equal(all[i * chunk.length], i % 251)

  // The server keeps answering reads and metadata while full.
  const head = await rawRequest(base, { method: 'HEAD', path })
  assert.equal(head.status, 200)
  const other = await rawRequest(base, { path: '/v1/stream/limits/absent' })
  assert.equal(other.status, 404)
})

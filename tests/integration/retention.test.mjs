// Retention: streams bounded by size or age at creation, and State streams
// compacted down to their snapshot.
//
// - Reads before the earliest retained offset get 410 Gone with
//   Stream-Earliest-Offset; reading from that offset works. For State streams
//   the 410 also points at the snapshot (Link rel="snapshot").
// - Under a steady workload on a size-bounded stream, the LMDB file stops
//   growing: the second half of the workload adds (almost) nothing to it.
// - Streams nobody writes to still lose what expiry or retention removes:
//   lmstream-live runs a housekeeping pass every few seconds (rows counted
//   with lmdb-utils' mdb_stat).

import { describe, test, before, after } from 'node:test'
import { execFileSync } from 'node:child_process'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { startServer, sleep, IS_REFERENCE } from './lib/server.mjs'
import { rawRequest, readAll } from './lib/http.mjs'

const JSON_CT = { 'Content-Type': 'application/json' }
const BIN_CT = { 'Content-Type': 'application/octet-stream' }

describe('retention', { skip: IS_REFERENCE }, () => {
  let srv
  before(async () => { srv = await startServer({ label: 'retention', server: 'standalone' }) })
  after(async () => { await srv?.stop() })

  test('a size bound keeps the newest messages; older offsets answer 410', async () => {
    const base = srv.url
    const p = '/v1/stream/ret/bytes'
    let r = await rawRequest(base, { method: 'PUT', path: `${p}?retention-bytes=1000`, headers: JSON_CT })
    assert.equal(r.status, 201)
    const head0 = await rawRequest(base, { method: 'HEAD', path: p })
    assert.equal(head0.headers['stream-retention-bytes'], '1000')
    const offsets = []
    for (let i = 0; i < 100; i++) {
      const body = JSON.stringify({ i, pad: 'x'.repeat(100 - JSON.stringify({ i, pad: '' }).length) })
      assert.equal(body.length, 100)
      r = await rawRequest(base, { method: 'POST', path: p, headers: JSON_CT, body })
      assert.equal(r.status, 204)
      offsets.push(r.headers['stream-next-offset'])
    }
    r = await rawRequest(base, { path: `${p}?offset=-1` })
    assert.equal(r.status, 410)
    const earliest = r.headers['stream-earliest-offset']
    assert.ok(earliest, '410 names the earliest offset')
    assert.match(r.body.toString(), /^[^\n]+\n?$/)
    r = await rawRequest(base, { path: `${p}?offset=${offsets[50]}` })
    assert.equal(r.status, 410)
    assert.equal(r.headers['stream-earliest-offset'], earliest)
    // From the earliest offset: the newest messages, at most 1000 bytes of them.
    const all = await readAll(base, p, { offset: earliest })
    assert.ok(all.messages.length >= 9 && all.messages.length <= 10, `kept ${all.messages.length} messages`)
    assert.deepEqual(all.messages.map((m) => m.i), Array.from({ length: all.messages.length }, (_, k) => 100 - all.messages.length + k))
    assert.equal(earliest, offsets[99 - all.messages.length])
    // Live reads before the earliest offset are refused the same way.
    r = await rawRequest(base, { path: `${p}?offset=${offsets[0]}&live=long-poll` })
    assert.equal(r.status, 410)
    const head = await rawRequest(base, { method: 'HEAD', path: p })
    assert.equal(head.headers['stream-earliest-offset'], earliest)
  })

  test('an age bound drops what is older than it', async () => {
    const base = srv.url
    const p = '/v1/stream/ret/age'
    let r = await rawRequest(base, { method: 'PUT', path: `${p}?retention-age=1`, headers: JSON_CT })
    assert.equal(r.status, 201)
    for (let i = 0; i < 3; i++) {
      r = await rawRequest(base, { method: 'POST', path: p, headers: JSON_CT, body: JSON.stringify({ old: i }) })
      assert.equal(r.status, 204)
    }
    const afterOld = r.headers['stream-next-offset']
    r = await rawRequest(base, { path: `${p}?offset=-1` })
    assert.equal(r.status, 200, 'nothing is older than a second yet')
    await sleep(2500)
    r = await rawRequest(base, { method: 'POST', path: p, headers: JSON_CT, body: JSON.stringify({ fresh: 1 }) })
    assert.equal(r.status, 204)
    r = await rawRequest(base, { path: `${p}?offset=-1` })
    assert.equal(r.status, 410)
    assert.equal(r.headers['stream-earliest-offset'], afterOld)
    const all = await readAll(base, p, { offset: afterOld })
    assert.deepEqual(all.messages, [{ fresh: 1 }])
    // Bad retention parameters are refused at creation.
    for (const q of ['retention-age=-1', 'retention-age=abc', 'retention-bytes=', 'retention-bytes=1e3']) {
      r = await rawRequest(base, { method: 'PUT', path: `/v1/stream/ret/bad?${q}`, headers: JSON_CT })
      assert.equal(r.status, 400, q)
    }
  })

  test('a State stream compacts down to its snapshot', async () => {
    const base = srv.url
    const p = '/v1/stream/ret/state'
    let r = await rawRequest(base, { method: 'PUT', path: `${p}?state`, headers: JSON_CT })
    assert.equal(r.status, 201)
    const events = []
    for (let i = 0; i < 200; i++) events.push({ type: 'todo', key: `t${i % 20}`, value: { v: i }, headers: { operation: 'upsert' } })
    r = await rawRequest(base, { method: 'POST', path: p, headers: JSON_CT, body: JSON.stringify(events) })
    assert.equal(r.status, 204)
    const tail = r.headers['stream-next-offset']
    r = await rawRequest(base, { method: 'POST', path: `${p}?compact`, headers: JSON_CT, body: '' })
    assert.equal(r.status, 204, `compact -> ${r.status}: ${r.body}`)
    assert.equal(r.headers['stream-earliest-offset'], tail)
    r = await rawRequest(base, { path: `${p}?offset=-1` })
    assert.equal(r.status, 410)
    assert.equal(r.headers['stream-earliest-offset'], tail)
    assert.match(r.headers.link || '', /\?snapshot>; rel="snapshot"/)
    r = await rawRequest(base, { path: `${p}?snapshot` })
    assert.equal(r.status, 200)
    assert.equal(r.headers['stream-next-offset'], tail)
    const rows = JSON.parse(r.body.toString()).slice(1, -1)
    assert.equal(rows.length, 20)
    assert.deepEqual(rows.find((x) => x.key === 't7').value, { v: 187 })
    // Compacting a plain stream is refused.
    await rawRequest(base, { method: 'PUT', path: '/v1/stream/ret/plain', headers: JSON_CT })
    r = await rawRequest(base, { method: 'POST', path: '/v1/stream/ret/plain?compact', headers: JSON_CT, body: '' })
    assert.equal(r.status, 400)
  })

  test('the store file stops growing under a steady trimmed workload', async () => {
    const base = srv.url
    const p = '/v1/stream/ret/steady'
    let r = await rawRequest(base, { method: 'PUT', path: `${p}?retention-bytes=262144`, headers: BIN_CT })
    assert.equal(r.status, 201)
    const chunk = Buffer.alloc(16 * 1024, 7)
    const file = path.join(srv.dataDir, 'data.mdb')
    const round = async () => {
      for (let i = 0; i < 1000; i++) {
        r = await rawRequest(base, { method: 'POST', path: p, headers: BIN_CT, body: chunk })
        assert.equal(r.status, 204)
      }
      return fs.statSync(file).size
    }
    const first = await round()   // 16 MiB appended, 256 KiB retained
    const second = await round()  // 16 MiB more
    const third = await round()
    console.log(`# data.mdb after each 16 MiB round: ${first}, ${second}, ${third} bytes`)
    assert.ok(first < 12 * 1024 * 1024, `the first round left ${first} bytes (16 MiB appended)`)
    assert.ok(third <= second + 1024 * 1024, `the file kept growing: ${second} -> ${third}`)
    const all = await readAll(base, p, { offset: (await rawRequest(base, { method: 'HEAD', path: p })).headers['stream-earliest-offset'] })
    assert.ok(all.bytes.length <= 262144 && all.bytes.length >= 262144 - chunk.length)
  })
  test('idle streams lose expired and trimmed rows without any write', async () => {
    const base = srv.url
    // Rows in the data database, read with mdb_stat while the server runs.
    const rows = () => {
      const out = execFileSync('mdb_stat', ['-s', 'data', srv.dataDir], { encoding: 'utf8' })
      return Number(/Entries: (\d+)/.exec(out)[1])
    }
    const batch = (n) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ i })))
    let r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/ret/idle-ttl', headers: { ...JSON_CT, 'Stream-TTL': '1' }, body: batch(300) })
    assert.equal(r.status, 201)
    r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/ret/idle-age?retention-age=1', headers: JSON_CT, body: batch(200) })
    assert.equal(r.status, 201)
    const before = rows()
    assert.ok(before >= 500, `${before} rows after creating 500 messages`)
    // No request at all from here on, until the rows are gone.
    const deadline = Date.now() + 30_000
    let now = before
    while (Date.now() < deadline && now > before - 499) {
      await sleep(500)
      now = rows()
    }
    console.log(`# rows: ${before} after the writes, ${now} once idle`)
    assert.ok(now <= before - 499, `only ${before - now} of 500 idle rows were reclaimed in 30 s`)
    r = await rawRequest(base, { method: 'HEAD', path: '/v1/stream/ret/idle-ttl' })
    assert.equal(r.status, 404)
    r = await rawRequest(base, { method: 'HEAD', path: '/v1/stream/ret/idle-age' })
    assert.equal(r.status, 200, 'the newest message of an age-bounded stream is kept')
  })
})

describe('server-wide retention', { skip: IS_REFERENCE }, () => {
  let srv
  before(async () => {
    srv = await startServer({ label: 'retention-default', server: 'standalone', config: { retention_bytes: '4096' } })
  })
  after(async () => { await srv?.stop() })

  test('retention_bytes applies to streams created without a retention of their own', async () => {
    const base = srv.url
    let r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/def/a', headers: BIN_CT })
    assert.equal(r.status, 201)
    r = await rawRequest(base, { method: 'HEAD', path: '/v1/stream/def/a' })
    assert.equal(r.headers['stream-retention-bytes'], '4096')
    // The same PUT again is the same configuration.
    r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/def/a', headers: BIN_CT })
    assert.equal(r.status, 200)
    // A stream's own retention wins.
    r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/def/b?retention-age=60', headers: BIN_CT })
    assert.equal(r.status, 201)
    r = await rawRequest(base, { method: 'HEAD', path: '/v1/stream/def/b' })
    assert.equal(r.headers['stream-retention-age'], '60')
    assert.equal(r.headers['stream-retention-bytes'], undefined)
    // And the default trims.
    for (let i = 0; i < 8; i++) {
      r = await rawRequest(base, { method: 'POST', path: '/v1/stream/def/a', headers: BIN_CT, body: Buffer.alloc(1024, i) })
      assert.equal(r.status, 204)
    }
    r = await rawRequest(base, { path: '/v1/stream/def/a?offset=-1' })
    assert.equal(r.status, 410)
    assert.ok(r.headers['stream-earliest-offset'])
  })
})

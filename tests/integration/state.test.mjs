// State streams: server-side materialisation of State Protocol change events
// (npm @durable-streams/state), snapshot reads, and snapshot + live tail.
//
// 1. Bad events get 400 with a one-line reason, and nothing is stored.
// 2. Equality with a client nobody here wrote: random sequences of change
//    events (thousands, in random batches, with SIGKILL and SIGTERM restarts
//    of the server in between) are appended; the server's snapshot must equal
//    what @durable-streams/state's MaterializedState builds by applying the
//    whole stream from -1 (clearing it on `reset`, as the protocol asks).
// 3. Paged snapshots: every page names the same offset; a page asked for
//    after the state moved on gets 409 and the client starts again.
// 4. Snapshot then live in one request (SSE and long-poll).
//
// LMSTREAM_STATE_SEED fixes the random sequence (the seed is printed).

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { MaterializedState } from '@durable-streams/state'
import { rng, applyAll } from './lib/state.mjs'
import { startServer, sleep, IS_REFERENCE } from './lib/server.mjs'
import { rawRequest, requestRetry, readAll, openSse } from './lib/http.mjs'

const JSON_CT = { 'Content-Type': 'application/json' }
const SEED = Number(process.env.LMSTREAM_STATE_SEED || (Date.now() % 1_000_000))

/**
 * Take a whole snapshot, following Stream-Snapshot-Next pages, starting again
 * when a page answers 409. Returns { rows, offset, pages, restarts, etag }.
 */
export async function takeSnapshot(base, path, { retryMs = 0 } = {}) {
  const get = (p) => (retryMs ? requestRetry(base, { path: p }, retryMs) : rawRequest(base, { path: p }))
  for (let restarts = 0; restarts < 50; restarts++) {
    let r = await get(`${path}?snapshot`)
    assert.equal(r.status, 200, `GET ${path}?snapshot -> ${r.status}: ${r.body}`)
    const offset = r.headers['stream-next-offset']
    const etag = r.headers.etag
    assert.ok(offset, 'a snapshot names its offset')
    const items = JSON.parse(r.body.toString('utf8'))
    assert.deepEqual(items[0], { headers: { control: 'snapshot-start', offset } })
    let pages = 1
    let conflict = false
    while (r.headers['stream-snapshot-next']) {
      r = await get(`${path}?snapshot=${encodeURIComponent(r.headers['stream-snapshot-next'])}`)
      if (r.status === 409) { conflict = true; break }
      assert.equal(r.status, 200, `snapshot page -> ${r.status}: ${r.body}`)
      assert.equal(r.headers['stream-next-offset'], offset, 'every page names the same offset')
      items.push(...JSON.parse(r.body.toString('utf8')))
      pages++
    }
    if (conflict) continue
    assert.deepEqual(items.at(-1), { headers: { control: 'snapshot-end', offset } })
    return { rows: items.slice(1, -1), offset, pages, restarts, etag }
  }
  throw new Error('the snapshot never completed in 50 attempts')
}

/** Sorted [type, key, value] triples of a MaterializedState. */
function entries(state) {
  const out = []
  for (const t of state.types) for (const [k, v] of state.getType(t)) out.push([t, k, v])
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
}

function rowsState(rows) {
  const s = new MaterializedState()
  for (const r of rows) {
    assert.equal(r.headers.operation, 'insert', 'snapshot rows are inserts')
    assert.equal(s.get(r.type, r.key), undefined, `(${r.type}, ${r.key}) appears twice in the snapshot`)
    s.apply(r)
  }
  return s
}

/** Random change events, some with odd keys and raw JSON values. */
function generator(rand) {
  const types = ['todo', 'tool_call', 'msg', 'Ünïcødé', 'a/b', 'emoji 🚀']
  const keys = []
  for (let i = 0; i < 150; i++) keys.push(`k${i}`)
  keys.push('é', 'e\u0301', '🚀', 'quote"back\\slash', 'nul\u0000byte', 'line\nbreak', 'x'.repeat(400), ' ', '\u2028')
  const value = () => {
    switch (rand.int(6)) {
      case 0: return rand.int(1000)
      case 1: return `s${rand.int(1e6)}`
      case 2: return null
      case 3: return { n: rand.int(100), tags: ['a', rand.int(5)], nested: { ok: rand() < 0.5 } }
      case 4: return [rand(), 'x'.repeat(rand.int(50))]
      default: return { status: rand.pick(['pending', 'running', 'done']), text: 'ünï 🚀' }
    }
  }
  return () => {
    const p = rand()
    if (p < 0.002) return { headers: { control: 'reset' } }
    if (p < 0.006) return { headers: { control: rand() < 0.5 ? 'snapshot-start' : 'snapshot-end' } }
    const type = rand.pick(types)
    const key = rand.pick(keys)
    const q = rand()
    if (q < 0.2) return { type, key, headers: { operation: 'delete' } }
    const operation = q < 0.5 ? 'insert' : q < 0.8 ? 'update' : 'upsert'
    const ev = { type, key, value: value(), headers: { operation } }
    if (rand() < 0.1) ev.headers.txid = `tx${rand.int(100)}`
    if (rand() < 0.1) ev.old_value = value()
    return ev
  }
}

describe('State streams', { skip: IS_REFERENCE }, () => {
  let srv
  // Small snapshot pages (the default is 8 MiB), so that paging is exercised.
  before(async () => { srv = await startServer({ label: 'state', server: 'standalone', config: { snapshot_page: '256K' } }) })
  after(async () => { await srv?.stop() })

  test('bad events get 400 with a reason and change nothing', async () => {
    const base = srv.url
    const path = '/v1/stream/state/bad'
    let r = await rawRequest(base, { method: 'PUT', path: `${path}?state`, headers: JSON_CT })
    assert.equal(r.status, 201)
    const good = { type: 't', key: 'k', value: 1, headers: { operation: 'insert' } }
    r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(good) })
    assert.equal(r.status, 204)
    const tail = r.headers['stream-next-offset']
    const bad = [
      [{ type: 't', key: 'k', value: 1 }, /headers/],
      [{ type: 't', key: 'k', headers: { operation: 'insert' } }, /missing value/],
      [{ type: 't', key: '', value: 1, headers: { operation: 'insert' } }, /key must not be empty/],
      [{ type: 't', key: 5, value: 1, headers: { operation: 'insert' } }, /key must be a string/],
      [{ type: 't', key: 'k', value: 1, headers: { operation: 'merge' } }, /operation/],
      [{ headers: { control: 'rewind' } }, /control/],
      ['just a string', /JSON object/],
      // One bad event spoils the whole batch: nothing of it is stored.
      [[good, good, { type: 't', key: 'k2', headers: { operation: 'update' } }], /missing value/],
    ]
    for (const [body, reason] of bad) {
      r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(body) })
      assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status}`)
      const text = r.body.toString('utf8')
      assert.match(text, reason)
      assert.match(text, /^[^\n]{1,300}\n?$/, 'one line')
    }
    const head = await rawRequest(base, { method: 'HEAD', path })
    assert.equal(head.headers['stream-next-offset'], tail, 'nothing was appended')
    assert.equal(head.headers['stream-state'], 'true')
    const snap = await takeSnapshot(base, path)
    assert.deepEqual(snap.rows, [good])
    assert.equal(snap.offset, tail)

    // A State stream is a JSON stream; ?snapshot on a plain stream is refused.
    r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/state/text?state', headers: { 'Content-Type': 'text/plain' } })
    assert.equal(r.status, 400)
    r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/state/plain', headers: JSON_CT })
    assert.equal(r.status, 201)
    r = await rawRequest(base, { path: '/v1/stream/state/plain?snapshot' })
    assert.equal(r.status, 400)
    assert.match(r.body.toString(), /State stream/)
    // The same PUT again is idempotent; without ?state it is another configuration.
    r = await rawRequest(base, { method: 'PUT', path: `${path}?state`, headers: JSON_CT })
    assert.equal(r.status, 200)
    r = await rawRequest(base, { method: 'PUT', path, headers: JSON_CT })
    assert.equal(r.status, 409)
  })

  test('the snapshot equals MaterializedState over the whole stream, across restarts', async () => {
    const base = srv.url
    const path = '/v1/stream/state/random'
    const rand = rng(SEED)
    const gen = generator(rand)
    console.log(`# state equality: LMSTREAM_STATE_SEED=${SEED}`)
    let r = await rawRequest(base, { method: 'PUT', path: `${path}?state`, headers: JSON_CT })
    assert.equal(r.status, 201)
    const phases = 4
    const perPhase = 1000
    let sent = 0
    let rejected = 0
    for (let phase = 0; phase < phases; phase++) {
      let n = 0
      while (n < perPhase) {
        const batch = []
        const size = 1 + rand.int(40)
        for (let i = 0; i < size; i++) batch.push(gen())
        // Now and then a batch carries one invalid event: all of it is refused.
        const spoil = rand() < 0.03
        if (spoil) batch.splice(rand.int(batch.length + 1), 0, { type: 'x', key: 'y', headers: { operation: 'insert' } })
        const body = batch.length === 1 && rand() < 0.5 ? JSON.stringify(batch[0]) : JSON.stringify(batch)
        r = await requestRetry(base, { method: 'POST', path, headers: JSON_CT, body }, 20_000)
        if (spoil) {
          assert.equal(r.status, 400, `a spoiled batch -> ${r.status}`)
          rejected++
          continue
        }
        assert.equal(r.status, 204, `POST -> ${r.status}: ${r.body}`)
        n += batch.length
        sent += batch.length
      }
      // Restart the server between phases: SIGKILL, then SIGTERM, alternately.
      if (phase < phases - 1) await restartLive(srv, phase % 2 === 0 ? 'SIGKILL' : 'SIGTERM')
    }

    const snap = await takeSnapshot(base, path, { retryMs: 20_000 })
    const all = await readAll(base, path, { retryMs: 20_000 })
    assert.equal(all.messages.length, sent)
    assert.equal(all.nextOffset, snap.offset, 'the snapshot reflects the whole stream')
    const client = applyAll(new MaterializedState(), all.messages)
    const server = rowsState(snap.rows)
    assert.deepStrictEqual(entries(server), entries(client))
    // The check means something only if the sequence built real state at
    // some point (resets may leave little at the end): track the peak.
    const live = new Set()
    let peak = 0
    for (const m of all.messages) {
      if (m.headers?.control === 'reset') live.clear()
      else if (m.headers?.operation === 'delete') live.delete(`${m.type}\0${m.key}`)
      else if (m.headers?.operation) live.add(`${m.type}\0${m.key}`)
      peak = Math.max(peak, live.size)
    }
    assert.ok(peak > 50, `the random sequence built some state (at most ${peak} keys)`)
    console.log(`# ${sent} events in ${phases} phases, ${rejected} batches refused, ${snap.rows.length} keys`)
  })

  test('large snapshots come in pages tied to one offset; a moved state gives 409', async () => {
    const base = srv.url
    const path = '/v1/stream/state/large'
    let r = await rawRequest(base, { method: 'PUT', path: `${path}?state`, headers: JSON_CT })
    assert.equal(r.status, 201)
    const pad = 'p'.repeat(900)
    for (let b = 0; b < 6; b++) {
      const batch = []
      for (let i = 0; i < 500; i++) batch.push({ type: 'row', key: `k${b}-${i}`, value: { pad, i }, headers: { operation: 'insert' } })
      r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(batch) })
      assert.equal(r.status, 204)
    }
    const snap = await takeSnapshot(base, path)
    assert.ok(snap.pages >= 2, `3,000 rows of ~1 KB take several pages (got ${snap.pages})`)
    assert.equal(snap.rows.length, 3000)
    assert.equal(snap.restarts, 0)

    // The first page again; the state moves on; the second page is refused.
    const first = await rawRequest(base, { path: `${path}?snapshot` })
    const next = first.headers['stream-snapshot-next']
    assert.ok(next)
    r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT,
      body: JSON.stringify({ type: 'row', key: 'k0-0', headers: { operation: 'delete' } }) })
    assert.equal(r.status, 204)
    r = await rawRequest(base, { path: `${path}?snapshot=${encodeURIComponent(next)}` })
    assert.equal(r.status, 409)
    assert.match(r.body.toString(), /snapshot/)
    r = await rawRequest(base, { path: `${path}?snapshot=garbage` })
    assert.equal(r.status, 400)
    const again = await takeSnapshot(base, path)
    assert.equal(again.rows.length, 2999)

    // ETag: unchanged state -> 304; later pages are cacheable like catch-up reads.
    r = await rawRequest(base, { path: `${path}?snapshot`, headers: { 'If-None-Match': again.etag } })
    assert.equal(r.status, 304)
    const p1 = await rawRequest(base, { path: `${path}?snapshot` })
    const p2 = await rawRequest(base, { path: `${path}?snapshot=${encodeURIComponent(p1.headers['stream-snapshot-next'])}` })
    assert.equal(p2.status, 200)
    assert.match(p2.headers['cache-control'] || '', /max-age|public|private/)
    assert.ok(p2.headers.etag)
  })

  test('snapshot then live tail in one SSE request, and with long-poll', async () => {
    const base = srv.url
    const path = '/v1/stream/state/live'
    let r = await rawRequest(base, { method: 'PUT', path: `${path}?state`, headers: JSON_CT })
    assert.equal(r.status, 201)
    const ev = (key, value) => ({ type: 'tool_call', key, value, headers: { operation: value === undefined ? 'delete' : 'upsert' } })
    r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT,
      body: JSON.stringify([ev('a', { status: 'pending' }), ev('b', { status: 'pending' }), ev('a', { status: 'done' })]) })
    assert.equal(r.status, 204)

    const sub = openSse(base, `${path}?snapshot&live=sse`)
    const head = await sub.response
    assert.equal(head.status, 200)
    await sub.waitFor((e) => e.type === 'control', 10_000, 'the control event after the snapshot')
    const firstData = sub.events.find((e) => e.type === 'data')
    const snapItems = JSON.parse(firstData.data)
    assert.equal(snapItems[0].headers.control, 'snapshot-start')
    assert.equal(snapItems.at(-1).headers.control, 'snapshot-end')
    const control = JSON.parse(sub.events.find((e) => e.type === 'control').data)
    assert.equal(control.streamNextOffset, snapItems[0].headers.offset)
    // Tool call a shows once, as done: the client upserts rather than appends.
    assert.deepEqual(snapItems.slice(1, -1).map((x) => [x.key, x.value.status]).sort(), [['a', 'done'], ['b', 'pending']])

    r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify([ev('b', { status: 'done' }), ev('a')]) })
    assert.equal(r.status, 204)
    const tailOffset = r.headers['stream-next-offset']
    await sub.waitFor((e) => e.type === 'control' && JSON.parse(e.data).streamNextOffset === tailOffset, 10_000, 'the live events')
    sub.close()
    const state = applyAll(new MaterializedState(), sub.events.filter((e) => e.type === 'data').flatMap((e) => JSON.parse(e.data)))
    const final = await takeSnapshot(base, path)
    assert.deepStrictEqual(entries(state), entries(rowsState(final.rows)))
    assert.deepStrictEqual(entries(state), [['tool_call', 'b', { status: 'done' }]])

    // Long-poll: the snapshot comes at once, then the client polls from its offset.
    r = await rawRequest(base, { path: `${path}?snapshot&live=long-poll` })
    assert.equal(r.status, 200)
    assert.equal(r.headers['stream-next-offset'], tailOffset)
    assert.ok(r.headers['stream-cursor'])
    const lp = rawRequest(base, { path: `${path}?offset=${tailOffset}&live=long-poll` })
    await sleep(200)
    await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(ev('c', 1)) })
    const got = await lp
    assert.equal(got.status, 200)
    assert.deepEqual(JSON.parse(got.body.toString()), [ev('c', 1)])
  })
})

/** Kill lmstream-live (standalone: the whole server) and wait for the new one. */
export async function restartLive(srv, signal) {
  const [pid] = srv.livePids()
  assert.ok(pid, 'lmstream-live is running')
  const restarted = srv.waitLog(/lmstream-live exited \([^)]*\); restarted as pid (\d+)/, 20_000)
  process.kill(pid, signal)
  await restarted
  for (let i = 0; i < 200; i++) {
    try {
      const r = await rawRequest(srv.url, { method: 'HEAD', path: '/v1/stream/__probe__', timeoutMs: 2000 })
      if (r.status === 404) return
    } catch {}
    await sleep(50)
  }
  throw new Error('lmstream-live did not come back')
}

describe('State snapshots with the default page size', { skip: IS_REFERENCE }, () => {
  let srv
  before(async () => { srv = await startServer({ label: 'state-default', server: 'standalone' }) })
  after(async () => { await srv?.stop() })

  test('a state that fits in one page is read whole while writes go on', async () => {
    const base = srv.url
    const path = '/v1/stream/state/busy'
    let r = await rawRequest(base, { method: 'PUT', path: `${path}?state`, headers: JSON_CT })
    assert.equal(r.status, 201)
    // About 2 MiB of state: several pages of the old 1 MiB size.
    const pad = 'q'.repeat(1000)
    for (let b = 0; b < 4; b++) {
      const batch = []
      for (let i = 0; i < 500; i++) batch.push({ type: 'row', key: `k${b}-${i}`, value: { pad, i }, headers: { operation: 'insert' } })
      r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(batch) })
      assert.equal(r.status, 204)
    }
    // A writer updates rows without pause while snapshots are taken.
    let writing = true
    let writes = 0
    const writer = (async () => {
      while (writing) {
        const i = writes++ % 500
        const ev = { type: 'row', key: `k0-${i}`, value: { pad, i, w: writes }, headers: { operation: 'update' } }
        const w = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(ev) })
        assert.equal(w.status, 204)
      }
    })()
    try {
      // At least 10 snapshots, and on until the writer has made more than
      // 10 updates meanwhile (each waits for its flush, which a loaded
      // machine makes slower than a snapshot); 200 at most.
      for (let n = 0; n < 200 && (n < 10 || writes <= 10); n++) {
        const snap = await takeSnapshot(base, path)
        assert.equal(snap.pages, 1, 'one page')
        assert.equal(snap.restarts, 0, 'never asked to start again')
        assert.equal(snap.rows.length, 2000)
      }
    } finally {
      writing = false
      await writer
    }
    assert.ok(writes > 10, `the writer kept writing (${writes} updates)`)
  })
})

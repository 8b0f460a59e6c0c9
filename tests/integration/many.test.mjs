// Many live connections, sized for CI.
//
// 1. N concurrent SSE subscribers (raw node:http, one Agent with maxSockets:
//    Infinity) to one stream: 1,000 directly to `standalone`, 300 through
//    `lighttpd`. One message is published; every subscriber must get it
//    exactly once. (A second, sentinel message follows, so that "exactly
//    once" is checked up to a known point of each subscription rather than by
//    waiting.) The daemon must still answer afterwards, and once the
//    subscribers hang up its own connection count (SIGHUP makes lmstream-live
//    log "N connections, ...") must go back down.
//
//    lmstream-live notices a subscriber that hung up when it next writes to it
//    (a heartbeat): the deployments here use `heartbeat = 1000` so that this
//    takes seconds; with the default 15 s it takes up to about 30 s.
//
// 2. The connection cap: standalone with `max_connections = 50`. Live reads
//    may fill it but for a reserve kept for writes (50 / 32 + 8 = 9): 41 SSE
//    subscribers are admitted; 10 more get 503 with Retry-After; a writer
//    still gets through to the daemon itself, and the 41 receive what it
//    wrote.
//
// Nothing is raised beyond the defaults: the descriptor limits of this
// machine are large enough for 1,000 connections.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { startServer, sleep, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest, readAll, openSse, sseMessages } from './lib/http.mjs'

const STANDALONE_N = Number(process.env.LMSTREAM_MANY_STANDALONE || 1000)
const LIGHTTPD_N = Number(process.env.LMSTREAM_MANY_LIGHTTPD || 300)
const CAP = 50
const OVER_CAP = 10
// What live reads may take of CAP: the rest is kept for writes (src/lib/limits.h).
const LIVE_CAP = CAP - Math.min(Math.floor(CAP / 32) + 8, 256, Math.floor(CAP / 2))
const HEARTBEAT_MS = 1000
const CONNECT_BUDGET_MS = 30_000
const RELEASE_BUDGET_MS = 20_000
const RELEASE_SLACK = 5 // connections the daemon may still hold (probes, the web server's own)

const tag = randomBytes(4).toString('hex')
const JSON_CT = { 'Content-Type': 'application/json' }

const isData = (pred) => (e) => e.type === 'data' && JSON.parse(e.data).some(pred)

async function createJsonStream(srv, p) {
  const r = await rawRequest(srv.url, { method: 'PUT', path: p, headers: JSON_CT })
  assert.equal(r.status, 201, `PUT ${p}: ${r.status} ${r.body}`)
  const h = await rawRequest(srv.url, { method: 'HEAD', path: p })
  assert.equal(h.status, 200)
  return h.headers['stream-next-offset']
}

async function post(srv, p, value) {
  const r = await rawRequest(srv.url, { method: 'POST', path: p, headers: JSON_CT, body: JSON.stringify(value) })
  assert.ok(r.status === 200 || r.status === 204, `POST ${p}: ${r.status} ${r.body}`)
}

/**
 * Poll the connections the daemon still holds open (srv.liveConnections(),
 * from the kernel's tables: the resource that must be released) until
 * pred(count) holds.
 */
async function waitConnections(srv, pred, budgetMs, what) {
  const deadline = Date.now() + budgetMs
  let last
  for (;;) {
    last = srv.liveConnections()
    if (pred(last)) return last
    await srv.liveStats() // its counters go to the log shown on failure
    assert.ok(Date.now() < deadline, `${what}: lmstream-live still holds ${last} connections after ${budgetMs} ms\n${srv.logTail(8)}`)
    await sleep(200) // polling interval
  }
}

/** Wait for every subscriber's promise, failing with the first few errors. */
async function allOf(subs, fn, what) {
  const results = await Promise.allSettled(subs.map(fn))
  const bad = results.map((r, i) => [i, r]).filter(([, r]) => r.status === 'rejected')
  assert.equal(bad.length, 0, `${bad.length} of ${subs.length} subscribers failed ${what}: ` +
    bad.slice(0, 3).map(([i, r]) => `#${i}: ${r.reason?.message}`).join(' | '))
  return results.map((r) => r.value)
}

async function fanOut(t, srv, n) {
  const p = `${STREAM_PREFIX}many-${srv.kind}-${tag}`
  const tail = await createJsonStream(srv, p)
  const base = await waitConnections(srv, (c) => c <= RELEASE_SLACK, 10_000, 'before the subscribers')

  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  const t0 = performance.now()
  const subs = Array.from({ length: n }, () =>
    openSse(srv.url, `${p}?offset=${tail}&live=sse`, { agent, timeoutMs: CONNECT_BUDGET_MS }))
  let tConnected, tDelivered, peak
  try {
    const responses = await allOf(subs, (s) => s.response, 'to get response headers')
    const statuses = new Map()
    for (const r of responses) statuses.set(r.status, (statuses.get(r.status) || 0) + 1)
    assert.deepEqual([...statuses], [[200, n]], `statuses: ${JSON.stringify([...statuses])}`)
    // Subscribed: the server told each one it is up to date at the tail.
    await allOf(subs, (s) => s.waitFor((e) => e.type === 'control', CONNECT_BUDGET_MS, 'the first control event'),
      'to get their first control event')
    tConnected = performance.now() - t0
    peak = (await srv.liveStats()).connections
    assert.ok(peak >= n, `lmstream-live reports ${peak} connections with ${n} subscribers`)

    const t1 = performance.now()
    await post(srv, p, { hello: tag })
    await allOf(subs, (s) => s.waitFor(isData((m) => m.hello === tag), 20_000, 'the message'), 'to receive the message')
    tDelivered = performance.now() - t1
    await post(srv, p, { sentinel: true })
    await allOf(subs, (s) => s.waitFor(isData((m) => m.sentinel === true), 20_000, 'the sentinel'), 'to receive the sentinel')
    for (const [i, s] of subs.entries()) {
      assert.deepEqual(sseMessages(s), [{ hello: tag }, { sentinel: true }], `subscriber ${i}: messages not exactly once`)
    }
    for (const [i, s] of subs.entries()) assert.equal(s.status, 200, `subscriber ${i} ended early`)
  } finally {
    for (const s of subs) s.close()
    agent.destroy()
  }

  // The daemon still answers: a catch-up read (through the web server if any)
  // and a live read, which lmstream-live itself serves in every deployment.
  const all = await readAll(srv.url, p)
  assert.deepEqual(all.messages, [{ hello: tag }, { sentinel: true }])
  const live = await rawRequest(srv.url, { path: `${p}?offset=-1&live=long-poll` })
  assert.equal(live.status, 200)
  assert.equal(live.headers['x-lmstream-front'], 'live')

  // ... and lets go of the connections of the subscribers that hung up.
  const t2 = performance.now()
  const after = await waitConnections(srv, (c) => c <= base + RELEASE_SLACK, RELEASE_BUDGET_MS,
    'after the subscribers hung up')
  t.diagnostic(`many[${srv.kind}]: ${n} SSE subscribers connected in ${Math.round(tConnected)} ms; ` +
    `one message reached all of them within ${Math.round(tDelivered)} ms; daemon connections ` +
    `${base} before, ${peak} with the subscribers, ${after} ${Math.round(performance.now() - t2)} ms after they hung up`)
}

describe('many[standalone]', () => {
  let srv
  // all 1,000 come from 127.0.0.1: no cap per address
  before(async () => {
    srv = await startServer({ label: 'many-standalone', server: 'standalone', config: { heartbeat: HEARTBEAT_MS, max_connections_per_ip: 0 } })
  })
  after(async () => { await srv?.stop() })
  test(`${STANDALONE_N} concurrent SSE subscribers each get one publish exactly once; connections are released`,
    { timeout: 70_000 }, (t) => fanOut(t, srv, STANDALONE_N))
})

describe('many[lighttpd]', () => {
  let srv
  before(async () => { srv = await startServer({ label: 'many-lighttpd', server: 'lighttpd', config: { heartbeat: HEARTBEAT_MS } }) })
  after(async () => { await srv?.stop() })
  test(`${LIGHTTPD_N} concurrent SSE subscribers through lighttpd each get one publish exactly once; connections are released`,
    { timeout: 60_000 }, (t) => fanOut(t, srv, LIGHTTPD_N))
})


describe('cap[standalone]', () => {
  let srv
  before(async () => {
    srv = await startServer({ label: 'cap', server: 'standalone', config: { max_connections: CAP, heartbeat: HEARTBEAT_MS } })
  })
  after(async () => { await srv?.stop() })

  test(`max_connections = ${CAP}: ${LIVE_CAP} SSE subscribers work, ${OVER_CAP} more get 503 with Retry-After, a writer still gets through`,
    { timeout: 40_000 }, async (t) => {
      const p = `${STREAM_PREFIX}cap-${tag}`
      const tail = await createJsonStream(srv, p)
      // The set-up requests have gone: the cap is all ours.
      await waitConnections(srv, (c) => c === 0, 10_000, 'before the subscribers')

      const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
      const url = `${p}?offset=${tail}&live=sse`
      const admitted = Array.from({ length: LIVE_CAP }, () => openSse(srv.url, url, { agent }))
      const extra = []
      try {
        const rs = await allOf(admitted, (s) => s.response, 'to get response headers')
        assert.deepEqual(rs.map((r) => r.status), Array(LIVE_CAP).fill(200))
        await allOf(admitted, (s) => s.waitFor((e) => e.type === 'control', 10_000, 'the first control event'),
          'to get their first control event')

        for (let i = 0; i < OVER_CAP; i++) extra.push(openSse(srv.url, url, { agent }))
        const xs = await allOf(extra, (s) => s.response, 'to get response headers')
        await Promise.all(extra.map((s) => s.ended))
        for (const [i, r] of xs.entries()) {
          assert.equal(r.status, 503, `connection ${LIVE_CAP + i + 1}: status ${r.status}`)
          assert.match(r.headers['retry-after'] || '', /^\d+$/, `connection ${LIVE_CAP + i + 1}: Retry-After ${r.headers['retry-after']}`)
        }
        const reason = extra[0].body?.toString('utf8').trim()

        // The admitted subscribers are still open and still served, and the
        // daemon itself still takes a write.
        assert.equal((await srv.liveStats()).connections, LIVE_CAP, 'the refused connections were closed')
        await post(srv, p, { capped: tag })
        await allOf(admitted, (s) => s.waitFor(isData((m) => m.capped === tag), 10_000, 'the message'), 'to receive the message')
        for (const [i, s] of admitted.entries()) {
          assert.deepEqual(sseMessages(s), [{ capped: tag }], `subscriber ${i}`)
        }
        t.diagnostic(`cap: ${LIVE_CAP} admitted, ${OVER_CAP} refused with 503, Retry-After: ${xs[0].headers['retry-after']}, ` +
          `body: ${JSON.stringify(reason)}; the ${LIVE_CAP} admitted received a message appended through the daemon`)
      } finally {
        for (const s of [...admitted, ...extra]) s.close()
        agent.destroy()
      }

      // Below the cap again, a new subscriber is admitted (once the daemon
      // has noticed the hang-ups, at its next heartbeat).
      await waitConnections(srv, (c) => c < LIVE_CAP, 20_000, 'after the subscribers hung up')
      const again = openSse(srv.url, url)
      try {
        assert.equal((await again.response).status, 200)
      } finally {
        again.close()
      }
    })
})

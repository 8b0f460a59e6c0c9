// Live reads served by the workers themselves (no lmstream-live: the
// lighttpd FastCGI and CGI deployments). Each long-poll or SSE read holds a
// thread of a FastCGI process, or a whole CGI process, while it waits; they
// must never take everything from writes.
//
// What a user relies on:
//   * max_live_reads bounds them over every lmstream.fcgi process of the
//     data directory, and a FastCGI process keeps one of its worker_threads
//     free of them. A live read beyond either gets 503 with Retry-After and
//     the reason from the error table (past max_live_reads after waiting up
//     to 2 s for a slot), and changes nothing; reads that are not live, and
//     writes, go on being served; the live readers under the cap get every
//     message.
//   * A slot comes back when its reader leaves: SSE readers get a comment
//     line soon after events and then less and less often, long-polls an
//     interim response every 2 s, and a write to a departed client ends the
//     request.
//   * The official client (@durable-streams/client) rides out the 503: its
//     fetch wrapper retries a 503 after Retry-After, for long-poll and SSE,
//     without an error (an early 204 would instead send it straight back:
//     it follows a 204 with the next long-poll at once).
//   * Behind lighttpd, a CGI process whose long-poll client left exits within
//     seconds, not at long_poll_timeout: lighttpd notices a departed client
//     only when a write to it fails, so the worker sends "102 Processing"
//     every few seconds while it waits (node's http and fetch skip it).
//
// Waits are bounded by generous timeouts; nothing asserts how long anything
// took.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { stream } from '@durable-streams/client'
import { rawRequest, openSse, sseMessages, streamState } from './lib/http.mjs'
import { startServer, sleep, STREAM_PREFIX } from './lib/server.mjs'

const JSON_CT = { 'Content-Type': 'application/json' }
const LONG = { long_poll_timeout: 60_000, sse_lifetime: 60_000 }
const WAIT_MS = 20_000

/**
 * Start the lighttpd deployment whose workers serve live reads themselves:
 * `deploy/run --server lighttpd-<kind>`, or `<kind>` where deploy/run still
 * names them fastcgi and cgi.
 */
async function startKind(kind, opts) {
  try {
    return await startServer({ server: `lighttpd-${kind}`, ...opts })
  } catch (e) {
    if (!/unknown server/i.test(e.message)) throw e
    return startServer({ server: kind, ...opts })
  }
}

/** Poll pred every 100 ms; reject after ms, saying what (a string, or a function giving one). */
async function until(pred, ms, what) {
  const deadline = Date.now() + ms
  for (;;) {
    if (await pred()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await sleep(100)
  }
}

/**
 * A long-poll with node:http. result: Promise of { status, headers, body };
 * interim: 1xx responses seen so far; started: resolves at the first 1xx or
 * at the answer, whichever comes first; close(): leave.
 */
function openLongPoll(base, path) {
  const u = new URL(base)
  const lp = { interim: 0 }
  let started
  lp.started = new Promise((r) => { started = r })
  lp.result = new Promise((resolve, reject) => {
    lp.req = http.request({ host: u.hostname, port: u.port, path, agent: false }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    lp.req.on('information', () => { lp.interim++; started() })
    lp.req.on('error', reject)
    lp.req.end()
  })
  lp.result.then(started, started)
  lp.result.catch(() => {})
  lp.close = () => lp.req.destroy()
  return lp
}

/** Open SSE readers until one is admitted (slots free up as readers leave). */
async function admitSse(base, path) {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const sub = openSse(base, path)
    const r = await sub.response
    if (r.status === 200) return sub
    sub.close()
    assert.equal(r.status, 503, `SSE ${path}: ${r.status}`)
    if (Date.now() > deadline) throw new Error(`no SSE slot for ${path} within ${WAIT_MS} ms`)
    await sleep(200)
  }
}

/**
 * A long-poll that the worker admitted and that waits: behind lighttpd its
 * worker sends 102 Processing while it waits, which tells it from a refusal.
 */
async function admitLongPoll(base, path) {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const lp = openLongPoll(base, path)
    await lp.started
    if (lp.interim > 0) return lp
    const r = await lp.result
    assert.equal(r.status, 503, `long-poll ${path}: ${r.status} ${r.body}`)
    if (Date.now() > deadline) throw new Error(`no long-poll slot for ${path} within ${WAIT_MS} ms`)
    await sleep(200)
  }
}

/** The answer to a live read past the cap: 503, Retry-After, the table's reason. */
function assertBusy(r, what) {
  assert.equal(r.status, 503, `${what}: expected 503, got ${r.status}`)
  assert.ok(Number(r.headers['retry-after']) > 0, `${what}: no Retry-After`)
  assert.match(String(r.body), /max_live_reads/, `${what}: reason`)
}

async function sseBusy(base, path) {
  const sub = openSse(base, path)
  const r = await sub.response
  await sub.ended
  return { ...r, body: sub.body }
}

async function create(base, path) {
  const r = await rawRequest(base, { method: 'PUT', path, headers: JSON_CT })
  assert.equal(r.status, 201, `PUT ${path}`)
}

async function append(base, path, msg) {
  const r = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(msg), timeoutMs: WAIT_MS })
  assert.equal(r.status, 204, `POST ${path}: ${r.status} ${r.body}`)
}

/** The official client following path from its tail; records each request's live mode and status. */
async function follow(url, live, offset) {
  const st = { items: [], log: [], error: null }
  const ac = new AbortController()
  const rec = async (input, init) => {
    const u = new URL(String(input))
    const e = { live: u.searchParams.get('live') || 'catch-up', status: null }
    st.log.push(e)
    const res = await fetch(input, init)
    e.status = res.status
    return res
  }
  const res = await stream({ url, live, offset, fetch: rec, signal: ac.signal })
  res.closed.catch((e) => { if (!ac.signal.aborted) st.error = e })
  res.subscribeJson((batch) => { st.items.push(...batch.items) })
  st.stop = () => ac.abort()
  return st
}

for (const kind of ['fastcgi', 'cgi']) {
  describe(`${kind}: max_live_reads = 2`, () => {
    let srv
    const p = (name) => `${STREAM_PREFIX}livecap/${kind}-${name}`
    before(async () => {
      srv = await startKind(kind, { label: `livecap-${kind}`, workers: 1, config: { max_live_reads: 2, ...LONG } })
    })
    after(async () => { await srv?.stop() })

    test('live reads past the cap get 503 and change nothing; writes go on; readers under it get data', async () => {
      const s = p('a')
      await create(srv.url, s)
      const sse = await admitSse(srv.url, `${s}?offset=-1&live=sse`)
      const head = await rawRequest(srv.url, { method: 'HEAD', path: s })
      const lp = await admitLongPoll(srv.url, `${s}?offset=${head.headers['stream-next-offset']}&live=long-poll`)
      try {
        const request = (opts) => rawRequest(srv.url, opts)
        const before = await streamState(request, s)
        assertBusy(await sseBusy(srv.url, `${s}?offset=-1&live=sse`), 'third SSE')
        assertBusy(await rawRequest(srv.url, { path: `${s}?offset=now&live=long-poll` }), 'third long-poll')
        assert.deepEqual(await streamState(request, s), before, 'a refused live read changed the stream')
        // Reads that are not live are never refused.
        assert.equal((await rawRequest(srv.url, { path: `${s}?offset=-1` })).status, 200)

        await append(srv.url, s, { n: 1 })
        const r = await lp.result
        assert.equal(r.status, 200, `long-poll: ${r.status} ${r.body}`)
        assert.deepEqual(JSON.parse(r.body), [{ n: 1 }])
        await sse.waitFor((e) => e.type === 'data', WAIT_MS, 'the message')
        assert.deepEqual(sseMessages(sse), [{ n: 1 }])
      } finally {
        sse.close()
        lp.close()
      }
    })

    test('a slot comes back when its reader leaves', async () => {
      const s = p('b')
      await create(srv.url, s)
      const x = await admitSse(srv.url, `${s}?offset=-1&live=sse`)
      const y = await admitSse(srv.url, `${s}?offset=-1&live=sse`)
      let z
      try {
        assertBusy(await sseBusy(srv.url, `${s}?offset=-1&live=sse`), 'SSE past the cap')
        x.close()
        z = await admitSse(srv.url, `${s}?offset=-1&live=sse`)
      } finally {
        x.close()
        y.close()
        z?.close()
      }
    })

    for (const live of ['long-poll', 'sse']) {
      test(`the official client retries a 503 after Retry-After (${live}) and misses nothing`, async () => {
        const s = p(`client-${live}`)
        await create(srv.url, s)
        const x = await admitSse(srv.url, `${s}?offset=-1&live=sse`)
        const y = await admitSse(srv.url, `${s}?offset=-1&live=sse`)
        let st
        try {
          const tail = (await rawRequest(srv.url, { method: 'HEAD', path: s })).headers['stream-next-offset']
          st = await follow(`${srv.url}${s}`, live, tail)
          await until(() => st.log.some((e) => e.live === live && e.status === 503), WAIT_MS, `a refused ${live}`)
          x.close()
          await append(srv.url, s, { m: 1 })
          await until(() => st.items.length > 0 || st.error, 3 * WAIT_MS, 'the message through the client')
          assert.equal(st.error, null, `the client gave up: ${st.error}`)
          assert.deepEqual(st.items, [{ m: 1 }])
        } finally {
          st?.stop()
          x.close()
          y.close()
        }
      })
    }
  })
}

describe('fastcgi: one process of 8 threads, 8 SSE readers (max_live_reads not set)', () => {
  let srv
  before(async () => {
    srv = await startKind('fastcgi', { label: 'livecap-threads', workers: 1, config: { worker_threads: 8, ...LONG } })
  })
  after(async () => { await srv?.stop() })

  test('all threads but one serve live reads, the 8th reader gets 503; a write is still served', async () => {
    const s = `${STREAM_PREFIX}livecap/threads`
    await create(srv.url, s)
    const subs = Array.from({ length: 8 }, () => openSse(srv.url, `${s}?offset=-1&live=sse`))
    try {
      const statuses = (await Promise.all(subs.map((x) => x.response))).map((r) => r.status)
      // Before: all 8 held a thread, and every write waited for one until it timed out.
      await append(srv.url, s, { k: 1 })
      assert.equal(statuses.filter((c) => c === 200).length, 7, `statuses: ${statuses}`)
      assert.equal(statuses.filter((c) => c === 503).length, 1, `statuses: ${statuses}`)
      for (const x of subs.filter((x) => x.status === 200)) {
        await x.waitFor((e) => e.type === 'data', WAIT_MS, 'the message')
        assert.deepEqual(sseMessages(x), [{ k: 1 }])
      }
    } finally {
      for (const x of subs) x.close()
    }
  })
})

describe('cgi: clients that leave', () => {
  let srv
  before(async () => {
    srv = await startKind('cgi', { label: 'livecap-gone', config: LONG })
  })
  after(async () => { await srv?.stop() })

  test('a CGI process exits soon after its long-poll or SSE client left, long before the timeout', async () => {
    const s = `${STREAM_PREFIX}livecap/gone`
    await create(srv.url, s)
    const tail = (await rawRequest(srv.url, { method: 'HEAD', path: s })).headers['stream-next-offset']
    const polls = Array.from({ length: 3 }, () => openLongPoll(srv.url, `${s}?offset=${tail}&live=long-poll`))
    const sse = openSse(srv.url, `${s}?offset=-1&live=sse`)
    assert.equal((await sse.response).status, 200)
    await until(() => srv.workers().length >= 4, WAIT_MS, 'four CGI processes')
    for (const lp of polls) lp.close()
    sse.close()
    // long_poll_timeout and sse_lifetime are 60 s: only noticing the
    // departed clients ends these processes within WAIT_MS.
    await until(() => srv.workers().length === 0, WAIT_MS,
      () => `the CGI processes to exit (left: ${srv.workers().length})`)
  })
})

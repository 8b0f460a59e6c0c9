// Browser test of deploy/run --tls (HTTPS with HTTP/2) in headless Chromium: one page following many live
// streams at once. Over HTTP/1.1 a browser opens at most six connections to an origin, and each SSE response
// holds one; over HTTP/2 the page's requests share one connection, as streams of it.
//
// The deployment (LMSTREAM_TEST_SERVER: lighttpd or apache) runs with --tls and its self-signed certificate
// (the browser context ignores certificate errors; this process verifies the certificate), with auth = token:
// the page reads with a token in the lmstream_token cookie, this process writes with a Bearer token.
// The page is the deployment's own demo page (www/, at /). In it, for each stream: a catch-up read of its
// history (fetch), then an EventSource from the offset that read returned (live=sse).
//
//   facts   the port negotiates h2 through ALPN; the number of concurrent streams it lets one connection run
//           (SETTINGS_MAX_CONCURRENT_STREAMS): lighttpd 1.4.69 allows 8 (a constant of its source, not a
//           setting), Apache's mod_http2 100. Apache: on a new connection (node:http2), seven SSE requests at
//           once: six are answered, the seventh waits. mod_http2 starts each connection at 6 requests
//           processed at once and doubles that (up to H2MaxWorkers) only as requests on it complete, and a
//           live response does not complete: a page that opens more than six live streams before anything
//           else on its connection has completed waits for the rest (in "ten", the page load and the
//           catch-up reads complete first).
//   ten     TEN live streams on the page: every SSE response opens; with all ten open, an eleventh request (a
//           catch-up read) completes within PROMPT_MS; N events appended to each stream from this process
//           (over h2) arrive on every stream, each once, in order; every stream response's nextHopProtocol
//           (PerformanceResourceTiming) is h2. Under lighttpd a TODO: with at most 8 streams per connection,
//           the ninth and tenth SSE requests and the eleventh request wait in the browser (it opens no second
//           connection) until a stream ends.
//   seven   lighttpd only: the same with SEVEN streams, which its limit does allow (7 live + 1 other request)
//   http/1.1 the control: the same page from a deployment without --tls: six SSE responses open, a seventh
//           does not open within STALL_MS, and does once one of the six is closed; nextHopProtocol http/1.1.
//
//   LMSTREAM_TEST_SERVER   deployment: lighttpd (default) or apache, see ../integration/lib/server.mjs
//   CHROMIUM               browser binary (default /usr/bin/chromium)
//
// Run: cd tests && LMSTREAM_TEST_SERVER=apache node --test browser/h2.test.mjs

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http2 from 'node:http2'
import os from 'node:os'
import path from 'node:path'
import { launchBrowser } from './lib/browser.mjs'
import { startServer, SERVER_KIND } from '../integration/lib/server.mjs'
import { makeKeys, runOwner } from '../integration/lib/tokens.mjs'

const KIND = SERVER_KIND
const STREAMS = 10
const EVENTS = 20 // appended to each stream
const OPEN_MS = 5000 // every EventSource must open within this
const PROMPT_MS = 3000 // "promptly": an extra request with every stream open (it takes a few ms when it is not queued)
const STALL_MS = 3000 // the control: how long the seventh stream must stay unopened
const T = 20_000 // waiting for the events
const RUN = Date.now().toString(36)
const BASE = `h2/${RUN}` // every stream of this test
const LIGHTTPD_MAX_STREAMS = 8

let keyDir, keys, readToken, writeToken, browser, srv

before(async () => {
  keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-h2-keys-'))
  keys = makeKeys(keyDir, { owner: runOwner([KIND]) })
  readToken = keys.token({ read: [`${BASE}/**`] }, { sub: 'h2-page' })
  writeToken = keys.token({ read: [`${BASE}/**`], write: [`${BASE}/**`] }, { sub: 'h2-writer' })
  srv = await startServer({ label: 'h2', server: KIND, tls: true, config: { auth: 'token', auth_key: keys.authKey } })
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await srv?.stop()
  if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true })
})

// ------------------------------------------------------------------ this process: writes over h2

/** An h2 session to a --tls deployment (its certificate verified), with request(method, path, value). */
function writer(server) {
  const session = http2.connect(server.url, { ca: server.tlsCa })
  session.on('error', () => {})
  const request = (method, p, value) => new Promise((resolve, reject) => {
    const body = value === undefined ? '' : JSON.stringify(value)
    const req = session.request({
      ':method': method, ':path': p, authorization: `Bearer ${writeToken}`,
      'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)),
    })
    let text = ''
    req.setEncoding('utf8')
    req.on('response', (h) => {
      req.on('data', (c) => { text += c })
      req.on('end', () => (h[':status'] < 300 ? resolve(h[':status']) : reject(new Error(`${method} ${p}: ${h[':status']} ${text}`))))
    })
    req.on('error', reject)
    req.end(body)
  })
  return { session, request, close: () => session.close() }
}

const streamPath = (name) => `/v1/stream/${BASE}/${name}`

/** Streams `${prefix}-0` ... created (empty) by this process over HTTPS/h2, or over plain HTTP for the control. */
async function createStreams(server, prefix, n) {
  const paths = Array.from({ length: n }, (_, i) => streamPath(`${prefix}-${i}`))
  if (server.tlsCa) {
    const w = writer(server)
    try { for (const p of paths) await w.request('PUT', p) } finally { w.close() }
  } else {
    for (const p of paths) {
      const res = await fetch(server.url + p, { method: 'PUT', headers: { authorization: `Bearer ${writeToken}`, 'content-type': 'application/json' } })
      assert.equal(res.status, 201, `PUT ${p}`)
    }
  }
  return paths
}

// ------------------------------------------------------------------ the page

/** A fresh browser context (so: new connections) on the deployment's demo page, reading with the cookie. */
async function openPage(server) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true })
  await context.addCookies([{ name: 'lmstream_token', value: readToken, url: server.url }])
  const page = await context.newPage()
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  const res = await page.goto(`${server.url}/`)
  assert.equal(res.status(), 200, `GET / on ${server.url}`)
  await page.evaluate(installFollower)
  return { context, page, errors }
}

// In the page: window.h2t.follow(paths, { history }) starts following each path (history: a catch-up read
// first, then SSE from its offset; else SSE from -1 at once) and appends to h2t.streams, per stream, when it
// opened and the messages of its data events; timedGet(url, ms) is one catch-up read, resolved with its
// duration, or { stalled } when it did not complete within ms.
function installFollower () {
  const t = window.h2t = { streams: [], t0: performance.now() }
  t.follow = async (paths, { history }) => {
    const added = paths.map((p) => { const s = { path: p, opened: null, msgs: [], errors: 0, status: null }; t.streams.push(s); return s })
    await Promise.all(added.map(async (s) => {
      const p = s.path
      let offset = '-1'
      if (history) {
        const res = await fetch(p + '?offset=-1', { cache: 'no-store' })
        s.status = res.status
        await res.text()
        offset = res.headers.get('Stream-Next-Offset') || offset
      }
      const es = s.es = new EventSource(p + '?offset=' + encodeURIComponent(offset) + '&live=sse')
      es.onopen = () => { if (s.opened === null) s.opened = Math.round(performance.now() - t.t0) }
      es.onerror = () => { s.errors++ }
      es.addEventListener('data', (e) => { s.msgs.push(...[].concat(JSON.parse(e.data))) })
    }))
  }
  t.opened = () => t.streams.filter((s) => s.opened !== null).length
  t.timedGet = async (url, ms) => {
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(), ms)
    const start = performance.now()
    try {
      const res = await fetch(url, { cache: 'no-store', signal: ac.signal })
      await res.text()
      return { status: res.status, ms: Math.round(performance.now() - start) }
    } catch (e) {
      return { stalled: true, ms: Math.round(performance.now() - start) }
    } finally {
      clearTimeout(timer)
    }
  }
  t.close = (i) => { const s = t.streams[i]; if (s && s.es) s.es.close() }
  t.closeAll = () => { for (const s of t.streams) if (s.es) s.es.close() }
  // (name, protocol) of the resource timing entries of the stream URLs
  t.protocols = (base) => performance.getEntriesByType('resource')
    .filter((e) => e.name.includes(base))
    .map((e) => ({ name: e.name.slice(location.origin.length), protocol: e.nextHopProtocol, initiator: e.initiatorType }))
}

const state = (page) => page.evaluate(() => window.h2t.streams.map((s) => ({ path: s.path, opened: s.opened, n: s.msgs.length, errors: s.errors, status: s.status })))

/** Wait until `want` streams are open (within ms); false (and no throw) if they are not. */
async function waitOpened(page, want, ms) {
  try {
    await page.waitForFunction((n) => window.h2t.opened() >= n, want, { timeout: ms, polling: 50 })
    return true
  } catch {
    return false
  }
}

/**
 * The scenario: n streams on one page of the --tls deployment, followed at once; an extra catch-up read while
 * all are open; EVENTS events appended to each from this process; every one arrives, in order; h2 throughout.
 */
async function manyStreams(n, { history = true, name }) {
  const paths = await createStreams(srv, name, n)
  const { context, page, errors } = await openPage(srv)
  const w = writer(srv)
  const t0 = Date.now()
  const phases = {}
  const phase = (k) => { phases[k] = Date.now() - t0 }
  try {
    await page.evaluate(([ps, h]) => window.h2t.follow(ps, { history: h }), [paths, history])
    if (!(await waitOpened(page, n, OPEN_MS))) {
      assert.fail(`${await page.evaluate(() => window.h2t.opened())} of ${n} SSE responses open after ${OPEN_MS} ms: ` +
        `${JSON.stringify(await state(page))}\n${srv.logTail(10)}`)
    }
    if (history) {
      for (const s of await state(page)) assert.equal(s.status, 200, `catch-up read of ${s.path}`)
    }

    // the extra request, with every live stream open
    const extra = await page.evaluate(([u, ms]) => window.h2t.timedGet(u, ms), [`${paths[0]}?offset=-1`, PROMPT_MS])
    assert.ok(!extra.stalled, `with ${n} live streams open, a catch-up read did not complete within ${PROMPT_MS} ms`)
    assert.equal(extra.status, 200)

    phase('open')
    // N events to each stream, one request each, round-robin across the streams (one at a time: Apache's
    // mod_fcgid makes a request that finds no idle worker wait a second, and starts workers slowly)
    for (let k = 1; k <= EVENTS; k++) {
      for (const [i, p] of paths.entries()) await w.request('POST', p, { s: i, k })
    }
    try {
      await page.waitForFunction(([m]) => window.h2t.streams.every((s) => s.msgs.length >= m), [EVENTS], { timeout: T, polling: 100 })
    } catch {
      assert.fail(`not every stream got its ${EVENTS} events within ${T} ms: ${JSON.stringify(await state(page))}`)
    }
    phase('events')
    const got = await page.evaluate(() => window.h2t.streams.map((s) => s.msgs))
    for (let i = 0; i < n; i++) {
      assert.deepEqual(got[i], Array.from({ length: EVENTS }, (_, j) => ({ s: i, k: j + 1 })), `stream ${i}: every event once, in order`)
    }
    for (const s of await state(page)) assert.equal(s.errors, 0, `no EventSource error on ${s.path}`)

    // h2 for every stream response (EventSource and fetch alike)
    await page.evaluate(() => window.h2t.closeAll())
    let entries = []
    for (let i = 0; i < 20; i++) {
      entries = await page.evaluate((b) => window.h2t.protocols(b), `/v1/stream/${BASE}/${name}-`)
      if (entries.filter((e) => e.name.includes('live=sse')).length >= n) break
      await new Promise((r) => setTimeout(r, 100))
    }
    const sse = entries.filter((e) => e.name.includes('live=sse'))
    assert.equal(sse.length, n, `a resource timing entry for each SSE response: ${JSON.stringify(entries)}`)
    assert.deepEqual([...new Set(entries.map((e) => e.protocol))], ['h2'], `nextHopProtocol of every stream response: ${JSON.stringify(entries)}`)
    assert.deepEqual(errors, [], 'no page error')
    phase('done')
    return { extraMs: extra.ms, phases }
  } finally {
    w.close()
    await context.close()
  }
}

// ------------------------------------------------------------------ tests

test(`HTTPS with HTTP/2 on ${KIND}: many live streams on one page`, async (top) => {
  await top.test('facts: h2 through ALPN, and the concurrent streams one connection may run', async () => {
    const w = writer(srv)
    try {
      await new Promise((resolve, reject) => { w.session.once('remoteSettings', resolve); w.session.once('error', reject) })
      assert.equal(w.session.alpnProtocol, 'h2')
      const max = w.session.remoteSettings.maxConcurrentStreams
      if (KIND === 'lighttpd') assert.equal(max, LIGHTTPD_MAX_STREAMS, 'lighttpd 1.4.69: SETTINGS_MAX_CONCURRENT_STREAMS 8 (fixed)')
      else assert.ok(max >= STREAMS + 1, `SETTINGS_MAX_CONCURRENT_STREAMS ${max}`)
    } finally {
      w.close()
    }
  })

  if (KIND === 'apache') {
    await top.test('facts: a new h2 connection runs 6 requests at once until requests on it complete (mod_http2)', async () => {
      const paths = await createStreams(srv, 'cold', 7)
      const w = writer(srv) // a connection that has done nothing yet
      const answered = []
      const reqs = paths.map((p, i) => {
        const req = w.session.request({ ':path': `${p}?offset=-1&live=sse`, authorization: `Bearer ${writeToken}` })
        req.on('response', () => answered.push(i))
        req.on('error', () => {})
        req.resume()
        return req
      })
      try {
        await new Promise((r) => setTimeout(r, 1500))
        assert.equal(answered.length, 6, `SSE responses begun on a new connection after 1.5 s: ${JSON.stringify(answered)}`)
      } finally {
        for (const r of reqs) r.close()
        w.session.destroy()
      }
    })
  }

  const tenTodo = KIND === 'lighttpd'
    ? `lighttpd 1.4.69 runs at most ${LIGHTTPD_MAX_STREAMS} streams per HTTP/2 connection (a constant of its source): the 9th and later requests wait`
    : false
  await top.test(`ten: ${STREAMS} live streams, an eleventh request within ${PROMPT_MS} ms, ${EVENTS} events each, h2`, { todo: tenTodo }, async (t) => {
    const r = await manyStreams(STREAMS, { name: 'ten' })
    t.diagnostic(`eleventh request: ${r.extraMs} ms; ms since start: ${JSON.stringify(r.phases)}`)
  })

  if (KIND === 'lighttpd') {
    await top.test(`seven: ${LIGHTTPD_MAX_STREAMS - 1} live streams and an eighth request (lighttpd's limit), h2`, async (t) => {
      const r = await manyStreams(LIGHTTPD_MAX_STREAMS - 1, { name: 'seven' })
      t.diagnostic(`eighth request: ${r.extraMs} ms`)
    })
  }

  await top.test(`http/1.1 (the control, without --tls): six SSE responses open, a seventh waits until one closes`, async () => {
    const plain = await startServer({ label: 'h2-control', server: KIND, config: { auth: 'token', auth_key: keys.authKey } })
    try {
      assert.match(plain.url, /^http:\/\//)
      const paths = await createStreams(plain, 'h1', 7)
      const { context, page } = await openPage(plain)
      try {
        await page.evaluate((ps) => window.h2t.follow(ps, { history: false }), paths.slice(0, 6))
        assert.ok(await waitOpened(page, 6, OPEN_MS), `six open: ${JSON.stringify(await state(page))}`)
        // the seventh EventSource (h2t.streams[6])
        await page.evaluate((p) => window.h2t.follow([p], { history: false }), paths[6])
        assert.equal(await waitOpened(page, 7, STALL_MS), false, `the seventh SSE response must wait while six are open (HTTP/1.1: six connections per origin): ${JSON.stringify(await state(page))}`)
        await page.evaluate(() => window.h2t.close(1))
        await page.waitForFunction(() => window.h2t.streams[6].opened !== null, null, { timeout: PROMPT_MS, polling: 50 })
        const entries = await page.evaluate((b) => window.h2t.protocols(b), `/v1/stream/${BASE}/h1-`)
        assert.ok(entries.length > 0, 'resource timing entries')
        assert.deepEqual([...new Set(entries.map((e) => e.protocol))], ['http/1.1'], JSON.stringify(entries))
      } finally {
        await context.close()
      }
    } finally {
      await plain.stop()
    }
  })
})

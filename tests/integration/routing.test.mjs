// Routing and streaming through the web servers.
//
// Each deployment is started by this file with deploy/run:
//  - lighttpd, apache: live reads (?live=sse, ?live=long-poll) must be answered
//    by lmstream-live (X-Lmstream-Front: live), everything else (writes,
//    catch-up reads, HEAD, DELETE, plain OPTIONS) by the FastCGI workers
//    (X-Lmstream-Front: fcgi); a CORS preflight of a live URL must carry
//    exactly one Access-Control-Allow-Origin header;
//  - the node's metrics (metrics_path, by default /__lmstream/metrics):
//    behind a web server (lighttpd, apache, fastcgi, cgi) the workers answer
//    that path, whatever the method and query, ?live= included: lmstream
//    lets loopback clients read it without a token, judged from REMOTE_ADDR,
//    which lmstream-live behind a proxy does not have. Standalone,
//    lmstream-live answers it itself. Only who answers is checked here (the
//    status is the metrics endpoint's business). Under lighttpd and apache,
//    also with a metrics_path inside the stream prefix, where the live-read
//    proxy rule would otherwise take ?live= requests;
//  - every deployment (also fastcgi, cgi and standalone, where no proxy sits
//    in between): SSE events are passed on as they are written, not buffered.
//    Two events are published 1 s apart; the first must reach the subscriber
//    within 1 s of its acknowledgement and before the second is sent, and the
//    second at least 0.8 s after the first. The bounds are loose on purpose: a
//    buffering proxy delays events by seconds or until the response ends.
//
// LMSTREAM_ROUTING_SERVERS (space-separated) limits the deployments run.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { startServer, sleep, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest, openSse, sseMessages, headerCount } from './lib/http.mjs'

const ALL = ['lighttpd', 'apache', 'fastcgi', 'cgi', 'standalone']
const PROXIED = new Set(['lighttpd', 'apache'])
const KINDS = process.env.LMSTREAM_ROUTING_SERVERS
  ? process.env.LMSTREAM_ROUTING_SERVERS.split(/\s+/).filter(Boolean)
  : ALL

// A short long-poll timeout so that `offset=now&live=long-poll` answers 204
// quickly instead of after the default 20 s.
const CONFIG = { long_poll_timeout: 1500 }
const GAP_MS = 1000        // between the two publishes
const MIN_GAP_MS = 800     // the second event must come at least this long after the first
const MAX_DELAY_MS = 1000  // the first event must come within this of its acknowledgement

const tag = randomBytes(4).toString('hex')
const METRICS_PATH = '/__lmstream/metrics' // metrics_path's default
/** Requests of a metrics path that must all reach the same process: [method, query]. */
const METRICS_REQUESTS = [['GET', ''], ['HEAD', ''], ['GET', '?live=sse'], ['GET', '?live=long-poll&offset=-1']]
const JSON_CT = { 'Content-Type': 'application/json' }

/** One request on a unix socket: { status, headers, body }. */
function unixRequest(socketPath, { method = 'GET', path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.from(body)
    const req = http.request({ socketPath, method, path, agent: false, timeout: 10_000,
      headers: { Host: 'localhost', ...headers, ...(payload ? { 'Content-Length': payload.length } : {}) } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${path} on ${socketPath}`)))
    req.on('error', reject)
    req.end(payload ?? undefined)
  })
}

function front(r) {
  return r.headers['x-lmstream-front']
}

function describeResponse(r) {
  return `${r.status} front=${front(r)} ${r.body ? r.body.toString('utf8').slice(0, 200) : ''}`
}

/** Wait until `at` (performance.now() time); used to schedule a publish, never to assert. */
async function until(at) {
  const ms = at - performance.now()
  if (ms > 0) await sleep(ms)
}

async function createJsonStream(srv, path) {
  const r = await rawRequest(srv.url, { method: 'PUT', path, headers: JSON_CT })
  assert.equal(r.status, 201, `PUT ${path}: ${describeResponse(r)}`)
  return r
}

async function tailOffset(srv, path) {
  const r = await rawRequest(srv.url, { method: 'HEAD', path })
  assert.equal(r.status, 200, `HEAD ${path}: ${describeResponse(r)}`)
  const off = r.headers['stream-next-offset']
  assert.ok(off, `HEAD ${path}: no Stream-Next-Offset`)
  return off
}

async function publish(srv, path, value) {
  const sent = performance.now()
  const r = await rawRequest(srv.url, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(value) })
  assert.ok(r.status === 200 || r.status === 204, `POST ${path}: ${describeResponse(r)}`)
  return { sent, acked: performance.now(), response: r }
}

for (const kind of KINDS) {
  describe(`routing[${kind}]`, () => {
    let srv
    before(async () => { srv = await startServer({ label: `routing-${kind}`, server: kind, config: CONFIG }) })
    after(async () => { await srv?.stop() })

    const metricsFront = kind === 'standalone' ? 'live' : 'fcgi'
    test(`the metrics path is answered by ${kind === 'standalone' ? 'lmstream-live' : 'the workers'}, whatever the query`, { timeout: 30_000 }, async () => {
      for (const [method, q] of METRICS_REQUESTS) {
        const r = await rawRequest(srv.url, { method, path: METRICS_PATH + q })
        assert.equal(front(r), metricsFront, `${method} ${METRICS_PATH}${q}: ${describeResponse(r)}`)
      }
    })

    if (PROXIED.has(kind)) {
      test('live reads are answered by lmstream-live, everything else by the workers', { timeout: 30_000 }, async () => {
        const path = `${STREAM_PREFIX}route-${tag}`
        const seen = []
        const expect = (what, r, status, want) => {
          seen.push(`${what} -> ${r.status} ${front(r)}`)
          assert.equal(r.status, status, `${what}: ${describeResponse(r)}`)
          assert.equal(front(r), want, `${what} answered by ${front(r)}, expected ${want}`)
        }

        expect('PUT', await createJsonStream(srv, path), 201, 'fcgi')
        const post = await rawRequest(srv.url, { method: 'POST', path, headers: JSON_CT, body: '{"n":1}' })
        expect('POST', post, post.status === 200 ? 200 : 204, 'fcgi')
        expect('HEAD', await rawRequest(srv.url, { method: 'HEAD', path }), 200, 'fcgi')
        const catchUp = await rawRequest(srv.url, { path: `${path}?offset=-1` })
        expect('GET ?offset=-1', catchUp, 200, 'fcgi')
        assert.deepEqual(JSON.parse(catchUp.body.toString('utf8')), [{ n: 1 }])
        // "live" elsewhere than in the live parameter does not route to the daemon
        expect('GET ?offset=-1&xlive=sse', await rawRequest(srv.url, { path: `${path}?offset=-1&xlive=sse` }), 200, 'fcgi')
        expect('OPTIONS (not live)', await rawRequest(srv.url, {
          method: 'OPTIONS', path, headers: { Origin: 'http://example.test', 'Access-Control-Request-Method': 'POST' },
        }), 204, 'fcgi')

        // SSE from the start: headers from the daemon, then the stored message.
        for (const q of ['offset=-1&live=sse', 'live=sse&offset=-1']) {
          const sub = openSse(srv.url, `${path}?${q}`)
          try {
            const r = await sub.response
            expect(`GET ?${q}`, r, 200, 'live')
            assert.match(r.headers['content-type'] || '', /^text\/event-stream/)
            await sub.waitFor((e) => e.type === 'control', 5000, 'the first control event')
            assert.deepEqual(sseMessages(sub), [{ n: 1 }])
          } finally {
            sub.close()
          }
        }

        // Long-poll: with data after the offset it answers at once, at the
        // tail it waits long_poll_timeout and answers 204.
        expect('GET ?offset=-1&live=long-poll', await rawRequest(srv.url, { path: `${path}?offset=-1&live=long-poll` }), 200, 'live')
        const t0 = performance.now()
        const lp = await rawRequest(srv.url, { path: `${path}?offset=now&live=long-poll` })
        expect('GET ?offset=now&live=long-poll', lp, 204, 'live')
        assert.ok(performance.now() - t0 >= CONFIG.long_poll_timeout - 200,
          `offset=now long-poll returned after ${Math.round(performance.now() - t0)} ms, before the timeout`)

        expect('DELETE', await rawRequest(srv.url, { method: 'DELETE', path }), 204, 'fcgi')
        expect('HEAD after DELETE', await rawRequest(srv.url, { method: 'HEAD', path }), 404, 'fcgi')
        expect('GET ?offset=-1&live=sse after DELETE', await rawRequest(srv.url, { path: `${path}?offset=-1&live=sse` }), 404, 'live')
      })

      test('writes that name live= go to the workers; the daemon answers them 405', { timeout: 30_000 }, async () => {
        const path = `${STREAM_PREFIX}livewrite-${tag}`
        await createJsonStream(srv, path)
        // Through the web server: the workers take them, as any write.
        const post = await rawRequest(srv.url, { method: 'POST', path: `${path}?live=sse`, headers: JSON_CT, body: '{"via":"live"}' })
        assert.equal(front(post), 'fcgi', `POST ?live=sse: ${describeResponse(post)}`)
        const del = await rawRequest(srv.url, { method: 'DELETE', path: `${path}?offset=-1&live=long-poll` })
        assert.equal(front(del), 'fcgi', `DELETE ?live=long-poll: ${describeResponse(del)}`)
        assert.equal(del.status, 204)

        // On the daemon's own socket: only GET, HEAD and OPTIONS; the rest
        // gets 405 with Allow and changes nothing.
        const { socket } = srv.liveAddress()
        const other = `${STREAM_PREFIX}livewrite2-${tag}`
        await createJsonStream(srv, other)
        for (const [method, body] of [['POST', '{"x":1}'], ['PUT', ''], ['DELETE', undefined]]) {
          const r = await unixRequest(socket, { method, path: `${other}?offset=-1&live=sse`, headers: JSON_CT, body })
          assert.equal(r.status, 405, `${method} on the daemon's socket: ${r.status} ${r.body}`)
          assert.equal(r.headers.allow, 'GET, HEAD, OPTIONS')
          assert.equal(r.headers.connection, 'close')
        }
        const left = await rawRequest(srv.url, { path: `${other}?offset=-1` })
        assert.equal(left.status, 200, 'the stream is still there')
        assert.deepEqual(JSON.parse(left.body.toString('utf8')), [], 'nothing was appended')
      })

      test('a CORS preflight of a live URL gets exactly one Access-Control-Allow-Origin', { timeout: 20_000 }, async () => {
        const path = `${STREAM_PREFIX}cors-${tag}`
        await createJsonStream(srv, path)
        const headers = {
          Origin: 'http://example.test',
          'Access-Control-Request-Method': 'GET',
          'Access-Control-Request-Headers': 'last-event-id',
        }
        for (const q of ['offset=-1&live=sse', 'offset=now&live=long-poll']) {
          const r = await rawRequest(srv.url, { method: 'OPTIONS', path: `${path}?${q}`, headers })
          assert.ok(r.status === 200 || r.status === 204, `OPTIONS ?${q}: ${describeResponse(r)}`)
          assert.equal(front(r), 'live', `OPTIONS ?${q} answered by ${front(r)}`)
          assert.equal(headerCount(r.rawHeaders, 'Access-Control-Allow-Origin'), 1,
            `OPTIONS ?${q}: Access-Control-Allow-Origin ${headerCount(r.rawHeaders, 'Access-Control-Allow-Origin')} times: ` +
            JSON.stringify(r.rawHeaders))
          assert.match(r.headers['access-control-allow-methods'] || '', /\bGET\b/)
        }
        // The SSE response itself, too.
        const sub = openSse(srv.url, `${path}?offset=-1&live=sse`, { headers: { Origin: 'http://example.test' } })
        try {
          const r = await sub.response
          assert.equal(r.status, 200)
          assert.equal(headerCount(r.rawHeaders, 'Access-Control-Allow-Origin'), 1,
            `SSE response: Access-Control-Allow-Origin ${headerCount(r.rawHeaders, 'Access-Control-Allow-Origin')} times`)
        } finally {
          sub.close()
        }
      })
    }

    test('SSE events reach the subscriber as they are published (no buffering)', { timeout: 30_000 }, async (t) => {
      const path = `${STREAM_PREFIX}unbuffered-${tag}`
      await createJsonStream(srv, path)
      const offset = await tailOffset(srv, path)
      const sub = openSse(srv.url, `${path}?offset=${offset}&live=sse`)
      try {
        const r = await sub.response
        assert.equal(r.status, 200, `SSE: status ${r.status}`)
        assert.match(r.headers['content-type'] || '', /^text\/event-stream/)
        if (PROXIED.has(kind)) assert.equal(front(r), 'live')
        // The subscription is in place once the server said it is up to date.
        await sub.waitFor((e) => e.type === 'control', 10_000, 'the first control event')

        const isMsg = (n) => (e) => e.type === 'data' && JSON.parse(e.data).some((m) => m.n === n)
        const p1 = await publish(srv, path, { n: 1 })
        await until(p1.acked + GAP_MS)
        const p2 = await publish(srv, path, { n: 2 })
        const e1 = await sub.waitFor(isMsg(1), 10_000, 'event 1')
        const e2 = await sub.waitFor(isMsg(2), 10_000, 'event 2')

        const d1 = e1.at - p1.acked
        const gap = e2.at - e1.at
        t.diagnostic(`${kind}: event 1 ${Math.round(e1.at - p1.sent)} ms after its POST was sent ` +
          `(${Math.round(d1)} ms after the acknowledgement); event 2 ${Math.round(gap)} ms after event 1, ` +
          `${Math.round(e2.at - p2.sent)} ms after its POST was sent`)
        assert.ok(d1 <= MAX_DELAY_MS, `event 1 arrived ${Math.round(d1)} ms after its POST was acknowledged (> ${MAX_DELAY_MS} ms)`)
        assert.ok(e1.at < p2.sent, 'event 1 arrived only after event 2 was published: the response is buffered')
        assert.ok(gap >= MIN_GAP_MS, `event 2 arrived ${Math.round(gap)} ms after event 1 (< ${MIN_GAP_MS} ms): buffered together`)
        assert.deepEqual(sseMessages(sub), [{ n: 1 }, { n: 2 }], 'each event exactly once, in order')
      } finally {
        sub.close()
      }
    })
  })
}

// metrics_path inside the stream prefix: the path is still the workers',
// ?live= included, while the rest of the prefix keeps its live reads on
// lmstream-live.
for (const kind of KINDS.filter((k) => PROXIED.has(k))) {
  describe(`routing[${kind}]: metrics_path inside the prefix`, () => {
    const metricsPath = `${STREAM_PREFIX}__metrics-${tag}`
    let srv
    before(async () => {
      srv = await startServer({ label: `routing-metrics-${kind}`, server: kind, config: { ...CONFIG, metrics_path: metricsPath } })
    })
    after(async () => { await srv?.stop() })

    test('the metrics path goes to the workers, the prefix\'s other live reads to lmstream-live', { timeout: 30_000 }, async () => {
      for (const [method, q] of [...METRICS_REQUESTS, ['OPTIONS', '?live=sse']]) {
        const r = await rawRequest(srv.url, { method, path: metricsPath + q })
        assert.equal(front(r), 'fcgi', `${method} ${metricsPath}${q}: ${describeResponse(r)}`)
      }
      const path = `${STREAM_PREFIX}beside-metrics-${tag}`
      await createJsonStream(srv, path)
      const r = await rawRequest(srv.url, { path: `${path}?offset=-1&live=long-poll` })
      assert.equal(front(r), 'live', `GET ${path}?offset=-1&live=long-poll: ${describeResponse(r)}`)
    })
  })
}

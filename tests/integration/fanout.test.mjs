// Live answers that lmstream-live prepares once for many readers.
//
// A commit wakes every reader of its stream at once. Readers at the same
// place of the same stream get events (SSE) or an answer (long-poll) made
// once for all of them; each still gets exactly what follows its own
// offset, in its own format, with its own CORS headers. What a user relies
// on, checked here against lmstream-live alone:
//   * long-poll waiters at one offset, from two allowed origins, each get the
//     message with their own Access-Control-Allow-Origin; a reader at an
//     earlier offset gets the earlier message; a waiter on another stream
//     gets nothing of it;
//   * SSE subscribers at the tail, at an earlier offset, with base64 on a
//     binary stream, all get exactly their messages once and in order;
//   * while eight writers append as fast as they are answered, every
//     subscriber keeps up and gets each message once;
//   * a subscriber that stops reading while 16 MiB are written does not hold
//     the others back, and when it reads again it gets every message once,
//     in order (it reads on from the store, not from a queue).

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import { rawRequest, openSse, sseMessages } from './lib/http.mjs'
import { startServer, sleep, STREAM_PREFIX } from './lib/server.mjs'

const tag = randomBytes(4).toString('hex')
const JSON_CT = { 'Content-Type': 'application/json' }
const ORIGINS = ['https://a.example', 'https://b.example']

async function put(srv, p, ct = 'application/json') {
  const r = await rawRequest(srv.url, { method: 'PUT', path: p, headers: { 'Content-Type': ct } })
  assert.equal(r.status, 201, `PUT ${p}: ${r.status}`)
  return r.headers['stream-next-offset']
}

async function post(srv, p, body, ct = 'application/json') {
  const r = await rawRequest(srv.url, { method: 'POST', path: p, headers: { 'Content-Type': ct }, body })
  assert.ok(r.status === 200 || r.status === 204, `POST ${p}: ${r.status} ${r.body}`)
  return r.headers['stream-next-offset']
}

describe('fanout[standalone]: answers made once for many readers', () => {
  let srv
  before(async () => {
    srv = await startServer({
      label: 'fanout', server: 'standalone',
      config: { cors_origins: ORIGINS.join(' '), long_poll_timeout: 30_000, max_connections_per_ip: 0 },
    })
  })
  after(async () => { await srv?.stop() })

  test('long-poll waiters: one message each, their own origin, their own offset', { timeout: 60_000 }, async () => {
    const p = `${STREAM_PREFIX}lp-${tag}`
    const other = `${STREAM_PREFIX}lp-other-${tag}`
    const start = await put(srv, p)
    await put(srv, other)
    const mid = await post(srv, p, JSON.stringify({ n: 1 }))
    const waiters = []
    for (let i = 0; i < 40; i++) {
      const origin = ORIGINS[i % 2]
      waiters.push({ origin, from: mid, r: rawRequest(srv.url, { path: `${p}?offset=${mid}&live=long-poll`, headers: { Origin: origin }, timeoutMs: 25_000 }) })
    }
    const early = rawRequest(srv.url, { path: `${p}?offset=${start}&live=long-poll`, timeoutMs: 25_000 })
    const elsewhere = rawRequest(srv.url, { path: `${other}?offset=-1&live=long-poll`, timeoutMs: 25_000 })
    await sleep(500)
    await post(srv, p, JSON.stringify({ n: 2 }))
    for (const [i, w] of waiters.entries()) {
      const r = await w.r
      assert.equal(r.status, 200, `waiter ${i}: ${r.status}`)
      assert.deepEqual(JSON.parse(r.body.toString()), [{ n: 2 }], `waiter ${i}`)
      assert.equal(r.headers['access-control-allow-origin'], w.origin, `waiter ${i}'s CORS origin`)
    }
    // the reader at the start had n:1 to read: it was answered at once
    const e = await early
    assert.equal(e.status, 200)
    assert.deepEqual(JSON.parse(e.body.toString()), [{ n: 1 }])
    // the waiter on the other stream is still waiting: answer it
    await post(srv, other, JSON.stringify({ other: true }))
    const o = await elsewhere
    assert.deepEqual(JSON.parse(o.body.toString()), [{ other: true }])
  })

  test('SSE subscribers at the tail, behind it and in base64 each get their messages once', { timeout: 60_000 }, async () => {
    const p = `${STREAM_PREFIX}sse-${tag}`
    const bin = `${STREAM_PREFIX}sse-bin-${tag}`
    const start = await put(srv, p)
    const binStart = await put(srv, bin, 'application/octet-stream')
    const mid = await post(srv, p, JSON.stringify({ n: 0 }))
    const atTail = Array.from({ length: 30 }, () => openSse(srv.url, `${p}?offset=${mid}&live=sse`))
    const behind = Array.from({ length: 5 }, () => openSse(srv.url, `${p}?offset=${start}&live=sse`))
    const b64 = Array.from({ length: 5 }, () => openSse(srv.url, `${bin}?offset=${binStart}&live=sse&encoding=base64`))
    try {
      for (const s of [...atTail, ...behind, ...b64]) assert.equal((await s.response).status, 200)
      for (const s of [...atTail, ...behind, ...b64]) await s.waitFor((e) => e.type === 'control')
      for (let n = 1; n <= 20; n++) {
        await post(srv, p, JSON.stringify({ n }))
        await post(srv, bin, Buffer.from([n, 0, 255, n]), 'application/octet-stream')
      }
      const want = Array.from({ length: 20 }, (_, i) => ({ n: i + 1 }))
      for (const [i, s] of atTail.entries()) {
        await s.waitFor(() => sseMessages(s).length >= 20, 20_000, 'all messages')
        assert.deepEqual(sseMessages(s), want, `subscriber ${i} at the tail`)
      }
      for (const [i, s] of behind.entries()) {
        await s.waitFor(() => sseMessages(s).length >= 21, 20_000, 'all messages')
        assert.deepEqual(sseMessages(s), [{ n: 0 }, ...want], `subscriber ${i} behind`)
      }
      for (const [i, s] of b64.entries()) {
        const bytes = () => Buffer.concat(s.events.filter((e) => e.type === 'data').map((e) => Buffer.from(e.data.replace(/\n/g, ''), 'base64')))
        await s.waitFor(() => bytes().length >= 80, 20_000, 'all bytes')
        const expect = Buffer.concat(Array.from({ length: 20 }, (_, k) => Buffer.from([k + 1, 0, 255, k + 1])))
        assert.ok(bytes().equals(expect), `base64 subscriber ${i}: ${bytes().toString('hex')}`)
      }
    } finally {
      for (const s of [...atTail, ...behind, ...b64]) s.close()
    }
  })

  test('under a steady stream of writes every subscriber keeps up and gets every message once', { timeout: 90_000 }, async () => {
    const p = `${STREAM_PREFIX}busy-${tag}`
    const tail = await put(srv, p)
    const subs = Array.from({ length: 300 }, () => openSse(srv.url, `${p}?offset=${tail}&live=sse`))
    try {
      for (const s of subs) await s.waitFor((e) => e.type === 'control')
      // 8 writers at once, each as fast as its answers come: commits arrive
      // while the daemon is serving the subscribers of the one before.
      const W = 8, PER = 200
      await Promise.all(Array.from({ length: W }, async (_, w) => {
        for (let k = 0; k < PER; k++) await post(srv, p, JSON.stringify({ w, k }))
      }))
      for (const [i, s] of subs.entries()) {
        let seen = 0, n = 0 // messages counted in the events so far
        await s.waitFor(() => {
          for (; seen < s.events.length; seen++) if (s.events[seen].type === 'data') n += (s.events[seen].data.match(/"w":/g) || []).length
          return n >= W * PER
        }, 30_000, 'every message')
        const got = sseMessages(s)
        assert.equal(got.length, W * PER, `subscriber ${i}: ${got.length} messages`)
        for (let w = 0; w < W; w++) {
          assert.deepEqual(got.filter((m) => m.w === w).map((m) => m.k), Array.from({ length: PER }, (_, k) => k), `subscriber ${i}, writer ${w}`)
        }
      }
    } finally {
      for (const s of subs) s.close()
    }
  })

  test('a subscriber that stops reading holds nobody back and later gets everything once', { timeout: 90_000 }, async () => {
    const p = `${STREAM_PREFIX}slow-${tag}`
    const tail = await put(srv, p)
    const fast = Array.from({ length: 4 }, () => openSse(srv.url, `${p}?offset=${tail}&live=sse`))
    // The slow one: a raw response whose body is paused after its head.
    const got = []
    let slowRes
    const slowReady = new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: new URL(srv.url).port, path: `${p}?offset=${tail}&live=sse` }, (res) => {
        slowRes = res
        res.setEncoding('utf8')
        res.on('data', (d) => got.push(d))
        res.pause()
        resolve()
      })
      req.on('error', reject)
    })
    try {
      await slowReady
      for (const s of fast) await s.waitFor((e) => e.type === 'control')
      const pad = 'x'.repeat(4000)
      const N = 4000 // about 16 MiB: more than the socket buffers of loopback hold
      for (let i = 0; i < N; i += 100) {
        const batch = Array.from({ length: 100 }, (_, k) => ({ i: i + k, pad }))
        await post(srv, p, JSON.stringify(batch))
      }
      for (const [k, s] of fast.entries()) {
        await s.waitFor((e) => e.type === 'data' && e.data.includes(`"i":${N - 1},`), 30_000, 'the last message')
        assert.deepEqual(sseMessages(s).map((m) => m.i), Array.from({ length: N }, (_, i) => i), `fast subscriber ${k}`)
      }
      slowRes.resume()
      const deadline = Date.now() + 30_000
      const ids = () => [...got.join('').matchAll(/"i":(\d+)/g)].map((m) => Number(m[1]))
      while (ids().length < N && Date.now() < deadline) await sleep(100)
      assert.deepEqual(ids(), Array.from({ length: N }, (_, i) => i), 'the slow subscriber, once it read again')
    } finally {
      for (const s of fast) s.close()
      slowRes?.destroy()
    }
  })
})

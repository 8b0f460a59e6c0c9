// Answers of the web servers' own making: a backend that is down or
// restarting, and methods lmstream does not serve.
//
// Behind lighttpd and Apache, a request whose backend (a FastCGI worker,
// lmstream-live, a CGI process) is gone must get what lmstream itself answers
// when it is busy: 503 with Retry-After and a one-line text body, never the
// web server's HTML page, never 500 or 502. lmstream's own answers (which
// carry X-Lmstream-Front) pass unchanged, its own 503s included. An unknown
// method gets 405 with the Allow header lmstream sends.
//
// lighttpd and apache (deploy/run starts lmstream-live with --no-live-restart,
// so that it stays down once killed):
//  - every FastCGI worker stopped (SIGSTOP), a write sent, the workers killed:
//    the write, which a worker had accepted, gets the 503;
//  - workers killed at random during concurrent writes: every write gets an
//    answer, lmstream's own or the 503;
//  - lmstream's own 503s (lmstream-live over memory_budget, the workers
//    without their store) pass unchanged;
//  - unknown methods: 405 with lmstream's Allow;
//  - lmstream-live killed while a long-poll waits: the long-poll gets the 503;
//    then, with the daemon down, long-poll and SSE requests get it too.
// fastcgi and cgi (lighttpd without the daemon): unknown methods, and the
// worker (or CGI process) killed while it holds a request.
//
// LMSTREAM_BACKEND_ERRORS_SERVERS (space-separated) limits the deployments run.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import { startServer, sleep, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest, requestRetry } from './lib/http.mjs'

const ALL = ['lighttpd', 'apache', 'fastcgi', 'cgi']
const PROXIED = new Set(['lighttpd', 'apache'])
const KINDS = process.env.LMSTREAM_BACKEND_ERRORS_SERVERS
  ? process.env.LMSTREAM_BACKEND_ERRORS_SERVERS.split(/\s+/).filter(Boolean)
  : ALL

// memory_budget at its minimum, so that a catch-up read of one 1.5 MiB
// message gets lmstream-live's own 503.
const BUDGET = 1 << 20
const CONFIG = { long_poll_timeout: 15_000, memory_budget: BUDGET }
const UNKNOWN_METHODS = ['FOO', 'TRACE', 'PATCH', 'PROPFIND']
// mod_fcgid holds back respawns after a few kills (its spawn score), so
// Apache gets fewer: each kill then costs seconds.
const burstKills = (kind) => (kind === 'apache' ? 8 : 20)
const BURST_WRITERS = 4
const RETRY_PAUSE_MS = 25 // a writer's pause after a 503 of the web server's

const tag = randomBytes(4).toString('hex')
const JSON_CT = { 'Content-Type': 'application/json' }

function front(r) {
  return r.headers['x-lmstream-front']
}

function describeResponse(r) {
  if (r instanceof Error) return `error ${r.code || ''} ${r.message}`
  const body = r.body ? r.body.toString('utf8').slice(0, 160) : ''
  return `${r.status} front=${front(r)} retry-after=${r.headers['retry-after']} ` +
    `content-type=${r.headers['content-type']} ${JSON.stringify(body)}`
}

/** A body of one line of text: no markup, one final newline. */
function assertOneLine(r, what) {
  const body = r.body.toString('utf8')
  assert.match(r.headers['content-type'] || '', /^text\/plain\b/, `${what}: not text/plain: ${describeResponse(r)}`)
  assert.match(body, /^[^\r\n<>]+\n$/, `${what}: not one line of text: ${describeResponse(r)}`)
}

/** The web server's answer for a backend that is down or restarting. */
function assertUnavailable(r, what) {
  assert.ok(!(r instanceof Error), `${what}: ${describeResponse(r)}`)
  assert.equal(r.status, 503, `${what}: ${describeResponse(r)}`)
  assert.equal(front(r), undefined, `${what}: answered by lmstream (${front(r)}), not the web server`)
  assert.match(r.headers['retry-after'] || '', /^[1-9][0-9]*$/, `${what}: Retry-After: ${describeResponse(r)}`)
  assertOneLine(r, what)
}

/** The web server's 503, as assertUnavailable accepts it, without throwing. */
function isUnavailable(r) {
  try { assertUnavailable(r, ''); return true } catch { return false }
}

function assertMethodNotAllowed(r, allow, what) {
  assert.equal(r.status, 405, `${what}: ${describeResponse(r)}`)
  assert.equal(r.headers.allow, allow, `${what}: Allow: ${describeResponse(r)}`)
  assertOneLine(r, what)
}

/** One request on lmstream-live's unix socket: { status, headers, body }. */
function unixRequest(socketPath, { method = 'GET', path, headers = {} }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, agent: false, timeout: 15_000,
      headers: { Host: 'localhost', ...headers } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${path} on ${socketPath}`)))
    req.on('error', reject)
    req.end()
  })
}

/** Resolve once pred() holds (checked every 50 ms); reject after timeoutMs. */
async function until(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await pred()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

function signal(pids, sig) {
  for (const p of pids) { try { process.kill(p, sig) } catch { /* already gone */ } }
}

async function createStream(srv, path, headers = JSON_CT, body) {
  const r = await requestRetry(srv.url, { method: 'PUT', path, headers, body })
  assert.equal(r.status, 201, `PUT ${path}: ${describeResponse(r)}`)
}

/** Wait until the workers answer again (after they were killed). */
async function workersBack(srv, path) {
  const r = await requestRetry(srv.url, { method: 'HEAD', path }, 30_000)
  assert.equal(r.status, 200, `HEAD ${path} once the workers are back: ${describeResponse(r)}`)
}

/**
 * Every worker stopped, a request sent (a worker's socket accepts it, the
 * stopped worker never answers), then every worker killed: the web server
 * finds the connection closed before any answer.
 */
async function killedHoldingRequest(srv, opts) {
  const pids = srv.workers()
  assert.ok(pids.length > 0, 'no FastCGI worker found')
  signal(pids, 'SIGSTOP')
  let pending
  try {
    pending = rawRequest(srv.url, { ...opts, timeoutMs: 60_000 }).catch((e) => e)
    // time for the web server to hand the request to a worker (a pause, not
    // a measurement: handing it over takes milliseconds)
    await sleep(1000)
  } finally {
    signal(pids, 'SIGKILL')
  }
  return pending
}

for (const kind of KINDS) {
  describe(`backend errors[${kind}]`, () => {
    let srv
    let allow // lmstream's own Allow of a 405
    const path = `${STREAM_PREFIX}be-${tag}`

    before(async () => {
      srv = await startServer({ label: `be-${kind}`, server: kind, config: CONFIG, workers: 2, liveRestart: false })
      await createStream(srv, path)
      // lmstream's own 405 (PATCH reaches it through both web servers)
      const r = await rawRequest(srv.url, { method: 'PATCH', path })
      assert.equal(r.status, 405, `PATCH: ${describeResponse(r)}`)
      assert.ok(front(r), `PATCH answered by the web server: ${describeResponse(r)}`)
      allow = r.headers.allow
      assert.match(allow || '', /\bGET\b.*\bPOST\b/, `lmstream's Allow: ${allow}`)
    })
    after(async () => { await srv?.stop() })

    test('unknown methods get 405 with the Allow lmstream sends', { timeout: 30_000 }, async () => {
      for (const method of UNKNOWN_METHODS) {
        for (const p of [path, `${STREAM_PREFIX}be-missing-${tag}`]) {
          const r = await rawRequest(srv.url, { method, path: p })
          assertMethodNotAllowed(r, allow, `${method} ${p}`)
        }
      }
      // other answers keep their status: lmstream's 404, the static 404
      const missing = await rawRequest(srv.url, { path: `${STREAM_PREFIX}be-missing-${tag}?offset=-1` })
      assert.equal(missing.status, 404, `GET missing stream: ${describeResponse(missing)}`)
      assert.ok(front(missing), 'the missing stream is lmstream\'s 404')
      const page = await rawRequest(srv.url, { path: `/be-no-such-page-${tag}.txt` })
      assert.equal(page.status, 404, `GET missing static file: ${describeResponse(page)}`)
    })

    if (kind === 'cgi') {
      test('a CGI process killed while it holds a request: 503 with Retry-After', { timeout: 60_000 }, async () => {
        const before = new Set(srv.workers())
        const pending = rawRequest(srv.url, { path: `${path}?offset=now&live=long-poll`, timeoutMs: 60_000 }).catch((e) => e)
        let holder = []
        // the process whose CGI environment names this long-poll (a new pid of
        // the same program may also be LeakSanitizer's tracer of another one)
        const holdsIt = (p) => {
          try { return fs.readFileSync(`/proc/${p}/environ`, 'latin1').includes('live=long-poll') } catch { return false }
        }
        await until(() => (holder = srv.workers().filter((p) => !before.has(p) && holdsIt(p))).length > 0, 10_000,
          'the CGI process of the long-poll')
        signal(holder, 'SIGKILL')
        assertUnavailable(await pending, 'long-poll whose CGI process was killed')
        const r = await rawRequest(srv.url, { method: 'POST', path, headers: JSON_CT, body: '{"after":"kill"}' })
        assert.ok(r.status === 200 || r.status === 204, `POST after the kill: ${describeResponse(r)}`)
      })
      return
    }

    test('a worker killed while it holds a request: 503 with Retry-After', { timeout: 90_000 }, async () => {
      const r = await killedHoldingRequest(srv, { method: 'POST', path, headers: JSON_CT, body: '{"held":1}' })
      assertUnavailable(r, 'POST whose worker was killed')
      await workersBack(srv, path)
    })

    if (kind === 'fastcgi') return

    test('workers killed during concurrent writes: lmstream\'s answer or 503 with Retry-After', { timeout: 120_000 }, async (t) => {
      const burst = `${STREAM_PREFIX}be-burst-${tag}`
      await createStream(srv, burst)
      const seen = new Map()
      const bad = []
      let running = true
      let kills = 0
      const writer = async (w) => {
        for (let i = 0; running; i++) {
          let r
          try {
            r = await rawRequest(srv.url, { method: 'POST', path: burst, headers: JSON_CT, body: JSON.stringify({ w, i }), timeoutMs: 60_000 })
          } catch (e) { r = e }
          const key = r instanceof Error ? `error ${r.code || r.message}`
            : front(r) ? `${r.status} lmstream` : isUnavailable(r) ? '503 web server' : `${r.status} other`
          seen.set(key, (seen.get(key) || 0) + 1)
          if (r instanceof Error || (!front(r) && !isUnavailable(r))) bad.push(describeResponse(r))
          if (r instanceof Error || !front(r)) await sleep(RETRY_PAUSE_MS)
        }
      }
      const writers = Array.from({ length: BURST_WRITERS }, (_, w) => writer(w))
      try {
        while (kills < burstKills(kind)) {
          await sleep(40 + Math.random() * 80)
          const pids = srv.workers()
          if (!pids.length) continue
          signal([pids[Math.floor(Math.random() * pids.length)]], 'SIGKILL')
          kills++
        }
      } finally {
        running = false
        await Promise.all(writers)
      }
      t.diagnostic(`${kind}: ${kills} workers killed; answers: ${JSON.stringify(Object.fromEntries(seen))}`)
      assert.deepEqual(bad, [], 'answers that are neither lmstream\'s nor the 503 (or no answer)')
      await workersBack(srv, burst)
    })

    test('lmstream-live\'s own 503 passes unchanged', { timeout: 60_000 }, async () => {
      const big = `${STREAM_PREFIX}be-big-${tag}`
      await createStream(srv, big, { 'Content-Type': 'application/octet-stream' }, Buffer.alloc(BUDGET + (BUDGET >> 1), 7))
      const target = `${big}?offset=-1&live=long-poll`
      const direct = await unixRequest(srv.liveAddress().socket, { path: target })
      assert.equal(direct.status, 503, `on the daemon's socket: ${describeResponse(direct)}`)
      const r = await rawRequest(srv.url, { path: target })
      assert.equal(r.status, 503, describeResponse(r))
      assert.equal(front(r), 'live', describeResponse(r))
      assert.equal(r.headers['retry-after'], direct.headers['retry-after'])
      assert.equal(r.headers['content-type'], direct.headers['content-type'])
      assert.equal(r.body.toString('utf8'), direct.body.toString('utf8'))
    })

    test('the workers\' own 503 passes unchanged', { timeout: 90_000 }, async () => {
      // The workers cannot open the store once the data directory is a file:
      // they answer 503 themselves (storage unavailable).
      const away = `${srv.dataDir}.away`
      fs.renameSync(srv.dataDir, away)
      fs.writeFileSync(srv.dataDir, 'not a directory\n')
      try {
        signal(srv.workers(), 'SIGKILL')
        let r
        await until(async () => {
          r = await rawRequest(srv.url, { path: `${path}?offset=-1` }).catch((e) => e)
          if (r instanceof Error || front(r)) return true
          assertUnavailable(r, 'GET while the workers restart') // the web server's own, meanwhile
          return false
        }, 30_000, 'an answer of the restarted workers')
        assert.ok(!(r instanceof Error), describeResponse(r))
        assert.equal(r.status, 503, describeResponse(r))
        assert.equal(front(r), 'fcgi', describeResponse(r))
        assert.match(r.headers['retry-after'] || '', /^[1-9][0-9]*$/, describeResponse(r))
        assert.equal(r.body.toString('utf8'), 'storage unavailable\n', describeResponse(r))
      } finally {
        fs.rmSync(srv.dataDir, { force: true })
        fs.renameSync(away, srv.dataDir)
      }
      await workersBack(srv, path)
    })

    test('lmstream-live killed while a long-poll waits, then down: 503 with Retry-After', { timeout: 60_000 }, async () => {
      const [live] = srv.livePids()
      assert.ok(live, 'lmstream-live is running')
      const waiting = rawRequest(srv.url, { path: `${path}?offset=now&live=long-poll`, timeoutMs: 60_000 }).catch((e) => e)
      await until(() => srv.liveConnections() > 0, 10_000, 'the long-poll to reach lmstream-live')
      signal([live], 'SIGKILL')
      assertUnavailable(await waiting, 'long-poll whose daemon was killed')
      await until(() => srv.livePids().length === 0, 10_000, 'lmstream-live to be gone')
      assertUnavailable(await rawRequest(srv.url, { path: `${path}?offset=-1&live=long-poll` }), 'long-poll, daemon down')
      assertUnavailable(await rawRequest(srv.url, { path: `${path}?offset=-1&live=sse` }), 'SSE, daemon down')
      // the workers still serve everything else
      const w = await rawRequest(srv.url, { method: 'POST', path, headers: JSON_CT, body: '{"daemon":"down"}' })
      assert.ok(w.status === 200 || w.status === 204, `POST, daemon down: ${describeResponse(w)}`)
    })
  })
}

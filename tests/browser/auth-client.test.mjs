// Browser test of www/lmstream.js with access control (auth = token), in headless Chromium, from a page of
// ANOTHER origin: a small node server on another port of 127.0.0.1 (same site, other origin, as
// app.example.com is to streams.example.com) serves the page, which loads lmstream.js from the lmstream
// server and follows streams there; the lmstream server lists the page's origin in cors_origins. The page's
// token function asks its own server (GET /token?kind=...), as an application asks its backend; this test
// mints the tokens (HS256, tests/integration/lib/tokens.mjs). Writes come from this process with a write token.
//
//   a  the cookie (withCredentials), on SSE and on long-poll: every event once, in order
//   b  a token function on SSE (token=... in the EventSource URL, Bearer on the fetches): every event; a
//      write of the page (LmStream.producer) whose first token is refused: asked again, stored once
//   c  4-second tokens, events written across several expiries (SSE and long-poll): the function is asked
//      again, and the page ends with every event once, in order; also when the second token the function
//      gives is refused (401 mid-stream: asked again, resumed from the last offset)
//   d  a token function whose tokens are always expired (401), on SSE and on long-poll: at most 10 requests to
//      the stream in 30 s, reported through onState and onError
//   e  a valid token without read on the stream (403), and an expired string token (401, cannot be refreshed):
//      the client stops (no request for a few seconds) and reports it
//   f  no token the page used appears in anything lmstream or the web server wrote (deploy/run's output,
//      the files of the deployment's directories)
// d runs its 30-second window while a, b, c and e run; its check comes last but one.
// The server runs with auth_skew = 0: a live read ends at its token's exp, and the token is refused (401) from
// then on (with the default 30 s, both happen 30 s later: too long for this test).
//
//   LMSTREAM_TEST_SERVER   deployment (default lighttpd): lighttpd or apache, see ../integration/lib/server.mjs
//   CHROMIUM               browser binary (default /usr/bin/chromium)
//
// Run: cd tests && node --test browser/auth-client.test.mjs

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { launchBrowser } from './lib/browser.mjs'
import { startServer, SERVER_KIND, sleep } from '../integration/lib/server.mjs'
import { makeKeys, nowS, runOwner } from '../integration/lib/tokens.mjs'

const T = 20_000 // per wait
const BUDGET_MS = 30_000 // case d: the window ...
const BUDGET_REQUESTS = 10 // ... and the most requests a page may make in it (as page.on('request') sees
// them: CORS preflights, which Chromium caches per URL, are not reported)
const QUIET_MS = 4000 // case e: how long a stopped client must stay silent
const RUN = Date.now().toString(36)
const BASE = `authc/${RUN}` // every stream of this test; the page's tokens read BASE/**
const COOKIE = 'lmstream_token'

let srv, browser, pageServer, pageOrigin, keyDir, keys, writeToken
const used = new Set() // every token given to the page (cookie, string, function)
const serverOutput = [] // what deploy/run and its children wrote after ready
const pages = [] // { name, context, page, requests, errors }

// ------------------------------------------------------------------ the page's origin

/** A token of the kind the page asked for; `ttl` in seconds for kind=short. */
function mintFor(kind, ttl) {
  const read = { read: [`${BASE}/**`] }
  switch (kind) {
    case 'read': return keys.token(read, { ttl: 3600, sub: 'page-read' })
    case 'write': return keys.token({ read: [`${BASE}/**`], write: [`${BASE}/**`] }, { ttl: 3600, sub: 'page-write' })
    case 'short': return keys.token(read, { ttl, sub: 'page-short' })
    case 'expired': return keys.token(read, { exp: nowS() - 3600, sub: 'page-expired' })
    case 'elsewhere': return keys.token({ read: [`authc-other/${RUN}/**`] }, { ttl: 3600, sub: 'page-elsewhere' })
    default: throw new Error(`unknown token kind ${kind}`)
  }
}

// The page: lmstream.js from the lmstream server; startFollow(id, spec) follows spec.url and records what the
// client reports in window.runs[id] (messages, states, errors, calls of the token function).
const PAGE = (lmUrl) => `<!doctype html>
<meta charset="utf-8"><title>lmstream auth client</title>
<script src="${lmUrl}/lmstream.js"></script>
<script>
window.runs = {}
window.subs = {}
window.startFollow = (id, spec) => {
  const r = window.runs[id] = { msgs: [], states: [], errors: [], tokenCalls: 0 }
  const opts = {
    persist: false,
    transport: spec.transport,
    withCredentials: !!spec.withCredentials,
    onMessage: (m) => { r.msgs.push(m) },
    onState: (state, info) => { r.states.push({ state, transport: info.transport, at: Date.now() }) },
    onError: (e) => { r.errors.push({ status: e.status, reason: e.reason, stopped: e.stopped, retryIn: e.retryIn, message: e.message, at: Date.now() }) },
  }
  if (spec.string) opts.token = spec.string
  else if (spec.kind) opts.token = tokenFunction(spec, r)
  window.subs[id] = LmStream.follow(spec.url, opts)
}
// spec.kind: the kind of every token, or a list: the kind of each call, the last one repeated.
function tokenFunction (spec, r) {
  const kinds = [].concat(spec.kind)
  return async () => {
    const kind = kinds[Math.min(r.tokenCalls++, kinds.length - 1)]
    const res = await fetch('/token?kind=' + kind + '&ttl=' + (spec.ttl || 0), { cache: 'no-store' })
    return res.text()
  }
}
// Appends value with LmStream.producer; resolves with the error message, or null once stored.
window.append = (id, spec, value) => {
  const r = window.runs[id] = window.runs[id] || { tokenCalls: 0 }
  const out = LmStream.producer(spec.url, { storage: null, token: tokenFunction(spec, r) })
  return out.append(value).then(() => null, (e) => e.message)
}
</script>
`

function startPageServer() {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x')
    if (u.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' })
      return res.end(PAGE(srv.url))
    }
    if (u.pathname === '/token') {
      const tok = mintFor(u.searchParams.get('kind'), Number(u.searchParams.get('ttl')) || 4)
      used.add(tok)
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' })
      return res.end(tok)
    }
    res.writeHead(404).end()
  })
  return new Promise((resolve, reject) => {
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

// ------------------------------------------------------------------ setup

before(async () => {
  keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-authc-keys-'))
  keys = makeKeys(keyDir, { owner: runOwner() })
  writeToken = keys.token({ write: [`${BASE}/**`], read: [`${BASE}/**`] }, { sub: 'test-writer' })
  pageServer = await startPageServer()
  pageOrigin = `http://127.0.0.1:${pageServer.address().port}`
  srv = await startServer({
    label: 'auth-client',
    config: { auth: 'token', auth_key: keys.authKey, cors_origins: pageOrigin, auth_skew: 0 },
  })
  srv.child.stdout.on('data', (c) => serverOutput.push(c.toString('utf8')))
  srv.child.stderr.on('data', (c) => serverOutput.push(c.toString('utf8')))
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await srv?.stop()
  await new Promise((r) => (pageServer ? pageServer.close(r) : r()))
  if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true })
})

// ------------------------------------------------------------------ helpers

const streamPath = (name) => `/v1/stream/${BASE}/${name}`
const streamUrl = (name) => `${srv.url}${streamPath(name)}`

async function write(name, method, body) {
  const res = await fetch(streamUrl(name), {
    method,
    headers: { Authorization: `Bearer ${writeToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  await res.arrayBuffer()
  assert.ok(res.status >= 200 && res.status < 300, `${method} ${streamPath(name)}: ${res.status}`)
}

async function create(name, events = []) {
  await write(name, 'PUT')
  for (const e of events) await write(name, 'POST', e)
}

const events = (tag, from, to) => Array.from({ length: to - from + 1 }, (_, i) => ({ tag, n: from + i }))

/** A new browser context (its own cookies) with the page of the other origin; records its stream requests. */
async function openPage(name, { cookie } = {}) {
  const context = await browser.newContext()
  if (cookie) {
    used.add(cookie)
    // Cookies are not port-scoped: one for 127.0.0.1 goes to the lmstream server's port too.
    await context.addCookies([{ name: COOKIE, value: cookie, domain: '127.0.0.1', path: '/', sameSite: 'Lax' }])
  }
  const page = await context.newPage()
  const tab = { name, context, page, requests: [], responses: [], errors: [] }
  const mine = (u) => new URL(u).pathname.startsWith(`/v1/stream/${BASE}/`)
  page.on('request', (r) => {
    if (!mine(r.url())) return
    const q = new URL(r.url()).searchParams
    tab.requests.push({ at: Date.now(), method: r.method(), live: q.get('live'), token: q.get('token'), auth: r.headers().authorization ?? null })
  })
  page.on('response', (r) => {
    if (mine(r.url())) tab.responses.push({ at: Date.now(), status: r.status(), live: new URL(r.url()).searchParams.get('live') })
  })
  page.on('pageerror', (e) => tab.errors.push(String(e.stack || e)))
  const res = await page.goto(`${pageOrigin}/`)
  assert.equal(res.status(), 200, 'the page of the other origin')
  assert.ok(await page.evaluate(() => typeof window.LmStream === 'object'), `lmstream.js loaded from ${srv.url}`)
  pages.push(tab)
  return tab
}

const run = (tab, id) => tab.page.evaluate((i) => window.runs[i], id)
const follow = (tab, id, spec) => tab.page.evaluate(([i, s]) => window.startFollow(i, s), [id, spec])

async function waitFor(tab, what, fn, arg, timeout = T) {
  try {
    await tab.page.waitForFunction(fn, arg, { timeout, polling: 100 })
  } catch (e) {
    const runs = await tab.page.evaluate(() => window.runs).catch(() => null)
    throw new Error(`${tab.name}: ${what} not reached within ${timeout} ms (${e.message.split('\n')[0]})\n` +
      `runs: ${JSON.stringify(runs)?.slice(0, 2000)}\nresponses: ${JSON.stringify(tab.responses.slice(-20))}\n${srv.logTail(15)}`)
  }
}

/** Wait until run `id` has n messages, then (after a moment for any duplicate to show) require exactly `expected`. */
async function expectMessages(tab, id, expected) {
  await waitFor(tab, `${expected.length} messages in ${id}`, ([i, n]) => window.runs[i] && window.runs[i].msgs.length >= n, [id, expected.length])
  await sleep(500)
  assert.deepEqual((await run(tab, id)).msgs, expected, `${tab.name}/${id}: every event once, in order`)
}

const closeRun = (tab, id) => tab.page.evaluate((i) => window.subs[i].close(), id)

// ------------------------------------------------------------------ scenarios

test(`lmstream.js with tokens and cookies, from another origin, on ${SERVER_KIND}`, async (top) => {
  // d runs through the others: started first, checked last but one.
  const d = { started: 0, tabs: [] }
  await top.test('d (start): pages whose token function only gives expired tokens', async () => {
    await create('d', events('d', 1, 3))
    for (const [id, kind, transport] of [['d-sse', 'expired', 'sse'], ['d-lp', 'expired', 'long-poll']]) {
      const tab = await openPage(id)
      d.tabs.push({ id, kind, transport, tab })
    }
    d.started = Date.now()
    for (const x of d.tabs) await follow(x.tab, x.id, { url: streamUrl('d'), kind: x.kind, transport: x.transport })
  })

  await top.test('a: the cookie (withCredentials) on SSE and on long-poll: every event once, in order', async () => {
    await create('a', events('a', 1, 5))
    const tab = await openPage('a', { cookie: keys.token({ read: [`${BASE}/**`] }, { sub: 'page-cookie' }) })
    await follow(tab, 'a-sse', { url: streamUrl('a'), withCredentials: true, transport: 'sse' })
    await follow(tab, 'a-lp', { url: streamUrl('a'), withCredentials: true, transport: 'long-poll' })
    await waitFor(tab, 'both live', () => ['a-sse', 'a-lp'].every((i) => window.runs[i].states.some((s) => s.state === 'live')))
    for (let n = 6; n <= 10; n++) await write('a', 'POST', { tag: 'a', n })
    await expectMessages(tab, 'a-sse', events('a', 1, 10))
    await expectMessages(tab, 'a-lp', events('a', 1, 10))
    assert.ok(tab.requests.some((r) => r.live === 'sse'), 'an SSE request')
    assert.ok(tab.requests.some((r) => r.live === 'long-poll'), 'a long-poll request')
    assert.deepEqual(tab.requests.filter((r) => r.token || r.auth), [], 'the cookie alone: no token in a URL or header')
    assert.deepEqual(tab.responses.filter((r) => r.status >= 400), [], 'nothing refused')
    await closeRun(tab, 'a-sse')
    await closeRun(tab, 'a-lp')
  })

  await top.test('b: a token function on SSE (token= in the URL): every event', async () => {
    await create('b', events('b', 1, 5))
    const tab = await openPage('b')
    await follow(tab, 'b', { url: streamUrl('b'), kind: 'read', transport: 'sse' })
    await waitFor(tab, 'live', () => window.runs.b.states.some((s) => s.state === 'live'))
    for (let n = 6; n <= 10; n++) await write('b', 'POST', { tag: 'b', n })
    await expectMessages(tab, 'b', events('b', 1, 10))
    const sse = tab.requests.filter((r) => r.live === 'sse')
    assert.ok(sse.length >= 1 && sse.every((r) => used.has(r.token)), `the EventSource URL carries the token: ${JSON.stringify(sse)}`)
    assert.equal((await run(tab, 'b')).tokenCalls, 1, 'one token, asked for once')
    assert.deepEqual(tab.responses.filter((r) => r.status >= 400), [], 'nothing refused')
    // A write of the page (producer): its first token is refused, the function gives one that writes.
    const failed = await tab.page.evaluate(([u, v]) => window.append('b-write', { url: u, kind: ['expired', 'write'] }, v), [streamUrl('b'), { tag: 'b', n: 11 }])
    assert.equal(failed, null, 'the producer stored the event')
    await expectMessages(tab, 'b', events('b', 1, 11))
    const posts = tab.requests.filter((r) => r.method === 'POST')
    assert.equal(posts.length, 2, `one refused POST, one stored: ${JSON.stringify(posts)}`)
    assert.ok(posts.every((r) => /^Bearer /.test(r.auth || '') && used.has(r.auth.slice(7))), 'the POSTs carry "Authorization: Bearer"')
    assert.deepEqual(tab.responses.filter((r) => r.status >= 400).map((r) => r.status), [401], 'the expired token: 401')
  })

  await top.test('c: tokens expire mid-stream (4 s): fresh ones are asked for; every event once, in order', async () => {
    await create('c', events('c', 1, 5))
    const tab = await openPage('c')
    await follow(tab, 'c-sse', { url: streamUrl('c'), kind: 'short', ttl: 4, transport: 'sse' })
    await follow(tab, 'c-lp', { url: streamUrl('c'), kind: 'short', ttl: 4, transport: 'long-poll' })
    await follow(tab, 'c-401', { url: streamUrl('c'), kind: ['short', 'expired', 'short'], ttl: 4, transport: 'sse' })
    await waitFor(tab, 'all live', () => ['c-sse', 'c-lp', 'c-401'].every((i) => window.runs[i].states.some((s) => s.state === 'live')))
    // 11 s of writes: at least two expiries of every token.
    const until = Date.now() + 11_000
    let n = 5
    while (Date.now() < until) { await write('c', 'POST', { tag: 'c', n: ++n }); await sleep(200) }
    for (const id of ['c-sse', 'c-lp', 'c-401']) {
      await expectMessages(tab, id, events('c', 1, n))
      const r = await run(tab, id)
      assert.ok(r.tokenCalls >= 3, `${id}: the token function was asked again after expiries (${r.tokenCalls} calls)`)
      assert.deepEqual(r.errors.filter((e) => e.stopped), [], `${id}: never stopped`)
      if (id === 'c-401') {
        assert.ok(r.errors.some((e) => e.status === 401 && /expired/.test(e.reason)), `${id}: the refused token reported: ${JSON.stringify(r.errors)}`)
        assert.ok(r.states.some((s) => s.state === 'unauthorized') && r.states.at(-1).state === 'live', `${id}: unauthorized, then live again`)
      }
    }
    top.diagnostic(`c: statuses ${JSON.stringify(tab.responses.reduce((o, x) => ({ ...o, [x.status]: (o[x.status] || 0) + 1 }), {}))}, ` +
      `methods ${JSON.stringify([...new Set(pages.flatMap((p) => p.requests.map((q) => q.method)))])}`)
    assert.ok(tab.requests.filter((r) => r.live === 'sse').length >= 3, 'SSE reconnected with fresh tokens')
    const tokens = new Set(tab.requests.filter((r) => r.live === 'sse').map((r) => r.token))
    assert.ok(tokens.size >= 3, `SSE used ${tokens.size} different tokens`)
    for (const id of ['c-sse', 'c-lp', 'c-401']) await closeRun(tab, id)
  })

  await top.test('e: 403 (no read on the path) and 401 with a string token: the client stops and reports it', async () => {
    await create('e', events('e', 1, 2))
    const tab = await openPage('e')
    const expired = keys.token({ read: [`${BASE}/**`] }, { exp: nowS() - 3600, sub: 'page-string-expired' })
    used.add(expired)
    await follow(tab, 'e-403', { url: streamUrl('e'), kind: 'elsewhere', transport: 'sse' })
    await follow(tab, 'e-401', { url: streamUrl('e'), string: expired, transport: 'long-poll' })
    await waitFor(tab, 'both stopped', () => ['e-403', 'e-401'].every((i) => window.runs[i].errors.some((e) => e.stopped)))
    const stoppedAt = tab.requests.length
    await sleep(QUIET_MS)
    assert.deepEqual(tab.requests.slice(stoppedAt), [], `no request in the ${QUIET_MS} ms after both stopped`)
    const r403 = await run(tab, 'e-403')
    assert.equal(r403.states.at(-1).state, 'forbidden', 'onState: forbidden')
    const e403 = r403.errors.at(-1)
    assert.equal(e403.status, 403)
    assert.match(e403.reason, /read on/, 'onError has the server\'s reason')
    assert.deepEqual(r403.msgs, [], 'nothing delivered')
    const r401 = await run(tab, 'e-401')
    assert.equal(r401.states.at(-1).state, 'unauthorized', 'onState: unauthorized')
    assert.equal(r401.errors.at(-1).status, 401)
    assert.match(r401.errors.at(-1).reason, /expired/)
    assert.equal(r401.errors.length, 1, 'a string token is not retried')
    assert.ok(tab.requests.length <= 3, `a few requests in all: ${JSON.stringify(tab.requests)}`)
  })

  await top.test(`d (check): at most ${BUDGET_REQUESTS} requests in ${BUDGET_MS / 1000} s each, and reported`, async () => {
    const left = d.started + BUDGET_MS - Date.now()
    if (left > 0) await sleep(left)
    const counts = {}
    for (const x of d.tabs) {
      const inWindow = x.tab.requests.filter((r) => r.at - d.started <= BUDGET_MS)
      counts[x.id] = inWindow.length
      const r = await run(x.tab, x.id)
      await closeRun(x.tab, x.id)
      assert.ok(inWindow.length >= 2, `${x.id}: it kept trying (${inWindow.length} requests)`)
      assert.ok(inWindow.length <= BUDGET_REQUESTS,
        `${x.id}: ${inWindow.length} requests in ${BUDGET_MS} ms: ${JSON.stringify(inWindow.map((q) => ({ t: q.at - d.started, m: q.method, live: q.live })))}`)
      assert.ok(r.states.some((s) => s.state === 'unauthorized'), `${x.id}: onState reported unauthorized: ${JSON.stringify(r.states)}`)
      assert.ok(r.errors.length >= 2 && r.errors.every((e) => e.status === 401 && !e.stopped), `${x.id}: onError, 401, retrying: ${JSON.stringify(r.errors)}`)
      assert.ok(r.tokenCalls >= 2, `${x.id}: the function was asked again (${r.tokenCalls})`)
      assert.match(r.errors[0].reason, /expired/, `${x.id}: the server's reason`)
      assert.deepEqual(r.msgs, [], `${x.id}: nothing delivered`)
    }
    top.diagnostic(`requests in ${BUDGET_MS} ms: ${JSON.stringify(counts)}`)
  })

  await top.test('f: no token the page used appears in what lmstream and the web server wrote', async () => {
    assert.ok(used.size >= 10, `tokens used: ${used.size}`)
    // deploy/run's output (stdout and stderr of everything it started), before and after ready.
    const output = srv.logTail(1e6) + '\n' + serverOutput.join('')
    assert.match(output, /denied: .*sub=page-/, 'the log holds the denials (with sub), so it was captured')
    // Files: the deployment's directory (config, data) and deploy/run's run directory.
    const dirs = [srv.root]
    for (const pid of srv.livePids()) {
      const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((v) => v.startsWith('LMSTREAM_RUNDIR='))
      if (env) dirs.push(env.slice('LMSTREAM_RUNDIR='.length))
    }
    const needles = [...used].flatMap((t) => [t, t.split('.')[2]]) // the token, and its signature alone
    const leaks = needles.filter((t) => output.includes(t)).map((t) => `output: ${t.slice(0, 24)}...`)
    const patterns = path.join(keyDir, 'needles.txt')
    fs.writeFileSync(patterns, needles.join('\n') + '\n')
    const g = spawnSync('grep', ['-rlaF', '-f', patterns, '--', ...dirs], { encoding: 'utf8' })
    assert.ok(g.status === 0 || g.status === 1, `grep: ${g.stderr}`)
    for (const f of g.stdout.split('\n').filter(Boolean)) leaks.push(`file: ${f}`)
    top.diagnostic(`scanned ${output.length} bytes of output and ${dirs.join(', ')}`)
    assert.deepEqual(leaks, [], 'no token in the logs or files')
    for (const tab of pages) assert.deepEqual(tab.errors, [], `${tab.name}: no page error`)
  })
})

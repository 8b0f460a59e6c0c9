// Browser test of www/lmstream.js through the build demo (www/index.html) in headless Chromium, per deployment.
//
// Each scenario follows its own build, written by deploy/demo-producer while the page watches, and ends
// with the same check: once the producer has closed the stream, the events the page rendered equal a
// catch-up read of the stream (same messages, same order: no duplicate, no gap). The server ends SSE
// responses every few seconds (sse_lifetime), so every scenario also crosses ordinary reconnects.
//
//   reload     the page is reloaded twice while the producer appends; it resumes from its saved offset
//   outage     the browser is offline for 10 s mid-build, then back
//   old        EventSource removed before any page script: the long-poll path carries everything
//   proxy      every SSE answer is an empty event stream (a hostile proxy): the page moves to long-poll
//   tabs       two tabs sharing one connection (BroadcastChannel): one live socket on the daemon, same
//              final state in both; without sharing, two sockets (the count is real)
//   closed     a closed build: completion shown, no further request, also after a reload
//   reset      the stream deleted and created again behind the page's saved offset: 400, and the page
//              shows the new copy alone (onReset)
//   daemon     lmstream-live killed for good (deploy/run --no-live-restart): the page falls back to plain
//              reads through FastCGI and keeps up
//
//   LMSTREAM_TEST_SERVER   deployment (default lighttpd): lighttpd or apache (needs lmstream-live)
//   CHROMIUM               browser binary (default /usr/bin/chromium)
// Screenshots: browser/results/build-live-<server>.png (mid-build), build-<server>.png (finished)

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchBrowser, contents as readAll } from './lib/browser.mjs'
import { startServer, SERVER_KIND, REPO_ROOT, sleep } from '../integration/lib/server.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const RESULTS = path.join(HERE, 'results')
const PRODUCER = path.join(REPO_ROOT, 'deploy', 'demo-producer')
const T = 60_000 // generous: the machine is slow and shared
const RUN = Date.now().toString(36)

let srv, browser
const producers = new Set()

before(async () => {
  srv = await startServer({
    label: 'browser-client',
    config: { sse_lifetime: 4000, long_poll_timeout: 3000 },
    liveRestart: false, // the last scenario kills lmstream-live for good
  })
  browser = await launchBrowser()
})

after(async () => {
  for (const p of producers) p.kill('SIGTERM')
  await browser?.close()
  await srv?.stop()
})

// ------------------------------------------------------------------ helpers

/** Run deploy/demo-producer into demo/NAME; resolves when it has closed the stream. */
function produce(name, { interval = 0.1, units = 10 } = {}) {
  const child = spawn(PRODUCER, ['--url', srv.url, '--name', name, '--interval', String(interval), '--units', String(units)],
    { stdio: ['ignore', 'ignore', 'pipe'] })
  producers.add(child)
  let err = ''
  child.stderr.on('data', (c) => { err += c })
  return new Promise((resolve, reject) => child.on('exit', (code) => {
    producers.delete(child)
    if (code === 0) resolve()
    else reject(new Error(`demo-producer ${name} exited ${code}: ${err}\n${srv.logTail(15)}`))
  }))
}

const streamUrl = (name) => `${srv.url}/v1/stream/demo/${name}`

/** The whole stream, by catch-up reads from -1 until up to date. */
const contents = (name) => readAll(streamUrl(name))

/** Open the demo on demo/NAME in `context`; records the page's requests to that stream. */
async function openPage(context, name, query = '') {
  const page = await context.newPage()
  const tab = { page, name, requests: [], responses: [], errors: [] }
  const mine = (u) => u.startsWith(streamUrl(name) + '?') || u === streamUrl(name)
  page.on('request', (r) => {
    if (!mine(r.url())) return
    const q = new URL(r.url()).searchParams
    tab.requests.push({ at: Date.now(), offset: q.get('offset'), live: q.get('live') })
  })
  page.on('response', async (r) => {
    if (!mine(r.url())) return
    const q = new URL(r.url()).searchParams
    tab.responses.push({ at: Date.now(), live: q.get('live'), status: r.status(), front: await r.headerValue('x-lmstream-front').catch(() => null) })
  })
  page.on('pageerror', (e) => tab.errors.push(String(e)))
  const res = await page.goto(`${srv.url}/${query}#demo/${name}`)
  assert.equal(res.status(), 200, `GET / on ${SERVER_KIND} serves the demo page (www/index.html)`)
  return tab
}

const status = (tab) => tab.page.evaluate(() => ({ ...document.getElementById('status').dataset }))
const rendered = (tab) => tab.page.evaluate(() => window.lmDemo ? window.lmDemo.events : null)

async function waitFor(tab, what, fn, arg, timeout = T) {
  try {
    await tab.page.waitForFunction(fn, arg, { timeout, polling: 100 })
  } catch (e) {
    throw new Error(`${what} not reached within ${timeout} ms; status ${JSON.stringify(await status(tab).catch(() => null))}\n${srv.logTail(15)}`)
  }
}

const waitCount = (tab, n) => waitFor(tab, `${n} events`, (k) => Number(document.getElementById('status').dataset.count) >= k, n)
const waitClosed = (tab) => waitFor(tab, 'closed state', () => document.getElementById('status').dataset.state === 'closed')

/** The page shows exactly the stream: every event once, in order, up to the closed end. */
async function expectComplete(tab) {
  await waitClosed(tab)
  const truth = await contents(tab.name)
  assert.ok(truth.closed, 'the producer closed the stream')
  const shown = await rendered(tab)
  const ns = shown.map((e) => e.n)
  assert.deepEqual(ns, truth.events.map((e) => e.n), 'the page rendered every event once, in order')
  assert.deepEqual(shown, truth.events, 'rendered events equal the stream contents')
  assert.equal(ns.length, truth.events.at(-1).n, 'no gap: events numbered 1..N')
  const st = await status(tab)
  assert.equal(st.offset, truth.offset, 'the page ends at the stream tail offset')
  assert.equal(st.count, String(truth.events.length), 'the status line counts every event')
  assert.ok(await tab.page.isVisible('#done'), 'completion is shown')
  assert.deepEqual(tab.errors, [], 'no uncaught page errors')
}

/** The middle value: a count sampled while one SSE response ends and the next begins may be one off. */
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]

/**
 * Live responses (SSE and long-poll) the server has open now, from its own
 * gauge (lmstream_live_connections in the metrics). Not its TCP connections:
 * Apache keeps a connection to the daemon in its pool for ttl = 5 s after a
 * response ends, and the tabs' SSE responses end every 4 s here
 * (sse_lifetime), so a pooled idle connection was counted as a tab's.
 */
async function liveResponses() {
  const text = await (await fetch(`${srv.url}/__lmstream/metrics`)).text()
  let n = 0
  for (const m of text.matchAll(/^lmstream_live_connections\{mode="[^"]+"\} (\d+)$/gm)) n += Number(m[1])
  return n
}

/** Live responses open (liveResponses()), sampled `times` times over about `ms`. */
async function samples(times, ms) {
  const out = []
  for (let i = 0; i < times; i++) { out.push(await liveResponses()); await sleep(ms / times) }
  return out
}

// ------------------------------------------------------------------ scenarios

test(`browser client on ${SERVER_KIND}`, async (t) => {
  await t.test('reload mid-stream: resumes from the saved offset, no duplicate, no gap', async () => {
    const name = `reload-${RUN}`
    const context = await browser.newContext()
    const tab = await openPage(context, name)
    const done = produce(name, { interval: 0.1, units: 12 })
    for (const at of [15, 45]) {
      await waitCount(tab, at)
      if (at === 45) { // mid-build: steps and tool calls in every state
        fs.mkdirSync(RESULTS, { recursive: true })
        await tab.page.screenshot({ path: path.join(RESULTS, `build-live-${SERVER_KIND}.png`) })
      }
      const before = (await status(tab)).offset
      const from = tab.requests.length
      await tab.page.reload()
      await tab.page.waitForFunction(() => window.lmDemo && window.lmDemo.sub, null, { timeout: T })
      await waitFor(tab, 'a read after the reload', () => window.lmDemo.history.some((h) => h.state !== 'connecting'))
      const first = tab.requests[from]
      assert.ok(first, 'the page read the stream again after the reload')
      assert.notEqual(first.offset, '-1', 'not from the start: from the saved offset')
      assert.ok(first.offset >= before, `first read after reload at ${first.offset}, saved ${before} or later`)
    }
    await done
    await expectComplete(tab)
    assert.ok(tab.requests.filter((r) => r.live === 'sse').length >= 3, 'followed over SSE, across reloads and server-side ends')
    fs.mkdirSync(RESULTS, { recursive: true })
    await tab.page.screenshot({ path: path.join(RESULTS, `build-${SERVER_KIND}.png`), fullPage: true })
    await context.close()
  })

  await t.test('closed stream: completion shown, no further request, also after a reload', async () => {
    const name = `reload-${RUN}` // closed by the previous scenario
    const context = await browser.newContext()
    const tab = await openPage(context, name)
    await expectComplete(tab)
    const n = tab.requests.length
    assert.ok(n >= 1, 'a fresh page read the stream')
    await tab.page.waitForTimeout(5000) // absence window (longer than any retry delay), not a timing assertion
    assert.equal(tab.requests.length, n, `no request once closed: ${JSON.stringify(tab.requests.slice(n))}`)
    await tab.page.reload()
    await waitClosed(tab)
    await tab.page.waitForTimeout(2000)
    assert.equal(tab.requests.length, n, 'a reload of a closed build makes no request: it is complete')
    await expectComplete(tab)
    await context.close()
  })

  await t.test('another copy: behind a saved offset past the tail, the page starts over (onReset)', async () => {
    // The stream is deleted and created again (as after a restore of an older backup): the offset the page
    // saved lies past the new tail, the server answers 400, and the page shows the new copy alone.
    const name = `reset-${RUN}`
    const url = streamUrl(name)
    const put = () => fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/json' } })
    const post = (events) => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(events) })
    assert.equal((await put()).status, 201)
    assert.equal((await post([1, 2, 3, 4, 5].map((n) => ({ type: 'note', n, text: `first copy ${n}` })))).status, 204)
    const context = await browser.newContext()
    const first = await openPage(context, name)
    await waitCount(first, 5)
    await first.page.close()
    assert.equal((await fetch(url, { method: 'DELETE' })).status, 204)
    assert.equal((await put()).status, 201)
    assert.equal((await post([1, 2].map((n) => ({ type: 'note', n, text: `second copy ${n}` })))).status, 204)
    const tab = await openPage(context, name)
    await waitFor(tab, 'the second copy alone', () => {
      const e = window.lmDemo && window.lmDemo.events
      return Array.isArray(e) && e.length === 2 && e[0].text === 'second copy 1'
    })
    assert.deepEqual(await rendered(tab), (await contents(name)).events, 'the page shows the new copy, once')
    assert.ok(tab.responses.some((r) => r.status === 400), 'the saved offset was refused with 400')
    assert.deepEqual(tab.errors, [], 'no uncaught page errors')
    await context.close()
  })

  await t.test('outage: offline for 10 s mid-build, then everything arrives once', async () => {
    const name = `outage-${RUN}`
    const context = await browser.newContext()
    const tab = await openPage(context, name)
    const done = produce(name, { interval: 0.15, units: 14 })
    await waitCount(tab, 10)
    await context.setOffline(true)
    const cut = { count: Number((await status(tab)).count), requests: tab.requests.length }
    await waitFor(tab, 'offline or reconnecting state',
      () => ['offline', 'reconnecting'].includes(document.getElementById('status').dataset.state))
    await sleep(10_000)
    const during = await status(tab)
    assert.equal(Number(during.count), cut.count, 'nothing arrives while offline')
    await context.setOffline(false)
    await done
    await expectComplete(tab)
    assert.ok(tab.requests.slice(cut.requests).every((r) => r.offset !== '-1'), 'after the outage, reads resume from offsets, never from the start')
    await context.close()
  })

  await t.test('old browser: no EventSource, long-poll delivers everything', async () => {
    const name = `old-${RUN}`
    const context = await browser.newContext()
    await context.addInitScript(() => { delete window.EventSource })
    const tab = await openPage(context, name)
    assert.equal(await tab.page.evaluate(() => typeof window.EventSource), 'undefined', 'EventSource is gone')
    const done = produce(name, { interval: 0.1, units: 8 })
    await waitCount(tab, 5)
    assert.equal((await status(tab)).transport, 'long-poll', 'the page says it follows by long-poll')
    await done
    await expectComplete(tab)
    assert.equal(tab.requests.filter((r) => r.live === 'sse').length, 0, 'no SSE request')
    assert.ok(tab.requests.filter((r) => r.live === 'long-poll').length >= 3, 'long-poll requests carried the stream')
    assert.ok(tab.responses.some((r) => r.live === 'long-poll' && r.front === 'live'), 'answered by lmstream-live')
    await context.close()
  })

  await t.test('hostile proxy: SSE answers carry nothing, the page moves to long-poll by itself', async () => {
    const name = `proxy-${RUN}`
    const context = await browser.newContext()
    // Like a proxy that buffers or cuts event streams: every SSE request gets an empty event stream.
    await context.route((u) => u.searchParams.get('live') === 'sse', (route) =>
      route.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream' }, body: ': buffered\n\n' }))
    const tab = await openPage(context, name)
    const done = produce(name, { interval: 0.1, units: 4 })
    await waitFor(tab, 'long-poll transport', () => document.getElementById('status').dataset.transport === 'long-poll')
    await done
    await expectComplete(tab)
    assert.ok(tab.requests.some((r) => r.live === 'sse'), 'SSE was tried first')
    assert.ok(tab.responses.some((r) => r.live === 'long-poll' && r.status === 200), 'long-poll carried the events')
    await context.close()
  })

  await t.test('two tabs: with BroadcastChannel sharing, one live connection; same final state', async () => {
    // Control: without sharing, two tabs hold two live responses (the count is real).
    const plain = await browser.newContext()
    const idle = `tabs-plain-${RUN}`
    const p1 = await openPage(plain, idle)
    const p2 = await openPage(plain, idle)
    await fetch(streamUrl(idle), { method: 'PUT', headers: { 'Content-Type': 'application/json' } })
    await waitFor(p1, 'live', () => document.getElementById('status').dataset.state === 'live')
    await waitFor(p2, 'live', () => document.getElementById('status').dataset.state === 'live')
    // (a live response of an earlier scenario's closed page ends once the
    // server sees the hang-up, at the latest with sse_lifetime)
    for (let i = 0; i < 40 && (await liveResponses()) > 2; i++) await sleep(200)
    const unshared = await samples(10, 3000)
    const t0 = p1.requests[0]?.at || 0
    const timeline = (tab) => [...tab.requests.map((r) => `+${r.at - t0} ms GET offset=${r.offset} live=${r.live}`),
      ...tab.responses.map((r) => `+${r.at - t0} ms ${r.status} live=${r.live} from ${r.front}`)].join('; ')
    assert.equal(median(unshared), 2, `two unshared tabs: two live responses (${unshared})\n` +
      `tab 1: ${timeline(p1)}\ntab 2: ${timeline(p2)}`)
    await plain.close()
    // The daemon drops those connections once it sees the hang-ups (at the latest when sse_lifetime ends).
    for (let i = 0; i < 100 && srv.liveConnections() > 0; i++) await sleep(200)
    assert.equal(srv.liveConnections(), 0, 'closed tabs leave no connection behind')

    const name = `tabs-${RUN}`
    const context = await browser.newContext()
    const a = await openPage(context, name, '?share=1')
    const b = await openPage(context, name, '?share=1')
    const done = produce(name, { interval: 0.1, units: 12 })
    await waitCount(a, 10)
    await waitCount(b, 10)
    const shared = await samples(16, 5000)
    assert.equal(median(shared), 1, `two sharing tabs: one live response (${shared})`)
    const roles = await Promise.all([a, b].map((x) => x.page.evaluate(() => window.lmDemo.sub.role)))
    assert.deepEqual([...roles].sort(), ['follower', 'leader'], 'one tab leads, the other follows')
    const follower = roles[0] === 'follower' ? a : b
    assert.equal(follower.requests.filter((r) => r.live).length, 0, `the follower opened no live request: ${JSON.stringify(follower.requests)}`)
    await done
    await expectComplete(a)
    await expectComplete(b)
    assert.deepEqual(await rendered(a), await rendered(b), 'both tabs show the same events')
    await context.close()
  })

  await t.test('daemon down for good: falls back to plain reads through FastCGI and keeps up', async () => {
    const name = `daemon-${RUN}`
    const context = await browser.newContext()
    const tab = await openPage(context, name)
    const done = produce(name, { interval: 0.2, units: 14 })
    await waitCount(tab, 8)
    const pids = srv.livePids()
    assert.equal(pids.length, 1, 'one lmstream-live')
    const gone = srv.waitLog(/lmstream-live exited .*not restarted/, 10_000)
    process.kill(pids[0], 'SIGKILL')
    await gone
    const killed = Date.now()
    await waitFor(tab, 'polling state', () => window.lmDemo.history.some((h) => h.state === 'polling'))
    await done
    await expectComplete(tab)
    assert.deepEqual(srv.livePids(), [], 'lmstream-live stayed down')
    const later = tab.responses.filter((r) => r.at > killed && r.status === 200)
    assert.ok(later.length >= 2, 'reads succeeded after the daemon died')
    assert.ok(later.every((r) => !r.live && r.front === 'fcgi'), `answered by FastCGI with plain reads: ${JSON.stringify(later)}`)
    await context.close()
  })
})

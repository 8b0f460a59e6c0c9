// Browser test of the status page (www/status.html + status.js) in headless Chromium, against a deployment's
// real metrics endpoint (metrics_path, default /__lmstream/metrics).
//
// Scenarios, in order, on one deployment with auth = token (writes need a token; the metrics are open to
// loopback, which this test and its browser are):
//   a  the page's parser and arithmetic, in the page: labels in any order, escapes, +Inf/NaN, comments and
//      unknown series skipped, counter resets, p99 interpolated in the bucket as histogram_quantile does
//   b  opened from loopback without a token it goes live and draws five charts; map use shows a percentage
//   c  under load (a writer appending in a loop, SSE readers through the web server) appends/s,
//      deliveries/s and live connections become > 0, commit p99 shows a number, and the charts draw it
//   d  once the load stops appends/s falls back to 0 and commit p99 shows "–" (no commits in the interval)
//   e  an invalid Bearer token gets 401 even from loopback: the page shows the server's reason and the
//      token field; a token granting admin on ** entered there brings it back to live
//   f  a metrics path the server does not have is shown as an error; the page keeps polling
//   g  with the server stopped the page says so (state "down") and keeps polling
// No page error at any point. Waits are up to 30 s each (the machine is slow and shared).
//
//   LMSTREAM_TEST_SERVER          deployment (default lighttpd), see ../integration/lib/server.mjs
//   CHROMIUM                      browser binary (default /usr/bin/chromium)
//   LMSTREAM_STATUS_SCREENSHOT    a PNG path: in c, keep the load going (varying, with SSE and long-poll
//                                 readers) for LMSTREAM_STATUS_SCREENSHOT_SECONDS (default 90) and save a
//                                 screenshot of the page there, e.g. for the README:
//                                   LMSTREAM_STATUS_SCREENSHOT=$PWD/../www/status.png node --test browser/status.test.mjs
//
// Run: cd tests && node --test browser/status.test.mjs    (the page at the end: browser/results/status-<server>.png)

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchBrowser, inSequence } from './lib/browser.mjs'
import { startServer, SERVER_KIND, sleep } from '../integration/lib/server.mjs'
import { sseParser } from '../integration/lib/http.mjs'
import { makeKeys, runOwner } from '../integration/lib/tokens.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const RESULTS = path.join(HERE, 'results')
const T = 30_000 // per wait
const SHOT = process.env.LMSTREAM_STATUS_SCREENSHOT || ''
const SHOT_SECONDS = Number(process.env.LMSTREAM_STATUS_SCREENSHOT_SECONDS || 90)
const BASE = 'status-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 6)
const CHARTS = ['appends', 'deliveries', 'live', 'p99', 'map']

let srv, browser, keys, keyDir, writeToken, adminToken
let tab // { context, page, errors }

before(async () => {
  keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-status-keys-'))
  keys = makeKeys(keyDir, { owner: runOwner() })
  writeToken = keys.token({ read: [`${BASE}/**`], write: [`${BASE}/**`] }, { sub: 'status-load' })
  adminToken = keys.token({ admin: ['**'] }, { sub: 'status-admin' })
  srv = await startServer({ label: 'status', config: { auth: 'token', auth_key: keys.authKey } })
  browser = await launchBrowser()
})

after(async () => {
  if (tab) {
    fs.mkdirSync(RESULTS, { recursive: true })
    await tab.page.screenshot({ path: path.join(RESULTS, `status-${SERVER_KIND}.png`), fullPage: true }).catch(() => {})
  }
  await browser?.close()
  await srv?.stop()
  if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true })
})

// ------------------------------------------------------------------ helpers

/** A fresh tab on the status page (query: e.g. "?interval=500"); init(page) runs before it loads. */
async function openPage(query = '', init) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
  const page = await context.newPage()
  const t = { context, page, errors: [], scrapes: 0 }
  page.on('pageerror', (e) => t.errors.push(String(e.stack || e)))
  page.on('request', (r) => { if (/metrics/.test(new URL(r.url()).pathname)) t.scrapes++ })
  if (init) await init(page)
  const res = await page.goto(`${srv.url}/status.html${query}`)
  assert.equal(res.status(), 200, `GET /status.html on ${SERVER_KIND}`)
  return t
}

/** What the page shows: its state and reason, and per chart the text and data-* of its value. */
function shown(t) {
  return t.page.evaluate((charts) => {
    const out = {
      state: document.getElementById('status').dataset.state,
      detail: document.getElementById('detail').textContent,
      reason: document.getElementById('reason').hidden ? null : document.getElementById('reason').textContent,
    }
    for (const id of charts) {
      const el = document.getElementById(id)
      out[id] = { text: el.textContent.replace(/\s+/g, ' ').trim(), ...el.dataset }
    }
    return out
  }, CHARTS)
}

/** Polls what the page shows until ok(shown) holds; fails at once on a page error, else after T. */
async function waitShown(t, what, ok, timeout = T) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    if (t.errors.length) throw new Error(`page error while waiting for ${what}:\n${t.errors.join('\n')}`)
    last = await shown(t)
    if (ok(last)) return last
    if (Date.now() > deadline) {
      throw new Error(`${what} not shown within ${timeout} ms; the page shows ${JSON.stringify(last, null, 1)}\n${srv.logTail(15)}`)
    }
    await sleep(250)
  }
}

const num = (s) => (s === '' || s === undefined ? NaN : Number(s))

/** Pixels of a chart's canvas drawn in the page's accent colour (the data lines, not the grey frame). */
function accentPixels(t, id) {
  return t.page.evaluate((id) => {
    const c = document.getElementById(id + '-chart')
    const { data } = c.getContext('2d').getImageData(0, 0, c.width, c.height)
    let n = 0
    for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 200 && data[i + 2] > data[i] + 60) n++
    return n
  }, id)
}

/**
 * Load on the deployment, through the web server: one stream of BASE, a writer appending to it in a loop
 * (pausing `pause()` ms between appends), `sse` SSE readers following it and `longPoll` long-poll readers
 * waiting on a quiet stream. stop() ends it all and resolves with { appended, received (SSE bytes), errors }.
 */
async function startLoad({ sse = 1, longPoll = 0, pause = () => 0 } = {}) {
  const url = `${srv.url}/v1/stream/${BASE}/load-${Math.random().toString(36).slice(2, 8)}`
  const auth = { Authorization: `Bearer ${writeToken}` }
  const created = await fetch(url, { method: 'PUT', headers: { ...auth, 'Content-Type': 'application/json' } })
  assert.ok(created.status === 201 || created.status === 200, `PUT ${url}: ${created.status}`)
  const abort = new AbortController()
  let running = true
  const stats = { appended: 0, received: 0, errors: [] }

  const writer = (async () => {
    for (let n = 1; running; n++) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ n, at: Date.now(), text: 'load '.repeat(1 + (n % 20)) }),
        signal: abort.signal,
      }).catch((e) => ({ status: 0, error: e }))
      if (res.status === 200 || res.status === 204) stats.appended++
      else if (running) { stats.errors.push(`POST ${res.status}`); await sleep(100) }
      const ms = pause()
      if (ms > 0) await sleep(ms)
    }
  })()

  // An SSE reader resumes where it was (the offset of its last control event) when the server ends the
  // response, as a real client does: reading from the start again would count every message once more.
  const sseReader = async () => {
    let offset = '-1'
    const feed = sseParser({
      onEvent(type, data) {
        if (type === 'control') offset = JSON.parse(data).streamNextOffset || offset
      },
    })
    while (running) {
      try {
        const res = await fetch(`${url}?offset=${encodeURIComponent(offset)}&live=sse`, { headers: auth, signal: abort.signal })
        if (res.status !== 200) { stats.errors.push(`SSE ${res.status}`); await sleep(200); continue }
        const text = new TextDecoder()
        for await (const chunk of res.body) { stats.received += chunk.length; feed(text.decode(chunk, { stream: true })) }
      } catch { if (running) await sleep(200) }
    }
  }
  // Long-poll readers wait on a stream of their own that nobody writes to: each request stays open until
  // long_poll_timeout, as idle followers do, so the gauge shows them.
  const quiet = `${url}-quiet`
  if (longPoll) {
    const res = await fetch(quiet, { method: 'PUT', headers: { ...auth, 'Content-Type': 'application/json' } })
    assert.ok(res.status === 201 || res.status === 200, `PUT ${quiet}: ${res.status}`)
  }
  const longPollReader = async () => {
    while (running) {
      try {
        const res = await fetch(`${quiet}?offset=now&live=long-poll`, { headers: auth, signal: abort.signal })
        await res.arrayBuffer()
      } catch { if (running) await sleep(200) }
    }
  }
  const readers = [...Array(sse)].map(sseReader).concat([...Array(longPoll)].map(longPollReader))

  return {
    stats,
    async stop() {
      running = false
      abort.abort()
      await Promise.allSettled([writer, ...readers])
      return stats
    },
  }
}

// ------------------------------------------------------------------ scenarios

test(`status page on ${SERVER_KIND}`, async (top) => {
  const t = inSequence(top)

  await t.test('a: the parser and the arithmetic of the page (in the page)', async () => {
    tab = await openPage()
    const r = await tab.page.evaluate(() => {
      const S = StatusMetrics
      const text = [
        '# HELP lmstream_live_connections Live reads open now.',
        '# TYPE lmstream_live_connections gauge',
        'lmstream_live_connections{node="a\\\\b\\"c\\nd",mode="sse"} 3',
        'lmstream_live_connections{ mode = "long-poll" , } 2 1712345678000',
        'lmstream_commit_seconds_bucket{le="0.001"} 10',
        'lmstream_commit_seconds_bucket{le="0.01"} 20',
        'lmstream_commit_seconds_bucket{le="+Inf"} 20',
        'lmstream_appended_messages_total 1.5e3',
        'lmstream_something_new{x="}"} NaN',
        'not a sample line at all',
        'lmstream_map_used_bytes 1048576',
        'lmstream_map_size_bytes 4194304',
        'lmstream_build_info{version="1.2.3"} 1',
        '',
      ].join('\n')
      const samples = S.parseMetrics(text)
      const snap = S.snapshotOf(samples)
      const b = (le, count) => ({ le, count })
      return {
        names: samples.map((s) => s.name),
        escaped: samples[0].labels.node,
        nan: Number.isNaN(samples.find((s) => s.name === 'lmstream_something_new').value),
        inf: S.parseValue('+Inf'),
        snap: { ...snap, buckets: snap.buckets.map((x) => [x.le === Infinity ? 'Inf' : x.le, x.count]) },
        growth: S.increase(100, 130),
        reset: S.increase(100, 7),
        p99: S.quantile(0.99, [b(0.001, 10), b(0.01, 20), b(Infinity, 20)]),
        p50: S.quantile(0.5, [b(0.001, 10), b(0.01, 20), b(Infinity, 20)]),
        inInf: S.quantile(0.99, [b(0.001, 10), b(0.01, 20), b(Infinity, 30)]),
        none: S.quantile(0.99, [b(0.001, 0), b(Infinity, 0)]),
        deltas: S.bucketIncrease([b(0.001, 5), b(Infinity, 8)], [b(0.001, 9), b(Infinity, 20)]).map((x) => x.count),
        restarted: S.bucketIncrease([b(0.001, 5), b(Infinity, 8)], [b(0.001, 1), b(Infinity, 2)]).map((x) => x.count),
        point: S.pointOf({ appended: 100, delivered: 10, buckets: [b(0.001, 5), b(Infinity, 5)] },
          { appended: 120, delivered: 4, longPoll: 1, sse: 2, mapUsed: 1, mapSize: 4, buckets: [b(0.001, 5), b(Infinity, 5)] }, 2),
      }
    })
    assert.deepEqual(r.names, ['lmstream_live_connections', 'lmstream_live_connections', 'lmstream_commit_seconds_bucket',
      'lmstream_commit_seconds_bucket', 'lmstream_commit_seconds_bucket', 'lmstream_appended_messages_total',
      'lmstream_something_new', 'lmstream_map_used_bytes', 'lmstream_map_size_bytes', 'lmstream_build_info'],
    'every sample line, comments and a malformed line skipped')
    assert.equal(r.escaped, 'a\\b"c\nd', 'label values unescaped')
    assert.ok(r.nan, 'NaN parsed')
    assert.equal(r.inf, Infinity, '+Inf parsed')
    assert.deepEqual(r.snap, {
      appended: 1500, delivered: null, longPoll: 2, sse: 3, buckets: [[0.001, 10], [0.01, 20], ['Inf', 20]],
      mapUsed: 1048576, mapSize: 4194304, streams: null, version: '1.2.3',
    }, 'the snapshot: labels in any order, a timestamp ignored, missing series null')
    assert.equal(r.growth, 30, 'a counter that grew')
    assert.equal(r.reset, 7, 'a counter that went down restarted from 0: no negative rate')
    assert.ok(Math.abs(r.p99 - 0.00982) < 1e-12, `p99 interpolated within (0.001, 0.01]: ${r.p99}`)
    assert.equal(r.p50, 0.001, 'p50 at the top of the first bucket')
    assert.equal(r.inInf, 0.01, 'a rank in the +Inf bucket gives the highest finite bound')
    assert.equal(r.none, null, 'no observations: no quantile')
    assert.deepEqual(r.deltas, [4, 12], 'bucket increases between scrapes')
    assert.deepEqual(r.restarted, [1, 2], 'a histogram that went down restarted: counted whole')
    assert.deepEqual(r.point, { appends: 10, deliveries: 2, longPoll: 1, sse: 2, p99: null, mapPct: 25 },
      'a point: rates per second (a reset delivered counter counts whole), p99 null without commits, map %')
  })

  await t.test('b: from loopback, without a token, the page goes live and draws five charts', async () => {
    const s = await waitShown(tab, 'state live with map use', (s) => s.state === 'live' && s.map.value !== '')
    assert.equal(s.reason, null, 'no problem shown')
    assert.match(s.map.text, /^(< )?\d[\d.]* % [\d.]+ of [\d.]+ MiB$/, `map use as a percentage, with used and total in MiB: ${s.map.text}`)
    assert.ok(num(s.map.value) > 0 && num(s.map.value) <= 100, `map use ${s.map.value} %`)
    assert.ok(num(s.map.used) > 0 && num(s.map.used) <= num(s.map.size), `map used ${s.map.used} of ${s.map.size}`)
    const canvases = await tab.page.$$eval('canvas', (cs) => cs.map((c) => ({ id: c.id, w: c.width, h: c.height, label: c.getAttribute('aria-label') })))
    assert.deepEqual(canvases.map((c) => c.id), CHARTS.map((id) => `${id}-chart`), 'five charts, in order')
    for (const c of canvases) {
      assert.ok(c.w > 100 && c.h > 50, `${c.id} has a size: ${c.w}x${c.h}`)
      assert.match(c.label, /last 5 minutes: now /, `${c.id} has a text alternative with its value: ${c.label}`)
    }
    assert.match(await tab.page.textContent('#version'), /^lmstream \d+\.\d+/, 'the version from lmstream_build_info')
    assert.ok(await tab.page.isHidden('#token'), 'no token field needed')
  })

  await t.test('c: under load, appends/s, deliveries/s and live connections are > 0 and p99 is a number', async () => {
    const accentBefore = await accentPixels(tab, 'appends')
    // For the screenshot: a rate that varies (pauses of 0 to 40 ms) and both kinds of readers.
    const load = SHOT
      ? await startLoad({ sse: 3, longPoll: 2, pause: () => Math.round(17 + 12 * Math.sin(Date.now() / 9000)) })
      : await startLoad({ sse: 2 })
    try {
      const s = await waitShown(tab, 'appends, deliveries and live connections > 0, p99 a number',
        (s) => num(s.appends.value) > 0 && num(s.deliveries.value) > 0 && num(s.live.value) > 0 && num(s.p99.value) > 0)
      assert.match(s.appends.text, /^[\d.]+ appends\/s$/, `appends/s as text: ${s.appends.text}`)
      assert.match(s.deliveries.text, /^[\d.]+ messages\/s$/, `deliveries/s as text: ${s.deliveries.text}`)
      assert.ok(num(s.live.sse) > 0, `SSE connections counted: ${JSON.stringify(s.live)}`)
      assert.match(s.p99.text, /^[\d.]+ ms$/, `commit p99 in ms: ${s.p99.text}`)
      assert.ok(num(s.p99.value) < 60_000, `a plausible p99: ${s.p99.value} ms`)
      assert.match(s.map.text, /^(< )?[\d.]+ % /, 'map use still a percentage')
      assert.ok(await accentPixels(tab, 'appends') > accentBefore, 'the appends chart drew the new rate')
      const label = await tab.page.getAttribute('#deliveries-chart', 'aria-label')
      assert.doesNotMatch(label, /now unknown/, `the chart's text alternative has the rate: ${label}`)
      if (SHOT) {
        await sleep(SHOT_SECONDS * 1000) // the charts fill with a realistic minute or two
        await tab.page.screenshot({ path: SHOT, fullPage: true })
      }
    } finally {
      const stats = await load.stop()
      assert.ok(stats.appended > 0 && stats.received > 0, `the load ran: ${JSON.stringify(stats)}`)
    }
  })

  await t.test('d: once the load stops, appends/s is 0 again and p99 shows "–"', async () => {
    const s = await waitShown(tab, 'appends/s 0 and no p99', (s) => s.appends.value === '0' && s.p99.value === '')
    assert.equal(s.p99.text.split(' ')[0], '–', 'p99 with no commits in the interval')
    assert.equal(s.state, 'live')
    assert.deepEqual(tab.errors, [], 'no page errors')
  })

  await t.test('e: an invalid token gets 401 with its reason and the token field; an admin token fixes it', async () => {
    const bad = await openPage('?interval=500',
      (page) => page.addInitScript(() => sessionStorage.setItem('lmstream.status.token', 'not-a-token')))
    try {
      const s = await waitShown(bad, 'state unauthorized', (s) => s.state === 'unauthorized')
      assert.match(s.reason, /^The server answered 401: \S/, `the server's reason is shown: ${s.reason}`)
      assert.ok(await bad.page.isVisible('#token'), 'the token field is shown')
      assert.equal(s.appends.value, '', 'no numbers without access')
      await bad.page.getByLabel('Token').fill(adminToken)
      await bad.page.getByRole('button', { name: 'Use' }).click()
      await waitShown(bad, 'state live with an admin token', (s) => s.state === 'live' && s.map.value !== '')
      assert.equal(await bad.page.evaluate(() => sessionStorage.getItem('lmstream.status.token')), adminToken,
        'the token is kept in sessionStorage')
      assert.deepEqual(bad.errors, [], 'no page errors')
    } finally {
      await bad.context.close()
    }
  })

  await t.test('f: a metrics path the server lacks is an error, and the page keeps polling', async () => {
    const lost = await openPage('?metrics=/__lmstream/no-such-metrics&interval=300')
    try {
      const s = await waitShown(lost, 'state error, then more scrapes', (s) => s.state === 'error' && lost.scrapes >= 3)
      assert.match(s.reason, /answered 4\d\d|no lmstream metrics/, `the problem is shown: ${s.reason}`)
      assert.match(await lost.page.textContent('#source'), /no-such-metrics/, '?metrics= is the path polled')
      assert.deepEqual(lost.errors, [], 'no page errors')
    } finally {
      await lost.context.close()
    }
  })

  await t.test('g: with the server stopped the page shows it is down, and keeps trying', async () => {
    await srv.stop()
    const s = await waitShown(tab, 'state down', (s) => s.state === 'down')
    assert.match(s.reason, /^No answer from \/__lmstream\/metrics/, `the failure is shown: ${s.reason}`)
    const n = tab.scrapes
    await waitShown(tab, 'more scrapes while down', (s) => s.state === 'down' && tab.scrapes >= n + 2)
    assert.deepEqual(tab.errors, [], 'no page errors')
  })
})

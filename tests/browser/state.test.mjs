// Browser test of LmStream.follow({ snapshot }) with LmStream.stateMap() (www/lmstream.js) on a State stream,
// in headless Chromium, per deployment.
//
// Node appends State Protocol change events (inserts, updates, upserts, deletes over 50 keys of two types, and
// one reset) while a page follows the stream: it starts from the server's snapshot (GET ?snapshot) and applies
// every later change event to a stateMap. What a user relies on:
//
//   snapshot: true      a fresh page's first request is ?snapshot; a reload mid-stream restores the saved map and
//                       reads on from the saved offset (no new snapshot, not from -1); the events the page applied
//                       are exactly the stream after the snapshot's offset, each once, in order; the final map
//                       equals the server's GET ?snapshot
//   snapshot: 'always'  a reload reads ?snapshot again instead of the saved state, and the map still ends equal
//                       to the server's snapshot
//
// The page is this test's own HTML, served on the server's origin by Playwright routing; it loads the
// deployment's /lmstream.js. The server ends SSE responses every 4 s (sse_lifetime), so reconnects happen too.
//
//   LMSTREAM_TEST_SERVER   deployment (default lighttpd): lighttpd or apache (they serve www/)
//   CHROMIUM               browser binary (default /usr/bin/chromium)

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { launchBrowser } from './lib/browser.mjs'
import { startServer, SERVER_KIND, sleep } from '../integration/lib/server.mjs'

const T = 60_000 // generous: the machine is slow and shared
const RUN = Date.now().toString(36)
const PAGE = '/state-test.html'

let srv, browser

before(async () => {
  srv = await startServer({ label: 'browser-state', config: { sse_lifetime: 4000, long_poll_timeout: 3000 } })
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await srv?.stop()
})

// ------------------------------------------------------------------ the page

const HTML = `<!doctype html><meta charset="utf-8"><title>state</title>
<script src="/lmstream.js"></script>
<script>
const q = new URLSearchParams(location.search)
const m = LmStream.stateMap()
const lm = window.lm = { m, applied: [], snapshots: [], restored: false, errors: [] }
lm.sub = LmStream.follow(q.get('stream'), {
  snapshot: q.get('snapshot') === 'always' ? 'always' : true,
  onSnapshot: (rows, info) => { rows.forEach(m.apply); lm.snapshots.push(info.offset) },
  onMessage: (ev) => { m.apply(ev); lm.applied.push(ev) },
  saveState: () => ({ map: m.toJSON(), applied: lm.applied, snapshots: lm.snapshots }),
  onRestore: (s) => { m.load(s.map); lm.applied = s.applied; lm.snapshots = s.snapshots; lm.restored = true },
  onError: (e) => lm.errors.push(String(e)),
})
</script>`

async function openPage(context, stream, mode) {
  await context.route((u) => u.origin === srv.url && u.pathname === PAGE,
    (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: HTML }))
  const page = await context.newPage()
  const tab = { page, requests: [], errors: [] }
  page.on('request', (r) => {
    if (!r.url().startsWith(stream + '?')) return
    const q = new URL(r.url()).searchParams
    tab.requests.push({ snapshot: q.has('snapshot'), offset: q.get('offset'), live: q.get('live') })
  })
  page.on('pageerror', (e) => tab.errors.push(String(e)))
  await page.goto(`${srv.url}${PAGE}?snapshot=${mode}&stream=${encodeURIComponent(stream)}`)
  await page.waitForFunction(() => window.lm && window.lm.sub, null, { timeout: T })
  return tab
}

const pageState = (tab) => tab.page.evaluate(() => ({
  offset: lm.sub.offset, map: lm.m.toJSON(), applied: lm.applied, snapshots: lm.snapshots,
  restored: lm.restored, size: lm.m.size, errors: lm.errors,
}))

/** Waits until the page has applied everything up to `offset`. */
async function waitOffset(tab, offset) {
  try {
    await tab.page.waitForFunction((o) => window.lm && window.lm.sub.offset === o, offset, { timeout: T, polling: 100 })
  } catch {
    throw new Error(`page not at ${offset} within ${T} ms: at ${await tab.page.evaluate(() => lm.sub.offset).catch(() => '?')}\n${srv.logTail(15)}`)
  }
}

// ------------------------------------------------------------------ the stream, from node

let seed = 893938
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
const KEYS = [...Array(40)].map((_, i) => ['task', 't' + i]).concat([...Array(10)].map((_, i) => ['user', 'u' + i]))
const present = new Set()
let n = 0

/** The next change event: an insert of an absent key, or an update, upsert or delete of a present one. */
function nextEvent() {
  const [type, key] = KEYS[Math.floor(rand() * KEYS.length)]
  const id = type + '\0' + key
  const value = { n: ++n, label: `${key} #${n}`, done: rand() < 0.5 }
  if (!present.has(id)) { present.add(id); return { type, key, value, headers: { operation: 'insert' } } }
  const p = rand()
  if (p < 0.25) { present.delete(id); return { type, key, headers: { operation: 'delete' } } }
  return { type, key, value, headers: { operation: p < 0.4 ? 'upsert' : 'update' } }
}

async function post(url, events) {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(events) })
  assert.ok(res.status === 200 || res.status === 204, `append: HTTP ${res.status} ${await res.text()}`)
}

/** Appends `count` change events in batches of 1-4, `gap` ms apart. */
async function append(url, count, gap = 0) {
  for (let left = count; left > 0;) {
    const k = Math.min(left, 1 + Math.floor(rand() * 4))
    await post(url, [...Array(k)].map(nextEvent))
    left -= k
    if (gap) await sleep(gap)
  }
}

async function reset(url) {
  present.clear()
  await post(url, [{ headers: { control: 'reset' } }])
}

/** The server's state: GET ?snapshot (all pages), as sorted [type, key, value] rows, and its offset. */
async function snapshot(url) {
  for (let attempt = 0; attempt < 8; attempt++) {
    const rows = []
    let q = 'snapshot'
    let offset
    for (;;) {
      const res = await fetch(`${url}?${q}`, { cache: 'no-store' })
      if (res.status === 409 && q !== 'snapshot') break
      assert.equal(res.status, 200, `GET ?${q}`)
      offset = res.headers.get('stream-next-offset')
      for (const m of await res.json()) if (!m.headers.control) rows.push([m.type, m.key, m.value])
      const more = res.headers.get('stream-snapshot-next')
      if (!more) return { rows: sorted(rows), offset }
      q = 'snapshot=' + encodeURIComponent(more)
    }
  }
  throw new Error('snapshot kept changing')
}

const sorted = (rows) => [...rows].sort((a, b) => (a[0] + '\0' + a[1] < b[0] + '\0' + b[1] ? -1 : 1))

/** The stream's messages from `offset` to the tail, by catch-up reads. */
async function readFrom(url, offset) {
  const all = []
  for (;;) {
    const res = await fetch(`${url}?offset=${encodeURIComponent(offset)}`, { cache: 'no-store' })
    assert.equal(res.status, 200, `catch-up read from ${offset}`)
    all.push(...await res.json())
    offset = res.headers.get('stream-next-offset')
    if (res.headers.get('stream-up-to-date') === 'true') return { messages: all, offset }
  }
}

/** The page's map equals the server's snapshot, and it applied exactly the stream after its snapshot. */
async function expectInStep(tab, url) {
  const truth = await snapshot(url)
  await waitOffset(tab, truth.offset)
  const st = await pageState(tab)
  assert.deepEqual(sorted(st.map), truth.rows, "the page's map equals the server's GET ?snapshot")
  assert.ok(st.snapshots.length >= 1, 'the page started from a snapshot')
  const after = await readFrom(url, st.snapshots.at(-1))
  assert.equal(after.offset, truth.offset)
  assert.deepEqual(st.applied, after.messages,
    "the events the page applied are the stream after its snapshot's offset: each once, in order")
  assert.deepEqual([st.errors, tab.errors], [[], []], 'no client or page errors')
  return { st, truth }
}

// ------------------------------------------------------------------ scenarios

test(`state snapshot and stateMap in the browser on ${SERVER_KIND}`, async (t) => {
  const url = `${srv.url}/v1/stream/state-test/items-${RUN}`
  const created = await fetch(`${url}?state`, { method: 'PUT', headers: { 'Content-Type': 'application/json' } })
  assert.equal(created.status, 201, 'PUT ?state creates a State stream')
  await append(url, 120)

  await t.test('snapshot: true: starts from ?snapshot, survives a reload mid-stream, ends equal to the server', async () => {
    const context = await browser.newContext()
    const tab = await openPage(context, url, 'true')
    await waitOffset(tab, (await snapshot(url)).offset)
    assert.ok(tab.requests.length >= 1, 'the page read the stream')
    assert.deepEqual(tab.requests[0], { snapshot: true, offset: null, live: null }, 'a fresh page first reads ?snapshot')
    const first = await pageState(tab)
    assert.ok(first.size >= 20, `the snapshot hydrated the map (${first.size} keys)`)
    assert.deepEqual(first.applied, [], 'nothing before the snapshot was replayed')

    await append(url, 80, 15)
    await reset(url) // the map must empty on it, and then fill again
    await append(url, 20, 15)
    await tab.page.waitForFunction(() => lm.applied.length >= 40, null, { timeout: T })
    const writing = append(url, 100, 15) // appends go on across the reload
    const saved = (await pageState(tab)).offset
    const from = tab.requests.length
    await tab.page.reload()
    await tab.page.waitForFunction(() => window.lm && window.lm.sub && window.lm.sub.state !== 'connecting', null, { timeout: T })
    await writing
    await append(url, 40, 10)
    const { st } = await expectInStep(tab, url)
    const again = tab.requests.slice(from)
    assert.ok(again.length >= 1, 'the page read the stream again after the reload')
    assert.ok(st.restored, 'the reload restored the saved map')
    assert.equal(again.filter((r) => r.snapshot).length, 0, `no new snapshot after the reload: ${JSON.stringify(again)}`)
    assert.notEqual(again[0].offset, '-1', 'not from the start')
    assert.ok(again[0].offset >= saved, `first read after the reload at ${again[0].offset}, saved ${saved} or later`)
    assert.equal(st.snapshots.length, 1, 'one snapshot in all')
    assert.ok(st.applied.some((e) => e.headers.control === 'reset'), 'the reset was applied live')
    assert.equal(st.applied.length, 80 + 1 + 20 + 100 + 40, 'the page applied every event after its snapshot')
    assert.ok(st.size >= 10, `the final state is not empty (${st.size} keys)`)
    await context.close()
  })

  await t.test("snapshot: 'always': a reload reads ?snapshot again, and the map stays equal to the server", async () => {
    const context = await browser.newContext()
    const tab = await openPage(context, url, 'always')
    await expectInStep(tab, url)
    assert.equal(tab.requests[0].snapshot, true, 'the first request is ?snapshot')
    await append(url, 30, 10)
    await expectInStep(tab, url)
    const from = tab.requests.length
    await tab.page.reload()
    await tab.page.waitForFunction(() => window.lm && window.lm.snapshots.length === 1, null, { timeout: T })
    assert.deepEqual(tab.requests[from], { snapshot: true, offset: null, live: null }, 'after the reload, the first request is ?snapshot again')
    await append(url, 30, 10)
    const { st } = await expectInStep(tab, url)
    assert.equal(st.restored, false, 'the saved state was not used')
    assert.ok(st.applied.length >= 30, 'events after the new snapshot were applied live')
    await context.close()
  })
})

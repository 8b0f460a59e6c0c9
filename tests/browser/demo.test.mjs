// Browser test of the chat demo (www/chat.html on lmstream.js) in headless Chromium: what a chat user relies on, per deployment.
//
// Scenarios, in order, on one room: (a) a message from tab A reaches tab B once; (b) so does one
// written by a non-browser client; (c) B reloads and resumes from its stored offset, no duplicate
// and no gap; (d) B drops off the network, misses nothing, and its own message queued while offline
// is sent exactly once, even when a response is lost; (e) "Close stream" puts both tabs in the EOF
// state and they stop reconnecting. Throughout, the server ends SSE responses every few seconds
// (sse_lifetime), so tabs also resume after ordinary server-side closes.
//
//   LMSTREAM_TEST_SERVER        deployment (default lighttpd), see ../integration/lib/server.mjs
//   LMSTREAM_TEST_SSE_LIFETIME  sse_lifetime in ms given to the server (default 4000; "" = its default)
//   CHROMIUM                    browser binary (default /usr/bin/chromium)
//   LMSTREAM_TEST_WWW_ROUTE=1   serve www/ from this test (Playwright routing, same origin) for a
//                               deployment that does not serve it itself; streams still hit the server
//
// Run: cd tests && node --test browser/     (screenshot of tab A at the end: browser/results/demo.png)

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchBrowser, inSequence, chatPage } from './lib/browser.mjs'
import { startServer, SERVER_KIND } from '../integration/lib/server.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const WWW = path.join(HERE, '..', '..', 'www')
const RESULTS = path.join(HERE, 'results')
const T = 30_000 // generous: the machine is slow and shared
const LIFETIME = process.env.LMSTREAM_TEST_SSE_LIFETIME ?? '4000'
const ROOM = 'room-' + Date.now().toString(36)

let srv, browser, streamUrl
const tabs = {} // name -> { context, page, sse: [{ url, offset }], answered: [{ offset, status }], errors }

before(async () => {
  srv = await startServer({ label: 'browser', config: LIFETIME ? { sse_lifetime: LIFETIME } : undefined })
  streamUrl = `${srv.url}/v1/stream/chat/${ROOM}`
  browser = await launchBrowser()
})

after(async () => {
  if (tabs.A) { // the end state, or the state of a failure
    fs.mkdirSync(RESULTS, { recursive: true })
    await tabs.A.page.screenshot({ path: path.join(RESULTS, `chat-${SERVER_KIND}.png`), fullPage: true }).catch(() => {})
  }
  await browser?.close()
  await srv?.stop()
})

// ------------------------------------------------------------------ helpers

async function openTab(name) {
  const context = await browser.newContext()
  if (process.env.LMSTREAM_TEST_WWW_ROUTE === '1') {
    await context.route((u) => u.origin === srv.url && !u.pathname.startsWith('/v1/'), (route) => {
      const file = new URL(route.request().url()).pathname.slice(1) || 'index.html'
      return route.fulfill({ path: path.join(WWW, path.basename(file)) })
    })
  }
  const page = await context.newPage()
  const tab = { name, context, page, sse: [], answered: [], errors: [] }
  const sseOffset = (url) => {
    const u = new URL(url)
    return u.searchParams.get('live') === 'sse' ? u.searchParams.get('offset') : null
  }
  page.on('request', (r) => {
    const offset = sseOffset(r.url())
    if (offset !== null) tab.sse.push({ url: r.url(), offset })
  })
  page.on('response', (r) => {
    const offset = sseOffset(r.url())
    if (offset !== null) tab.answered.push({ offset, status: r.status() })
  })
  page.on('pageerror', (e) => tab.errors.push(String(e)))
  const res = await page.goto(`${srv.url}/chat.html#${ROOM}`)
  assert.equal(res.status(), 200, `GET / on ${SERVER_KIND} serves the chat demo (www/chat.html)`)
  await waitState(tab, 'live')
  tabs[name] = tab
  return tab
}

const { status, texts, expectLog, send, waitOutboxEmpty } = chatPage({ url: () => streamUrl, waitFor })

async function snapshot(tab) {
  return `${tab.name}: status ${JSON.stringify(await status(tab))}, log ${JSON.stringify(await texts(tab))}`
}

async function waitFor(tab, what, fn, arg) {
  try {
    await tab.page.waitForFunction(fn, arg, { timeout: T })
  } catch (e) {
    throw new Error(`${what} not reached within ${T} ms; ${await snapshot(tab)}\n${srv.logTail(15)}`)
  }
}

function waitState(tab, state) {
  return waitFor(tab, `state ${state}`, (s) => document.getElementById('status')?.dataset.state === s, state)
}

// ------------------------------------------------------------------ scenarios

const sent = [] // the texts the stream must hold, in order

test(`demo page on ${SERVER_KIND}`, async (top) => {
  // Scenarios build on each other: after a failure the rest are skipped rather than failing confusingly.
  const t = inSequence(top)

  await t.test('a: a message sent in tab A appears once in tab B', async () => {
    const a = await openTab('A')
    const b = await openTab('B')
    assert.notEqual(await a.page.textContent('#me'), await b.page.textContent('#me'), 'tabs have distinct names')
    await send(a, 'hello from A')
    sent.push('hello from A')
    await expectLog(b, sent)
    await expectLog(a, sent)
    const from = await b.page.textContent('#log .msg .from')
    assert.equal(from, await a.page.textContent('#me'), 'message shows its sender')
  })

  await t.test('b: a message from a non-browser client appears in both tabs', async () => {
    const res = await fetch(streamUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: 'hello from curl', at: new Date().toISOString(), from: 'test-process' }),
    })
    assert.ok(res.status === 200 || res.status === 204, `POST status ${res.status}`)
    sent.push('hello from curl')
    await expectLog(tabs.A, sent)
    await expectLog(tabs.B, sent)
  })

  await t.test('c: after a reload, tab B resumes from its stored offset: no duplicate, no gap', async () => {
    const b = tabs.B
    const before = await status(b)
    const from = b.sse.length
    await b.page.reload()
    await waitState(b, 'live')
    assert.equal(b.sse[from]?.offset, before.offset, 'first SSE request after reload starts at the stored offset')
    assert.deepEqual(await texts(b), sent, 'history restored from local storage')
    await send(tabs.A, 'after reload 1')
    await send(tabs.A, 'after reload 2')
    sent.push('after reload 1', 'after reload 2')
    await expectLog(b, sent)
    await expectLog(tabs.A, sent)
  })

  await t.test('c2: when the server ends an SSE response, the tab reconnects from its offset', async () => {
    const a = tabs.A
    const from = a.sse.length
    const offset = (await status(a)).offset
    if (a.sse.length === from) {
      const timeout = (LIFETIME ? Number(LIFETIME) : 60_000) + T // default lifetime is about 60 s
      await a.page.waitForRequest((r) => new URL(r.url()).searchParams.get('live') === 'sse', { timeout })
    }
    assert.ok(a.sse.length > from, 'tab A opened a new SSE request after the server closed the previous one')
    assert.equal(a.sse[from].offset, offset, 'reconnect resumes at the last streamNextOffset')
    await expectLog(a, sent)
  })

  await t.test('d: a network blip on tab B loses nothing and sends its queued message once', async () => {
    const a = tabs.A
    const b = tabs.B
    const offline = { offset: (await status(b)).offset, answered: b.answered.length }
    await b.context.setOffline(true)
    await waitFor(b, 'offline or reconnecting state',
      () => ['offline', 'reconnecting'].includes(document.getElementById('status').dataset.state))
    await send(a, 'while B was offline')
    sent.push('while B was offline')
    await send(b, 'queued by B while offline', { acked: false })
    await waitFor(b, 'queued message in the outbox', () => /waiting to be sent/.test(document.getElementById('outbox').textContent))
    await b.context.setOffline(false)
    sent.push('queued by B while offline')
    await waitOutboxEmpty(b)
    await expectLog(b, sent)
    await expectLog(a, sent)
    const after = b.answered.slice(offline.answered)
    assert.ok(after.some((r) => r.offset === offline.offset && r.status === 200),
      `B's SSE resumed from ${offline.offset} once back online: ${JSON.stringify(after)}`)
  })

  await t.test('d2: a POST whose response is lost is retried with the same seq and stored once', async () => {
    const a = tabs.A
    const b = tabs.B
    const posts = []
    let dropped = 0
    await b.page.route(streamUrl, async (route) => {
      const req = route.request()
      if (req.method() !== 'POST') return route.fallback()
      posts.push(req.headers()['producer-seq'])
      if (dropped++ === 0) {
        await route.fetch() // reaches the server and is appended...
        return route.abort('connectionreset') // ...but the page never sees the answer
      }
      return route.continue()
    })
    await send(b, 'answer lost once', { acked: false })
    sent.push('answer lost once')
    await waitOutboxEmpty(b)
    await expectLog(a, sent)
    await expectLog(b, sent)
    await b.page.unroute(streamUrl)
    assert.ok(posts.length >= 2, `the page retried (${posts.length} POSTs)`)
    assert.ok(posts.every((s) => s === posts[0]), `every try used the same Producer-Seq: ${posts}`)
  })

  await t.test('e: Close stream puts both tabs in the EOF state; they stop reconnecting', async () => {
    const a = tabs.A
    const b = tabs.B
    await a.page.getByRole('button', { name: 'Close stream' }).click()
    for (const tab of [a, b]) {
      await waitState(tab, 'closed')
      assert.ok(await tab.page.isVisible('#eof'), `${tab.name} shows the end-of-stream notice`)
      assert.ok(await tab.page.isDisabled('#send'), `${tab.name} can no longer send`)
    }
    const head = await fetch(streamUrl, { method: 'HEAD' })
    assert.equal(head.headers.get('stream-closed'), 'true', 'the stream is closed on the server')
    await expectLog(a, sent)
    await expectLog(b, sent)

    // No SSE request may follow. Poke the reconnect logic (network back online, a reload), then
    // watch an absence window longer than the page's retry delay after a normal end (immediate).
    const counts = [a.sse.length, b.sse.length]
    await b.context.setOffline(true)
    await b.context.setOffline(false)
    await b.page.reload()
    await waitState(b, 'closed')
    assert.deepEqual(await texts(b), sent, 'B still shows the whole history after reload')
    await a.page.waitForTimeout(3000) // absence window, not a timing assertion
    assert.deepEqual([a.sse.length, b.sse.length], counts,
      `no SSE request after close: ${JSON.stringify([a.sse.slice(counts[0]), b.sse.slice(counts[1])])}`)
    for (const tab of [a, b]) assert.deepEqual(tab.errors, [], `no uncaught page errors in ${tab.name}`)
  })
})

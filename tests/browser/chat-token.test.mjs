// Browser test of the chat demo (www/chat.html on lmstream.js) under the shipped access control: auth = token,
// started with deploy/run --demo, which lets anyone read demo/** and chat/** and serves GET /demo-token, a fresh
// 10-minute JWT that writes chat/** (lighttpd and Apache only). The page fetches that token at start and sends
// "Authorization: Bearer" on every write: the PUT that creates the room, the producer's POSTs, the close POST.
//
// Scenarios, in order, on one room opened in two tabs:
//   a  a message sent in tab A appears once in tab B (and in A)
//   b  an anonymous POST by this test is refused with 401 (and never shows up, checked in c)
//   c  the same POST with a token from /demo-token is stored and shows up once in both tabs
//   d  that chat token is refused with 403 on /v1/stream/demo/builds
//   e  "Close stream" (a write too) puts both tabs in the EOF state
//   f  every POST/PUT the page sent to /v1/stream/chat/... carried a Bearer token, none was refused,
//      and neither tab had an uncaught page error
// A refused write of the page (401/403) or a page error ends any wait at once.
//
//   LMSTREAM_TEST_SERVER   deployment (default lighttpd; /demo-token exists under lighttpd and apache),
//                          see ../integration/lib/server.mjs
//   CHROMIUM               browser binary (default /usr/bin/chromium)
//
// Run: cd tests && node --test browser/chat-token.test.mjs

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { launchBrowser, inSequence, chatPage } from './lib/browser.mjs'
import { startServer, SERVER_KIND, sleep } from '../integration/lib/server.mjs'

const T = 15_000 // per wait
const ROOM = 'tok-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 6)
const CHAT_PATH = `/v1/stream/chat/${ROOM}`
const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

let srv, browser, streamUrl
const tabs = {} // name -> { name, context, page, writes: [{ method, url, auth }], refused: [...], errors: [...] }

before(async () => {
  srv = await startServer({ label: 'chat-token', config: { auth: 'token', sse_lifetime: 4000 }, demo: true })
  streamUrl = `${srv.url}${CHAT_PATH}`
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await srv?.stop()
})

// ------------------------------------------------------------------ helpers

const isChatWrite = (r) => (r.method() === 'POST' || r.method() === 'PUT') &&
  new URL(r.url()).pathname.startsWith('/v1/stream/chat/')

async function openTab(name) {
  const context = await browser.newContext()
  const page = await context.newPage()
  const tab = { name, context, page, writes: [], refused: [], errors: [] }
  page.on('request', (r) => {
    if (isChatWrite(r)) tab.writes.push({ method: r.method(), url: r.url(), auth: r.headers().authorization ?? null })
  })
  page.on('response', (r) => {
    const req = r.request()
    if (isChatWrite(req) && (r.status() === 401 || r.status() === 403)) {
      tab.refused.push(`${req.method()} ${new URL(req.url()).pathname} -> ${r.status()}`)
    }
  })
  page.on('pageerror', (e) => tab.errors.push(String(e.stack || e)))
  tabs[name] = tab
  const res = await page.goto(`${srv.url}/chat.html#${ROOM}`)
  assert.equal(res.status(), 200, `GET /chat.html on ${SERVER_KIND}`)
  await waitFor(tab, 'state live', () => document.getElementById('status')?.dataset.state === 'live')
  return tab
}

const { status, texts, expectLog, send } = chatPage({ url: () => streamUrl, waitFor })

/** Poll fn in the page until true; fails at once on a page error or a refused write of the page, else after T. */
async function waitFor(tab, what, fn, arg) {
  const deadline = Date.now() + T
  for (;;) {
    const trouble = [...tab.errors.map((e) => `pageerror: ${e}`), ...tab.refused.map((r) => `refused write: ${r}`)]
    if (trouble.length) throw new Error(`${tab.name}, waiting for ${what}:\n${trouble.join('\n')}`)
    if (await tab.page.evaluate(fn, arg)) return
    if (Date.now() > deadline) {
      throw new Error(`${tab.name}: ${what} not reached within ${T} ms; status ${JSON.stringify(await status(tab).catch(() => null))}, ` +
        `outbox ${JSON.stringify(await tab.page.textContent('#outbox').catch(() => null))}, log ${JSON.stringify(await texts(tab).catch(() => null))}\n` +
        srv.logTail(15))
    }
    await sleep(100)
  }
}

function post(url, body, token) {
  const headers = { 'Content-Type': 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  return fetch(url, { method: 'POST', headers, body: JSON.stringify(body) })
}

const message = (text) => ({ text, at: new Date().toISOString(), from: 'test-process' })

// ------------------------------------------------------------------ scenarios

const sent = [] // texts the room must hold, in order
const ANON = 'anonymous, must be refused'
let token = null

test(`chat demo with auth = token on ${SERVER_KIND}`, async (top) => {
  const t = inSequence(top)

  await t.test('a: a message sent in tab A appears once in tab B', async () => {
    const a = await openTab('A')
    const b = await openTab('B')
    await send(a, 'hello from A')
    sent.push('hello from A')
    await expectLog(b, sent)
    await expectLog(a, sent)
  })

  await t.test('b: an anonymous POST is refused with 401', async () => {
    const res = await post(streamUrl, message(ANON))
    assert.equal(res.status, 401, `anonymous POST to ${CHAT_PATH}`)
    assert.ok(res.headers.get('www-authenticate'), '401 names the scheme (WWW-Authenticate)')
    await res.arrayBuffer()
  })

  await t.test('c: the same POST with a token from /demo-token is stored and appears once in both tabs', async () => {
    const res = await fetch(`${srv.url}/demo-token`, { cache: 'no-store' })
    assert.equal(res.status, 200, 'GET /demo-token')
    assert.match(res.headers.get('content-type') || '', /^text\/plain/, '/demo-token answers text/plain')
    token = (await res.text()).trim()
    assert.match(token, JWT_RE, '/demo-token returns a JWT')
    const ok = await post(streamUrl, message('hello with a demo token'), token)
    assert.ok(ok.status === 200 || ok.status === 204, `POST with the token: status ${ok.status}`)
    await ok.arrayBuffer()
    sent.push('hello with a demo token')
    // Both tabs reach the tail: the refused message, had it been stored, would be before it.
    await expectLog(tabs.A, sent)
    await expectLog(tabs.B, sent)
    for (const tab of [tabs.A, tabs.B]) assert.ok(!(await texts(tab)).includes(ANON), `${tab.name} never shows the anonymous message`)
  })

  await t.test('d: the chat token is refused with 403 on /v1/stream/demo/builds', async () => {
    const res = await post(`${srv.url}/v1/stream/demo/builds`, { stream: 'demo/forged', title: 'forged' }, token)
    assert.equal(res.status, 403, 'a chat/** token writing demo/builds')
    await res.arrayBuffer()
  })

  await t.test('e: Close stream (a write with the token) puts both tabs in the EOF state', async () => {
    await tabs.A.page.getByRole('button', { name: 'Close stream' }).click()
    for (const tab of [tabs.A, tabs.B]) {
      await waitFor(tab, 'state closed', () => document.getElementById('status').dataset.state === 'closed')
      assert.ok(await tab.page.isVisible('#eof'), `${tab.name} shows the end-of-stream notice`)
    }
    const head = await fetch(streamUrl, { method: 'HEAD' })
    assert.equal(head.headers.get('stream-closed'), 'true', 'the room is closed on the server')
    await expectLog(tabs.A, sent)
    await expectLog(tabs.B, sent)
  })

  await t.test('f: every write of the page carried a token; no refusals, no page errors', async () => {
    for (const tab of [tabs.A, tabs.B]) {
      assert.deepEqual(tab.errors, [], `no uncaught page errors in ${tab.name}`)
      assert.deepEqual(tab.refused, [], `no write of ${tab.name} refused`)
      assert.ok(tab.writes.some((w) => w.method === 'PUT'), `${tab.name} created the room (PUT): ${JSON.stringify(tab.writes)}`)
      const bad = tab.writes.filter((w) => !/^Bearer /.test(w.auth || '') || !JWT_RE.test(w.auth.slice(7)))
      assert.deepEqual(bad, [], `every POST/PUT of ${tab.name} to /v1/stream/chat/ carried "Authorization: Bearer <jwt>"`)
    }
    const posts = tabs.A.writes.filter((w) => w.method === 'POST')
    assert.ok(posts.length >= 2, `tab A sent its message and the close by POST: ${JSON.stringify(tabs.A.writes)}`)
  })
})

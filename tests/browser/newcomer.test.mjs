// Browser test of the build demo (www/index.html + demo.js) opened the way a newcomer opens it: at "/",
// with no "#demo/NAME" fragment, so the page has to find the build itself (the last one listed in
// demo/builds), put its name in the URL and follow it. The other browser tests always pass a fragment.
//
//   waiting   "/" opened before any build exists: the page says so and waits; once deploy/demo-producer
//             starts, it picks the build up without a reload, goes live and shows every event
//   running   "/" opened while a build is being written: live at once, the URL gets "#demo/NAME", the
//             page shows the events written so far and the rest as they come
//
// Both end with the same checks: no uncaught page error and no console error (in "waiting", only the
// 404 of demo/builds before it exists is expected), the events shown equal a catch-up read of the stream.
//
//   LMSTREAM_TEST_SERVER   deployment (default lighttpd), see ../integration/lib/server.mjs
//   CHROMIUM               browser binary (default /usr/bin/chromium)
//
// Run: cd tests && node --test browser/newcomer.test.mjs

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { launchBrowser, contents as readAll } from './lib/browser.mjs'
import { startServer, SERVER_KIND, REPO_ROOT, sleep } from '../integration/lib/server.mjs'

const PRODUCER = path.join(REPO_ROOT, 'deploy', 'demo-producer')
const T = 20_000 // per wait; a page error ends a wait at once
const RUN = Date.now().toString(36)

let srv, browser
const producers = new Set()
const contexts = new Set()

before(async () => {
  srv = await startServer({ label: 'browser-newcomer', config: { sse_lifetime: 4000, long_poll_timeout: 3000 } })
  browser = await launchBrowser()
})

after(async () => {
  for (const p of producers) p.kill('SIGTERM')
  for (const c of contexts) await c.close().catch(() => {})
  await browser?.close()
  await srv?.stop()
})

// ------------------------------------------------------------------ helpers

/** Run deploy/demo-producer into demo/NAME (it also lists the build in demo/builds); resolves once it closed the stream. */
function produce(name, { interval, units }) {
  const child = spawn(PRODUCER, ['--url', srv.url, '--name', name, '--interval', String(interval), '--units', String(units)],
    { stdio: ['ignore', 'ignore', 'pipe'] })
  producers.add(child)
  let err = ''
  child.stderr.on('data', (c) => { err += c })
  const done = new Promise((resolve, reject) => child.on('exit', (code) => {
    producers.delete(child)
    if (code === 0) resolve()
    else reject(new Error(`demo-producer ${name} exited ${code}: ${err}\n${srv.logTail(15)}`))
  }))
  done.catch(() => {}) // awaited by the scenario; never an unhandled rejection meanwhile
  return { child, done }
}

const streamUrl = (name) => `${srv.url}/v1/stream/${name}`

/** The whole stream, by catch-up reads from -1 until up to date. */
const contents = (name) => readAll(streamUrl(name))

/** The stream of the last build listed in demo/builds, or null. */
async function lastListed() {
  const res = await fetch(`${streamUrl('demo/builds')}?offset=-1`, { cache: 'no-store' })
  if (res.status !== 200) return null
  const list = await res.json()
  return list.length ? list[list.length - 1].stream : null
}

/**
 * Open "/" (no fragment) in a fresh context. Every uncaught page error and every console error is
 * recorded in tab.errors, except those `expected(msg)` accepts (console messages only).
 */
async function openRoot({ expected = () => false } = {}) {
  const context = await browser.newContext()
  contexts.add(context)
  const page = await context.newPage()
  const tab = { page, errors: [] }
  page.on('pageerror', (e) => tab.errors.push(`pageerror: ${e.stack || e}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !expected(m)) tab.errors.push(`console.error: ${m.text()} (${m.location().url})`)
  })
  const res = await page.goto(`${srv.url}/`)
  assert.equal(res.status(), 200, `GET / on ${SERVER_KIND} serves the demo page (www/index.html)`)
  assert.equal(new URL(page.url()).hash, '', 'opened without a fragment')
  return tab
}

const status = (tab) => tab.page.evaluate(() => ({
  ...document.getElementById('status').dataset,
  conn: document.getElementById('conn').textContent,
  stream: document.getElementById('stream').textContent,
  hash: location.hash,
}))

/** Poll fn in the page until it is true; fails at once on a page error, else after `timeout`. */
async function waitFor(tab, what, fn, arg, timeout = T) {
  const deadline = Date.now() + timeout
  for (;;) {
    if (tab.errors.length) throw new Error(`page error while waiting for ${what}:\n${tab.errors.join('\n')}`)
    if (await tab.page.evaluate(fn, arg)) return
    if (Date.now() > deadline) {
      throw new Error(`${what} not reached within ${timeout} ms; status ${JSON.stringify(await status(tab).catch(() => null))}\n${srv.logTail(15)}`)
    }
    await sleep(100)
  }
}

/** The page follows `name`: live, with the name in the URL fragment and on the page. */
async function expectFollowing(tab, name) {
  await waitFor(tab, 'the live state', () => window.lmDemo?.history.some((h) => h.state === 'live'))
  const st = await status(tab)
  assert.equal(st.hash, `#${name}`, 'the URL got the fragment of the build it shows')
  assert.equal(new URL(tab.page.url()).hash, `#${name}`, 'page.url() has the fragment too')
  assert.equal(st.stream, name, 'the status line names the build')
  assert.ok(await tab.page.isHidden('#empty'), 'the "no build yet" notice is gone')
}

/** Once the producer closed the stream: the page shows exactly the stream, every event once, in order. */
async function expectComplete(tab, name) {
  await waitFor(tab, 'the closed state', () => document.getElementById('status').dataset.state === 'closed')
  const truth = await contents(name)
  assert.ok(truth.closed, 'the producer closed the stream')
  const shown = await tab.page.evaluate(() => window.lmDemo.events)
  assert.deepEqual(shown, truth.events, 'the page rendered every event once, in order')
  assert.equal(shown.length, truth.events.at(-1).n, 'no gap: events numbered 1..N')
  const st = await status(tab)
  assert.equal(st.offset, truth.offset, 'the page ends at the stream tail offset')
  assert.equal(st.count, String(truth.events.length), 'the status line counts every event')
  assert.equal(await tab.page.locator('#log li').count(), truth.events.length, 'the event log lists every event')
  assert.equal(await tab.page.textContent('#title'), truth.events.find((e) => e.type === 'build').title, 'the build title is shown')
  assert.equal(await tab.page.locator('#todos li[data-state="done"]').count(), 4, 'every step of the plan is done')
  assert.ok(await tab.page.isVisible('#done'), 'completion is shown')
  assert.deepEqual(tab.errors, [], 'no page error and no console error')
}

// ------------------------------------------------------------------ scenarios

test(`demo page opened at "/" (no fragment) on ${SERVER_KIND}`, async (t) => {
  await t.test('waiting: before any build, "/" waits, then follows the first build without a reload', async () => {
    assert.equal(await lastListed(), null, 'a fresh server lists no build')
    // Until the producer creates demo/builds, each look at it is a 404 that Chromium logs as a console error.
    const buildsUrl = streamUrl('demo/builds')
    const tab = await openRoot({
      expected: (m) => /Failed to load resource.*404/.test(m.text()) && m.location().url.startsWith(buildsUrl),
    })
    await waitFor(tab, 'the waiting state', () => document.getElementById('status').dataset.state === 'waiting')
    assert.ok(await tab.page.isVisible('#empty'), 'the page says there is no build yet')

    const name = `demo/first-${RUN}`
    const { done } = produce(name.slice('demo/'.length), { interval: 0.05, units: 4 })
    await expectFollowing(tab, name)
    await done
    await expectComplete(tab, name)
  })

  await t.test('running: "/" opened mid-build is live at once, gets "#demo/NAME", shows what is written', async () => {
    const name = `demo/running-${RUN}`
    const { done } = produce(name.slice('demo/'.length), { interval: 0.1, units: 6 })
    const deadline = Date.now() + T
    while (await lastListed() !== name) {
      assert.ok(Date.now() < deadline, `${name} listed in demo/builds within ${T} ms`)
      await sleep(100)
    }
    const tab = await openRoot()
    await expectFollowing(tab, name)
    // Seen live while the producer still writes, with events arriving.
    await waitFor(tab, 'live with events shown', () => {
      const s = document.getElementById('status').dataset
      return s.state === 'live' && Number(s.count) > 0 && document.querySelectorAll('#log li').length === Number(s.count)
    })
    assert.equal(await tab.page.evaluate(() => window.lmDemo.events[0].n), 1, 'from the start of the build')
    assert.match((await status(tab)).conn, /^live/, 'the status line says live')
    await done
    await expectComplete(tab, name)
  })
})

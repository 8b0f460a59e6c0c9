// What the browser tests share: the headless Chromium they drive, scenarios that build on each
// other, and the whole content of a stream as a reader sees it.

import assert from 'node:assert/strict'
import { chromium } from 'playwright-core'

/** Debian's Chromium (CHROMIUM overrides), headless, as every browser test runs it. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
}

/**
 * Subtests of top that build on each other: after a failure the rest are skipped (saying which
 * one they needed) rather than failing confusingly. Returns { test(name, fn) }.
 */
export function inSequence(top) {
  let failed = null
  return {
    test: (name, fn) => top.test(name, async (sub) => {
      if (failed) return sub.skip(`needs "${failed}"`)
      try { await fn(sub) } catch (e) { failed = name; throw e }
    }),
  }
}

/** The whole JSON stream at url, by catch-up reads from -1 until up to date. */
export async function contents(url) {
  let offset = '-1'
  const all = []
  for (;;) {
    const res = await fetch(`${url}?offset=${encodeURIComponent(offset)}`, { cache: 'no-store' })
    assert.equal(res.status, 200, `catch-up read of ${url}`)
    all.push(...await res.json())
    offset = res.headers.get('stream-next-offset')
    if (res.headers.get('stream-up-to-date') === 'true') return { events: all, offset, closed: res.headers.get('stream-closed') === 'true' }
  }
}

/**
 * Driving the chat page (www/chat.html) in a tab ({ name, page }): its status and log, the stream's
 * tail, sending a message. url() is the room's stream URL; waitFor(tab, what, fn, arg) is the
 * test's own way of waiting for fn to hold in the page.
 */
export function chatPage({ url, waitFor }) {
  const status = (tab) => tab.page.evaluate(() => ({ ...document.getElementById('status').dataset }))
  const texts = (tab) => tab.page.$$eval('#log .msg .text', (els) => els.map((e) => e.textContent))

  async function tailOffset() {
    const res = await fetch(url(), { method: 'HEAD' })
    assert.equal(res.status, 200, 'HEAD of the room')
    return res.headers.get('stream-next-offset')
  }

  /**
   * Call once every message of `expected` is acknowledged. Waits until the tab has applied everything
   * up to the stream's current tail (offsets compare as strings), then requires its log to be exactly
   * `expected`: every message once, in order (nothing before the tail can arrive twice any more).
   */
  async function expectLog(tab, expected) {
    const tail = await tailOffset()
    await waitFor(tab, `offset ${tail}`, (o) => document.getElementById('status').dataset.offset >= o, tail)
    assert.deepEqual(await texts(tab), expected, `${tab.name} shows every message exactly once, in order`)
    assert.equal((await status(tab)).count, String(expected.length), `${tab.name} message count`)
  }

  const waitOutboxEmpty = (tab) => waitFor(tab, 'empty outbox', () => document.getElementById('outbox').textContent === '')

  /** Type and send a message; unless told otherwise, wait until the server acknowledged it. */
  async function send(tab, text, { acked = true } = {}) {
    await tab.page.getByLabel('Message', { exact: true }).fill(text)
    await tab.page.getByRole('button', { name: 'Send' }).click()
    if (acked) await waitOutboxEmpty(tab)
  }

  return { status, texts, tailOffset, expectLog, send, waitOutboxEmpty }
}

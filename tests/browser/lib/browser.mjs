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

// Streams opened as pages run nothing (stored XSS), in headless Chromium, per deployment.
//
// Anyone who may write a stream chooses its Content-Type and its bytes. A stream of text/html holding a
// <script>, of image/svg+xml holding <svg onload=...>, of application/xhtml+xml or text/xml holding an XHTML
// <script>, must not run when a browser is sent straight to the stream's URL: the page would run on the
// server's origin, with its cookies and localStorage. What a user relies on:
//
//   headers   every read (the bare stream URL, the catch-up read ?offset=-1, and the long-poll read that
//             lmstream-live answers behind the web server) carries Content-Security-Policy: sandbox, and the
//             types a browser renders as documents come as Content-Disposition: attachment
//   Chromium  page.goto to each of those URLs runs nothing: the navigation is a download, or (had it been
//             rendered) a sandboxed document of an opaque origin; none of the payloads' effects happened:
//             no document.title, no window global, no localStorage or cookie on the server's origin, no
//             request to a small HTTP server of this test (each payload makes a synchronous XHR to it)
//
// Each payload is first shown to be live: the same bytes, served with the same Content-Type by this test's
// own HTTP server (no CSP, inline), do run in this Chromium and do reach that server. The stream pages stay
// open until a last page of that server, opened after all of them, has reached it too.
//
//   LMSTREAM_TEST_SERVER   deployment (default lighttpd), as tests/run-all sets it per browser run
//   LMSTREAM_XSS_SERVERS   deployments to run in turn instead (e.g. "lighttpd apache standalone")
//   CHROMIUM               browser binary (default /usr/bin/chromium)
//
// Run: cd tests && node --test browser/xss.test.mjs

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { launchBrowser } from './lib/browser.mjs'
import { startServer, freePort, SERVER_KIND, STREAM_PREFIX } from '../integration/lib/server.mjs'
import { rawRequest } from '../integration/lib/http.mjs'

const T = 30_000 // per navigation or wait: generous, the machine is slow and shared
const RUN = Date.now().toString(36)
const KINDS = (process.env.LMSTREAM_XSS_SERVERS || SERVER_KIND).split(/[\s,]+/).filter(Boolean)

// ------------------------------------------------------------------ the payloads

/**
 * What each payload's script does, `id` naming the case: sets document.title and a window global, writes
 * localStorage and a cookie (named after the page's port: cookies do not tell ports apart) of the page's
 * origin, and makes a synchronous XHR to the beacon (this test's
 * HTTP server) naming the page it ran in. No '<' or '&' in it: it goes into XML documents as it is.
 */
const effect = (beacon, id) =>
  `window.__pwned = '${id}'; document.title = 'pwned-${id}';` +
  ` try { localStorage.setItem('pwned-${id}', '1') } catch (e) {}` +
  ` try { document.cookie = 'pwned_${id}_' + location.port + '=1; path=/' } catch (e) {}` +
  ` try { var x = new XMLHttpRequest(); x.open('GET', '${beacon}/hit/${id}?from=' + encodeURIComponent(location.href), false); x.send() } catch (e) {}`

/** The streams: Content-Type and body. */
const CASES = (beacon) => [
  {
    id: 'html', type: 'text/html',
    body: `<!doctype html><html><head><title>stream</title><script>${effect(beacon, 'html')}</script></head><body>hello</body></html>`,
  },
  {
    // the same, its type spelt with capitals and a parameter
    id: 'htmlcs', type: 'Text/HTML; charset=utf-8',
    body: `<!doctype html><title>stream</title><script>${effect(beacon, 'htmlcs')}</script><p>hello</p>`,
  },
  {
    id: 'svg', type: 'image/svg+xml',
    body: `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="${effect(beacon, 'svg').replace(/"/g, '&quot;')}"><rect width="10" height="10"/></svg>`,
  },
  {
    id: 'xhtml', type: 'application/xhtml+xml',
    body: `<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head><title>stream</title>` +
      `<script><![CDATA[${effect(beacon, 'xhtml')}]]></script></head><body><p>hello</p></body></html>`,
  },
  {
    id: 'xml', type: 'text/xml',
    body: `<?xml version="1.0" encoding="utf-8"?>\n<doc xmlns:h="http://www.w3.org/1999/xhtml">` +
      `<h:script><![CDATA[${effect(beacon, 'xml')}]]></h:script><item>hello</item></doc>`,
  },
  {
    // Two media types in one header: a browser (Fetch's "extract a MIME type": the last one) renders
    // text/html, so lmstream serves any value with a comma as an attachment too.
    id: 'comma', type: 'text/plain; x="," , text/html',
    body: `<!doctype html><title>stream</title><script>${effect(beacon, 'comma')}</script><p>hello</p>`,
  },
]

/** The reads a browser can be sent to: the bare URL, the catch-up read, a long-poll read (lmstream-live). */
const READS = ['', '?offset=-1', '?offset=-1&live=long-poll']

// ------------------------------------------------------------------ the beacon

/** This test's HTTP server: records /hit/ID requests; serves /control/ID (a payload inline) and /last. */
async function startBeacon() {
  const hits = []
  const served = new Map() // id -> { type, body }
  const waiters = new Set()
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://beacon')
    const hit = /^\/hit\/([\w-]+)$/.exec(u.pathname)
    if (hit) {
      hits.push({ id: hit[1], from: u.searchParams.get('from') || '' })
      for (const w of [...waiters]) w()
      res.writeHead(204, { 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'no-store' })
      return res.end()
    }
    const ctl = /^\/control\/([\w-]+)$/.exec(u.pathname)
    if (ctl && served.has(ctl[1])) {
      const { type, body } = served.get(ctl[1])
      res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' })
      return res.end(body)
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not here')
  })
  let port
  for (let attempt = 0; ; attempt++) {
    port = await freePort()
    try {
      await new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve() })
      })
      break
    } catch (e) {
      if (attempt >= 4) throw e
    }
  }
  const url = `http://127.0.0.1:${port}`
  return {
    url, port, hits, served,
    /** Resolves once a hit satisfying pred has arrived (rejects after T). */
    waitHit(pred, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const h = hits.find(pred)
          if (!h) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve(h)
        }
        const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no hit for ${what} within ${T} ms: ${JSON.stringify(hits)}`)) }, T)
        waiters.add(check)
        check()
      })
    },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r) }),
  }
}

// ------------------------------------------------------------------ setup

let browser, beacon

before(async () => {
  beacon = await startBeacon()
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await beacon?.close()
})

// ------------------------------------------------------------------ helpers

/** The directives of a Content-Security-Policy header (its policies joined), lower case. */
function cspDirectives(value) {
  return String(value || '').toLowerCase().split(/[;,]/).map((d) => d.trim().split(/\s+/)).filter((d) => d[0])
}

/** True when the policy sandboxes the document and lets no script run in it. */
function sandboxesScripts(value) {
  const sb = cspDirectives(value).filter((d) => d[0] === 'sandbox')
  return sb.length > 0 && sb.some((d) => !d.slice(1).includes('allow-scripts'))
}

/**
 * page.goto(url) in a new page of context, which stays open (the caller closes it). Returns
 * { page, url, response, error, download, seen }: seen is what the page's own globals say when it could be
 * evaluated ({ title, origin, pwned, href }), or { evalError }.
 */
async function navigate(context, url) {
  const page = await context.newPage()
  const downloadP = page.waitForEvent('download', { timeout: T }).catch(() => null)
  let response = null
  let error = null
  try {
    response = await page.goto(url, { timeout: T, waitUntil: 'load' })
  } catch (e) {
    error = e
  }
  const download = error && /download/i.test(error.message) ? await downloadP : null
  if (download) await download.cancel().catch(() => {})
  let seen
  try {
    seen = await page.evaluate(() => ({ title: document.title, origin: window.origin, pwned: window.__pwned || null, href: location.href }))
  } catch (e) {
    seen = { evalError: String(e.message || e).split('\n')[0] }
  }
  return { page, url, response, error, download, seen }
}

// ------------------------------------------------------------------ per deployment

for (const kind of KINDS) {
  describe(`streams opened as pages run nothing on ${kind}`, () => {
    let srv, cases
    const streamPath = (c) => `${STREAM_PREFIX}xss/${RUN}/${c.id}`

    before(async () => {
      srv = await startServer({ label: `browser-xss-${kind}`, server: kind })
      cases = CASES(beacon.url)
      for (const c of cases) {
        beacon.served.set(c.id, c)
        const r = await rawRequest(srv.url, { method: 'PUT', path: streamPath(c), headers: { 'Content-Type': c.type }, body: c.body })
        assert.equal(r.status, 201, `PUT ${streamPath(c)} (${c.type}): ${r.body}`)
      }
    })

    after(async () => {
      await srv?.stop()
    })

    test('every read carries Content-Security-Policy: sandbox, and active types come as attachments', async () => {
      for (const c of cases) {
        for (const q of READS) {
          const r = await rawRequest(srv.url, { path: streamPath(c) + q })
          const where = `GET ${streamPath(c)}${q} (${c.type}) on ${kind}`
          assert.equal(r.status, 200, `${where}: ${r.body}`)
          assert.equal(r.body.toString('utf8'), c.body, `${where}: the stream's bytes`)
          assert.ok(sandboxesScripts(r.headers['content-security-policy']),
            `${where}: Content-Security-Policy sandboxes scripts (got ${JSON.stringify(r.headers['content-security-policy'])})`)
          if (c.attachment !== false) {
            assert.match(String(r.headers['content-disposition'] || ''), /^\s*attachment\b/i,
              `${where}: Content-Disposition: attachment (got ${JSON.stringify(r.headers['content-disposition'])})`)
          }
        }
        const h = await rawRequest(srv.url, { method: 'HEAD', path: streamPath(c) })
        assert.equal(h.status, 200, `HEAD ${streamPath(c)}`)
        assert.ok(sandboxesScripts(h.headers['content-security-policy']), `HEAD ${streamPath(c)}: sandbox`)
        if (c.attachment !== false) assert.match(String(h.headers['content-disposition'] || ''), /^\s*attachment\b/i, `HEAD ${streamPath(c)}: attachment`)
      }
    })

    test('Chromium sent to the streams runs none of their scripts', async (t) => {
      const context = await browser.newContext({ acceptDownloads: true })
      const open = []
      try {
        // Every check adds to `problems`, so that one run says what happened to each case.
        const problems = []
        const outcomes = []

        // 1. Each payload is live in this browser: served inline without CSP by the beacon, it runs.
        for (const c of cases) {
          const ctl = await navigate(context, `${beacon.url}/control/${c.id}`)
          open.push(ctl)
          assert.equal(ctl.error, null, `control page of ${c.id}: ${ctl.error?.message}`)
          await beacon.waitHit((h) => h.id === c.id && h.from.startsWith(beacon.url), `the control page of ${c.id}`)
          assert.equal(ctl.seen.pwned, c.id, `the control page of ${c.id} ran its script (${JSON.stringify(ctl.seen)})`)
        }

        // 2. The same bytes as streams, at every read URL: a download or an inert sandbox, never a page.
        for (const c of cases) {
          for (const q of READS) {
            const nav = await navigate(context, srv.url + streamPath(c) + q)
            open.push(nav)
            const what = `${c.id} (${c.type}) at ${streamPath(c)}${q}`
            outcomes.push(`${what}: ${nav.download ? 'download' : nav.error ? `error ${nav.error.message.split('\n')[0]}` : `rendered, ${JSON.stringify(nav.seen)}`}`)
            if (!nav.download) {
              if (nav.error) problems.push(`${what}: neither a download nor a page: ${nav.error.message.split('\n')[0]}`)
              else if (nav.response?.status() !== 200) problems.push(`${what}: status ${nav.response?.status()}`)
              // rendered: then at least in a sandbox, with an opaque origin
              else if (!nav.seen.evalError && nav.seen.origin !== 'null') problems.push(`${what}: rendered with the origin ${nav.seen.origin}, not sandboxed`)
            }
            if (!nav.seen.evalError && (nav.seen.pwned !== null || /pwned/.test(nav.seen.title))) {
              problems.push(`${what}: the payload's script ran (${JSON.stringify(nav.seen)})`)
            }
          }
        }
        t.diagnostic(`what Chromium made of each stream URL on ${kind}:\n${outcomes.join('\n')}`)

        // 3. A last control page, opened after every stream page (all still open): once its request
        //    arrived, none from a stream page has, nor will (their scripts would have run before their load).
        const lastUrl = `${beacon.url}/control/${cases[0].id}?last`
        open.push(await navigate(context, lastUrl))
        await beacon.waitHit((h) => h.from === lastUrl, 'the last control page')
        for (const h of beacon.hits.filter((x) => x.from.startsWith(srv.url))) {
          problems.push(`the payload ${h.id} made a request from ${h.from}`)
        }

        // 4. Nothing written on the server's origin: localStorage (read by a page of that origin that this
        //    test serves through Playwright routing, so that the server is not involved) and cookies.
        const probe = `${srv.url}/__xss_probe_${RUN}__`
        await context.route(probe, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>probe</title>' }))
        const p = await context.newPage()
        open.push({ page: p })
        await p.goto(probe, { timeout: T })
        for (const k of await p.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('pwned')))) {
          problems.push(`localStorage of ${srv.url} has ${k}`)
        }
        for (const k of (await context.cookies(srv.url)).filter((x) => x.name.endsWith(`_${srv.port}`))) {
          problems.push(`a cookie of ${srv.url}: ${k.name}`)
        }
        // the controls did write theirs (cookies of the beacon's port): the same reading would have seen them
        const ctlCookies = (await context.cookies(beacon.url)).filter((k) => k.name.endsWith(`_${beacon.port}`)).map((k) => k.name)
        assert.deepEqual(ctlCookies.sort(), cases.map((c) => `pwned_${c.id}_${beacon.port}`).sort(), 'the control pages set their cookies')

        if (problems.length) assert.fail(`on ${kind}, ${problems.length} signs of a payload that ran:\n${problems.join('\n')}`)
      } finally {
        for (const o of open) await o.page?.close().catch(() => {})
        await context.close()
      }
    })
  })
}

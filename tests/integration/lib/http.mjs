// Raw HTTP helpers for the integration tests. node:http is used rather than
// fetch where the exact bytes of the request line matter (fetch normalises
// paths such as /a/../b) and where every response header must be inspected.

import http from 'node:http'
import { sleep } from './server.mjs'

/**
 * Send one request; resolve with { status, headers, rawHeaders, body }.
 * opts: method, path (sent verbatim), headers, body (Buffer|string),
 *       chunked (send body with Transfer-Encoding: chunked), timeoutMs.
 */
export function rawRequest(baseUrl, opts) {
  const { method = 'GET', path, headers = {}, body, chunked = false, timeoutMs = 15_000 } = opts
  const u = new URL(baseUrl)
  const payload = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body)
  const hdrs = { ...headers }
  if (payload && !chunked) hdrs['Content-Length'] = String(payload.length)
  if (!payload && ['POST', 'PUT', 'PATCH'].includes(method)) hdrs['Content-Length'] ??= '0'
  return new Promise((resolve, reject) => {
    let responded = false
    const req = http.request(
      { host: u.hostname, port: u.port, method, path, headers: hdrs, agent: false, timeout: timeoutMs },
      (res) => {
        responded = true
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({
          status: res.statusCode,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
        }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${path}`)))
    req.on('error', (e) => { if (!responded) reject(e) })
    if (payload && chunked) {
      const step = 64 * 1024
      let off = 0
      const pump = () => {
        while (off < payload.length) {
          const ok = req.write(payload.subarray(off, off + step))
          off += step
          if (!ok) { req.once('drain', pump); return }
        }
        req.end()
      }
      pump()
    } else {
      req.end(payload ?? undefined)
    }
  })
}

/** True for a status or error worth retrying while workers are being respawned. */
export function transient(resOrErr) {
  return resOrErr instanceof Error || resOrErr.status >= 500
}

/** rawRequest, retried on network errors and 5xx until retryMs has passed. */
export async function requestRetry(baseUrl, opts, retryMs = 15_000) {
  const deadline = Date.now() + retryMs
  for (;;) {
    let r
    try { r = await rawRequest(baseUrl, opts) } catch (e) { r = e }
    if (!transient(r) || Date.now() > deadline) {
      if (r instanceof Error) throw r
      return r
    }
    await sleep(25 + Math.random() * 50)
  }
}

/**
 * Read a stream from `offset` to its tail, following Stream-Next-Offset until
 * Stream-Up-To-Date. Returns { bytes, pages, messages (JSON streams only),
 * nextOffset, contentType, closed }. Throws on a non-200 page.
 * opts.retryMs: retry network errors / 5xx per page (default 0: no retry).
 */
export async function readAll(baseUrl, streamPath, { offset = '-1', retryMs = 0, maxPages = 100_000 } = {}) {
  const pages = []
  const messages = []
  let contentType = null
  let closed = false
  let isJson = null
  for (let i = 0; i < maxPages; i++) {
    const opts = { method: 'GET', path: `${streamPath}?offset=${encodeURIComponent(offset)}` }
    const r = retryMs ? await requestRetry(baseUrl, opts, retryMs) : await rawRequest(baseUrl, opts)
    if (r.status !== 200) {
      throw new Error(`GET ${opts.path} -> ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`)
    }
    contentType = r.headers['content-type'] ?? contentType
    if (isJson === null) isJson = /^application\/json\b/i.test(contentType || '')
    pages.push(r.body)
    if (isJson) {
      const text = r.body.toString('utf8')
      let arr
      try {
        arr = text.trim() === '' ? [] : JSON.parse(text)
      } catch (e) {
        throw new Error(`page at offset ${offset} is not valid JSON (${e.message}): ${text.slice(0, 200)}`)
      }
      if (!Array.isArray(arr)) throw new Error(`page at offset ${offset} is not a JSON array`)
      messages.push(...arr)
    }
    const next = r.headers['stream-next-offset']
    if (!next) throw new Error(`GET ${opts.path}: no Stream-Next-Offset header`)
    const upToDate = r.headers['stream-up-to-date'] === 'true'
    closed = r.headers['stream-closed'] === 'true'
    if (upToDate) return { bytes: Buffer.concat(pages), pages, messages: isJson ? messages : null, nextOffset: next, contentType, closed }
    if (next === offset && r.body.length === 0) throw new Error(`GET ${opts.path}: no progress and not up to date`)
    offset = next
  }
  throw new Error(`stream ${streamPath} did not reach Stream-Up-To-Date within ${maxPages} pages`)
}

/**
 * A text/event-stream parser: returns feed(text) for the decoded chunks of a
 * response. Calls onEvent(type, data) for each event (type 'message' when
 * it names none; data lines joined with '\n') and onComment() for each
 * comment line. The pieces of a line not yet ended are joined once its
 * '\n' comes, so a 27 MB event costs one copy, not one rescan per chunk.
 */
export function sseParser({ onEvent, onComment = () => {} }) {
  let pending = []
  let type = null
  let data = []
  const line = (l) => {
    if (l.endsWith('\r')) l = l.slice(0, -1)
    if (l === '') {
      if (type !== null || data.length) onEvent(type ?? 'message', data.join('\n'))
      type = null
      data = []
    } else if (l.startsWith(':')) {
      onComment()
    } else {
      const i = l.indexOf(':')
      const field = i < 0 ? l : l.slice(0, i)
      let value = i < 0 ? '' : l.slice(i + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') type = value
      else if (field === 'data') data.push(value)
    }
  }
  return (text) => {
    let from = 0
    let nl
    while ((nl = text.indexOf('\n', from)) >= 0) {
      pending.push(text.slice(from, nl))
      line(pending.length === 1 ? pending[0] : pending.join(''))
      pending = []
      from = nl + 1
    }
    if (from < text.length) pending.push(text.slice(from))
  }
}

/**
 * Open a Server-Sent Events response with node:http and parse it as it
 * arrives. Returns at once with an object:
 *   response   Promise of { status, headers, rawHeaders } (rejects on a network error)
 *   events     [{ type, data, at }] in arrival order (comments are not events;
 *              `at` is performance.now() when the event was complete)
 *   comments   number of comment lines (heartbeats) seen
 *   body       Buffer of the whole body for a non-200 answer (once ended)
 *   ended      Promise of { complete, error }: complete is true when the
 *              response ended properly (chunked terminator or Content-Length),
 *              false when the connection was cut short
 *   waitFor(pred, timeoutMs, what)  resolves with the first event (old or
 *              new) for which pred(event, index) is true; rejects on timeout
 *              or if the response ends first
 *   close()    destroy the connection
 * opts: headers, agent (default: none, one connection per request), timeoutMs
 * (rejects `response` if no headers came by then; default 15 s).
 */
export function openSse(baseUrl, path, { headers = {}, agent = false, timeoutMs = 15_000 } = {}) {
  const u = new URL(baseUrl)
  const sub = { events: [], comments: 0, body: null, status: null }
  const waiters = new Set()
  let endedResult = null
  let resolveEnded
  sub.ended = new Promise((r) => { resolveEnded = r })
  const finish = (result) => {
    if (endedResult) return
    endedResult = result
    resolveEnded(result)
    for (const w of [...waiters]) w.check()
  }

  const req = http.request({
    host: u.hostname, port: u.port, method: 'GET', path, agent,
    headers: { Accept: 'text/event-stream', ...headers },
  })
  sub.response = new Promise((resolve, reject) => {
    const timer = setTimeout(() => req.destroy(new Error(`no response headers within ${timeoutMs} ms: GET ${path}`)), timeoutMs)
    req.on('error', (e) => { clearTimeout(timer); reject(e); finish({ complete: false, error: e }) })
    req.on('response', (res) => {
      clearTimeout(timer)
      sub.status = res.statusCode
      resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders })
      if (res.statusCode !== 200) {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => { sub.body = Buffer.concat(chunks) })
      } else {
        res.setEncoding('utf8')
        res.on('data', sseParser({
          onEvent(type, data) {
            sub.events.push({ type, data, at: performance.now() })
            for (const w of [...waiters]) w.check()
          },
          onComment() { sub.comments++ },
        }))
      }
      // 'close' comes after 'end' for a complete response, alone if cut short.
      res.on('close', () => finish({ complete: res.complete, error: null }))
      res.on('error', () => {})
    })
  })
  req.end()
  sub.response.catch(() => {}) // the caller may not look; `ended` reports it too

  sub.waitFor = (pred, waitMs = 10_000, what = 'event') => new Promise((resolve, reject) => {
    let timer
    const w = {
      check() {
        const i = sub.events.findIndex((e, k) => pred(e, k))
        if (i >= 0) { done(); resolve(sub.events[i]); return }
        if (endedResult) {
          done()
          reject(new Error(`SSE ${path} ended (${endedResult.complete ? 'complete' : 'cut short'}) before ${what}; ` +
            `${sub.events.length} events received`))
        }
      },
    }
    const done = () => { clearTimeout(timer); waiters.delete(w) }
    timer = setTimeout(() => { done(); reject(new Error(`no ${what} on SSE ${path} within ${waitMs} ms (${sub.events.length} events received)`)) }, waitMs)
    waiters.add(w)
    w.check()
  })
  sub.close = () => req.destroy()
  return sub
}

/** The JSON messages carried by the `data` events of an SSE subscription (arrays flattened). */
export function sseMessages(sub) {
  const out = []
  for (const e of sub.events) {
    if (e.type !== 'data') continue
    const v = JSON.parse(e.data)
    if (Array.isArray(v)) out.push(...v)
    else out.push(v)
  }
  return out
}

/** Number of times the header `name` occurs in a raw header list. */
export function headerCount(rawHeaders, name) {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name.toLowerCase()) n++
  return n
}

/**
 * Everything a refused request must leave alone in a stream: HEAD's status,
 * Stream-Next-Offset, Stream-Closed and Content-Type, and the full content
 * by catch-up reads from -1 (base64 pages joined with "|"). request(opts) sends
 * one request like rawRequest. A read that is not 200 ends the walk and is
 * recorded as `read`.
 */
export async function streamState(request, path, maxPages = 1000) {
  const h = await request({ method: 'HEAD', path })
  const s = {
    head: h.status,
    next: h.headers['stream-next-offset'] ?? null,
    closed: h.headers['stream-closed'] ?? null,
    type: h.headers['content-type'] ?? null,
  }
  if (h.status !== 200) return s
  let offset = '-1'
  const pages = []
  for (let i = 0; i < maxPages; i++) {
    const g = await request({ method: 'GET', path: `${path}?offset=${encodeURIComponent(offset)}` })
    if (g.status !== 200) { s.read = g.status; break }
    pages.push(g.body.toString('base64'))
    const next = g.headers['stream-next-offset']
    if (g.headers['stream-up-to-date'] === 'true' || !next || next === offset) break
    offset = next
  }
  s.content = pages.join('|')
  return s
}

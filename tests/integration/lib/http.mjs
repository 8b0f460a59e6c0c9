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

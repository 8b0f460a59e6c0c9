// deploy/demo-producer rides out a server that is briefly unavailable.
//
// It retries every request (curl --retry), and its appends carry an
// idempotent producer's headers, so a retry never stores an event twice.
// Here a proxy in front of a real deployment answers the first try of one
// request in four (the stream's creation and its closing among them) with
// 503, Retry-After and a line of text, as the web servers and HAProxy do: the build must still arrive whole, each event once, and the
// stream closed. (curl empties what a failed try wrote before it retries,
// which fails on /dev/null: every retry after an answer with a body used to
// end the producer with "curl: (23) Failed to truncate file".)

import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { startServer, REPO_ROOT } from './lib/server.mjs'
import { readAll } from './lib/http.mjs'

const PRODUCER = path.join(REPO_ROOT, 'deploy', 'demo-producer')

test('demo-producer: requests meet a 503 with a body first; the build arrives whole, each event once', { timeout: 120_000 }, async () => {
  const srv = await startServer({ server: 'standalone' })
  const seen = new Set()
  let refused = 0
  const refusedKeys = []
  // one distinct request (method, path, producer sequence) in four, and the
  // PUTs and the close, are refused once, then passed on
  const proxy = http.createServer(async (q, s) => {
    const chunks = []
    for await (const c of q) chunks.push(c)
    const key = `${q.method} ${q.url} ${q.headers['producer-seq'] || ''} ${q.headers['stream-closed'] || ''}`
    const refuse = !seen.has(key) && (seen.size % 4 === 0 || q.method === 'PUT' || q.headers['stream-closed'])
    seen.add(key)
    if (refuse) {
      refused++
      refusedKeys.push(key)
      s.writeHead(503, { 'Retry-After': '1', 'Content-Type': 'text/plain' }).end('the server is busy; retry later\n')
      return
    }
    const headers = { ...q.headers }
    delete headers.host
    const r = await fetch(srv.url + q.url, { method: q.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined })
    const h = {}
    r.headers.forEach((v, k) => { if (!['content-length', 'transfer-encoding', 'connection'].includes(k)) h[k] = v })
    s.writeHead(r.status, h).end(Buffer.from(await r.arrayBuffer()))
  })
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${proxy.address().port}`
  const name = `retry-${Date.now()}`
  try {
    const child = spawn(PRODUCER, ['--url', url, '--name', name, '--interval', '0', '--units', '1'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (c) => { err += c })
    const code = await new Promise((resolve) => child.on('exit', resolve))
    assert.equal(code, 0, `demo-producer exited ${code}: ${err}`)
    const got = await readAll(srv.url, `/v1/stream/demo/${name}`)
    assert.ok(got.closed, 'the stream is closed')
    const ns = got.messages.map((e) => e.n)
    assert.ok(ns.length >= 10, `a whole build: ${ns.length} events`)
    assert.deepEqual(ns, ns.map((_, i) => i + 1), 'each event once, in order')
    assert.ok(refused >= ns.length / 4, `${refused} requests refused first`)
    assert.ok(refusedKeys.some((k) => k.startsWith('PUT ')) && refusedKeys.some((k) => k.endsWith(' true')), 'the creation and the close were retried')
  } finally {
    proxy.closeAllConnections?.()
    await new Promise((resolve) => proxy.close(resolve))
    await srv.stop()
  }
})

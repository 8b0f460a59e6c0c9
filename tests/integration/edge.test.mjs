// lmstream-live's edge: what the daemon refuses before a request reaches the
// protocol, and what it must let go of. Each test sends what a careless or
// hostile client sends, on raw sockets where node:http would not, and checks
// both the answer and that nothing changed.
//
//  - NUL bytes in the request line or a header: 400, nothing stored
//  - two Content-Length headers: 400, nothing appended; a garbage request
//    line: 400 (libmicrohttpd alone closes without a word)
//  - Content-Length over max_body: 413 at once, before any body byte; uploads
//    beyond the memory budget: 503 with Retry-After at once; slow SSE readers
//    of a 20 MiB message hold pieces, not the message; catch-up responses
//    count in the budget too
//  - headers sent slowly: 408 and closed after header_timeout; a flood of
//    slow sockets from one address is capped per address, and a client from
//    another address is served meanwhile
//  - over max_connections: 503 with Retry-After and Connection: close, and
//    the server closes the connection
//  - 2,000 idle SSE clients closed at once (half with FIN, half with RST),
//    after a keep-alive request: every descriptor is released within a
//    heartbeat or two
//  - a forged commit notice (transaction id 2^64-1) does not stop the daemon
//    from noticing commits whose notice was lost

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { startServer, sleep, until, STREAM_PREFIX, cgiPost } from './lib/server.mjs'
import { rawRequest, openSse } from './lib/http.mjs'

const tag = randomBytes(4).toString('hex')
// tests/run-all's sanitized stage runs the AddressSanitizer build
const SANITIZED = Boolean(process.env.ASAN_OPTIONS)
const MiB = 1024 * 1024

/**
 * Connects (from localAddress, if given), writes `bytes` (a Buffer, or an
 * array of [delayMs, Buffer] steps) and collects what comes back until the
 * server closes or timeoutMs passes: { data, closed, ms }.
 */
function exchange(port, bytes, { timeoutMs = 5000, localAddress } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const chunks = []
    let done = false
    const sock = net.connect({ host: '127.0.0.1', port, localAddress })
    const finish = (closed) => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve({ data: Buffer.concat(chunks), closed, ms: performance.now() - t0 })
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    sock.on('data', (c) => chunks.push(c))
    sock.on('end', () => finish(true))
    sock.on('close', () => finish(true))
    sock.on('error', () => finish(true))
    sock.on('connect', async () => {
      const steps = Buffer.isBuffer(bytes) ? [[0, bytes]] : bytes
      for (const [delay, b] of steps) {
        if (delay) await sleep(delay)
        if (done) return
        sock.write(b)
      }
    })
  })
}

const statusOf = (data) => Number((/^HTTP\/1\.[01] (\d{3})/.exec(data.toString('latin1')) || [])[1] || 0)
const headerOf = (data, name) => (new RegExp(`\\r\\n${name}: ([^\\r]*)`, 'i').exec(data.toString('latin1')) || [])[1]

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m[1])
}

const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length

async function create(srv, p, type = 'application/octet-stream') {
  const r = await rawRequest(srv.url, { method: 'PUT', path: p, headers: { 'Content-Type': type } })
  assert.equal(r.status, 201, `PUT ${p}: ${r.status} ${r.body}`)
}

async function contents(srv, p) {
  const r = await rawRequest(srv.url, { path: `${p}?offset=-1` })
  return r
}

describe('edge[standalone]: bad requests, memory, descriptors, notices', () => {
  let srv
  let pid
  before(async () => {
    srv = await startServer({
      label: 'edge',
      server: 'standalone',
      config: { max_body: '25M', memory_budget: '48M', header_timeout: 1000, heartbeat: 1000, max_connections_per_ip: 0 },
    })
    pid = srv.livePids()[0]
  })
  after(async () => { await srv?.stop() })

  test('a NUL byte in the path or in a header: 400, nothing stored', async () => {
    const name = `${STREAM_PREFIX}nul-${tag}`
    const put = await exchange(srv.port, Buffer.from(
      `PUT ${name}\0x HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n`, 'latin1'))
    assert.equal(statusOf(put.data), 400, put.data.toString('latin1'))
    assert.match(put.data.toString('latin1'), /NUL byte/)
    assert.equal((await rawRequest(srv.url, { method: 'HEAD', path: name })).status, 404, 'a truncated name was created')

    const p = `${STREAM_PREFIX}nulh-${tag}`
    await create(srv, p, 'text/plain')
    for (const [hdr, value] of [['Producer-Id', 'ab\0cd'], ['Content-Type', 'text/plain\0; x=y'], ['X-Other', 'a\0b']]) {
      const producer = hdr === 'Producer-Id' ? '' : 'Producer-Id: p1\r\n'
      const r = await exchange(srv.port, Buffer.from(
        `POST ${p} HTTP/1.1\r\nHost: a\r\n${hdr === 'Content-Type' ? '' : 'Content-Type: text/plain\r\n'}` +
        `${hdr}: ${value}\r\n${producer}Producer-Epoch: 0\r\nProducer-Seq: 0\r\nContent-Length: 1\r\n\r\nx`, 'latin1'))
      assert.equal(statusOf(r.data), 400, `${hdr}: ${r.data.toString('latin1')}`)
    }
    // a NUL in the query is refused as well
    const q = await exchange(srv.port, Buffer.from(`GET ${p}?offset=-1\0&live=sse HTTP/1.1\r\nHost: a\r\n\r\n`, 'latin1'))
    assert.equal(statusOf(q.data), 400, q.data.toString('latin1'))
    const body = await contents(srv, p)
    assert.equal(body.status, 200)
    assert.equal(body.body.length, 0, 'something was appended')
  })

  test('two Content-Length headers: 400, nothing appended; a garbage request line: 400', async () => {
    const p = `${STREAM_PREFIX}cl-${tag}`
    await create(srv, p, 'text/plain')
    for (const lengths of ['Content-Length: 1\r\nContent-Length: 1\r\n', 'Content-Length: 1\r\nContent-Length: 5\r\n',
      'Content-Length: 1\r\nTransfer-Encoding: chunked\r\n']) {
      const r = await exchange(srv.port, Buffer.from(`POST ${p} HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n${lengths}\r\nx`))
      assert.equal(statusOf(r.data), 400, `${JSON.stringify(lengths)}: ${r.data.toString('latin1')}`)
    }
    assert.equal((await contents(srv, p)).body.length, 0, 'something was appended')
    for (const line of ['GARBAGE', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'GET']) {
      const r = await exchange(srv.port, Buffer.from(`${line}\r\n\r\n`, 'latin1'))
      assert.equal(statusOf(r.data), 400, `${JSON.stringify(line)}: ${JSON.stringify(r.data.toString('latin1'))}`)
      assert.ok(r.closed, 'the connection stays open')
    }
  })

  test('Content-Length over max_body: 413 at once, before the body', async () => {
    const p = `${STREAM_PREFIX}big-${tag}`
    await create(srv, p)
    const r = await exchange(srv.port, Buffer.from(
      `POST ${p} HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\nContent-Length: ${30 * MiB}\r\n\r\n`))
    assert.equal(statusOf(r.data), 413, r.data.toString('latin1'))
    assert.ok(r.closed && r.ms < 3000, `answered after ${Math.round(r.ms)} ms, closed: ${r.closed}`)
  })

  test('uploads beyond memory_budget get 503 with Retry-After at once; memory stays bounded', async () => {
    const p = `${STREAM_PREFIX}budget-${tag}`
    await create(srv, p)
    const rss0 = rssKiB(pid)
    const head = `POST ${p} HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\nContent-Length: ${20 * MiB}\r\n\r\n`
    // Three uploads of 20 MiB that send their headers, wait for an answer,
    // send 1 MiB if none came, and stall: two fit in 48 MiB.
    const socks = []
    const answers = []
    try {
      for (let i = 0; i < 3; i++) {
        const s = net.connect({ host: '127.0.0.1', port: srv.port })
        const got = []
        s.on('data', (c) => got.push(c))
        s.on('error', () => {})
        await new Promise((r) => s.once('connect', r))
        socks.push(s)
        answers.push(got)
        s.write(head)
        await sleep(300)
        if (!got.length) s.write(Buffer.alloc(MiB, i))
      }
      await sleep(300)
      const statuses = answers.map((got) => statusOf(Buffer.concat(got)))
      assert.deepEqual(statuses, [0, 0, 503], 'the third upload was not refused at once')
      const third = Buffer.concat(answers[2])
      assert.match(headerOf(third, 'Retry-After') || '', /^\d+$/)
      assert.match(third.toString('latin1'), /memory_budget/)
      const grew = rssKiB(pid) - rss0
      if (!SANITIZED) assert.ok(grew < 16 * 1024, `RSS grew by ${grew} KiB for 2 MiB received`)
    } finally {
      for (const s of socks) s.destroy()
    }
    // the budget comes back: an upload fits again
    await sleep(300)
    const ok = await rawRequest(srv.url, { method: 'POST', path: p, headers: { 'Content-Type': 'application/octet-stream' }, body: Buffer.alloc(MiB, 7) })
    assert.equal(ok.status, 204, `after the stalled uploads left: ${ok.status} ${ok.body}`)
  })

  test('slow SSE readers of a 20 MiB message hold pieces, not the message', { timeout: 60_000 }, async (t) => {
    const p = `${STREAM_PREFIX}large-${tag}`
    await create(srv, p)
    const big = randomBytes(20 * MiB)
    const w = await rawRequest(srv.url, { method: 'POST', path: p, headers: { 'Content-Type': 'application/octet-stream' }, body: big })
    assert.equal(w.status, 204)
    await sleep(300)
    const rss0 = rssKiB(pid)
    // three clients that never read
    const socks = []
    for (let i = 0; i < 3; i++) {
      const s = net.connect({ host: '127.0.0.1', port: srv.port })
      s.on('error', () => {})
      await new Promise((r) => s.once('connect', r))
      s.pause()
      s.write(`GET ${p}?offset=-1&live=sse HTTP/1.1\r\nHost: a\r\n\r\n`)
      socks.push(s)
    }
    await sleep(2000)
    const grew = rssKiB(pid) - rss0
    const held = (await srv.liveStats()).bufferedBytes
    for (const s of socks) s.destroy()
    t.diagnostic(`three stalled readers of a 20 MiB message: ${held} bytes of events held, RSS +${grew} KiB`)
    // what the daemon holds for them: a piece each (48 KiB, 64 KiB as base64)
    assert.ok(held <= 3 * 80 * 1024, `${held} bytes of unsent events held`)
    // (AddressSanitizer keeps freed memory in quarantine: RSS means nothing there)
    if (!SANITIZED) assert.ok(grew < 24 * 1024, `RSS grew by ${grew} KiB for three stalled readers of a 20 MiB message`)

    // and a reader that reads gets the message whole, base64 in one event
    const sub = openSse(srv.url, `${p}?offset=-1&live=sse`)
    try {
      await sub.waitFor((e) => e.type === 'control', 30_000, 'the control event after the message')
      const data = sub.events.filter((e) => e.type === 'data')
      assert.equal(data.length, 1)
      assert.ok(Buffer.from(data[0].data, 'base64').equals(big), 'the message arrived changed')
    } finally {
      sub.close()
    }
  })

  test('catch-up reads of a 20 MiB message count in the budget: the one that does not fit gets 503', { timeout: 60_000 }, async () => {
    const p = `${STREAM_PREFIX}large-${tag}`
    const socks = []
    const firsts = []
    try {
      for (let i = 0; i < 3; i++) {
        const s = net.connect({ host: '127.0.0.1', port: srv.port })
        s.on('error', () => {})
        firsts.push(new Promise((resolve) => s.once('data', (c) => { s.pause(); resolve(c) })))
        s.write(`GET ${p}?offset=-1 HTTP/1.1\r\nHost: a\r\n\r\n`)
        socks.push(s)
        await firsts[i]
      }
      const statuses = (await Promise.all(firsts)).map(statusOf)
      assert.deepEqual(statuses, [200, 200, 503], 'two 20 MiB responses fit in 48 MiB, a third does not')
      assert.match(headerOf(await firsts[2], 'Retry-After') || '', /^\d+$/)
    } finally {
      for (const s of socks) s.destroy()
    }
    await sleep(300)
    const r = await rawRequest(srv.url, { path: `${p}?offset=-1` })
    assert.equal(r.status, 200, 'the budget came back')
    assert.equal(r.body.length, 20 * MiB)
  })

  test('headers sent slowly: 408 and closed after header_timeout', async () => {
    // a byte every 200 ms: the idle timeout never fires, the header deadline does
    const steps = [[0, Buffer.from('GET /v1/stream/x HTTP/1.1\r\n')]]
    for (let i = 0; i < 30; i++) steps.push([200, Buffer.from('X')])
    const r = await exchange(srv.port, steps, { timeoutMs: 6000 })
    assert.equal(statusOf(r.data), 408, r.data.toString('latin1'))
    assert.ok(r.closed && r.ms < 3500, `closed: ${r.closed} after ${Math.round(r.ms)} ms (header_timeout 1000)`)
    // an idle keep-alive connection is closed as well
    const k = await exchange(srv.port, Buffer.from(`GET ${STREAM_PREFIX}none-${tag} HTTP/1.1\r\nHost: a\r\n\r\n`), { timeoutMs: 6000 })
    assert.equal(statusOf(k.data), 404)
    assert.ok(k.closed && k.ms < 3500, `keep-alive closed: ${k.closed} after ${Math.round(k.ms)} ms`)
  })

  test('requests the server has not read yet are not 408: a stalled daemon serves them when it resumes', { timeout: 60_000 }, async () => {
    // 300 clients connect and the daemon accepts them (their header deadline
    // runs); within half of header_timeout lmstream-live is stopped (SIGSTOP),
    // the clients send whole requests, and it stays stopped for twice
    // header_timeout: the bytes wait in the daemon's sockets, and the wait is
    // the server's, not the clients'. When it resumes, each request is served;
    // none gets "408 ... headers came too slowly".
    const p = `${STREAM_PREFIX}stall-${tag}`
    await create(srv, p, 'text/plain')
    const base = fdCount(pid)
    const conns = []
    for (let i = 0; i < 300; i++) {
      const s = net.connect({ host: '127.0.0.1', port: srv.port })
      const c = { s, data: '', done: null, connected: null }
      c.connected = new Promise((resolve) => { s.once('connect', resolve); s.once('error', resolve) })
      c.done = new Promise((resolve) => { s.on('close', resolve); s.on('error', resolve) })
      s.on('data', (d) => { c.data += d.toString('latin1'); if (/\r\n\r\n/.test(c.data)) s.end() })
      conns.push(c)
    }
    await Promise.race([Promise.all(conns.map((c) => c.connected)), sleep(10_000)])
    // Stopped no later than 500 ms after the last connection was made (the
    // deadline is 1000 ms): on a loaded machine not every one is accepted by
    // then; those that are carry the test.
    for (let t = 0; t < 10 && fdCount(pid) < base + 300; t++) await sleep(50)
    const accepted = fdCount(pid) - base
    process.kill(pid, 'SIGSTOP')
    try {
      for (const c of conns) c.s.write(`HEAD ${p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
      await sleep(2000)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    await Promise.race([Promise.all(conns.map((c) => c.done)), sleep(30_000)])
    const statuses = new Map()
    for (const c of conns) { const st = statusOf(Buffer.from(c.data, 'latin1')); statuses.set(st, (statuses.get(st) || 0) + 1) }
    assert.ok(accepted >= 100, `only ${accepted} of 300 connections accepted before the stop: nothing was tested`)
    assert.deepEqual([...statuses], [[200, 300]],
      `statuses after the stall (${accepted} of 300 accepted before it): ${JSON.stringify([...statuses])}`)
  })

  test('2,000 idle SSE clients closed at once after a keep-alive request: every descriptor is released', { timeout: 90_000 }, async () => {
    const p = `${STREAM_PREFIX}leak-${tag}`
    await create(srv, p, 'application/json')
    await sleep(1500) // the earlier tests' connections are gone
    const base = fdCount(pid)
    const socks = []
    for (let i = 0; i < 2000; i++) {
      const s = net.connect({ host: '127.0.0.1', port: srv.port })
      s.on('error', () => {})
      s.on('data', () => {})
      s.write(`GET ${p}?offset=-1&live=sse HTTP/1.1\r\nHost: a\r\n\r\n`)
      socks.push(s)
      if (i % 200 === 199) await sleep(50)
    }
    // all admitted and waiting
    for (let t = 0; t < 100 && fdCount(pid) < base + 2000; t++) await sleep(100)
    assert.ok(fdCount(pid) >= base + 2000, `only ${fdCount(pid) - base} connections were admitted`)
    // a keep-alive request served (and its connection left open) meanwhile
    const keep = net.connect({ host: '127.0.0.1', port: srv.port })
    keep.on('error', () => {})
    const served = new Promise((r) => keep.once('data', r))
    keep.write(`HEAD ${p} HTTP/1.1\r\nHost: a\r\n\r\n`)
    await served
    socks.forEach((s, i) => { if (i % 2) s.resetAndDestroy(); else s.end() })
    let left
    for (let t = 0; t < 40; t++) {
      await sleep(100)
      left = fdCount(pid) - base
      if (left <= 2) break
    }
    keep.destroy()
    assert.ok(left <= 2, `${left} descriptors still held 4 s (4 heartbeats) after the clients left`)
  })

  test('a forged commit notice does not hide later commits whose notice was lost', { timeout: 30_000 }, async () => {
    const p = `${STREAM_PREFIX}forged-${tag}`
    await create(srv, p, 'application/json')
    const head = await rawRequest(srv.url, { method: 'HEAD', path: p })
    const tail = head.headers['stream-next-offset']
    // transaction id 2^64-1 on the notify socket (as an allowed user: root
    // or the daemon's own)
    const sock = path.join(srv.dataDir, 'live.sock')
    const msg = Buffer.alloc(16)
    msg.writeBigUInt64LE(1n, 0)
    msg.writeBigUInt64LE(0xffffffffffffffffn, 8)
    await sendDatagram(sock, msg)
    const stats = await srv.liveStats()
    assert.equal(stats.ignoredNotices, 1, 'the forged notice was taken')

    const poll = rawRequest(srv.url, { path: `${p}?offset=${tail}&live=long-poll`, timeoutMs: 25_000 })
    await sleep(300)
    // a commit whose notice goes nowhere: a CGI run with another notify socket
    const status = await cgiPost(srv, p, { lost: tag }, { LMSTREAM_NOTIFY_SOCKET: path.join(srv.root, 'nowhere.sock') })
    assert.ok(status === 200 || status === 204, `CGI append: ${status}`)
    const t0 = performance.now()
    const r = await poll
    assert.equal(r.status, 200, `long-poll: ${r.status}`)
    assert.deepEqual(JSON.parse(r.body.toString('utf8')), [{ lost: tag }])
    assert.ok(performance.now() - t0 < 5000, 'the commit was noticed late')
  })
})

describe('edge[standalone]: floods and the connection cap', () => {
  const CAP = 200
  const PER_IP = 50
  // live reads may take the cap but for a reserve kept for writes (src/lib/limits.h)
  const LIVE_CAP = CAP - Math.min(Math.floor(CAP / 32) + 8, 256, Math.floor(CAP / 2))
  let srv
  before(async () => {
    srv = await startServer({
      label: 'edge-cap',
      server: 'standalone',
      config: { max_connections: CAP, max_connections_per_ip: PER_IP, header_timeout: 3000, heartbeat: 1000 },
    })
  })
  after(async () => { await srv?.stop() })

  test(`400 slow-header sockets from one address: a client from another is served meanwhile`, { timeout: 60_000 }, async () => {
    const flood = []
    for (let i = 0; i < 400; i++) {
      const s = net.connect({ host: '127.0.0.1', port: srv.port, localAddress: '127.0.0.1' })
      s.on('error', () => {})
      s.on('data', () => {})
      s.on('connect', () => s.write('GET / HTTP/1.1\r\n'))
      flood.push(s)
    }
    const trickle = setInterval(() => { for (const s of flood) if (!s.destroyed) s.write('X') }, 200)
    try {
      await sleep(1000)
      // the address holds at most its share
      assert.ok(srv.liveConnections() <= PER_IP + 2, `${srv.liveConnections()} connections held for one address`)
      for (const from of ['127.0.0.2', '127.0.0.3']) {
        const r = await exchange(srv.port, Buffer.from(`GET ${STREAM_PREFIX}nothing-${tag} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`),
          { localAddress: from, timeoutMs: 5000 })
        const st = statusOf(r.data)
        assert.ok(st === 404 || (st === 503 && headerOf(r.data, 'Retry-After')), `a client from ${from} got ${st || 'no answer'}`)
      }
    } finally {
      clearInterval(trickle)
      for (const s of flood) s.destroy()
    }
    // The address's share comes back only once the daemon has closed its
    // ends; until then the next test's first request from 127.0.0.1 would be
    // refused at the door (CI: 'socket hang up' 2 ms into the next test).
    await until('the daemon to close the flood\'s connections', () => srv.liveConnections() === 0, 10_000)
  })

  test(`over max_connections: 503 with Retry-After and Connection: close, and closed`, { timeout: 60_000 }, async () => {
    const p = `${STREAM_PREFIX}cap-${tag}`
    await create(srv, p, 'application/json')
    await sleep(500)
    const subs = []
    // 250 SSE readers, 50 from each of five addresses
    for (let i = 0; i < 250; i++) {
      const from = `127.0.0.${10 + Math.floor(i / PER_IP)}`
      subs.push(exchange(srv.port, Buffer.from(`GET ${p}?offset=-1&live=sse HTTP/1.1\r\nHost: a\r\n\r\n`),
        { localAddress: from, timeoutMs: 10_000 }))
      if (i % 50 === 49) await sleep(100)
    }
    // With the live reads at their cap, a writer still gets through.
    await sleep(500)
    const body = '{"w":1}'
    const w = await exchange(srv.port, Buffer.from(`POST ${p} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`), { localAddress: '127.0.0.2', timeoutMs: 5000 })
    assert.ok([200, 204].includes(statusOf(w.data)), `a write at the cap got ${statusOf(w.data) || 'no answer'}`)
    const rs = await Promise.all(subs)
    const ok = rs.filter((r) => statusOf(r.data) === 200)
    const refused = rs.filter((r) => statusOf(r.data) === 503)
    assert.equal(ok.length + refused.length, 250, `answers: ${JSON.stringify(rs.map((r) => statusOf(r.data)))}`)
    assert.ok(ok.length >= LIVE_CAP - 5 && ok.length <= LIVE_CAP, `${ok.length} admitted`)
    for (const r of refused) {
      assert.match(headerOf(r.data, 'Retry-After') || '', /^\d+$/)
      assert.equal(headerOf(r.data, 'Connection'), 'close')
      assert.ok(r.closed, 'a refused connection was kept open')
    }
  })
})

function sendDatagram(socketPath, buf) {
  // node has no AF_UNIX datagrams: a one-line Python sender
  return new Promise((resolve, reject) => {
    const py = spawn('python3', ['-c',
      'import socket,sys;s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);s.sendto(bytes.fromhex(sys.argv[2]),sys.argv[1])',
      socketPath, buf.toString('hex')], { stdio: 'inherit' })
    py.on('error', reject)
    py.on('close', (code) => code === 0 ? resolve() : reject(new Error(`datagram sender exited ${code}`)))
  })
}

describe('edge[standalone]: request headers against conn_memory', () => {
  let srv
  before(async () => {
    srv = await startServer({ label: 'edge-headers', server: 'standalone', config: { conn_memory: '5K' } })
    const put = await fetch(`${srv.url}${STREAM_PREFIX}headers-${tag}`, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: 'm'.repeat(3000) })
    assert.equal(put.status, 201)
  })
  after(async () => { await srv?.stop() })

  /** A catch-up read carrying a cookie of n bytes: { status, body }, or { status: 0 } when closed unanswered. */
  function readWithCookie(n) {
    const u = new URL(srv.url)
    return new Promise((resolve) => {
      const sock = net.connect(Number(u.port), u.hostname)
      let got = ''
      sock.on('data', (c) => { got += c.toString('latin1') })
      sock.on('error', () => {})
      sock.on('close', () => {
        const m = /^HTTP\/1\.1 (\d+)/.exec(got)
        resolve({ status: m ? Number(m[1]) : 0, body: got.slice(got.indexOf('\r\n\r\n') + 4) })
      })
      sock.end(`GET ${STREAM_PREFIX}headers-${tag}?offset=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
        `Cookie: a=${'x'.repeat(n)}\r\n\r\n`)
    })
  }

  // conn_memory = 5K: headers up to conn_memory / 2 less 1 KiB (1,536 bytes) are
  // served; above, libmicrohttpd would not have room left to answer, so the
  // daemon answers 431 while it still can (before, about 1,950 to 2,350 bytes of
  // headers got the connection closed without a word); far above, libmicrohttpd
  // answers 431 itself.
  test('a request whose headers leave no room for the answer gets 431, not a closed connection', async () => {
    const small = await readWithCookie(1000)
    assert.equal(small.status, 200)
    assert.equal(small.body.length, 3000)
    for (const n of [2000, 2100, 2200, 1600]) {
      const r = await readWithCookie(n)
      assert.equal(r.status, 431, `a ${n}-byte cookie: status ${r.status}`)
      assert.match(r.body, /request headers too large/)
    }
    assert.equal((await readWithCookie(3000)).status, 431)
    assert.equal((await readWithCookie(500)).status, 200, 'the daemon still answers')
  })
})

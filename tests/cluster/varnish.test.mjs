// Varnish in front of HAProxy (deploy/run --server cluster, two nodes on
// loopback ports), every program real: deploy/varnish/lmstream.vcl.
//
// What a user relies on:
//   * Long-polls collapse: 1,000 long-poll clients on one public stream cost
//     the origin (varnishstat MAIN.backend_req: every request Varnish sent to
//     HAProxy) at most 3 requests per message that wakes them, and at most 3
//     per long-poll timeout (a 204, kept 1 s); every client gets every
//     message exactly once, in order.
//   * A hot stream's catch-up is served from Varnish: 100 readers reading a
//     public stream from the start cost the origin about one request per
//     distinct read (MAIN.cache_hit counts the rest); a writer appending
//     through Varnish reads its own write; a stream deleted and made again
//     through Varnish is never served with its old data, at any offset read
//     before.
//   * A credentialed read is never served to another user: user A's read of
//     a private stream (Authorization, or ?token=) goes to the origin each
//     time, and user B, asking the same URL with B's token, gets 403 and none
//     of A's bytes.
//   * SSE through Varnish streams: each event arrives within a second of its
//     append, while the response is open (not buffered to its end).
//   * Varnish's own failure (its origin does not answer) is 503 with
//     Retry-After and a one-line text body.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { REPO_ROOT, STREAM_PREFIX, sleep, until } from '../integration/lib/server.mjs'
import { startDeployRun } from './deploy-run.mjs'

const VCL = path.join(REPO_ROOT, 'deploy', 'varnish', 'lmstream.vcl')
const BINDIR = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'src')
const CTL = path.join(BINDIR, 'lmstreamctl')
const VARNISHD = process.env.LMSTREAM_VARNISHD || 'varnishd'
const LONG_POLL_MS = 3000
const CLIENTS = Number(process.env.LMSTREAM_VARNISH_CLIENTS || 1000)
const tag = crypto.randomBytes(3).toString('hex')
const PUB = `pub-${tag}` // public_read and public_write
const PRIV = `priv-${tag}`
const TEXT = { 'Content-Type': 'text/plain' }

let cluster // { url, haproxy, varnishDir, child, log, key }
let root

async function startCluster() {
  const conf = path.join(root, 'lmstream.conf')
  fs.writeFileSync(conf, `auth = token\nlong_poll_timeout = ${LONG_POLL_MS}\npublic_read = ${PUB}/**\npublic_write = ${PUB}/**\n`)
  const args = ['--server', 'cluster', '--nodes', '2', '--port', '0', '--data', path.join(root, 'data'),
    '--config', conf, '--rundir', path.join(root, 'run')]
  const c = await startDeployRun(args)
  const log = c.log()
  assert.match(log, /\(server=cluster, cache=varnish/)
  return {
    ...c,
    haproxy: /lmstream: HAProxy on (http:\/\/\S+)/.exec(log)[1],
    varnishDir: /varnishstat -n (\S+)\)/.exec(log)[1],
    key: path.join(root, 'data', 'auth.key'),
  }
}

function token(sub, read, write = read, admin = null) {
  return execFileSync(CTL, ['token', '--key', cluster.key, '--read', read, '--write', write,
    ...(admin ? ['--admin', admin] : []), '--ttl', '30m', '--sub', sub]).toString().trim()
}

/** Varnish's counters: { 'MAIN.backend_req': n, ... } */
function vstat() {
  const out = execFileSync('varnishstat', ['-n', cluster.varnishDir, '-1', '-f', 'MAIN.backend_req', '-f', 'MAIN.cache_hit',
    '-f', 'MAIN.cache_miss', '-f', 'MAIN.s_pass', '-f', 'MAIN.client_req']).toString()
  const s = {}
  for (const line of out.split('\n')) {
    const m = /^(\S+)\s+(\d+)/.exec(line)
    if (m) s[m[1]] = Number(m[2])
  }
  return s
}

/**
 * Varnish's counters once they have caught up. A worker thread keeps its
 * counts and adds them to the shared ones only when it finds the lock free
 * (or after thread_stats_rate tasks), so right after a burst of concurrent
 * requests varnishstat can be short by a few. Waits until at least
 * `clientReqs` client requests past `base` are counted and two readings
 * 200 ms apart agree (at most 10 s).
 */
async function vstatSettled(base, clientReqs = 0) {
  let prev = vstat()
  const end = Date.now() + 10_000
  while (Date.now() < end) {
    await sleep(200)
    const cur = vstat()
    const counted = base ? cur['MAIN.client_req'] - base['MAIN.client_req'] : clientReqs
    if (counted >= clientReqs && Object.keys(cur).every((k) => cur[k] === prev[k])) return cur
    prev = cur
  }
  return prev
}

async function req(method, p, { base = cluster.url, headers = {}, body } = {}) {
  const res = await fetch(base + p, { method, body, headers })
  const text = method === 'HEAD' ? '' : await res.text()
  return { status: res.status, headers: res.headers, text }
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-varnish-'))
  cluster = await startCluster()
  assert.notEqual(cluster.url, cluster.haproxy, 'Varnish on the public port, HAProxy behind it')
})

after(async () => {
  if (cluster?.child && cluster.child.exitCode === null) {
    const exited = new Promise((r) => cluster.child.once('exit', r))
    cluster.child.kill('SIGTERM')
    await Promise.race([exited, sleep(20_000)])
  }
  if (!process.env.LMSTREAM_KEEP_DATA) fs.rmSync(root, { recursive: true, force: true })
})

// ------------------------------------------------------------------ long-polls

test(`${CLIENTS} long-poll clients on one stream: at most 3 origin requests per wake-up and per timeout, every message once`, { timeout: 180_000 }, async () => {
  const p = `${STREAM_PREFIX}${PUB}/lp`
  assert.equal((await req('PUT', p, { headers: TEXT })).status, 201)
  let stop = false
  const clients = Array.from({ length: CLIENTS }, () => ({ items: [], timeouts: 0, errors: [] }))
  async function run(c) {
    let offset = '-1'
    let cursor = ''
    while (!stop) {
      let res
      try {
        res = await fetch(`${cluster.url}${p}?offset=${offset}&live=long-poll${cursor ? `&cursor=${cursor}` : ''}`)
      } catch (e) {
        c.errors.push(String(e))
        await sleep(100)
        continue
      }
      const body = await res.text()
      if (res.status === 200) {
        if (body) c.items.push(...body.split('\n').filter(Boolean))
      } else if (res.status === 204) {
        c.timeouts++
      } else {
        c.errors.push(`${res.status} ${body}`)
        await sleep(100)
        continue
      }
      offset = res.headers.get('stream-next-offset') || offset
      cursor = res.headers.get('stream-cursor') || cursor
    }
  }
  const loops = clients.map(run)
  const sent = []
  const wakeups = []
  try {
    await sleep(1000) // every client is waiting at the tail
    for (let i = 0; i < 8; i++) {
      const msg = `m${i}-${tag}\n`
      const before = (await vstatSettled())['MAIN.backend_req']
      // the writer goes to HAProxy itself: only the readers' requests count
      const w = await req('POST', p, { base: cluster.haproxy, headers: TEXT, body: msg })
      assert.ok(w.status === 200 || w.status === 204, `POST: ${w.status}`)
      sent.push(msg.trim())
      await until(`every client got message ${i}`, () => clients.every((c) => c.items.length === sent.length), 20_000)
      await sleep(300) // and is waiting again
      wakeups.push((await vstatSettled())['MAIN.backend_req'] - before)
    }
    // quiet: the long-polls time out (204 kept 1 s), the clients ask again
    const t0 = clients[0].timeouts
    const before = (await vstatSettled())['MAIN.backend_req']
    await until('three timeouts', () => clients[0].timeouts >= t0 + 3, 4 * LONG_POLL_MS + 5000)
    await sleep(300)
    const timeoutReqs = (await vstatSettled())['MAIN.backend_req'] - before
    const rounds = clients[0].timeouts - t0
    process.stderr.write(`varnish: ${CLIENTS} long-poll clients: origin requests per wake-up ${wakeups.join(' ')}; ` +
      `${timeoutReqs} over ${rounds} timeouts\n`)
    for (const [i, n] of wakeups.entries()) assert.ok(n <= 3, `wake-up ${i}: ${n} origin requests for ${CLIENTS} clients`)
    assert.ok(timeoutReqs <= 3 * rounds, `${timeoutReqs} origin requests over ${rounds} timeouts`)
    // one more message after the timeouts
    sent.push(`last-${tag}`)
    await req('POST', p, { base: cluster.haproxy, headers: TEXT, body: `last-${tag}\n` })
    await until('every client got the last message', () => clients.every((c) => c.items.length === sent.length), 20_000)
  } finally {
    stop = true
    // wake the loops so that they end (one more message nobody checks)
    await req('POST', p, { base: cluster.haproxy, headers: TEXT, body: 'end\n' }).catch(() => {})
    await Promise.race([Promise.all(loops), sleep(LONG_POLL_MS + 5000)])
  }
  for (const [i, c] of clients.entries()) {
    assert.deepEqual(c.errors, [], `client ${i}: errors`)
    assert.deepEqual(c.items.slice(0, sent.length), sent, `client ${i} got every message once, in order`)
  }
})

// ------------------------------------------------------------------ catch-up

/** A catch-up read of p from the start to the tail: { items, urls } */
async function catchUp(p, headers = {}) {
  let offset = '-1'
  const items = []
  const urls = []
  let hits = 0
  for (;;) {
    const url = `${p}?offset=${offset}`
    urls.push(url)
    const r = await req('GET', url, { headers })
    assert.equal(r.status, 200, `${url}: ${r.status} ${r.text}`)
    if (r.text) items.push(...r.text.split('\n').filter(Boolean))
    if (r.headers.get('x-cache') === 'hit') hits++
    offset = r.headers.get('stream-next-offset')
    if (r.headers.get('stream-up-to-date')) return { items, urls, hits, last: r }
  }
}

test('a hot stream\'s catch-up is served from Varnish; appends are read at once; a deleted and re-made stream is never served stale', async () => {
  const p = `${STREAM_PREFIX}${PUB}/hot`
  assert.equal((await req('PUT', p, { headers: TEXT })).status, 201)
  const old = []
  // 1.5 MB: more than one read's worth
  for (let i = 0; i < 30; i++) old.push(`old${i}-${tag}-${'x'.repeat(50_000)}`)
  for (const m of old) {
    const r = await req('POST', p, { base: cluster.haproxy, headers: TEXT, body: `${m}\n` })
    assert.ok(r.status === 200 || r.status === 204)
  }
  const s0 = await vstatSettled()
  const reads = await Promise.all(Array.from({ length: 100 }, () => catchUp(p)))
  const chunks = reads[0].urls.length
  const s1 = await vstatSettled(s0, 100 * chunks)
  for (const r of reads) assert.deepEqual(r.items, old)
  const origin = s1['MAIN.backend_req'] - s0['MAIN.backend_req']
  const hits = s1['MAIN.cache_hit'] - s0['MAIN.cache_hit']
  process.stderr.write(`varnish: 100 catch-up readers of ${chunks} read(s): ${origin} origin requests, ${hits} cache hits\n`)
  assert.ok(origin <= chunks + 2, `${origin} origin requests for 100 readers of ${chunks} reads`)
  assert.ok(hits >= 100 * chunks - chunks - 2, `${hits} cache hits`)
  const seen = reads.reduce((n, r) => n + r.hits, 0)
  assert.ok(seen >= 100 * chunks - chunks - 2, `${seen} responses marked X-Cache: hit`)

  // an append through Varnish: the writer (and every reader) reads it at once
  const more = `new-${tag}`
  assert.ok([200, 204].includes((await req('POST', p, { headers: TEXT, body: `${more}\n` })).status))
  assert.deepEqual((await catchUp(p)).items, [...old, more], 'the append is read at once through Varnish')
  if (chunks > 1) {
    // the history before the old tail stays cached
    const first = await req('GET', reads[0].urls[0])
    assert.equal(first.headers.get('x-cache'), 'hit', 'the first read of the history is still cached after the append')
  }

  // deleted and made again with other data: no read, at any offset read
  // before, gives the old data
  const urls = new Set([...reads[0].urls, ...(await catchUp(p)).urls])
  assert.equal((await req('DELETE', p, { headers: { Authorization: `Bearer ${token('admin', '**', '**', '**')}` } })).status, 204)
  assert.equal((await req('PUT', p, { headers: TEXT })).status, 201)
  const fresh = [`fresh-${tag}`]
  await req('POST', p, { headers: TEXT, body: `${fresh[0]}\n` })
  assert.deepEqual((await catchUp(p)).items, fresh, 'the new stream, not the old one')
  for (const u of urls) {
    const r = await req('GET', u)
    assert.ok(!r.text.includes('old') && !r.text.includes(more), `${u} after DELETE and PUT: ${r.status} ${r.text.slice(0, 80)}`)
  }
})

// ------------------------------------------------------------------ credentials

test('a credentialed read is never served to another user', async () => {
  const p = `${STREAM_PREFIX}${PRIV}/mine`
  const a = token('alice', `${PRIV}/**`)
  const b = token('bob', `other-${tag}/**`)
  assert.equal((await req('PUT', p, { headers: { ...TEXT, Authorization: `Bearer ${a}` } })).status, 201)
  await req('POST', p, { headers: { ...TEXT, Authorization: `Bearer ${a}` }, body: `secret-${tag}\n` })
  const s0 = await vstatSettled()
  for (let i = 0; i < 3; i++) {
    const r = await req('GET', `${p}?offset=-1`, { headers: { Authorization: `Bearer ${a}` } })
    assert.equal(r.status, 200)
    assert.equal(r.text, `secret-${tag}\n`)
    const q = await req('GET', `${p}?offset=-1&token=${a}`)
    assert.equal(q.status, 200)
  }
  assert.equal((await vstatSettled(s0, 6))['MAIN.backend_req'] - s0['MAIN.backend_req'], 6, 'every credentialed read went to the origin')
  for (const headers of [{ Authorization: `Bearer ${b}` }, {}]) {
    const r = await req('GET', `${p}?offset=-1`, { headers })
    assert.ok(r.status === 401 || r.status === 403, `another user: ${r.status}`)
    assert.ok(!r.text.includes('secret'), 'none of alice\'s bytes')
  }
  const r = await req('GET', `${p}?offset=-1&token=${b}`)
  assert.equal(r.status, 403)
  assert.ok(!r.text.includes('secret'))
})

// ------------------------------------------------------------------ SSE

test('SSE through Varnish streams each event within a second of its append', async () => {
  const p = `${STREAM_PREFIX}${PUB}/sse`
  assert.equal((await req('PUT', p, { headers: TEXT })).status, 201)
  const ac = new AbortController()
  const res = await fetch(`${cluster.url}${p}?offset=-1&live=sse`, { signal: ac.signal })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type'), /^text\/event-stream/)
  const reader = res.body.getReader()
  let text = ''
  const readUntil = async (re, ms) => {
    const deadline = Date.now() + ms
    while (!re.test(text)) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      const r = await Promise.race([reader.read(), sleep(left).then(() => null)])
      if (!r) return false
      if (r.done) return false
      text += Buffer.from(r.value).toString('utf8')
    }
    return true
  }
  try {
    assert.ok(await readUntil(/event: ?control/, 5000), `first control event: ${text}`)
    for (let i = 0; i < 3; i++) {
      const t = Date.now()
      await req('POST', p, { headers: TEXT, body: `ev${i}-${tag}\n` })
      assert.ok(await readUntil(new RegExp(`ev${i}-${tag}`), 1000), `event ${i} within 1 s: ${text.slice(-300)}`)
      process.stderr.write(`varnish: SSE event ${i} after ${Date.now() - t} ms\n`)
    }
  } finally {
    ac.abort()
  }
})

// ------------------------------------------------------------------ Varnish's own errors

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

test('Varnish\'s own 503 (its origin does not answer) has Retry-After and one line', async () => {
  // the VCL rendered for an origin port nobody listens on, a Varnish of its own
  const dir = path.join(root, 'v503')
  fs.mkdirSync(dir)
  const dead = await freePort()
  const port = await freePort()
  fs.writeFileSync(path.join(dir, 'lmstream.vcl'), fs.readFileSync(VCL, 'utf8')
    .replaceAll('${LMSTREAM_ORIGIN_HOST}', '127.0.0.1').replaceAll('${LMSTREAM_ORIGIN_PORT}', String(dead))
    .replaceAll('${LMSTREAM_LIVE_TIMEOUT}', '10'))
  const v = spawn(VARNISHD, ['-F', '-j', 'none', '-a', `127.0.0.1:${port}`, '-f', path.join(dir, 'lmstream.vcl'),
    '-n', path.join(dir, 'work'), '-s', 'malloc,16m'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  v.stdout.on('data', (c) => { log += c })
  v.stderr.on('data', (c) => { log += c })
  try {
    await until('varnishd answers', async () => {
      try { await fetch(`http://127.0.0.1:${port}/`); return true } catch { return false }
    }, 30_000)
    for (const u of [`${STREAM_PREFIX}${PUB}/x?offset=-1`, `${STREAM_PREFIX}${PUB}/x`]) {
      const r = await req('GET', u, { base: `http://127.0.0.1:${port}` })
      assert.equal(r.status, 503, log)
      assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After')
      assert.match(r.headers.get('content-type'), /^text\/plain/)
      assert.match(r.text, /^[^\n]+\n$/, `one line: ${JSON.stringify(r.text)}`)
    }
  } finally {
    const exited = new Promise((r) => v.once('exit', r))
    v.kill('SIGTERM')
    await Promise.race([exited, sleep(10_000)])
  }
})

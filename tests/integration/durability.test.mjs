// Durability: an append is acknowledged only once its commit is on disk.
//
// kill -9 cannot show this (the page cache outlives the process), so the
// servers run with an LD_PRELOAD shim, lib/flushcheck.c, compiled here with
// cc. It follows LMDB's meta page writes to data.mdb and the flushes of that
// file in every process of the deployment (through one shared counters file:
// a flush by one worker makes another's commit durable too), and logs each
// 2xx response with a Stream-Next-Offset header that a process writes to a
// socket, with two transaction IDs at that moment:
//
//   written  the highest txnid whose meta page has been written
//   durable  the highest txnid flushed: `written` as it was when an
//            fdatasync/fsync of data.mdb began that then succeeded
//
// and `req`, an ID that the commit of that request must exceed: the highest
// ID whose meta page was written, or whose commit had begun writing its data
// pages, when the request's first bytes were read. Every commit flushes its
// own data pages before it writes its meta page, so a commit is on disk once
// a flush has begun after its meta page write.
//
// 1. Sequential, on `standalone` (lmstream-live) and `lighttpd` (FastCGI
//    workers): 300 appends, one after another. Each is then a commit of its
//    own, and nothing else commits meanwhile (no TTL streams, so no access
//    time touches; housekeeping with nothing to do writes nothing). So at each
//    acknowledgement the newest meta page written is the append's own, and
//    it must be flushed: durable >= written.
// 2. Concurrent: 64 clients, 3,200 appends, to one stream and to 16. A later
//    batch may be committed and not yet flushed when an earlier one is
//    acknowledged, so the check is per request: durable > req at its
//    response. Group commit must also share flushes: fewer flushes than
//    appends (the ratio is printed).
// 3. Both checks can fail: with `durability = fast` (no flush of the meta
//    page before the acknowledgement) each must find violations. The first
//    finds all 300. The second sees a response too early only when its
//    commit is the first after its `req` (a bound, not the commit's ID), so
//    what it finds depends on timing: 16 clients, 1,600 appends, and it
//    found 450 to 1,257 in the default build and 32 to 105 in the sanitizer
//    build, in every run here.
//
// The shim is preloaded ahead of AddressSanitizer's runtime in a sanitizer
// build, which ASan refuses unless told: the servers' ASAN_OPTIONS get
// verify_asan_link_order=0.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, until, STREAM_PREFIX, IS_REFERENCE } from './lib/server.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const SHIM_SRC = path.join(HERE, 'lib', 'flushcheck.c')
const SEQUENTIAL = 300
const CLIENTS = 64
const PER_CLIENT = 50
// fewer clients for the check that must fail: see 3. above
const FAST_CLIENTS = 16
const FAST_PER_CLIENT = 100
const JSON_CT = { 'Content-Type': 'application/json' }
const tag = randomBytes(4).toString('hex')

let shimDir
let shim
let shimError

before(() => {
  shimDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-it-flushcheck-'))
  shim = path.join(shimDir, 'flushcheck.so')
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, SHIM_SRC, '-ldl', '-lpthread'], { stdio: 'pipe' })
  } catch (e) {
    shimError = `cannot compile ${SHIM_SRC}: ${e.stderr || e.message}`
  }
})
after(() => { if (shimDir) fs.rmSync(shimDir, { recursive: true, force: true }) })

/** A deployment of kind with the shim preloaded: { srv, size() (of the log), events(from) }. */
async function startChecked(kind, config = {}) {
  if (shimError) throw new Error(shimError)
  const dir = fs.mkdtempSync(path.join(shimDir, `${kind}-`))
  const log = path.join(dir, 'log')
  const env = {
    LD_PRELOAD: [shim, process.env.LD_PRELOAD].filter(Boolean).join(':'),
    FLUSHCHECK_LOG: log,
    FLUSHCHECK_STATE: path.join(dir, 'state'),
    ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'verify_asan_link_order=0'].filter(Boolean).join(':'),
  }
  const srv = await startServer({ label: `durability-${kind}`, server: kind, config, env })
  return {
    srv,
    size: () => { try { return fs.statSync(log).size } catch { return 0 } },
    /** The log's lines from byte `from` on, as objects: { ev, pid, ... }. */
    events(from = 0) {
      let text
      try { text = fs.readFileSync(log, 'latin1') } catch { return [] }
      return text.slice(from).split('\n').filter(Boolean).map((line) => {
        const [ev, ...fields] = line.split(' ')
        const o = { ev }
        for (const f of fields) {
          const i = f.indexOf('=')
          if (i > 0) o[f.slice(0, i)] = /^-?\d+$/.test(f.slice(i + 1)) ? Number(f.slice(i + 1)) : f.slice(i + 1)
        }
        return o
      })
    },
  }
}

function request(agent, url, method, p, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, agent, headers: JSON_CT, timeout: 30_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${p}`)))
    req.on('error', reject)
    req.end(body)
  })
}

async function createStreams(url, paths) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    for (const p of paths) assert.equal(await request(agent, url, 'PUT', p), 201, `PUT ${p}`)
  } finally { agent.destroy() }
}

/** `clients` clients each make `each` appends, one after another, to paths[client % paths.length]. */
async function appendAll(url, paths, clients, each) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients })
  let acked = 0
  try {
    await Promise.all(Array.from({ length: clients }, async (_, c) => {
      const p = paths[c % paths.length]
      for (let i = 0; i < each; i++) {
        const status = await request(agent, url, 'POST', p, JSON.stringify({ c, i }))
        assert.equal(status, 204, `POST ${p}: ${status}`)
        acked++
      }
    }))
  } finally { agent.destroy() }
  return acked
}

/**
 * The events since byte `from`, once the shim has logged a response for each
 * of `acked` appends (a line is written just after the response's bytes, so
 * the client may see the response first). Returns { appends (the POSTs' 2xx
 * response lines), metas (meta pages written with a txnid), flushes
 * (successful flushes of data.mdb) }.
 */
async function settle(checked, from, acked) {
  const pick = () => {
    const ev = checked.events(from)
    const resp = ev.filter((e) => e.ev === 'resp')
    return {
      appends: resp.filter((e) => e.method === 'POST'),
      metas: ev.filter((e) => e.ev === 'meta' && e.txnid > 0),
      flushes: ev.filter((e) => e.ev === 'flush' && e.rc === 0),
    }
  }
  await until(`the shim to log ${acked} append responses`, () => pick().appends.length >= acked, 5000).catch(() => {})
  return pick()
}

const show = (list) => list.slice(0, 5).map((e) => JSON.stringify(e)).join('\n')

/** The sequential run: SEQUENTIAL appends, one at a time, to one new stream. */
async function sequential(checked, name) {
  const p = `${STREAM_PREFIX}durability-${tag}-${name}`
  await createStreams(checked.srv.url, [p])
  const from = checked.size()
  const acked = await appendAll(checked.srv.url, [p], 1, SEQUENTIAL)
  const r = await settle(checked, from, acked)
  return { acked, ...r, unflushed: r.appends.filter((e) => e.durable < e.written) }
}

/** The concurrent run: `clients` clients make `each` appends each to `streams` new streams. */
async function concurrent(checked, name, streams, clients = CLIENTS, each = PER_CLIENT) {
  const paths = Array.from({ length: streams }, (_, i) => `${STREAM_PREFIX}durability-${tag}-${name}-${i}`)
  await createStreams(checked.srv.url, paths)
  const from = checked.size()
  const acked = await appendAll(checked.srv.url, paths, clients, each)
  const r = await settle(checked, from, acked)
  assert.equal(acked, clients * each)
  assert.equal(r.appends.length, acked, 'one logged response per acknowledged append')
  assert.deepEqual(r.appends.filter((e) => e.req < 0), [], 'a response whose request the shim did not see')
  return { acked, ...r, early: r.appends.filter((e) => e.durable <= e.req) }
}

for (const kind of ['standalone', 'lighttpd']) {
  describe(`durable appends (${kind})`, { skip: IS_REFERENCE && 'the reference server has no data.mdb' }, () => {
    let checked
    before(async () => { checked = await startChecked(kind) })
    after(async () => { await checked?.srv.stop() })

    test('one append at a time: each is flushed before its response', async (t) => {
      const r = await sequential(checked, `seq-${kind}`)
      assert.equal(r.acked, SEQUENTIAL)
      assert.equal(r.appends.length, SEQUENTIAL, 'one logged response per acknowledged append')
      assert.deepEqual(r.appends.filter((e) => !/^2/.test(String(e.status))), [])
      // Each append is a commit of its own: the written IDs rise at every response.
      const rising = r.appends.every((e, i) => i === 0 || e.written > r.appends[i - 1].written)
      assert.ok(rising, `written does not rise at every response:\n${show(r.appends)}`)
      assert.ok(r.metas.length >= SEQUENTIAL, `${r.metas.length} meta pages written for ${SEQUENTIAL} commits`)
      assert.ok(r.flushes.length >= 1)
      assert.deepEqual(r.unflushed, [], `responses before their commit was flushed:\n${show(r.unflushed)}`)
      t.diagnostic(`${kind}: ${r.appends.length} appends, ${r.metas.length} commits, ${r.flushes.length} flushes, 0 unflushed`)
    })

    for (const streams of [1, 16]) {
      test(`${CLIENTS} clients at once on ${streams} stream(s): each append is flushed before its response; flushes are shared`, async (t) => {
        const r = await concurrent(checked, `conc-${kind}-${streams}`, streams)
        assert.deepEqual(r.early, [], `responses before their commit can have been flushed:\n${show(r.early)}`)
        assert.ok(r.flushes.length < r.acked, `${r.flushes.length} flushes for ${r.acked} appends`)
        const ahead = r.appends.filter((e) => e.written > e.durable).length
        t.diagnostic(`${kind}, ${streams} stream(s): ${r.acked} appends, ${r.metas.length} commits, ${r.flushes.length} flushes ` +
          `(${(r.acked / r.flushes.length).toFixed(1)} appends per flush, ${(r.acked / r.metas.length).toFixed(1)} per commit); ` +
          `0 early; ${ahead} responses while a later commit was not yet flushed`)
      })
    }
  })

  describe(`the check finds unflushed acknowledgements (${kind}, durability = fast)`, { skip: IS_REFERENCE && 'the reference server has no data.mdb' }, () => {
    let checked
    before(async () => { checked = await startChecked(kind, { durability: 'fast' }) })
    after(async () => { await checked?.srv.stop() })

    test('one append at a time: responses come before the flush of their meta page', async (t) => {
      const r = await sequential(checked, `fast-${kind}`)
      assert.equal(r.appends.length, SEQUENTIAL, 'one logged response per acknowledged append')
      assert.ok(r.metas.length >= SEQUENTIAL, `${r.metas.length} meta pages written for ${SEQUENTIAL} commits`)
      assert.ok(r.unflushed.length > 0, 'durability = fast, yet every response came after its flush')
      t.diagnostic(`${kind}, durability = fast: ${r.unflushed.length} of ${r.appends.length} responses before their flush`)
    })

    test(`${FAST_CLIENTS} clients at once on one stream: some responses come before their commit can have been flushed`, async (t) => {
      const r = await concurrent(checked, `fast-conc-${kind}`, 1, FAST_CLIENTS, FAST_PER_CLIENT)
      assert.ok(r.early.length > 0, 'durability = fast, yet no response came before its flush')
      t.diagnostic(`${kind}, durability = fast, ${FAST_CLIENTS} clients: ${r.early.length} of ${r.appends.length} responses before their flush`)
    })
  })
}

// lmstreamctl on the store itself, beside a running lmstream-live:
//  - ls / stat / cat show what HTTP wrote; create / append / close / delete
//    obey the protocol's rules (a refusal is the HTTP status, nothing
//    stored), and an SSE reader sees a command's append;
//  - backup while a writer appends is one commit's state (a prefix of the
//    stream); restore from nothing but the backup brings back the
//    configuration, the key and the streams; the restored store refuses a
//    reader's offset past the restored tail (400) instead of handing out
//    those offsets again, and its ETags differ;
//  - verify passes a sound store and reports each kind of damage made to
//    copies (through mdb_dump / mdb_load);
//  - export / import moves a stream with its offsets, producers, closure
//    and TTL; a truncated export creates nothing;
//  - readers and stats describe the environment; readers shows the slots
//    of a killed process as stale, and --clear frees them.
//
// Run: cd tests && LMSTREAM_BINDIR=../build/default/src node --test integration/ctl.test.mjs

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { REPO_ROOT, IS_REFERENCE, freePort, until } from './lib/server.mjs'
import { rawRequest, openSse, sseMessages } from './lib/http.mjs'

const BINDIR = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'build', 'default', 'src')
const CTL = path.join(BINDIR, 'lmstreamctl')
const JSON_CT = { 'Content-Type': 'application/json' }
const P = '/v1/stream/'

/** Runs lmstreamctl; resolves { code, out, err }. input: its stdin. */
function ctl(args, { input = '', env = {} } = {}) {
  return new Promise((resolve) => {
    const child = spawn(CTL, args, { env: { PATH: process.env.PATH, ASAN_OPTIONS: process.env.ASAN_OPTIONS || '', ...env } })
    let out = ''
    let err = ''
    child.stdout.on('data', (c) => { out += c })
    child.stderr.on('data', (c) => { err += c })
    child.on('close', (code) => resolve({ code, out, err }))
    child.stdin.on('error', () => {}) // a command that reads no input may be gone first (EPIPE)
    child.stdin.end(input)
  })
}

/** ctl that must succeed; returns its stdout. */
async function ok(args, opts) {
  const r = await ctl(args, opts)
  assert.equal(r.code, 0, `lmstreamctl ${args.join(' ')} exited ${r.code}: ${r.err}`)
  return r.out
}

/** lmstream-live alone with the configuration file conf: { url, pid, stop() }. */
async function startLive(conf) {
  const port = await freePort()
  const child = spawn(path.join(BINDIR, 'lmstream-live'), ['--config', conf, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, ASAN_OPTIONS: process.env.ASAN_OPTIONS || '' },
  })
  let log = ''
  child.stdout.on('data', (c) => { log += c })
  child.stderr.on('data', (c) => { log += c })
  const exited = new Promise((r) => child.on('exit', (code) => r(code)))
  const url = `http://127.0.0.1:${port}`
  await Promise.race([
    exited.then((code) => assert.fail(`lmstream-live exited ${code}: ${log}`)),
    until('lmstream-live to listen', async () => (await rawRequest(url, { path: P }).catch(() => null)) !== null),
  ])
  return {
    url, pid: child.pid, log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM')
      const code = await exited
      assert.equal(code, 0, `lmstream-live exited ${code}: ${log}`)
    },
  }
}

/** A directory with data/ and a configuration naming it (auth off). */
function site(label, extra = '') {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `lmstream-it-ctl-${label}-`))
  const conf = path.join(root, 'lmstream.conf')
  fs.mkdirSync(path.join(root, 'data'))
  fs.writeFileSync(conf, `data_dir = ${path.join(root, 'data')}\nauth = none\nlong_poll_timeout = 3000\n${extra}`)
  return { root, conf, data: path.join(root, 'data') }
}

const req = (url, method, name, opts = {}) => rawRequest(url, { method, path: P + name, ...opts })
const post = (url, name, body, headers = {}) => req(url, 'POST', name, { headers: { ...JSON_CT, ...headers }, body: JSON.stringify(body) })
const head = async (url, name) => (await req(url, 'HEAD', name)).headers['stream-next-offset']

describe('lmstreamctl', { skip: IS_REFERENCE }, () => {
  let s
  let live
  before(async () => {
    s = site('streams')
    live = await startLive(s.conf)
  })
  after(async () => {
    await live?.stop()
    if (s) fs.rmSync(s.root, { recursive: true, force: true })
  })
  const c = (...args) => ['--config', s.conf, ...args]

  test('ls, stat and cat show what HTTP wrote', async () => {
    assert.equal((await req(live.url, 'PUT', 'jobs/a', { headers: JSON_CT })).status, 201)
    for (let i = 0; i < 3; i++) {
      const r = await post(live.url, 'jobs/a', { n: i }, { 'Producer-Id': 'w1', 'Producer-Epoch': '0', 'Producer-Seq': String(i) })
      assert.ok(r.status === 200 || r.status === 204, `append ${i}: ${r.status}`)
    }
    assert.equal((await req(live.url, 'PUT', 'logs/b', { headers: { 'Content-Type': 'text/plain', 'Stream-TTL': '3600' } })).status, 201)
    const tail = await head(live.url, 'jobs/a')

    const rows = (await ok(c('ls', '--json'))).trim().split('\n').map((l) => JSON.parse(l))
    const a = rows.find((r) => r.name === 'jobs/a')
    assert.deepEqual([a.type, a.messages, a.tail, a.producers, a.closed], ['application/json', 3, tail, 1, false])
    assert.equal(a.bytes, '{"n":0}{"n":1}{"n":2}'.length)
    const b = rows.find((r) => r.name === 'logs/b')
    assert.equal(b.ttl_s, 3600)
    assert.ok(b.expires, 'a TTL stream lists its expiry')
    // a pattern as in tokens
    const only = (await ok(c('ls', 'jobs/*', '--json'))).trim().split('\n').map((l) => JSON.parse(l).name)
    assert.deepEqual(only, ['jobs/a'])
    const text = await ok(c('ls'))
    assert.match(text, /^NAME\s+TYPE\s+MESSAGES/)
    assert.match(text, /jobs\/a\s+application\/json\s+3\s+21 /)

    const st = JSON.parse(await ok(c('stat', 'jobs/a', '--json')))
    assert.equal(st.tail, tail)
    assert.equal(st.earliest, '0000000000000000_0000000000000000')
    const missing = await ctl(c('stat', 'jobs/nope'))
    assert.equal(missing.code, 1)
    assert.match(missing.err, /jobs\/nope: 404/)

    assert.equal(await ok(c('cat', 'jobs/a')), '{"n":0}\n{"n":1}\n{"n":2}\n')
    // from the offset after the first message, as a reader resumes
    const r1 = await rawRequest(live.url, { path: `${P}jobs/a?offset=-1` })
    const all = JSON.parse(r1.body)
    assert.equal(all.length, 3)
    const first = await rawRequest(live.url, { path: `${P}jobs/a?offset=0000000000000001_0000000000000007` })
    assert.equal(await ok(c('cat', 'jobs/a', '--from', '0000000000000001_0000000000000007')), '{"n":1}\n{"n":2}\n')
    assert.equal(first.status, 200)
  })

  test('create, append, close and delete obey the protocol: a refusal stores nothing', async () => {
    assert.match(await ok(c('create', 'ops/x', '--type', 'application/json')), /created ops\/x/)
    assert.match(await ok(c('create', 'ops/x', '--type', 'application/json')), /exists ops\/x/)
    const conflict = await ctl(c('create', 'ops/x', '--type', 'text/plain'))
    assert.equal(conflict.code, 1)
    assert.match(conflict.err, /ops\/x: 409/)

    const off = (await ok(c('append', 'ops/x'), { input: '[{"k":1},{"k":2}]' })).trim()
    assert.equal(off, await head(live.url, 'ops/x'))
    const bad = await ctl(c('append', 'ops/x'), { input: '{"k":' })
    assert.equal(bad.code, 1)
    assert.match(bad.err, /ops\/x: 400 invalid JSON/)
    const wrong = await ctl(c('append', 'ops/x', '--type', 'text/plain'), { input: 'hi' })
    assert.equal(wrong.code, 1)
    assert.match(wrong.err, /409/)
    assert.equal(await head(live.url, 'ops/x'), off, 'refused appends stored nothing')
    const r = JSON.parse((await rawRequest(live.url, { path: `${P}ops/x?offset=-1` })).body)
    assert.deepEqual(r, [{ k: 1 }, { k: 2 }])

    assert.match(await ok(c('close', 'ops/x')), /closed ops\/x/)
    const afterClose = await post(live.url, 'ops/x', { k: 3 })
    assert.equal(afterClose.status, 409)
    assert.equal(afterClose.headers['stream-closed'], 'true')
    assert.match(await ok(c('delete', 'ops/x')), /deleted ops\/x/)
    assert.equal((await rawRequest(live.url, { path: `${P}ops/x?offset=-1` })).status, 404)
    const gone = await ctl(c('delete', 'ops/x'))
    assert.equal(gone.code, 1)
    assert.match(gone.err, /404/)

    // forks and State streams through the same rules
    await ok(c('create', 'ops/src', '--type', 'text/plain'))
    await ok(c('append', 'ops/src'), { input: 'one' })
    await ok(c('create', 'ops/fork', '--fork-of', 'ops/src'))
    await ok(c('append', 'ops/fork'), { input: 'two' })
    assert.equal(await ok(c('cat', 'ops/fork')), 'onetwo')
    await ok(c('create', 'ops/state', '--type', 'application/json', '--state'))
    const notEvent = await ctl(c('append', 'ops/state'), { input: '{"hello":1}' })
    assert.equal(notEvent.code, 1)
    assert.match(notEvent.err, /400/)
    await ok(c('append', 'ops/state'), { input: '{"type":"t","key":"1","value":{"v":1},"headers":{"operation":"insert"}}' })
  })

  test('an SSE reader of lmstream-live sees an append made by the command', async () => {
    await ok(c('create', 'live/feed', '--type', 'application/json'))
    const sub = openSse(live.url, `${P}live/feed?offset=now&live=sse`)
    try {
      assert.equal((await sub.response).status, 200)
      await sub.waitFor((e) => e.type === 'control', 10_000, 'the first control event')
      await ok(c('append', 'live/feed'), { input: '{"from":"ctl"}' })
      await sub.waitFor((e) => e.type === 'data', 10_000, 'the appended message')
      assert.deepEqual(sseMessages(sub), [{ from: 'ctl' }])
    } finally {
      sub.close()
    }
  })

  test('cat --follow prints appends as they come and ends when the stream closes', async () => {
    await ok(c('create', 'live/tail', '--type', 'text/plain'))
    await ok(c('append', 'live/tail'), { input: 'a\n' })
    const child = spawn(CTL, c('cat', 'live/tail', '--follow'), { env: { PATH: process.env.PATH, ASAN_OPTIONS: process.env.ASAN_OPTIONS || '' } })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    const done = new Promise((r) => child.on('close', r))
    await until('the first message', () => out === 'a\n')
    assert.equal((await req(live.url, 'POST', 'live/tail', { headers: { 'Content-Type': 'text/plain' }, body: 'b\n' })).status, 204)
    await until('the HTTP append', () => out === 'a\nb\n')
    await ok(c('append', 'live/tail', '--close'), { input: 'c\n' })
    assert.equal(await done, 0)
    assert.equal(out, 'a\nb\nc\n')
  })

  test('readers and stats describe the environment', async () => {
    const readers = await ok(c('readers'))
    assert.match(readers, /^PID\s+THREAD\s+SNAPSHOT/)
    assert.ok(readers.split('\n').some((l) => l.startsWith(`${live.pid} `)), `lmstream-live (${live.pid}) holds a slot:\n${readers}`)
    const stats = await ok(c('stats'))
    const streams = Number(/^streams\s+(\d+)/m.exec(stats)[1])
    const ls = (await ok(c('ls', '--json'))).trim().split('\n').length
    assert.equal(streams, ls)
    assert.match(stats, /^used\s+\d+ \(/m)
    assert.match(stats, /^incarnation\s+[0-9a-f]{16}$/m)
  })
})

test('readers shows the slots of a killed process as stale; --clear frees them', { skip: IS_REFERENCE }, async (t) => {
  const s = site('readers')
  t.after(() => fs.rmSync(s.root, { recursive: true, force: true }))
  // a second process keeps the store open: LMDB resets the reader table
  // when the first process opens it alone
  const other = await startLive(s.conf)
  t.after(() => other.stop())
  const live = await startLive(s.conf)
  assert.equal((await req(live.url, 'PUT', 'r/a', { headers: JSON_CT })).status, 201)
  assert.equal((await rawRequest(live.url, { path: `${P}r/a?offset=-1` })).status, 200)
  process.kill(live.pid, 'SIGKILL')
  await until('lmstream-live to go', () => { try { process.kill(live.pid, 0); return false } catch { return true } })
  const mine = (text) => text.split('\n').filter((l) => l.startsWith(`${live.pid} `))
  const before = mine(await ok(['--config', s.conf, 'readers']))
  assert.ok(before.length > 0, 'the killed process still has its slots')
  assert.ok(before.every((l) => /stale/.test(l)), before.join('\n'))
  const cleared = await ok(['--config', s.conf, 'readers', '--clear'])
  assert.match(cleared, new RegExp(`^cleared ${before.length} stale slot`, 'm'))
  assert.deepEqual(mine(cleared), [])
})

describe('lmstreamctl backup and restore', { skip: IS_REFERENCE }, () => {
  test('an online backup is one commit; restored from nothing, old offsets past the tail get 400', async (t) => {
    const s = site('backup', '')
    // a key file the configuration names: it travels with the backup
    const key = path.join(s.root, 'keys', 'main.key')
    fs.mkdirSync(path.dirname(key))
    fs.writeFileSync(key, 'a secret of at least thirty-two bytes, for HS256\n', { mode: 0o640 })
    fs.appendFileSync(s.conf, `auth_key = ${key}\n`)
    const backup = path.join(s.root, 'backup')
    t.after(() => fs.rmSync(s.root, { recursive: true, force: true }))
    let live = await startLive(s.conf)
    try {
      assert.equal((await req(live.url, 'PUT', 'b/s', { headers: JSON_CT })).status, 201)
      assert.equal((await req(live.url, 'PUT', 'b/t', { headers: { 'Content-Type': 'text/plain', 'Stream-TTL': '86400' } })).status, 201)
      // a writer appends while the backup runs
      let n = 0
      let writing = true
      const writer = (async () => {
        while (writing || n < 50) {
          const r = await post(live.url, 'b/s', { n })
          assert.ok(r.status === 200 || r.status === 204, `append ${n}: ${r.status}`)
          n++
        }
      })()
      await until('some appends', () => n >= 20)
      const out = await ok(['--config', s.conf, 'backup', backup])
      assert.match(out, /backup: .*store \d+ bytes and 2 file\(s\)/)
      writing = false
      await writer
      for (let i = 0; i < 10; i++) await post(live.url, 'b/s', { n: n++ })
      const finalTail = await head(live.url, 'b/s')
      const before = await rawRequest(live.url, { path: `${P}b/s?offset=-1` })
      assert.equal(JSON.parse(before.body).length, n)

      // restore refuses while a process has the store open
      const busy = await ctl(['restore', backup, '--force'])
      assert.equal(busy.code, 2)
      assert.match(busy.err, /restore: .*(differs|open in a running process)/)
      await live.stop()
      live = null

      // a new machine: nothing but the backup
      fs.rmSync(s.data, { recursive: true })
      fs.rmSync(s.conf)
      fs.rmSync(path.dirname(key), { recursive: true })
      const restored = await ok(['restore', backup])
      assert.match(restored, /restored .*lmstream\.conf/)
      assert.match(restored, /restore: done; the store verifies/)
      assert.equal(fs.readFileSync(key, 'utf8'), 'a secret of at least thirty-two bytes, for HS256\n')
      assert.equal(fs.statSync(key).mode & 0o777, 0o640)
      // and not over what is there now
      const again = await ctl(['restore', backup])
      assert.equal(again.code, 2)
      assert.match(again.err, /holds a store \(--force replaces it\)/)

      live = await startLive(s.conf)
      const tail = await head(live.url, 'b/s')
      const after = JSON.parse((await rawRequest(live.url, { path: `${P}b/s?offset=-1` })).body)
      // one commit's state: a prefix of the stream, every message whole
      assert.ok(after.length >= 20 && after.length < n, `restored ${after.length} of ${n}`)
      assert.deepEqual(after, JSON.parse(before.body).slice(0, after.length))
      assert.equal((await req(live.url, 'HEAD', 'b/t')).headers['stream-ttl'], '86400')
      assert.ok(tail < finalTail)

      // a reader that had read to the old tail: 400, in every mode
      for (const q of ['', '&live=long-poll', '&live=sse']) {
        const r = await rawRequest(live.url, { path: `${P}b/s?offset=${finalTail}${q}` })
        assert.equal(r.status, 400, `offset past the restored tail${q}`)
        assert.match(String(r.body), /beyond the stream's tail/)
      }
      // readers within the restored range go on, and new appends continue from the tail
      const mid = await rawRequest(live.url, { path: `${P}b/s?offset=${tail}` })
      assert.equal(mid.status, 200)
      assert.deepEqual(JSON.parse(mid.body), [])
      const r = await post(live.url, 'b/s', { after: 'restore' })
      assert.ok(r.status === 200 || r.status === 204)
      assert.ok(r.headers['stream-next-offset'] > tail)
      // same range, new incarnation: another ETag
      const e1 = before.headers.etag
      const e2 = (await rawRequest(live.url, { path: `${P}b/s?offset=-1` })).headers.etag
      assert.notEqual(e1.split('.')[0], e2.split('.')[0])
    } finally {
      await live?.stop()
    }
  })

  test('a damaged backup is refused before anything is written', async (t) => {
    const s = site('damaged')
    t.after(() => fs.rmSync(s.root, { recursive: true, force: true }))
    await ok(['--config', s.conf, 'create', 'x', '--type', 'text/plain'])
    const backup = path.join(s.root, 'bk')
    await ok(['--config', s.conf, 'backup', backup])
    const again = await ctl(['--config', s.conf, 'backup', backup])
    assert.equal(again.code, 2, 'backup never writes into a backup')
    const f = path.join(backup, 'data.mdb')
    const b = fs.readFileSync(f)
    b[b.length - 1] ^= 1
    fs.writeFileSync(f, b)
    const target = path.join(s.root, 'elsewhere')
    const r = await ctl(['--data', target, '--config', path.join(s.root, 'new.conf'), 'restore', backup])
    assert.equal(r.code, 2)
    assert.match(r.err, /data\.mdb is damaged/)
    assert.equal(fs.existsSync(target), false)
    assert.equal(fs.existsSync(path.join(s.root, 'new.conf')), false)
  })
})

// --- verify ---------------------------------------------------------------------

/** mdb_dump -a of dir, parsed: [{ header: [lines], db, pairs: [[hexKey, hexValue]] }]. */
function dumpAll(dir) {
  const lines = execFileSync('mdb_dump', ['-a', dir], { encoding: 'latin1', maxBuffer: 1 << 28 }).split('\n')
  const sections = []
  let cur = null
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]
    if (l.startsWith('VERSION=')) { cur = { header: [l], db: null, pairs: [] }; continue }
    if (!cur) continue
    if (l === 'HEADER=END') { cur.header.push(l); cur.inData = true; continue }
    if (l === 'DATA=END') { sections.push(cur); cur = null; continue }
    if (!cur.inData) {
      cur.header.push(l)
      if (l.startsWith('database=')) cur.db = l.slice(9)
      continue
    }
    cur.pairs.push([l.slice(1), lines[++i].slice(1)])
  }
  return sections
}

/** A new store in a new directory from sections (mdb_load). */
function loadAll(sections, dir) {
  fs.mkdirSync(dir, { recursive: true })
  const text = sections.map((s) => [...s.header, ...s.pairs.flatMap(([k, v]) => [` ${k}`, ` ${v}`]), 'DATA=END'].join('\n')).join('\n') + '\n'
  const file = `${dir}.dump`
  fs.writeFileSync(file, text, 'latin1')
  execFileSync('mdb_load', ['-f', file, dir])
}

const hex64 = (n) => BigInt(n).toString(16).padStart(16, '0')
const hexStr = (s) => Buffer.from(s).toString('hex')

describe('lmstreamctl verify', { skip: IS_REFERENCE }, () => {
  let s
  let ids
  before(async () => {
    s = site('verify')
    const live = await startLive(s.conf)
    try {
      const u = live.url
      assert.equal((await req(u, 'PUT', 'v/a', { headers: { 'Content-Type': 'text/plain' } })).status, 201)
      for (const m of ['one', 'two', 'three']) {
        assert.equal((await req(u, 'POST', 'v/a', { headers: { 'Content-Type': 'text/plain' }, body: m })).status, 204)
      }
      assert.equal((await req(u, 'PUT', 'v/ttl', { headers: { 'Content-Type': 'text/plain', 'Stream-TTL': '3600' } })).status, 201)
      assert.equal((await req(u, 'PUT', 'v/fork', { headers: { 'Stream-Forked-From': `${P}v/a`, 'Content-Type': 'text/plain' } })).status, 201)
      assert.equal((await req(u, 'PUT', 'v/state?state', { headers: JSON_CT })).status, 201)
      for (let i = 0; i < 3; i++) {
        const r = await post(u, 'v/state', { type: 't', key: String(i), value: { i }, headers: { operation: 'insert' } })
        assert.equal(r.status, 204)
      }
      const r = await post(u, 'v/state', { type: 't', key: '0', headers: { operation: 'delete' } })
      assert.equal(r.status, 204)
    } finally {
      await live.stop()
    }
    ids = {}
    for (const n of ['v/a', 'v/ttl', 'v/fork', 'v/state']) ids[n] = JSON.parse(await ok(['--config', s.conf, 'stat', n, '--json'])).id
  })
  after(() => { if (s) fs.rmSync(s.root, { recursive: true, force: true }) })

  test('a sound store verifies', async () => {
    const out = await ok(['--config', s.conf, 'verify'])
    assert.match(out, /verify: 4 stream\(s\), .*: 0 problem\(s\)/)
  })

  const damages = [
    ['a message row deleted', (d) => {
      const data = d.find((x) => x.db === 'data')
      data.pairs = data.pairs.filter(([k]) => k !== hex64(ids['v/a']) + hex64(1))
    }, /^v\/a: messages 1 to 1 are missing/m],
    ['a message row whose byte count is wrong', (d) => {
      const row = d.find((x) => x.db === 'data').pairs.find(([k]) => k === hex64(ids['v/a']) + hex64(2))
      row[1] = hex64(999) + row[1].slice(16)
    }, /^v\/a: message 2: byte count 999/m],
    ['rows of no stream', (d) => {
      d.find((x) => x.db === 'data').pairs.push([hex64(4242) + hex64(0), hex64(1) + '41'])
    }, /data rows of id 4242 belong to no stream/],
    ['the expiry index emptied', (d) => { d.find((x) => x.db === 'expiry').pairs = [] },
      /^v\/ttl: it expires but is missing from the expiry index/m],
    ['a State row changed', (d) => {
      const row = d.find((x) => x.db === 'state').pairs[0]
      row[1] = row[1].slice(0, -2) + (row[1].endsWith('7d') ? '20' : '7d')
    }, /^v\/state: a State row differs from the value message \d+ set/m],
    ['a State row the log deleted', (d) => {
      const st = d.find((x) => x.db === 'state')
      const [k, v] = st.pairs[0]
      // the row of key "0", deleted by the last message: put back
      const rk = '0001' + hexStr('t') + hexStr('0')
      st.pairs.push([k.slice(0, 16) + rk, hex64(0) + hexStr('{"i":0}')])
      st.pairs.sort((a, b) => (a[0] < b[0] ? -1 : 1))
      assert.ok(v)
    }, /^v\/state: a State row set by message 0 was deleted by message 3/m],
    ['a fork\'s source removed', (d) => {
      const st = d.find((x) => x.db === 'streams')
      st.pairs = st.pairs.filter(([k]) => k !== hexStr('v/a'))
    }, /^v\/fork: its source v\/a \(id \d+\) is gone/m],
  ]
  for (const [what, damage, expected] of damages) {
    test(`a copy with ${what}: exit 1 and a report`, async () => {
      const sections = dumpAll(s.data)
      damage(sections)
      const dir = path.join(s.root, `damaged-${what.replace(/\W+/g, '-')}`)
      loadAll(sections, dir)
      const r = await ctl(['--config', s.conf, '--data', dir, 'verify'])
      assert.equal(r.code, 1, `verify exit status; output:\n${r.out}${r.err}`)
      assert.match(r.out, expected)
      assert.match(r.out, /verify: .* [1-9]\d* problem\(s\)/)
    })
  }
})

// --- export / import ------------------------------------------------------------------

describe('lmstreamctl export and import', { skip: IS_REFERENCE }, () => {
  test('a stream moves with its offsets, producers, closure and TTL', async (t) => {
    const a = site('from')
    const b = site('to')
    t.after(() => { for (const x of [a, b]) fs.rmSync(x.root, { recursive: true, force: true }) })
    const la = await startLive(a.conf)
    const lb = await startLive(b.conf)
    try {
      assert.equal((await req(la.url, 'PUT', 'm/s', { headers: { ...JSON_CT, 'Stream-TTL': '7200' } })).status, 201)
      for (let i = 0; i < 5; i++) {
        const r = await post(la.url, 'm/s', [{ i }, { j: i }], { 'Producer-Id': 'p', 'Producer-Epoch': '2', 'Producer-Seq': String(i) })
        assert.equal(r.status, 200)
      }
      // the source's first message, and a binary stream closed by its writer
      assert.equal((await req(la.url, 'PUT', 'm/bin', { headers: { 'Content-Type': 'application/octet-stream' } })).status, 201)
      const bytes = Buffer.from([0, 1, 2, 255, 10, 13])
      assert.equal((await req(la.url, 'POST', 'm/bin', { headers: { 'Content-Type': 'application/octet-stream', 'Stream-Closed': 'true' }, body: bytes })).status, 204)

      for (const name of ['m/s', 'm/bin']) {
        const exp = await ok(['--config', a.conf, 'export', name])
        assert.match(exp.split('\n')[0], /"lmstream_export":"1"/)
        await ok(['--config', b.conf, 'import'], { input: exp })
      }
      for (const name of ['m/s', 'm/bin']) {
        const x = await req(la.url, 'HEAD', name)
        const y = await req(lb.url, 'HEAD', name)
        for (const h of ['stream-next-offset', 'content-type', 'stream-closed', 'stream-ttl']) assert.equal(y.headers[h], x.headers[h], `${name} ${h}`)
      }
      const mid = '0000000000000004_0000000000000026'
      const ra = await rawRequest(la.url, { path: `${P}m/s?offset=${mid}` })
      const rb = await rawRequest(lb.url, { path: `${P}m/s?offset=${mid}` })
      assert.equal(ra.status, 200)
      assert.equal(rb.body.toString(), ra.body.toString())
      assert.equal(rb.headers['stream-next-offset'], ra.headers['stream-next-offset'])
      const bin = await rawRequest(lb.url, { path: `${P}m/bin?offset=-1` })
      assert.deepEqual(Buffer.from(bin.body), bytes)

      // the producer's state came along: a retry is a duplicate, the next seq goes on
      const dup = await post(lb.url, 'm/s', [{ i: 4 }, { j: 4 }], { 'Producer-Id': 'p', 'Producer-Epoch': '2', 'Producer-Seq': '4' })
      assert.equal(dup.status, 204)
      assert.equal(await head(lb.url, 'm/s'), await head(la.url, 'm/s'), 'the duplicate stored nothing')
      const next = await post(lb.url, 'm/s', { i: 5 }, { 'Producer-Id': 'p', 'Producer-Epoch': '2', 'Producer-Seq': '5' })
      assert.equal(next.status, 200)
      const gap = await post(lb.url, 'm/s', { i: 7 }, { 'Producer-Id': 'p', 'Producer-Epoch': '2', 'Producer-Seq': '7' })
      assert.equal(gap.status, 409)

      // an existing name is refused; a truncated export creates nothing
      const exp = await ok(['--config', a.conf, 'export', 'm/s'])
      const dupName = await ctl(['--config', b.conf, 'import'], { input: exp })
      assert.equal(dupName.code, 1)
      assert.match(dupName.err, /409/)
      const cut = exp.split('\n').slice(0, 4).join('\n') + '\n'
      const r = await ctl(['--config', b.conf, 'import', 'm/cut'], { input: cut })
      assert.equal(r.code, 1)
      assert.match(r.err, /400 export: truncated/)
      assert.equal((await req(lb.url, 'HEAD', 'm/cut')).status, 404)
      await ok(['--config', b.conf, 'import', 'm/renamed'], { input: exp })
      assert.equal(await head(lb.url, 'm/renamed'), await head(la.url, 'm/s'))

      // a State stream arrives with its rows: the same snapshot on both
      assert.equal((await req(la.url, 'PUT', 'm/state?state', { headers: JSON_CT })).status, 201)
      for (const [key, op] of [['a', 'insert'], ['b', 'insert'], ['a', 'update'], ['b', 'delete']]) {
        const ev = { type: 't', key, headers: { operation: op }, ...(op === 'delete' ? {} : { value: { key, op } }) }
        assert.equal((await post(la.url, 'm/state', ev)).status, 204)
      }
      await ok(['--config', b.conf, 'import'], { input: await ok(['--config', a.conf, 'export', 'm/state']) })
      const sa = await rawRequest(la.url, { path: `${P}m/state?snapshot` })
      const sb = await rawRequest(lb.url, { path: `${P}m/state?snapshot` })
      assert.equal(sb.status, 200)
      assert.equal(sb.body.toString(), sa.body.toString())
      assert.match(sb.body.toString(), /"op":"update"/)
      await ok(['--config', b.conf, 'verify'])
    } finally {
      await la.stop()
      await lb.stop()
    }
  })
})

test('lmstreamctl --help names every command', () => {
  const r = spawnSync(CTL, ['--help'], { encoding: 'utf8' })
  assert.equal(r.status, 0)
  for (const cmd of ['ls', 'stat', 'cat', 'append', 'create', 'close', 'delete', 'export', 'import', 'backup', 'restore', 'verify', 'readers', 'stats', 'token']) {
    assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), cmd)
  }
})

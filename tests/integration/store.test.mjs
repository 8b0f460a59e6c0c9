// The store's hardening, end to end:
//
// - a store written before the format version (tests/fixtures/store-format-1)
//   is upgraded when lmstream-live opens it: its streams and producer state
//   read as before, the streams that expired before 1970 (which nobody could
//   read, delete or reclaim) are gone with their rows, and a store of a newer
//   format is refused with a message that says so;
// - a Stream-Expires-At that is not in the future is refused;
// - a full map recovers without a restart once streams are deleted
//   (map_reserve keeps room for deleting and reclaiming), through lighttpd's
//   workers and through lmstream-live alone;
// - with tokens, one writer cannot lock another's producer out with a high
//   epoch; without them epochs stay unbounded;
// - forks: at most max_forks of one stream, chains of at most 32 forks even
//   when they hold no data of their own;
// - reads of TTL streams refresh the TTL with a few writes a second per
//   process, not one flushed commit per stream (flushes counted with strace
//   on lmstream-live).
//
// Rows are counted with lmdb-utils (mdb_stat, mdb_dump, mdb_load).

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import { startServer, sleep, until, cgiPost, REPO_ROOT, IS_REFERENCE } from './lib/server.mjs'
import { startLiveAlone } from './lib/live.mjs'
import { rawRequest } from './lib/http.mjs'
import { makeKeys } from './lib/tokens.mjs'

const FIXTURE = path.join(REPO_ROOT, 'tests', 'fixtures', 'store-format-1', 'data.mdb.gz')
const JSON_CT = { 'Content-Type': 'application/json' }

/** Entries of one named database of the LMDB environment in dir. */
function entries(dir, db) {
  const out = execFileSync('mdb_stat', ['-s', db, dir], { encoding: 'utf8' })
  return Number(/Entries: (\d+)/.exec(out)[1])
}

/** The keys and values of one database, as mdb_dump -p prints them (pairs of lines). */
function dump(dir, db) {
  const lines = execFileSync('mdb_dump', ['-p', '-s', db, dir], { encoding: 'latin1' }).split('\n')
  const start = lines.indexOf('HEADER=END') + 1
  const end = lines.indexOf('DATA=END')
  const pairs = []
  for (let i = start; i + 1 < end; i += 2) pairs.push([lines[i].slice(1), lines[i + 1].slice(1)])
  return pairs
}


function fixtureDir(label) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `lmstream-it-store-${label}-`))
  const dir = path.join(root, 'data')
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'data.mdb'), zlib.gunzipSync(fs.readFileSync(FIXTURE)))
  return { root, dir }
}

describe('the store format', { skip: IS_REFERENCE }, () => {
  test('a store from before the format version is upgraded at open; its unreachable streams go', async (t) => {
    const { root, dir } = fixtureDir('upgrade')
    t.after(() => fs.rmSync(root, { recursive: true, force: true }))
    // As the earlier release left it: 6 streams, 13 rows, 4 expiry entries.
    assert.equal(entries(dir, 'streams'), 6)
    assert.equal(entries(dir, 'data'), 13)
    assert.equal(entries(dir, 'expiry'), 4)

    const live = await startLiveAlone(dir)
    t.after(() => live.stop())
    assert.ok(live.up, `lmstream-live did not start: ${live.log()}`)
    assert.match(live.log(), /upgraded from format 1 to 3 \(2 stream\(s\) that expired before 1970 removed\)/)

    const get = async (p) => (await rawRequest(live.url, { path: `/v1/stream/old/${p}?offset=-1` }))
    assert.deepEqual(JSON.parse((await get('plain')).body), [{ k: 1 }, { k: 2 }, { k: 3 }, { k: 4 }, { k: 5 }])
    assert.deepEqual(JSON.parse((await get('ttl')).body), [{ ttl: 1 }, { ttl: 2 }])
    assert.equal((await get('future')).body.toString(), 'future')
    assert.deepEqual(JSON.parse((await get('fork')).body), [{ k: 1 }, { k: 2 }, { f: 6 }])
    const head = await rawRequest(live.url, { method: 'HEAD', path: '/v1/stream/old/future' })
    assert.equal(head.headers['stream-expires-at'], '2099-01-01T00:00:00Z')
    // Producer state came through: the producer's last append is a duplicate.
    const dup = await rawRequest(live.url, {
      method: 'POST', path: '/v1/stream/old/plain', body: '{"k":5}',
      headers: { ...JSON_CT, 'Producer-Id': 'w1', 'Producer-Epoch': '0', 'Producer-Seq': '0' },
    })
    assert.equal(dup.status, 204)

    // The streams that expired before 1970: gone, names free, rows reclaimed
    // by the daemon's housekeeping.
    for (const p of ['bad', 'bad2']) assert.equal((await get(p)).status, 404)
    await until('the rows of the removed streams to be reclaimed', () => entries(dir, 'data') === 9 && entries(dir, 'gc') === 0)
    assert.equal(entries(dir, 'streams'), 4)
    // The expiry index: the two streams that expire, keys with the sign bit flipped.
    const exp = dump(dir, 'expiry')
    assert.deepEqual(exp.map(([, v]) => v).sort(), ['old/future', 'old/ttl'])
    for (const [k] of exp) assert.match(k, /^\\80/, `expiry key ${k}`)
    const put = await rawRequest(live.url, { method: 'PUT', path: '/v1/stream/old/bad', headers: JSON_CT, body: '[1]' })
    assert.equal(put.status, 201)
    await live.stop()

    // Opened again: already format 3, nothing to upgrade.
    const again = await startLiveAlone(dir)
    assert.ok(again.up, again.log())
    assert.doesNotMatch(again.log(), /upgraded/)
    assert.deepEqual(JSON.parse((await rawRequest(again.url, { path: '/v1/stream/old/bad?offset=-1' })).body), [1])
    await again.stop()
  })

  test('a store of a newer format is refused, with a message that says so, and left as it is', async (t) => {
    const { root, dir } = fixtureDir('newer')
    t.after(() => fs.rmSync(root, { recursive: true, force: true }))
    const first = await startLiveAlone(dir)
    assert.ok(first.up, first.log())
    await first.stop()
    // A later release's store: format 4.
    const input = 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n format\n \\00\\00\\00\\00\\00\\00\\00\\04\nDATA=END\n'
    execFileSync('mdb_load', ['-s', 'sys', dir], { input })
    const before = fs.readFileSync(path.join(dir, 'data.mdb'))
    const live = await startLiveAlone(dir)
    assert.equal(live.up, false, 'lmstream-live must not serve a store it does not know')
    assert.notEqual(await live.exited, 0)
    assert.match(live.log(), /has format 4, newer than this lmstream's 3/)
    assert.ok(before.equals(fs.readFileSync(path.join(dir, 'data.mdb'))), 'the store changed')
  })
})

describe('expiry dates', { skip: IS_REFERENCE }, () => {
  let srv
  before(async () => { srv = await startServer({ label: 'store-expiry' }) })
  after(async () => { await srv?.stop() })

  for (const at of ['1960-01-01T00:00:00Z', '1970-01-01T00:00:00Z', '2000-01-01T00:00:00Z']) {
    test(`Stream-Expires-At ${at} is refused with 400 and creates nothing`, async () => {
      const p = `/v1/stream/expiry/${at.slice(0, 4)}`
      const r = await rawRequest(srv.url, { method: 'PUT', path: p, headers: { ...JSON_CT, 'Stream-Expires-At': at }, body: '[1]' })
      assert.equal(r.status, 400)
      assert.match(r.body.toString(), /Stream-Expires-At is not in the future/)
      assert.equal((await rawRequest(srv.url, { method: 'HEAD', path: p })).status, 404)
    })
  }

  test('a fork with its own Stream-Expires-At in the past is refused too', async () => {
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: '/v1/stream/expiry/src', headers: JSON_CT, body: '[1]' })).status, 201)
    const r = await rawRequest(srv.url, {
      method: 'PUT', path: '/v1/stream/expiry/fork',
      headers: { 'Stream-Forked-From': '/v1/stream/expiry/src', 'Stream-Expires-At': '1999-12-31T23:59:59Z' },
    })
    assert.equal(r.status, 400)
    assert.equal((await rawRequest(srv.url, { method: 'HEAD', path: '/v1/stream/expiry/fork' })).status, 404)
  })
})

// Fill a 2 MiB map with streams and producers, then delete and write again.
async function fillDeleteResume(srv) {
  const base = srv.url
  const chunk = (s, i) => JSON.stringify({ s, i, pad: 'x'.repeat(8000) })
  const names = []
  let full = null
  const acked = new Map()
  for (let s = 0; s < 16 && !full; s++) {
    const p = `/v1/stream/full/s${s}`
    const put = await rawRequest(base, { method: 'PUT', path: p, headers: JSON_CT })
    if (put.status !== 201) { full = put; break }
    names.push(p)
    acked.set(p, 0)
    for (let i = 0; i < 40; i++) {
      const r = await rawRequest(base, {
        method: 'POST', path: p, body: chunk(s, i),
        headers: { ...JSON_CT, 'Producer-Id': `prod-${s}-${i % 4}`, 'Producer-Epoch': '0', 'Producer-Seq': String(Math.floor(i / 4)) },
      })
      if (r.status !== 200) { full = r; break }
      acked.set(p, i + 1)
    }
  }
  assert.ok(full, 'the map never filled')
  assert.equal(full.status, 507, `${full.status} ${full.body}`)
  assert.ok(Number(full.headers['retry-after']) > 0)
  assert.ok(names.length >= 3, `only ${names.length} streams fit`)

  // Still full for a new stream with as much data.
  assert.equal((await rawRequest(base, { method: 'PUT', path: '/v1/stream/full/new', headers: JSON_CT, body: chunk('new', 0) })).status, 507)
  // Delete the largest stream, and a small one: both 204.
  const largest = names[0]
  assert.equal((await rawRequest(base, { method: 'DELETE', path: largest })).status, 204)
  assert.equal((await rawRequest(base, { method: 'DELETE', path: names[names.length - 1] })).status, 204)

  // Writes resume without a restart (a client retrying after Retry-After).
  let created = null
  await until('writes to resume', async () => {
    const r = await rawRequest(base, { method: 'PUT', path: '/v1/stream/full/new', headers: JSON_CT, body: chunk('new', 0) })
    if (r.status === 201) created = r
    else assert.equal(r.status, 507, `${r.status} ${r.body}`)
    return created
  }, 15_000)
  for (let i = 1; i < 20; i++) {
    const r = await rawRequest(base, { method: 'POST', path: '/v1/stream/full/new', headers: JSON_CT, body: chunk('new', i) })
    assert.equal(r.status, 204, `append ${i}: ${r.status} ${r.body}`)
  }
  // What was acknowledged on the streams kept is all there.
  for (const p of names.slice(1, -1)) {
    const r = await rawRequest(base, { path: `${p}?offset=-1` })
    const got = []
    let offset = '-1'
    for (;;) {
      const page = await rawRequest(base, { path: `${p}?offset=${offset}` })
      assert.equal(page.status, 200)
      got.push(...JSON.parse(page.body))
      offset = page.headers['stream-next-offset']
      if (page.headers['stream-up-to-date'] === 'true') break
    }
    assert.equal(r.status, 200)
    assert.equal(got.length, acked.get(p), p)
  }
}

for (const server of ['lighttpd', 'standalone']) {
  describe(`a full map recovers without a restart (${server})`, { skip: IS_REFERENCE }, () => {
    let srv
    before(async () => { srv = await startServer({ label: `store-full-${server}`, server, config: { map_size: '2M' } }) })
    after(async () => { await srv?.stop() })
    test('fill with streams and producers: 507; DELETE works; writes resume', async () => {
      await fillDeleteResume(srv)
    })
  })
}

describe('producers with tokens', { skip: IS_REFERENCE }, () => {
  let srv, keys
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-it-store-keys-'))
  before(async () => {
    keys = makeKeys(path.join(root, 'keys'))
    srv = await startServer({
      label: 'store-producers', server: 'lighttpd',
      config: { auth: 'token', auth_key: keys.authKey, user_write: 'users/{user}/**' },
    })
  })
  after(async () => { await srv?.stop(); fs.rmSync(root, { recursive: true, force: true }) })

  const post = (tok, p, epoch, seq, body) => rawRequest(srv.url, {
    method: 'POST', path: p, body,
    headers: { ...JSON_CT, Authorization: `Bearer ${tok}`, 'Producer-Id': 'writer', 'Producer-Epoch': String(epoch), 'Producer-Seq': String(seq) },
  })

  test('a writer with a high epoch cannot lock out another writer\'s producer of the same id', async () => {
    const p = '/v1/stream/shared/log'
    const alice = keys.token({ write: ['shared/**'], read: ['shared/**'] }, { sub: 'alice' })
    const mallory = keys.token({ write: ['shared/**'] }, { sub: 'mallory' })
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: { ...JSON_CT, Authorization: `Bearer ${alice}` } })).status, 201)
    assert.equal((await post(alice, p, 0, 0, '{"a":0}')).status, 200)
    // 2^53 - 1: the largest epoch the protocol allows.
    assert.equal((await post(mallory, p, '9007199254740991', 0, '{"m":0}')).status, 200)
    const r = await post(alice, p, 0, 1, '{"a":1}')
    assert.equal(r.status, 200, `alice was locked out: ${r.status} ${r.body}`)
    assert.equal((await post(alice, p, 0, 1, '{"a":1}')).status, 204) // her retry is still a duplicate
    // Mallory's own producer keeps its own state.
    assert.equal((await post(mallory, p, 0, 0, '{"m":1}')).status, 403)
    const all = await rawRequest(srv.url, { path: `${p}?offset=-1`, headers: { Authorization: `Bearer ${alice}` } })
    assert.deepEqual(JSON.parse(all.body), [{ a: 0 }, { m: 0 }, { a: 1 }])
  })

  test('the same for users the web server authenticated (REMOTE_USER, through CGI)', async () => {
    const p = '/v1/stream/users/bob/log'
    const tok = keys.token({ write: ['users/**'] }, { sub: 'admin' })
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: { ...JSON_CT, Authorization: `Bearer ${tok}` } })).status, 201)
    const prod = (epoch, seq) => ({ HTTP_PRODUCER_ID: 'writer', HTTP_PRODUCER_EPOCH: String(epoch), HTTP_PRODUCER_SEQ: String(seq) })
    assert.equal(await cgiPost(srv, p, { bob: 0 }, { REMOTE_USER: 'bob', ...prod(0, 0) }), 200)
    // A token holder with write on the stream, and a high epoch: its own space.
    assert.equal(await cgiPost(srv, p, { t: 0 }, { HTTP_AUTHORIZATION: `Bearer ${tok}`, ...prod('9007199254740991', 0) }), 200)
    assert.equal(await cgiPost(srv, p, { bob: 1 }, { REMOTE_USER: 'bob', ...prod(0, 1) }), 200)
  })
})

describe('producers without tokens', { skip: IS_REFERENCE }, () => {
  let srv
  before(async () => { srv = await startServer({ label: 'store-producers-open', server: 'standalone' }) })
  after(async () => { await srv?.stop() })
  test('epochs are not bounded: a timestamp and 2^53-1 are accepted, and fence older epochs', async () => {
    const p = '/v1/stream/epochs/log'
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: JSON_CT })).status, 201)
    const post = (epoch, seq) => rawRequest(srv.url, {
      method: 'POST', path: p, body: '{"e":1}',
      headers: { ...JSON_CT, 'Producer-Id': 'p', 'Producer-Epoch': String(epoch), 'Producer-Seq': String(seq) },
    })
    assert.equal((await post(Date.now(), 0)).status, 200)
    assert.equal((await post('9007199254740991', 0)).status, 200)
    assert.equal((await post(Date.now(), 1)).status, 403)
  })
})

describe('fork limits', { skip: IS_REFERENCE }, () => {
  let srv
  before(async () => { srv = await startServer({ label: 'store-forks', server: 'standalone', config: { max_forks: 3 } }) })
  after(async () => { await srv?.stop() })
  const fork = (name, src) => rawRequest(srv.url, {
    method: 'PUT', path: `/v1/stream/${name}`, headers: { 'Stream-Forked-From': `/v1/stream/${src}` },
  })

  test('at most max_forks forks of one stream at once', async () => {
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: '/v1/stream/fl/src', headers: JSON_CT, body: '[1]' })).status, 201)
    for (let i = 0; i < 3; i++) assert.equal((await fork(`fl/f${i}`, 'fl/src')).status, 201)
    const r = await fork('fl/f3', 'fl/src')
    assert.equal(r.status, 409)
    assert.match(r.body.toString(), /max_forks/)
    assert.equal((await rawRequest(srv.url, { method: 'HEAD', path: '/v1/stream/fl/f3' })).status, 404)
    assert.equal((await rawRequest(srv.url, { method: 'DELETE', path: '/v1/stream/fl/f0' })).status, 204)
    assert.equal((await fork('fl/f3', 'fl/src')).status, 201)
  })

  test('a chain of forks is at most 32 long, also when the forks hold no data', async () => {
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: '/v1/stream/chain/0', headers: JSON_CT, body: '[0]' })).status, 201)
    for (let i = 1; i <= 32; i++) assert.equal((await fork(`chain/${i}`, `chain/${i - 1}`)).status, 201, `fork ${i}`)
    const r = await fork('chain/33', 'chain/32')
    assert.equal(r.status, 400)
    assert.match(r.body.toString(), /fork chain too deep/)
    // The end of the chain still reads its root's data.
    assert.deepEqual(JSON.parse((await rawRequest(srv.url, { path: '/v1/stream/chain/32?offset=-1' })).body), [0])
  })
})

describe('reads of TTL streams', { skip: IS_REFERENCE }, () => {
  test('refresh the TTL with a few commits per process, not a flushed commit per stream (strace)', async (t) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-it-store-touch-'))
    const dir = path.join(root, 'data')
    const trace = path.join(root, 'trace')
    t.after(() => fs.rmSync(root, { recursive: true, force: true }))
    const live = await startLiveAlone(dir, {}, ['strace', '-f', '-qq', '-e', 'trace=fsync,fdatasync,msync', '-o', trace])
    t.after(() => live.stop())
    assert.ok(live.up, live.log())
    const N = 20
    for (let i = 0; i < N; i++) {
      const r = await rawRequest(live.url, { method: 'PUT', path: `/v1/stream/ttl/${i}`, headers: { ...JSON_CT, 'Stream-TTL': '3' }, body: `[${i}]` })
      assert.equal(r.status, 201)
    }
    const flushes = () => fs.readFileSync(trace, 'utf8').split('\n').filter((l) => /fsync|fdatasync|msync/.test(l) && !/unfinished|resumed/.test(l)).length
    await sleep(1200) // past the housekeeping of the creations, and the touch interval (3 s / 4)
    const before = flushes()
    // 6 s of reads, every 0.8 s: twice the TTL, which the reads keep sliding.
    for (let round = 0; round < 8; round++) {
      const rs = await Promise.all(Array.from({ length: N }, (_, i) => rawRequest(live.url, { path: `/v1/stream/ttl/${i}?offset=-1` })))
      for (const [i, r] of rs.entries()) assert.equal(r.status, 200, `round ${round}, stream ${i}`)
      await sleep(800)
    }
    // Touches of one process are written together, at most every 250 ms, so
    // 8 rounds of 20 reads give a few commits a round, each with LMDB's one
    // data flush and no meta page flush; when each read wrote its own touch
    // (group-committed), they gave 2 flushes per commit, ~10 commits a round.
    const n = flushes() - before
    t.diagnostic(`${n} flushes`)
    assert.ok(n <= 3 * 8, `${n} flushes for 8 rounds of reads of ${N} TTL streams`)
    // Untouched, they expire.
    await sleep(4000)
    assert.equal((await rawRequest(live.url, { method: 'HEAD', path: '/v1/stream/ttl/0' })).status, 404)
  })
})

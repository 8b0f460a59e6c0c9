// lmstream-live's access log (access_log) and the log levels (log_level).
//
//  - with access_log set, a PUT, a POST, a catch-up GET, an SSE read and
//    long-polls (one answered by a write, one that times out) each leave one
//    line with their method, path, live mode, status, body bytes sent and a
//    duration; behind lighttpd the client is the address lighttpd forwarded
//  - a token in ?token=, in Authorization or in the cookie never shows, in
//    the access log or on stderr
//  - a path with %0A, raw control bytes, spaces or quotes cannot forge a
//    line or a field: every line has the eight fields
//  - logrotate: after the file is renamed, SIGHUP makes the daemon write to a
//    fresh file; in a group (live_processes = 2) SIGHUP to the parent reaches
//    every process
//  - log_level = error keeps info lines (the "denied:" line of a 401,
//    "listening on") off stderr, in lmstream-live and in lmstream.fcgi

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import os from 'node:os'
import { startServer, STREAM_PREFIX, until, sleep, topPrograms, findPrograms, LIVE_NAME, runCgi } from './lib/server.mjs'
import { rawRequest } from './lib/http.mjs'
import { makeKeys } from './lib/tokens.mjs'

const tag = randomBytes(4).toString('hex')
// TIME CLIENT METHOD PATH LIVE STATUS BYTES MS (docs/operations.md, "Logs")
const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\S+) (-|long-poll|sse) (\d{3}|-) (\d+|-) (\d+)$/

/** The lines of an access log (none if it does not exist yet). */
function lines(file) {
  let text = ''
  try { text = fs.readFileSync(file, 'utf8') } catch {}
  assert.ok(text === '' || text.endsWith('\n'), `the log ends in the middle of a line: ${JSON.stringify(text.slice(-200))}`)
  return text.split('\n').slice(0, -1)
}

/** A line's fields; fails when it is not a well-formed line. */
function parse(line) {
  const m = LINE.exec(line)
  assert.ok(m, `not an access log line: ${JSON.stringify(line)}`)
  const [, time, client, method, p, live, status, bytes, ms] = m
  return { time, client, method, path: p, live, status, bytes, ms: Number(m[8]), line }
}

/** Waits for the one line of file whose path is p (and method, if given). */
async function lineOf(file, p, method) {
  const found = await until(`an access log line for ${method || ''} ${p} in ${file}`, () => {
    const all = lines(file).map(parse).filter((e) => e.path === p && (!method || e.method === method))
    assert.ok(all.length <= 1, `more than one line for ${method} ${p}:\n${all.map((e) => e.line).join('\n')}`)
    return all[0]
  }, 10_000)
  const age = Date.now() - Date.parse(found.time)
  assert.ok(age >= -2000 && age < 60_000, `time ${found.time} is not now`)
  return found
}

/** Connects, writes the raw bytes of a request and returns the answer's status. */
function rawStatus(port, bytes) {
  return new Promise((resolve, reject) => {
    const chunks = []
    const sock = net.connect({ host: '127.0.0.1', port }, () => sock.end(bytes))
    sock.on('data', (c) => chunks.push(c))
    sock.on('error', reject)
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(Buffer.concat(chunks).toString('latin1'))
      resolve(m ? Number(m[1]) : 0)
    })
  })
}

/** The files named like base (base, base.1) that process pid holds open. */
function openLogs(pid, base) {
  const out = []
  let fds = []
  try { fds = fs.readdirSync(`/proc/${pid}/fd`) } catch { return out }
  for (const fd of fds) {
    let target = ''
    try { target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { continue }
    if (target.startsWith(base)) out.push(target)
  }
  return out
}

const TEXT = { 'Content-Type': 'text/plain' }

describe('access log[standalone]: one line per request', () => {
  let srv
  let log
  before(async () => {
    srv = await startServer({
      label: 'accesslog',
      server: 'standalone',
      // relative: beside the configuration file, in the deployment's directory
      config: { access_log: 'access.log', long_poll_timeout: 1000, sse_lifetime: 1000 },
    })
    log = path.join(srv.root, 'access.log')
  })
  after(async () => { await srv?.stop() })

  test('PUT, POST, catch-up GET, SSE and long-poll: path, live mode, status, bytes, duration', async () => {
    const p = `${STREAM_PREFIX}al-${tag}/a`
    const put = await rawRequest(srv.url, { method: 'PUT', path: p, headers: TEXT })
    assert.equal(put.status, 201)
    let e = await lineOf(log, p, 'PUT')
    assert.deepEqual([e.client, e.live, e.status, e.bytes], ['127.0.0.1', '-', '201', String(put.body.length)])

    const post = await rawRequest(srv.url, { method: 'POST', path: p, headers: TEXT, body: 'hello' })
    assert.equal(post.status, 204)
    e = await lineOf(log, p, 'POST')
    assert.deepEqual([e.live, e.status, e.bytes], ['-', '204', '0'])

    // the query (offset) is not part of the logged path
    const get = await rawRequest(srv.url, { path: `${p}?offset=-1` })
    assert.equal(get.status, 200)
    assert.equal(get.body.toString(), 'hello')
    e = await lineOf(log, p, 'GET')
    assert.deepEqual([e.live, e.status, e.bytes], ['-', '200', '5'])
    const tail = get.headers['stream-next-offset']

    // SSE: ends after sse_lifetime; the bytes are the whole body received
    const sp = `${STREAM_PREFIX}al-${tag}/sse`
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: sp, headers: TEXT, body: 'x'.repeat(3000) })).status, 201)
    const sse = await rawRequest(srv.url, { path: `${sp}?offset=-1&live=sse`, headers: { Accept: 'text/event-stream' } })
    assert.equal(sse.status, 200)
    assert.ok(sse.body.length > 3000, `SSE body of ${sse.body.length} bytes`)
    e = await lineOf(log, sp, 'GET')
    assert.deepEqual([e.live, e.status, e.bytes], ['sse', '200', String(sse.body.length)])
    assert.ok(e.ms >= 900 && e.ms < 10_000, `an SSE response of sse_lifetime = 1000 lasted ${e.ms} ms`)

    // long-poll that times out: 204 after long_poll_timeout
    const lp = await rawRequest(srv.url, { path: `${p}?offset=${tail}&live=long-poll` })
    assert.equal(lp.status, 204)
    const polls = () => lines(log).map(parse).filter((x) => x.path === p && x.live === 'long-poll')
    e = await until('the long-poll line', () => polls()[0])
    assert.deepEqual([e.method, e.status, e.bytes], ['GET', '204', '0'])
    assert.ok(e.ms >= 900 && e.ms < 10_000, `a long-poll of long_poll_timeout = 1000 lasted ${e.ms} ms`)

    // long-poll answered by a write
    const waiting = rawRequest(srv.url, { path: `${p}?offset=${tail}&live=long-poll` })
    await sleep(200)
    assert.equal((await rawRequest(srv.url, { method: 'POST', path: p, headers: TEXT, body: 'world!' })).status, 204)
    const got = await waiting
    assert.equal(got.status, 200)
    assert.equal(got.body.toString(), 'world!')
    e = await until('the second long-poll line', () => polls()[1])
    assert.deepEqual([e.status, e.bytes], ['200', '6'])
    assert.ok(e.ms >= 150, `the long-poll waited ${e.ms} ms`)

    // every line so far is well formed, one per request
    for (const l of lines(log)) parse(l)
  })

  test('a path cannot forge a line or a field', async () => {
    const before = lines(log).length
    const forged = '2026-01-01T00:00:00.000Z 6.6.6.6 GET /forged - 200 0 0'
    const paths = [
      `${STREAM_PREFIX}f1-${tag}%0A${forged.replaceAll(' ', '%20')}`,
      `${STREAM_PREFIX}f2-${tag}\n${forged}`,
      `${STREAM_PREFIX}f3-${tag}\r\x01\x1b[31m"\\\x7f\xff a b`,
    ]
    // (f2's raw line feed ends the request line: whatever the daemon makes
    // of the rest, it must not become a line of the log)
    for (const p of paths) await rawStatus(srv.port, Buffer.from(`GET ${p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, 'latin1'))
    await until('the lines of the forging requests', () =>
      lines(log).slice(before).filter((l) => l.includes(`f1-${tag}`) || l.includes(`f3-${tag}`)).length >= 2)
    await sleep(300)
    const added = lines(log).slice(before)
    for (const l of added) {
      const e = parse(l) // eight fields, each without a space
      assert.notEqual(e.client, '6.6.6.6', `a forged line: ${l}`)
      assert.ok(!e.path.startsWith('/forged'), `a forged line: ${l}`)
    }
    assert.ok(!fs.readFileSync(log, 'latin1').includes('\x1b'), 'an escape byte reached the log')
    const f1 = added.map(parse).find((e) => e.path.includes(`f1-${tag}`))
    assert.ok(f1, `no line for the %0A path:\n${added.join('\n')}`)
    assert.ok(f1.path.includes('%0A2026-01-01T00:00:00.000Z%206.6.6.6'), f1.line)
    const f3 = added.map(parse).find((e) => e.path.includes(`f3-${tag}`))
    assert.ok(f3.path.endsWith('\\x0d\\x01\\x1b[31m\\x22\\x5c\\x7f\\xff\\x20a\\x20b'), f3.line)
  })

  test('logrotate: after a rename, SIGHUP makes the daemon write to a fresh file', async () => {
    const p = `${STREAM_PREFIX}rot-${tag}`
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: TEXT })).status, 201)
    await lineOf(log, p, 'PUT')
    const rotated = `${log}.1`
    fs.renameSync(log, rotated)
    assert.equal((await rawRequest(srv.url, { method: 'POST', path: p, headers: TEXT, body: 'a' })).status, 204)
    await lineOf(rotated, p, 'POST') // before SIGHUP: still the old file
    await srv.liveStats() // SIGHUP, and its statistics line (logged after the reopen)
    assert.ok(fs.existsSync(log), 'SIGHUP did not create a new access log')
    const get = await rawRequest(srv.url, { path: `${p}?offset=-1` })
    assert.equal(get.status, 200)
    const e = await lineOf(log, p, 'GET')
    assert.deepEqual([e.status, e.bytes], ['200', '1'])
    assert.equal(lines(log).length, 1, `the fresh file holds only the line after SIGHUP:\n${lines(log).join('\n')}`)
    assert.ok(!lines(rotated).some((l) => parse(l).method === 'GET' && parse(l).path === p), 'the GET went to the rotated file')
    fs.rmSync(rotated)
  })
})

describe('access log[lighttpd, live_processes = 2]: forwarded client, SIGHUP reaches every process', () => {
  let srv
  let log
  before(async () => {
    srv = await startServer({
      label: 'accesslog-group',
      server: 'lighttpd',
      config: { access_log: 'access.log', long_poll_timeout: 1000, live_processes: 2 },
    })
    log = path.join(srv.root, 'access.log')
  })
  after(async () => { await srv?.stop() })

  test('a long-poll through lighttpd is logged with the client lighttpd forwarded', async () => {
    const p = `${STREAM_PREFIX}grp-${tag}`
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: TEXT, body: 'abc' })).status, 201)
    const head = await rawRequest(srv.url, { method: 'HEAD', path: p })
    const lp = await rawRequest(srv.url, { path: `${p}?offset=${head.headers['stream-next-offset']}&live=long-poll` })
    assert.equal(lp.status, 204)
    // the writes went to the FastCGI workers: only the live read is the daemon's
    const e = await lineOf(log, p)
    assert.deepEqual([e.client, e.method, e.live, e.status, e.bytes], ['127.0.0.1', 'GET', 'long-poll', '204', '0'])
    assert.ok(e.ms >= 900, `lasted ${e.ms} ms`)
  })

  test('SIGHUP to the parent: every process reopens the file', async () => {
    const parents = topPrograms(srv.pid, srv.root, LIVE_NAME)
    assert.equal(parents.length, 1, `one parent lmstream-live: ${parents}`)
    const all = findPrograms(srv.pid, srv.root, LIVE_NAME)
    assert.equal(all.length, 3, `a parent and two processes: ${all}`)
    for (const pid of all) assert.deepEqual(openLogs(pid, log), [log], `process ${pid} has the log open`)
    const rotated = `${log}.1`
    fs.renameSync(log, rotated)
    process.kill(parents[0], 'SIGHUP')
    await until('every process to hold the new file', () =>
      all.every((pid) => { const o = openLogs(pid, log); return o.length === 1 && o[0] === log }), 10_000)
    assert.ok(fs.existsSync(log))
    // live reads now go to the new file, whichever process takes them
    const p = `${STREAM_PREFIX}grp2-${tag}`
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: TEXT, body: 'abc' })).status, 201)
    await Promise.all(Array.from({ length: 6 }, () => rawRequest(srv.url, { path: `${p}?offset=-1&live=long-poll` })))
    await until('six lines in the new file', () => lines(log).map(parse).filter((e) => e.path === p).length === 6)
    // answered at once (the data was there): still logged as the long-polls they asked to be
    for (const e of lines(log).map(parse).filter((x) => x.path === p)) {
      assert.deepEqual([e.live, e.status, e.bytes], ['long-poll', '200', '3'], e.line)
    }
    assert.ok(!lines(rotated).some((l) => parse(l).path === p), 'a line went to the rotated file')
  })
})

describe('secrets and log levels', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-accesslog-keys-'))
  const keys = makeKeys(dir)
  const servers = {}
  before(async () => {
    for (const level of ['info', 'error']) {
      servers[level] = await startServer({
        label: `accesslog-${level}`,
        server: 'standalone',
        config: { auth: 'token', auth_key: keys.authKey, access_log: 'access.log', log_level: level },
      })
    }
  })
  after(async () => {
    for (const s of Object.values(servers)) await s?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('a token in the query, in Authorization or in the cookie is never logged', async () => {
    const srv = servers.info
    const log = path.join(srv.root, 'access.log')
    const p = `${STREAM_PREFIX}sec-${tag}`
    const good = keys.token({ write: ['**'], read: ['**'] })
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: `${p}?token=${good}`, headers: TEXT })).status, 201)
    const secrets = ['SECRET1qq', 'SECRET2qq', 'SECRET3qq', good]
    const bad = await rawRequest(srv.url, {
      path: `${p}?offset=-1&token=SECRET1qq`,
      headers: { Authorization: 'Bearer SECRET2qq', Cookie: 'lmstream_token=SECRET3qq' },
    })
    assert.equal(bad.status, 401)
    const ok = await rawRequest(srv.url, { path: `${p}?offset=-1&token=${good}` })
    assert.equal(ok.status, 200)
    // an SSE read with the token in Authorization, left after 1.5 s
    await rawRequest(srv.url, { path: `${p}?offset=-1&live=sse`, headers: { Authorization: `Bearer ${good}` }, timeoutMs: 1500 })
      .catch(() => null)
    const gets = await until('three GET lines', () => {
      // (startsWith: a path with something appended must still be searched)
      const g = lines(log).map(parse).filter((e) => e.path.startsWith(p) && e.method === 'GET')
      return g.length >= 3 && g
    })
    assert.deepEqual(gets.map((e) => `${e.live} ${e.status}`).sort(), ['- 200', '- 401', 'sse 200'])
    const text = fs.readFileSync(log, 'latin1') + srv.logTail(100_000)
    assert.match(srv.logTail(100_000), /denied: /, 'the 401 left no "denied:" line to search')
    for (const s of secrets) assert.ok(!text.includes(s), `a token (${s.slice(0, 12)}...) was logged`)
    assert.ok(!/token=|Bearer|lmstream_token/.test(fs.readFileSync(log, 'latin1')), 'credentials in the access log')
  })

  test('log_level = error: no info lines on stderr (lmstream-live)', async () => {
    for (const [level, srv] of Object.entries(servers)) {
      const p = `${STREAM_PREFIX}lvl-${level}-${tag}`
      const r = await rawRequest(srv.url, { method: 'PUT', path: p, headers: TEXT })
      assert.equal(r.status, 401)
      // the access log has the 401 at either level
      const e = await lineOf(path.join(srv.root, 'access.log'), p, 'PUT')
      assert.equal(e.status, '401')
      await sleep(200)
      const stderr = srv.logTail(100_000)
      const denied = new RegExp(`lmstream-live\\[\\d+\\]: info: denied: .*lvl-${level}-`)
      const listening = /lmstream-live\[\d+\]: info: listening on/
      if (level === 'info') {
        assert.match(stderr, denied)
        assert.match(stderr, listening)
      } else {
        assert.doesNotMatch(stderr, denied)
        assert.doesNotMatch(stderr, listening)
        assert.doesNotMatch(stderr, /lmstream-live\[\d+\]: info: /)
      }
    }
  })

  test('log_level = error: no info lines on stderr (lmstream.fcgi as CGI)', async () => {
    const srv = servers.info
    const run = (env) => runCgi({
      method: 'POST', target: `${STREAM_PREFIX}cgi-${tag}`, body: 'x',
      env: { CONTENT_TYPE: 'text/plain', LMSTREAM_CONFIG: srv.configFile, LMSTREAM_DATA_DIR: srv.dataDir, ...env },
    })
    const info = await run({})
    assert.equal(info.status, 401)
    assert.match(info.stderr, /lmstream\.fcgi\[\d+\]: info: denied: /)
    const quiet = await run({ LMSTREAM_LOG_LEVEL: 'error' })
    assert.equal(quiet.status, 401)
    assert.doesNotMatch(quiet.stderr, /denied/)
  })
})

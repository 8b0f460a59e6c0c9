// The node's metrics at metrics_path (Prometheus text 0.0.4):
//  - every deployment answers a scrape from 127.0.0.1 without a token, in a
//    format `promtool check metrics` accepts; behind lighttpd and Apache the
//    workers answer it (X-Lmstream-Front: fcgi), never lmstream-live;
//  - one node, one scrape: whichever process answers, it shows what every
//    process counted. Appends through the workers, SSE and long-poll reads
//    held by lmstream-live or by the workers themselves (fastcgi, cgi) move
//    the counters and gauges a scrape shows: appended messages, commits,
//    reads by mode, live connections open now (and back to 0 once closed),
//    wake-ups, deliveries, responses by status and reason;
//  - anyone else needs a token granting admin on **: run as CGI with a
//    REMOTE_ADDR that is not loopback, 401 without a token, 403 with admin
//    on less, 200 with admin on **; lmstream-live never takes a proxied
//    request for a local one (its unix socket behind the web server; a
//    Forwarded/X-Forwarded-For/Via header on its TCP port);
//  - metrics = off counts nothing (and says so); lmstreamctl metrics prints
//    the same scrape from the data directory.
//
// LMSTREAM_METRICS_SERVERS (space-separated) limits the deployments.
// Run: cd tests && LMSTREAM_BINDIR=../build/default/src node --test integration/metrics.test.mjs

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { startServer, runCgi, until, REPO_ROOT, IS_REFERENCE, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest, openSse } from './lib/http.mjs'
import { makeKeys, runOwner } from './lib/tokens.mjs'

const ALL = ['lighttpd', 'apache', 'fastcgi', 'cgi', 'standalone']
const KINDS = process.env.LMSTREAM_METRICS_SERVERS
  ? process.env.LMSTREAM_METRICS_SERVERS.split(/\s+/).filter(Boolean)
  : ALL
const METRICS = '/__lmstream/metrics'
const BINDIR = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'build', 'default', 'src')
const JSON_CT = { 'Content-Type': 'application/json' }

const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-metrics-keys-'))
const keys = makeKeys(keyDir, { owner: runOwner(KINDS) })

/** The samples of a scrape: Map of 'name{labels as sent}' -> number. */
function parse(text) {
  const m = new Map()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const sp = line.lastIndexOf(' ')
    m.set(line.slice(0, sp), Number(line.slice(sp + 1)))
  }
  return m
}

/** One sample (labels in the order lmstream writes them), or throw. */
function get(m, key) {
  assert.ok(m.has(key), `the scrape has no ${key}`)
  return m.get(key)
}

/** `promtool check metrics` (Debian's prometheus, which ./dev.sh test installs) on text. */
function promtoolCheck(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text })
  assert.ok(!r.error, `promtool: ${r.error?.message} (apt-get install prometheus)`)
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` }
}

async function scrape(base, headers = {}) {
  const res = await rawRequest(base, { path: METRICS, headers })
  assert.equal(res.status, 200, `scrape: ${res.status} ${res.body}`)
  return { res, text: res.body.toString(), m: parse(res.body.toString()) }
}

/** Waits until the scrape satisfies pred(m); returns that scrape. */
async function scrapeUntil(base, what, pred) {
  let last
  await until(what, async () => {
    last = await scrape(base)
    return pred(last.m)
  }, 20_000)
  return last
}

/** A GET on the daemon's unix socket, as only the web server may send it. */
function overSocket(socket, p) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: p, headers: { Host: 'localhost' } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.end()
  })
}

const FRONT = { lighttpd: 'fcgi', apache: 'fcgi', fastcgi: 'fcgi', cgi: 'fcgi', standalone: 'live' }
const LIVE_FRONT = { lighttpd: 'live', apache: 'live', fastcgi: 'fcgi', cgi: 'cgi', standalone: 'live' }

for (const kind of IS_REFERENCE ? [] : KINDS) {
  describe(`metrics on ${kind}`, { timeout: 180_000 }, () => {
    let srv
    let base
    const s = `${STREAM_PREFIX}m/${kind}`

    before(async () => {
      srv = await startServer({
        label: `metrics-${kind}`,
        server: kind,
        config: {
          auth: 'token',
          auth_key: keys.authKey,
          public_read: 'm/**',
          public_write: 'm/**',
          long_poll_timeout: 3000,
          // a proxy notices a reader that left at its next write (Apache)
          heartbeat: 1000,
        },
      })
      base = srv.url
    })
    after(async () => { await srv?.stop() })

    test('a scrape from loopback needs no token, is valid Prometheus text, and the workers answer it', async () => {
      const { res, text, m } = await scrape(base)
      assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
      assert.equal(res.headers['x-lmstream-front'], FRONT[kind])
      assert.equal(res.headers['access-control-allow-origin'], undefined, 'no other site may read it')
      assert.equal(get(m, 'lmstream_metrics_counting'), 1)
      assert.ok(get(m, 'lmstream_map_size_bytes') > 0)
      assert.ok(get(m, 'lmstream_map_used_bytes') > 0)
      assert.ok(get(m, 'lmstream_reader_slots_max') > 0)
      const r = promtoolCheck(text)
      assert.ok(r.ok, `promtool check metrics: ${r.out}`)
      const head = await rawRequest(base, { method: 'HEAD', path: METRICS })
      assert.equal(head.status, 200)
      const post = await rawRequest(base, { method: 'POST', path: METRICS, headers: JSON_CT, body: '[]' })
      assert.equal(post.status, 405)
    })

    test('appends move the counters, and the streams gauge', async () => {
      const before = (await scrape(base)).m
      assert.equal((await rawRequest(base, { method: 'PUT', path: s, headers: JSON_CT })).status, 201)
      assert.equal((await rawRequest(base, { method: 'POST', path: s, headers: JSON_CT, body: '[1,2,3]' })).status, 204)
      const bad = await rawRequest(base, { method: 'POST', path: s, headers: JSON_CT, body: '[1,' })
      assert.equal(bad.status, 400)
      const after = (await scrape(base)).m
      const d = (k) => get(after, k) - (before.get(k) ?? 0)
      assert.equal(d('lmstream_appended_messages_total'), 3)
      assert.equal(d('lmstream_appended_bytes_total'), '[1,2,3]'.length)
      assert.ok(d('lmstream_commits_total') >= 2, 'the create and the append committed')
      assert.ok(d('lmstream_commit_seconds_count') >= 2)
      assert.ok(d('lmstream_commit_batch_size_count') >= 2)
      assert.equal(d('lmstream_responses_total{status="201",reason=""}'), 1)
      assert.ok(d('lmstream_responses_total{status="204",reason=""}') >= 1)
      assert.equal(d('lmstream_responses_total{status="400",reason="json"}'), 1)
      assert.equal(get(after, 'lmstream_streams'), 1)
    })

    test('live reads: connections open now, wake-ups and deliveries, whichever process holds them', async () => {
      let m0 = (await scrape(base)).m
      const sse = openSse(base, `${s}?offset=now&live=sse`)
      const r = await sse.response
      assert.equal(r.status, 200)
      assert.equal(r.headers['x-lmstream-front'], LIVE_FRONT[kind] === 'cgi' ? 'fcgi' : LIVE_FRONT[kind])
      const open = await scrapeUntil(base, 'the SSE reader counted as open',
        (m) => m.get('lmstream_live_connections{mode="sse"}') >= 1)
      assert.equal(get(open.m, 'lmstream_reads_total{mode="sse"}') - get(m0, 'lmstream_reads_total{mode="sse"}'), 1)
      // the scrape answered by another process than the reader's shows it
      if (FRONT[kind] !== LIVE_FRONT[kind]) assert.notEqual(open.res.headers['x-lmstream-front'], LIVE_FRONT[kind])
      await until('the reader waits', async () => (await scrape(base)).m.get('lmstream_live_waiting') >= 1, 20_000)
      m0 = (await scrape(base)).m
      assert.equal((await rawRequest(base, { method: 'POST', path: s, headers: JSON_CT, body: '{"n":4}' })).status, 204)
      await sse.waitFor((e) => e.type === 'data' && e.data.includes('"n":4'), 15_000, 'the appended message')
      const moved = await scrapeUntil(base, 'a delivery and a wake-up counted',
        (m) => m.get('lmstream_delivered_messages_total') > get(m0, 'lmstream_delivered_messages_total') &&
               m.get('lmstream_wakeups_total') > get(m0, 'lmstream_wakeups_total'))
      assert.equal(get(moved.m, 'lmstream_delivered_messages_total') - get(m0, 'lmstream_delivered_messages_total'), 1)
      assert.equal(get(moved.m, 'lmstream_delivered_bytes_total') - get(m0, 'lmstream_delivered_bytes_total'), '{"n":4}'.length)
      sse.close()
      await scrapeUntil(base, 'the SSE reader gone from the gauge',
        (m) => m.get('lmstream_live_connections{mode="sse"}') === 0)

      // a long-poll: open while it waits, a delivery once it is answered
      const head = await rawRequest(base, { method: 'HEAD', path: s })
      const tail = head.headers['stream-next-offset']
      const lp = rawRequest(base, { path: `${s}?offset=${tail}&live=long-poll`, timeoutMs: 20_000 })
      await scrapeUntil(base, 'the long-poll counted as open',
        (m) => m.get('lmstream_live_connections{mode="long-poll"}') >= 1)
      m0 = (await scrape(base)).m
      assert.equal((await rawRequest(base, { method: 'POST', path: s, headers: JSON_CT, body: '{"n":5}' })).status, 204)
      const got = await lp
      assert.equal(got.status, 200)
      assert.deepEqual(JSON.parse(got.body), [{ n: 5 }])
      const done = await scrapeUntil(base, 'the long-poll gone from the gauge',
        (m) => m.get('lmstream_live_connections{mode="long-poll"}') === 0)
      assert.equal(get(done.m, 'lmstream_delivered_messages_total') - get(m0, 'lmstream_delivered_messages_total'), 1)
      assert.ok(get(done.m, 'lmstream_reads_total{mode="long-poll"}') >= 1)
      const procs = get(done.m, `lmstream_processes{front="${LIVE_FRONT[kind]}"}`)
      if (kind !== 'cgi') assert.ok(procs >= 1, `a running ${LIVE_FRONT[kind]} process is counted`)
    })

    if (kind === 'lighttpd' || kind === 'apache') {
      test('lmstream-live behind the web server never takes a request for a local one', async () => {
        const a = srv.liveAddress()
        assert.ok(a?.socket, 'the daemon listens on a unix socket')
        const r = await overSocket(a.socket, METRICS)
        assert.equal(r.status, 401)
        assert.match(r.body, /admin on \*\*/)
      })
    }

    if (kind === 'standalone') {
      test('a request a proxy forwarded is not a local one', async () => {
        for (const h of [{ 'X-Forwarded-For': '203.0.113.9' }, { Forwarded: 'for=203.0.113.9' }, { Via: '1.1 proxy' }]) {
          const r = await rawRequest(base, { path: METRICS, headers: h })
          assert.equal(r.status, 401, JSON.stringify(h))
        }
        const admin = keys.token({ admin: ['**'] })
        const ok = await rawRequest(base, { path: METRICS, headers: { 'X-Forwarded-For': '203.0.113.9', Authorization: `Bearer ${admin}` } })
        assert.equal(ok.status, 200)
      })
    }

    if (kind === 'cgi') {
      test('from another address: 401 without a token, 403 with admin on less than **, 200 with admin on **', async () => {
        const env = { LMSTREAM_CONFIG: srv.configFile, LMSTREAM_DATA_DIR: srv.dataDir, REMOTE_ADDR: '203.0.113.9' }
        const none = await runCgi({ target: METRICS, env })
        assert.equal(none.status, 401)
        assert.match(none.body.toString(), /a token is required: admin on \*\*/)
        const less = await runCgi({ target: METRICS, env: { ...env, HTTP_AUTHORIZATION: `Bearer ${keys.token({ admin: ['m/**'], read: ['**'] })}` } })
        assert.equal(less.status, 403)
        const bad = await runCgi({ target: METRICS, env: { ...env, REMOTE_ADDR: '127.0.0.1', HTTP_AUTHORIZATION: 'Bearer nonsense' } })
        assert.equal(bad.status, 401, 'a bad token is refused even from loopback')
        const all = await runCgi({ target: METRICS, env: { ...env, HTTP_AUTHORIZATION: `Bearer ${keys.token({ admin: ['**'] })}` } })
        assert.equal(all.status, 200)
        assert.match(all.body.toString(), /^lmstream_appended_messages_total \d+$/m)
        const v6 = await runCgi({ target: METRICS, env: { ...env, REMOTE_ADDR: '::1' } })
        assert.equal(v6.status, 200, '::1 is loopback')
      })

      test('lmstreamctl metrics prints the node\'s scrape', async () => {
        const r = spawnSync(path.join(BINDIR, 'lmstreamctl'), ['--config', srv.configFile, '--data', srv.dataDir, 'metrics'])
        assert.equal(r.status, 0, r.stderr.toString())
        const m = parse(r.stdout.toString())
        assert.ok(get(m, 'lmstream_appended_messages_total') >= 5)
        assert.ok(promtoolCheck(r.stdout.toString()).ok)
      })
    }
  })
}

describe('metrics = off', { skip: IS_REFERENCE || !KINDS.includes('standalone') }, () => {
  let srv
  before(async () => {
    srv = await startServer({ label: 'metrics-off', server: 'standalone', config: { auth: 'none', metrics: 'off' } })
  })
  after(async () => { await srv?.stop() })

  test('nothing is counted, and the scrape says so', async () => {
    const p = `${STREAM_PREFIX}off`
    assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: JSON_CT })).status, 201)
    assert.equal((await rawRequest(srv.url, { method: 'POST', path: p, headers: JSON_CT, body: '[1]' })).status, 204)
    const { m } = await scrape(srv.url)
    assert.equal(get(m, 'lmstream_metrics_counting'), 0)
    assert.equal(get(m, 'lmstream_appended_messages_total'), 0)
    assert.equal(get(m, 'lmstream_streams'), 1, 'what the store says is shown all the same')
    assert.ok(!fs.existsSync(path.join(srv.dataDir, 'lmstream.metrics')))
  })
})

after(() => fs.rmSync(keyDir, { recursive: true, force: true }))

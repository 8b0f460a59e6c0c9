// Subscriptions (PROTOCOL.md 6-7) as a receiver relies on them, beyond the
// conformance suite's six tests:
//   - every webhook is signed with a key of __ds/jwks.json (verified here
//     with node:crypto from the JWK alone);
//   - a receiver that is down for 30 s gets every event afterwards, once,
//     although lmstream-live was killed (-9) and restarted meanwhile: the
//     pending delivery and its retry schedule are in the store;
//   - only one delivery attempt of a subscription runs at a time, across
//     the processes of an lmstream-live group;
//   - without any lmstream-live, `lmstreamctl deliver` (cron) delivers;
//   - a receiver that hangs does not hold another subscription's delivery,
//     and an https receiver's certificate is checked (webhook_ca_file);
//   - webhook URLs: private, link-local and (unless allowed) loopback
//     targets are refused; rights: creating needs admin and read over the
//     whole pattern; wake tokens are checked and fenced.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { startLiveAlone } from './lib/live.mjs'
import { freePort, sleep, until, REPO_ROOT } from './lib/server.mjs'
import { claimsFor, mint } from './lib/tokens.mjs'

const BINDIR = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'src')
const LOOPBACK = { LMSTREAM_SUBSCRIPTIONS_ALLOW_LOOPBACK: 'on' }

const tmp = (tag) => fs.mkdtempSync(path.join(os.tmpdir(), `lmstream-subs-${tag}-`))

async function req(base, method, p, { body, headers = {}, token } = {}) {
  const h = { ...headers }
  if (token) h.authorization = `Bearer ${token}`
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json'
  const res = await fetch(`${base}/v1/stream/${p}`, {
    method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  let json
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.status, text, json, headers: res.headers }
}

/** The public keys of the JWKS, by kid. */
async function jwksOf(base) {
  const r = await req(base, 'GET', '__ds/jwks.json')
  assert.equal(r.status, 200)
  assert.match(r.headers.get('content-type'), /^application\/jwk-set\+json/)
  return new Map(r.json.keys.map((k) => [k.kid, crypto.createPublicKey({ key: k, format: 'jwk' })]))
}

/** Whether header (t=..,kid=..,ed25519=..) signs `${t}.${raw}` with a key of keys. */
function verified(keys, header, raw) {
  const m = /^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$/.exec(header || '')
  if (!m || !keys.has(m[2])) return false
  if (Math.abs(Date.now() / 1000 - Number(m[1])) > 300) return false
  return crypto.verify(null, Buffer.concat([Buffer.from(`${m[1]}.`), raw]), keys.get(m[2]), Buffer.from(m[3], 'base64url'))
}

/**
 * A webhook receiver on 127.0.0.1:port that verifies each delivery against
 * the server's JWKS, reads every pending stream from its acked offset to
 * the wake's tail, and answers {"done": true}. events: what it read, in
 * order, per stream; bad: deliveries that failed verification.
 */
function receiver(port, base, { delayMs = 0, status = 200, keys = null } = {}) {
  const r = { base, events: new Map(), wakes: [], sigs: [], deliveries: 0, bad: 0, inflight: 0, maxInflight: 0, server: null }
  r.start = () => new Promise((resolve) => {
    r.server = http.createServer(async (q, s) => {
      const chunks = []
      for await (const c of q) chunks.push(c)
      const raw = Buffer.concat(chunks)
      r.inflight++
      r.maxInflight = Math.max(r.maxInflight, r.inflight)
      try {
        r.deliveries++
        r.sigs.push(q.headers['webhook-signature'])
        if (!verified(keys || await jwksOf(r.base), q.headers['webhook-signature'], raw)) {
          r.bad++
          s.writeHead(401).end()
          return
        }
        if (delayMs) await sleep(delayMs)
        if (status !== 200) {
          s.writeHead(status).end()
          return
        }
        const wake = JSON.parse(raw)
        r.wakes.push(wake)
        for (const st of wake.streams.filter((x) => x.has_pending && !keys)) {
          const got = await req(r.base, 'GET', `${st.path}?offset=${st.acked_offset}`)
          const list = r.events.get(st.path) || []
          // only up to the wake's tail: later events are the next wake's
          const upTo = Number(st.tail_offset.split('_')[0]) - Number(st.acked_offset.split('_')[0])
          list.push(...got.json.slice(0, upTo))
          r.events.set(st.path, list)
        }
        s.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ done: true }))
      } finally {
        r.inflight--
      }
    })
    r.server.listen(port, '127.0.0.1', resolve)
  })
  r.stop = () => new Promise((resolve) => { r.server.closeAllConnections?.(); r.server.close(resolve) })
  return r
}

const all = (r, p) => (r.events.get(p) || []).map((e) => e.n)

test('webhooks are signed, retried across a 30 s outage and a kill -9, and arrive once', { timeout: 180_000 }, async () => {
  const data = tmp('outage')
  let live = await startLiveAlone(data, LOOPBACK)
  assert.ok(live.up, live.log())
  const port = await freePort()
  const rx = receiver(port, live.url)
  await rx.start()
  try {
    const put = await req(live.url, 'PUT', '__ds/subscriptions/jobs', {
      body: { type: 'webhook', pattern: 'jobs/*', webhook: { url: `http://127.0.0.1:${port}/hook` }, lease_ttl_ms: 5000 },
    })
    assert.equal(put.status, 201, put.text)
    assert.equal(put.json.webhook.signing.alg, 'ed25519')
    for (let i = 0; i < 5; i++) {
      const w = await req(live.url, i ? 'POST' : 'PUT', 'jobs/a', { body: [{ n: i }] })
      assert.ok(w.status < 300, w.text)
    }
    await until('the first five events', () => all(rx, 'jobs/a').length === 5, 20_000)

    // The receiver goes away for 30 s; events keep coming.
    await rx.stop()
    const downAt = Date.now()
    for (let i = 5; i < 10; i++) assert.ok((await req(live.url, 'POST', 'jobs/a', { body: [{ n: i }] })).status < 300)
    assert.equal((await req(live.url, 'PUT', 'jobs/b', { body: [{ n: 100 }] })).status, 201)
    await until('a failed attempt', async () => (await req(live.url, 'GET', '__ds/subscriptions/jobs')).json.status === 'failed', 15_000)
    // lmstream-live dies meanwhile; the retry schedule is in the store.
    live.child.kill('SIGKILL')
    await live.exited
    live = await startLiveAlone(data, LOOPBACK)
    assert.ok(live.up, live.log())
    await sleep(Math.max(0, 30_000 - (Date.now() - downAt)))
    const rx2 = receiver(port, live.url)
    await rx2.start()
    try {
      await until('every event after the outage', () => all(rx2, 'jobs/a').length === 5 && all(rx2, 'jobs/b').length === 1, 90_000)
      await sleep(1500) // nothing more may come
      assert.deepEqual([...all(rx, 'jobs/a'), ...all(rx2, 'jobs/a')], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      assert.deepEqual(all(rx2, 'jobs/b'), [100])
      assert.equal(rx.bad + rx2.bad, 0, 'every delivery verifies against jwks.json')
      const sub = (await req(live.url, 'GET', '__ds/subscriptions/jobs')).json
      assert.equal(sub.status, 'active')
      for (const s of sub.streams) {
        const head = await req(live.url, 'HEAD', s.path)
        assert.equal(s.acked_offset, head.headers.get('stream-next-offset'), `${s.path} acked to its tail`)
      }
    } finally {
      await rx2.stop()
    }
  } finally {
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
  }
})

test('one delivery attempt at a time per subscription, across an lmstream-live group', { timeout: 60_000 }, async () => {
  const data = tmp('group')
  const live = await startLiveAlone(data, { ...LOOPBACK, LMSTREAM_LIVE_PROCESSES: '2', LMSTREAM_WEBHOOK_TIMEOUT_MS: '3000' })
  assert.ok(live.up, live.log())
  const port = await freePort()
  // slow and failing: every attempt takes 400 ms and is retried
  const rx = receiver(port, live.url, { delayMs: 400, status: 503 })
  await rx.start()
  try {
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/slow', {
      body: { type: 'webhook', pattern: 'slow/**', webhook: { url: `http://127.0.0.1:${port}/` } },
    })).status, 201)
    for (let i = 0; i < 20; i++) await req(live.url, i ? 'POST' : 'PUT', 'slow/x', { body: [{ n: i }] })
    await until('three attempts', () => rx.deliveries >= 3, 30_000)
    assert.equal(rx.maxInflight, 1, 'two attempts of one subscription overlapped')
  } finally {
    await rx.stop()
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
  }
})

test('without lmstream-live, lmstreamctl deliver sends what is due', { timeout: 60_000 }, async () => {
  const data = tmp('cron')
  const port = await freePort()
  const live = await startLiveAlone(data, LOOPBACK)
  assert.ok(live.up, live.log())
  let rx
  try {
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/cron', {
      body: { type: 'webhook', streams: ['cron/a'], webhook: { url: `http://127.0.0.1:${port}/` } },
    })).status, 201)
    // the receiver checks signatures with the keys published now: no
    // server answers HTTP from here on
    rx = receiver(port, null, { keys: await jwksOf(live.url) })
    await rx.start()
    await live.stop()
    const ctl = path.join(BINDIR, 'lmstreamctl')
    const env = { ...process.env, LMSTREAM_DATA_DIR: data, ...LOOPBACK }
    execFileSync(ctl, ['create', 'cron/a', '--type', 'application/json'], { env })
    execFileSync(ctl, ['append', 'cron/a'], { env, input: '[{"n":1},{"n":2}]' })
    await sleep(300)
    assert.equal(rx.deliveries, 0, 'nothing delivers without lmstream-live or cron')
    // (not execFileSync: the receiver answers from this process's event loop)
    const deliver = async () => (await promisify(execFile)(ctl, ['deliver', '--for', '5'], { env })).stdout
    assert.match(await deliver(), /^1 webhook\(s\) sent/)
    assert.equal(rx.bad, 0)
    assert.equal(rx.wakes.length, 1)
    const st = rx.wakes[0].streams.find((x) => x.path === 'cron/a')
    assert.equal(st.tail_offset.split('_')[0], '0000000000000002')
    assert.equal(st.has_pending, true)
    // {"done": true} acked the wake: nothing is due any more
    assert.match(await deliver(), /^0 webhook\(s\) sent/)
  } finally {
    await rx?.stop()
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
  }
})

test('webhook URLs that could reach this network are refused', async () => {
  const data = tmp('ssrf')
  const live = await startLiveAlone(data) // subscriptions_allow_loopback off: the default
  assert.ok(live.up, live.log())
  try {
    for (const url of ['http://127.0.0.1:9/x', 'https://127.0.0.1/x', 'https://localhost/x', 'https://10.0.0.1/x',
      'https://192.168.1.1/x', 'https://172.16.0.1/x', 'https://169.254.169.254/latest/meta-data',
      'https://[::1]/x', 'https://[fe80::1]/x', 'https://[::ffff:10.0.0.1]/x', 'https://0.0.0.0/x',
      'https://metadata.google.internal/x', 'ftp://example.com/x', 'https://user:pw@example.com/x']) {
      const r = await req(live.url, 'PUT', '__ds/subscriptions/bad', { body: { type: 'webhook', pattern: 'a/*', webhook: { url } } })
      assert.equal(r.status, 400, `${url}: ${r.text}`)
      assert.equal(r.json.error.code, 'WEBHOOK_URL_REJECTED', url)
    }
    const ok = await req(live.url, 'PUT', '__ds/subscriptions/good', { body: { type: 'webhook', pattern: 'a/*', webhook: { url: 'https://hooks.example.com/x' } } })
    assert.equal(ok.status, 201, ok.text)
    assert.equal((await req(live.url, 'GET', '__ds/subscriptions/bad')).status, 404, 'a refused PUT created nothing')
  } finally {
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
  }
})

test('rights: admin and read over the whole pattern; wake tokens are checked and fenced', async () => {
  const data = tmp('rights')
  const secret = crypto.randomBytes(32).toString('hex')
  const keyFile = path.join(data, 'hs.key')
  fs.writeFileSync(keyFile, secret, { mode: 0o600 })
  const live = await startLiveAlone(data, { ...LOOPBACK, LMSTREAM_AUTH: 'token', LMSTREAM_AUTH_KEY: keyFile })
  assert.ok(live.up, live.log())
  const tok = (rights) => mint({ alg: 'HS256', kid: 'hs', key: secret, claims: claimsFor(rights) })
  const body = { type: 'pull-wake', pattern: 'team/*', wake_stream: 'team-wake', lease_ttl_ms: 1000 }
  try {
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/t', { body })).status, 401)
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/t', { body, token: tok({ read: ['team/**'] }) })).status, 403)
    // admin over team/a only does not cover team/*
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/t', { body, token: tok({ admin: ['team/a'], read: ['**'] }) })).status, 403)
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/t', { body, token: tok({ admin: ['team/**'], read: ['team/a'] }) })).status, 403)
    const admin = tok({ admin: ['**'], read: ['**'], write: ['**'] })
    assert.equal((await req(live.url, 'PUT', 'team-wake', { body: '[]', token: admin })).status, 201)
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/t', { body, token: tok({ admin: ['team/**'], read: ['team/*'] }) })).status, 201)
    assert.equal((await req(live.url, 'GET', '__ds/subscriptions/t')).status, 401)
    assert.equal((await req(live.url, 'GET', '__ds/subscriptions/t', { token: tok({ read: ['other/**'] }) })).status, 403)
    assert.equal((await req(live.url, 'GET', '__ds/jwks.json')).status, 200, 'the JWKS is public')

    assert.equal((await req(live.url, 'PUT', 'team/x', { body: [{ a: 1 }], token: admin })).status, 201)
    await until('a wake event', async () => (await req(live.url, 'GET', 'team-wake', { token: admin })).json.length === 1)
    const claim = await req(live.url, 'POST', '__ds/subscriptions/t/claim', { body: { worker: 'w1' }, token: admin })
    assert.equal(claim.status, 200, claim.text)
    const c = claim.json
    const ack = (token, b) => req(live.url, 'POST', '__ds/subscriptions/t/ack', { body: b, token })
    assert.equal((await ack(null, { wake_id: c.wake_id, generation: c.generation })).status, 401)
    assert.equal((await ack(admin, { wake_id: c.wake_id, generation: c.generation })).status, 401, 'a service token is not a wake token')
    const forged = c.token.replace(/.$/, (ch) => (ch === '0' ? '1' : '0'))
    assert.equal((await ack(forged, { wake_id: c.wake_id, generation: c.generation })).status, 401)
    assert.equal((await ack(c.token, { wake_id: 'w_other', generation: c.generation })).json.error.code, 'FENCED')
    const tail = c.streams.find((s) => s.path === 'team/x').tail_offset
    const beyond = tail.replace(/^(\d+)/, (n) => String(Number(n) + 5).padStart(16, '0'))
    const bad = await ack(c.token, { wake_id: c.wake_id, generation: c.generation, acks: [{ stream: 'team/x', offset: beyond }] })
    assert.equal(bad.status, 409)
    assert.equal(bad.json.error.code, 'INVALID_OFFSET')
    const good = await ack(c.token, { wake_id: c.wake_id, generation: c.generation, acks: [{ stream: 'team/x', offset: tail }], done: true })
    assert.deepEqual(good.json, { ok: true, next_wake: false })
    assert.equal((await ack(c.token, { wake_id: c.wake_id, generation: c.generation })).json.error.code, 'FENCED')
    // a lease that runs out frees the claim for another worker
    assert.equal((await req(live.url, 'POST', 'team/x', { body: [{ a: 2 }], token: admin })).status, 204)
    const c2 = await req(live.url, 'POST', '__ds/subscriptions/t/claim', { body: { worker: 'w1' }, token: admin })
    assert.equal(c2.status, 200)
    assert.equal((await req(live.url, 'POST', '__ds/subscriptions/t/claim', { body: { worker: 'w2' }, token: admin })).json.error.code, 'ALREADY_CLAIMED')
    await sleep(1200)
    const c3 = await req(live.url, 'POST', '__ds/subscriptions/t/claim', { body: { worker: 'w2' }, token: admin })
    assert.equal(c3.status, 200, c3.text)
    assert.ok(c3.json.generation > c2.json.generation)
    assert.equal((await ack(c2.json.token, { wake_id: c2.json.wake_id, generation: c2.json.generation, done: true })).json.error.code, 'FENCED')
    // deleting needs admin; afterwards callbacks fail and move nothing
    assert.equal((await req(live.url, 'DELETE', '__ds/subscriptions/t', { token: tok({ read: ['**'] }) })).status, 403)
    assert.equal((await req(live.url, 'DELETE', '__ds/subscriptions/t', { token: admin })).status, 204)
    assert.equal((await ack(c3.json.token, { wake_id: c3.json.wake_id, generation: c3.json.generation, done: true })).status, 404)
  } finally {
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
  }
})

test('the signing key is in backups, and rotates with the old key still published', { timeout: 60_000 }, async () => {
  const data = tmp('keys')
  const backup = path.join(tmp('keys-backup'), 'b')
  const ctl = path.join(BINDIR, 'lmstreamctl')
  const env = { ...process.env, LMSTREAM_DATA_DIR: data }
  let live = await startLiveAlone(data, LOOPBACK)
  const port = await freePort()
  let rx
  try {
    assert.equal((await req(live.url, 'PUT', '__ds/subscriptions/k', {
      body: { type: 'webhook', pattern: 'k/*', webhook: { url: `http://127.0.0.1:${port}/` } },
    })).status, 201)
    const k1 = [...(await jwksOf(live.url)).keys()]
    assert.equal(k1.length, 1)
    await live.stop()
    execFileSync(ctl, ['backup', backup], { env })
    const k2 = execFileSync(ctl, ['webhook-key', 'rotate'], { env, encoding: 'utf8' }).trim()
    assert.match(k2, /^ds_[A-Za-z0-9_-]{43}$/)
    assert.notEqual(k2, k1[0])
    live = await startLiveAlone(data, LOOPBACK)
    assert.deepEqual(new Set((await jwksOf(live.url)).keys()), new Set([k1[0], k2]), 'both keys published')
    rx = receiver(port, live.url)
    await rx.start()
    assert.equal((await req(live.url, 'PUT', 'k/a', { body: [{ n: 1 }] })).status, 201)
    await until('a delivery', () => rx.wakes.length === 1)
    assert.equal(rx.bad, 0)
    assert.ok(rx.sigs[0].includes(`,kid=${k2},`), `signed with the new key: ${rx.sigs[0]}`)
    assert.equal((await req(live.url, 'GET', '__ds/subscriptions/k')).json.webhook.signing.kid, k2)
    await live.stop()
    // the backup, served as it is: the key as it was then
    live = await startLiveAlone(backup, LOOPBACK)
    assert.ok(live.up, live.log())
    assert.deepEqual([...(await jwksOf(live.url)).keys()], k1)
  } finally {
    await rx?.stop()
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
    fs.rmSync(path.dirname(backup), { recursive: true, force: true })
  }
})

test('the longest subscription id with the longest stream path', async () => {
  const data = tmp('long')
  const live = await startLiveAlone(data, LOOPBACK)
  assert.ok(live.up, live.log())
  try {
    const id = 's'.repeat(128)
    const p = `long/${'x'.repeat(395)}` // max_path: 400 bytes
    assert.equal((await req(live.url, 'PUT', 'wake', { body: '[]' })).status, 201)
    const put = await req(live.url, 'PUT', `__ds/subscriptions/${id}`, { body: { type: 'pull-wake', streams: [p], wake_stream: 'wake' } })
    assert.equal(put.status, 201, put.text)
    assert.equal((await req(live.url, 'PUT', `__ds/subscriptions/${'s'.repeat(129)}`, { body: { type: 'pull-wake', streams: [p], wake_stream: 'wake' } })).status, 404)
    assert.equal((await req(live.url, 'PUT', p, { body: [{ n: 1 }] })).status, 201)
    await until('a wake event', async () => (await req(live.url, 'GET', 'wake')).json.length === 1)
    const claim = await req(live.url, 'POST', `__ds/subscriptions/${id}/claim`, { body: { worker: 'w' } })
    assert.equal(claim.status, 200, claim.text)
    assert.equal(claim.json.streams[0].path, p)
  } finally {
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
  }
})

/** A key and a self-signed certificate for 127.0.0.1 (PEM files in dir). */
function selfSigned(dir) {
  const key = path.join(dir, 'rx.key')
  const cert = path.join(dir, 'rx.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=lmstream test receiver',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  return { key, cert }
}

test('a receiver that hangs holds only its own deliveries; https receivers are checked against webhook_ca_file', { timeout: 90_000 }, async () => {
  const data = tmp('tls')
  const { key, cert } = selfSigned(data)
  // an https receiver with a certificate no system authority signed
  const got = []
  let hangOpen = false
  const tls = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, async (q, s) => {
    for await (const _ of q);
    got.push({ at: Date.now(), hangOpen })
    s.writeHead(200, { 'content-type': 'application/json' }).end('{"done":true}')
  })
  // a receiver that takes each request and never answers
  const held = []
  const hang = http.createServer((q, s) => { hangOpen = true; held.push(s); q.on('close', () => { hangOpen = false }) })
  const [tlsPort, hangPort] = [await freePort(), await freePort()]
  await new Promise((resolve) => tls.listen(tlsPort, '127.0.0.1', resolve))
  await new Promise((resolve) => hang.listen(hangPort, '127.0.0.1', resolve))
  const sub = (base, id, pattern, url) => req(base, 'PUT', `__ds/subscriptions/${id}`, {
    body: { type: 'webhook', pattern, webhook: { url } },
  })
  let live = await startLiveAlone(data, { ...LOOPBACK, LMSTREAM_WEBHOOK_TIMEOUT_MS: '8000', LMSTREAM_WEBHOOK_CA_FILE: cert })
  try {
    assert.ok(live.up, live.log())
    assert.equal((await sub(live.url, 'hang', 'hang/*', `http://127.0.0.1:${hangPort}/`)).status, 201)
    assert.equal((await sub(live.url, 'tls', 'tls/*', `https://127.0.0.1:${tlsPort}/`)).status, 201)
    assert.equal((await req(live.url, 'PUT', 'hang/a', { body: [{ n: 0 }] })).status, 201)
    await until('the hanging receiver holds a delivery', () => hangOpen, 10_000)
    assert.equal((await req(live.url, 'PUT', 'tls/a', { body: [{ n: 0 }] })).status, 201)
    await until('the https receiver got its delivery', () => got.length === 1, 15_000)
    assert.equal(got[0].hangOpen, true, 'the https delivery waited for the hanging receiver to time out')
    const tail = (await req(live.url, 'HEAD', 'tls/a')).headers.get('stream-next-offset')
    await until('the https subscription is acked to the tail', async () => {
      const r = await req(live.url, 'GET', '__ds/subscriptions/tls')
      return r.json.status === 'active' && r.json.streams.length === 1 && r.json.streams[0].acked_offset === tail
    }, 10_000)
    await live.stop()

    // the same receiver without webhook_ca_file: its certificate is refused
    live = await startLiveAlone(data, { ...LOOPBACK, LMSTREAM_WEBHOOK_TIMEOUT_MS: '3000' })
    assert.ok(live.up, live.log())
    assert.ok((await req(live.url, 'POST', 'tls/a', { body: [{ n: 1 }] })).status < 300)
    await until('a refused certificate', () => /subscription tls: webhook to https:\/\/127\.0\.0\.1:\d+\/ failed: .*(certificate|SSL)/i.test(live.log()), 15_000)
    assert.equal(got.length, 1, 'a delivery went to a receiver whose certificate no trusted authority signed')
    assert.equal((await req(live.url, 'GET', '__ds/subscriptions/tls')).json.status, 'failed')
  } finally {
    for (const s of held) s.destroy()
    hang.closeAllConnections?.()
    tls.closeAllConnections?.()
    await new Promise((resolve) => hang.close(resolve))
    await new Promise((resolve) => tls.close(resolve))
    await live.stop()
    fs.rmSync(data, { recursive: true, force: true })
  }
})

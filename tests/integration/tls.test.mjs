// deploy/run --tls: HTTPS with HTTP/2 under lighttpd and Apache.
//
// For each of lighttpd and apache (LMSTREAM_TLS_SERVERS, space-separated,
// limits them), one deployment started with --tls (its self-signed
// certificate, which every client here verifies: --cacert, node's `ca`):
//  - curl --http2 negotiates h2 (ALPN), for 127.0.0.1 and for localhost
//    (both in the certificate); curl --http1.1 still gets HTTP/1.1 over TLS;
//  - TLS 1.2 and 1.3 offer h2; TLS 1.1, and TLS 1.2 suites without
//    forward secrecy, are refused;
//  - over one h2 connection (node:http2): a write, then an SSE read from the
//    start delivers it, through lmstream-live (X-Lmstream-Front: live); an
//    event written while that read is open arrives within a second of its
//    acknowledgement (not held back by the proxy or by mod_http2); a
//    long-poll read over h2 is woken by a write the same way;
//  - a request body without Content-Length over h2 is stored whole or
//    refused with 411, never lost (Apache + mod_fcgid would hand lmstream an
//    empty body);
//  - plain HTTP to the TLS port fails at once: Apache answers 400, lighttpd
//    closes the connection (curl: "Empty reply from server"); no 2xx;
//  - an SSE response over h2 that stays silent for longer than the web
//    server's shorter timeouts is not cut (Apache: Timeout and
//    H2StreamTimeout set to 2 s; lighttpd: max-read-idle and
//    max-keep-alive-idle 2 s, max-write-idle 3 s, which lmstream-live's
//    heartbeat, 1 s here, keeps at bay), on a second deployment with those
//    settings in --site-conf;
//  - --tls-cert and --tls-key: the operator's own certificate (signed by a
//    CA of this test) is served instead.
// And without a web server: --tls with standalone or shared hosting, and
// --tls-cert without --tls-key, exit 2 with a message saying what to do.
//
// Run: cd tests && LMSTREAM_BINDIR=... node --test integration/tls.test.mjs

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { startServer, sleep, RUN_PATH, REPO_ROOT } from './lib/server.mjs'
import { sseParser } from './lib/http.mjs'
import { runOwner } from './lib/tokens.mjs'

const ALL = ['lighttpd', 'apache']
const KINDS = process.env.LMSTREAM_TLS_SERVERS
  ? process.env.LMSTREAM_TLS_SERVERS.split(/\s+/).filter(Boolean)
  : ALL
const TAG = crypto.randomBytes(4).toString('hex')
const JSON_CT = 'application/json'
const MAX_DELAY_MS = 1000 // an event written to an open live read must arrive within this

/** Run curl; resolves { code, stdout, stderr, ms } (asynchronous: the servers run in this process's event loop too). */
function curl(args, { input } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now()
    const child = spawn('curl', ['--silent', '--show-error', '--noproxy', '*', '--max-time', '10', ...args])
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c) => { stdout += c })
    child.stderr.on('data', (c) => { stderr += c })
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }))
    child.stdin.on('error', () => {}) // curl does not read stdin: it may be gone first (EPIPE)
    child.stdin.end(input ?? '')
  })
}

/** An h2 session to the deployment, verifying its certificate. */
function connect(srv) {
  const session = http2.connect(srv.url, { ca: srv.tlsCa })
  session.on('error', () => {})
  return session
}

/** One request on an h2 session: { status, headers, body (string) }. */
function h2request(session, headers, body) {
  return new Promise((resolve, reject) => {
    const req = session.request(headers)
    let text = ''
    req.setEncoding('utf8')
    req.on('response', (h) => {
      req.on('data', (c) => { text += c })
      req.on('end', () => resolve({ status: h[':status'], headers: h, body: text }))
    })
    req.on('error', reject)
    req.setTimeout(15_000, () => req.close(http2.constants.NGHTTP2_CANCEL))
    req.end(body)
  })
}

/** POST/PUT with a JSON body and its Content-Length. */
const write = (session, method, p, value) => {
  const body = value === undefined ? undefined : Buffer.from(JSON.stringify(value))
  return h2request(session, {
    ':method': method, ':path': p, 'content-type': JSON_CT,
    ...(body ? { 'content-length': String(body.length) } : {}),
  }, body)
}

/**
 * An SSE read on an h2 session: { response (Promise of headers), events
 * [{ type, data, at }], comments, waitFor(pred, ms, what), close() }.
 */
function h2sse(session, p) {
  const sub = { events: [], comments: 0, ended: false }
  const waiters = new Set()
  const req = session.request({ ':path': p, accept: 'text/event-stream' })
  sub.response = new Promise((resolve, reject) => {
    req.on('response', resolve)
    req.on('error', reject)
  })
  sub.response.catch(() => {})
  req.setEncoding('utf8')
  req.on('data', sseParser({
    onEvent(type, data) { sub.events.push({ type, data, at: performance.now() }); for (const w of [...waiters]) w() },
    onComment() { sub.comments++ },
  }))
  req.on('close', () => { sub.ended = true; sub.rstCode = req.rstCode; for (const w of [...waiters]) w() })
  req.on('error', () => {})
  sub.waitFor = (pred, ms = 10_000, what = 'event') => new Promise((resolve, reject) => {
    const check = () => {
      const e = sub.events.find(pred)
      if (e) { done(); resolve(e) } else if (sub.ended) { done(); reject(new Error(`SSE ${p} ended (RST ${sub.rstCode}) before ${what}`)) }
    }
    const timer = setTimeout(() => { done(); reject(new Error(`no ${what} on SSE ${p} within ${ms} ms (${sub.events.length} events)`)) }, ms)
    const done = () => { clearTimeout(timer); waiters.delete(check) }
    waiters.add(check)
    check()
  })
  sub.close = () => req.close(http2.constants.NGHTTP2_CANCEL)
  return sub
}

const dataHas = (value) => (e) => e.type === 'data' && JSON.stringify(JSON.parse(e.data)).includes(JSON.stringify(value))

/** { protocol, alpn } of a TLS handshake with the given versions, or { error }. */
function handshake(srv, { minVersion, maxVersion, ciphers }) {
  return new Promise((resolve) => {
    const sock = tls.connect({
      host: '127.0.0.1', port: srv.port, servername: 'localhost', ca: srv.tlsCa,
      minVersion, maxVersion, ciphers, ALPNProtocols: ['h2', 'http/1.1'],
    })
    sock.setTimeout(5000, () => sock.destroy(new Error('timeout')))
    sock.on('secureConnect', () => { resolve({ protocol: sock.getProtocol(), alpn: sock.alpnProtocol }); sock.end() })
    sock.on('error', (e) => resolve({ error: e.code || e.message }))
  })
}

/**
 * A CA and a server certificate signed by it (for localhost and 127.0.0.1),
 * made with openssl in dir. owner: { uid, gid } the server and its key are
 * given to (as root, deploy/run runs Apache as www-data, which reads them).
 */
function makeOperatorCert(dir, owner) {
  const run = (args) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
  }
  fs.writeFileSync(path.join(dir, 'leaf.ext'),
    'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n' +
    'extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n')
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=lmstream test CA', '-keyout', 'ca.key', '-out', 'ca.pem'])
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr'])
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-extfile', 'leaf.ext', '-out', 'server.pem'])
  const files = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') }
  if (owner) {
    for (const d of [path.dirname(dir), dir]) fs.chmodSync(d, 0o711)
    for (const f of [files.cert, files.key]) fs.chownSync(f, owner.uid, owner.gid)
  }
  return files
}

// The operator's files live in a directory of this test; as root, Apache
// reads them as root at startup (before it changes user).
let opDir
before(() => { opDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-tls-op-')) })
after(() => { if (opDir) fs.rmSync(opDir, { recursive: true, force: true }) })

for (const kind of KINDS) {
  describe(`deploy/run --server ${kind} --tls`, () => {
    let srv, session
    const streamPath = (name) => `/v1/stream/tls-${TAG}/${kind}/${name}`

    before(async () => {
      srv = await startServer({ label: `tls-${kind}`, server: kind, tls: true, config: { long_poll_timeout: 5000 } })
      session = connect(srv)
    })
    after(async () => {
      session?.close()
      await srv?.stop()
    })

    test('it says so: ready on https://, and where its self-signed certificate is', () => {
      assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/)
      assert.ok(srv.tlsCert && srv.tlsCa, `certificate path in the ready line:\n${srv.logTail(10)}`)
      const cert = new crypto.X509Certificate(srv.tlsCa)
      assert.match(cert.subjectAltName, /DNS:localhost/)
      assert.match(cert.subjectAltName, /IP Address:127\.0\.0\.1/)
      assert.equal(cert.publicKey.asymmetricKeyDetails.namedCurve, 'prime256v1', 'EC P-256')
      const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000
      assert.ok(days > 25 && days <= 31, `short validity (30 days): ${cert.validTo}`)
    })

    test('curl --http2 with --cacert negotiates h2; curl --http1.1 still gets HTTP/1.1 over TLS', async () => {
      for (const host of ['127.0.0.1', 'localhost']) {
        const url = `https://${host}:${srv.port}/`
        const h2 = await curl(['--http2', '--cacert', srv.tlsCert, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', url])
        assert.equal(h2.code, 0, `curl --http2 ${url}: ${h2.stderr}`)
        assert.equal(h2.stdout, '2 200', `${url} over h2`)
        const h1 = await curl(['--http1.1', '--cacert', srv.tlsCert, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', url])
        assert.equal(h1.code, 0, `curl --http1.1 ${url}: ${h1.stderr}`)
        assert.equal(h1.stdout, '1.1 200', `${url} over HTTP/1.1`)
      }
      // a write and a catch-up read over HTTP/1.1 with TLS, through the workers
      const p = streamPath('h1')
      const put = await curl(['--http1.1', '--cacert', srv.tlsCert, '-X', 'PUT', '-H', `Content-Type: ${JSON_CT}`,
        '--data-binary', '[{"over":"h1"}]', '-o', '/dev/null', '-w', '%{http_code}', srv.url + p])
      assert.equal(put.stdout, '201', put.stderr)
      const get = await curl(['--http1.1', '--cacert', srv.tlsCert, srv.url + p + '?offset=-1'])
      assert.equal(get.stdout, '[{"over":"h1"}]')
    })

    test('TLS 1.2 and 1.3 both offer h2; TLS 1.1 and TLS 1.2 without forward secrecy are refused', async () => {
      const t13 = await handshake(srv, { minVersion: 'TLSv1.3' })
      assert.deepEqual(t13, { protocol: 'TLSv1.3', alpn: 'h2' })
      const t12 = await handshake(srv, { maxVersion: 'TLSv1.2' })
      assert.deepEqual(t12, { protocol: 'TLSv1.2', alpn: 'h2' })
      // the server's alerts (SECLEVEL=0: so that OpenSSL 3 here offers them at all)
      const t11 = await handshake(srv, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })
      assert.deepEqual(t11, { error: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' }, 'TLS 1.1')
      const rsaKx = await handshake(srv, { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:AES256-GCM-SHA384:@SECLEVEL=0' })
      assert.deepEqual(rsaKx, { error: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' }, 'TLS 1.2 with RSA key exchange only')
    })

    test('over h2: a write, then an SSE read delivers it (via lmstream-live); a later write arrives at once', async () => {
      const p = streamPath('sse')
      assert.equal((await write(session, 'PUT', p)).status, 201)
      assert.equal((await write(session, 'POST', p, { n: 1 })).status, 204)
      const sub = h2sse(session, `${p}?offset=-1&live=sse`)
      try {
        const h = await sub.response
        assert.equal(h[':status'], 200)
        assert.match(h['content-type'], /^text\/event-stream/)
        assert.equal(h['x-lmstream-front'], 'live', 'answered by lmstream-live, through the proxy')
        await sub.waitFor(dataHas({ n: 1 }), 10_000, 'the event written before')
        const t0 = performance.now()
        assert.equal((await write(session, 'POST', p, { n: 2 })).status, 204)
        const acked = performance.now()
        const e = await sub.waitFor(dataHas({ n: 2 }), 10_000, 'the event written while open')
        assert.ok(e.at - acked < MAX_DELAY_MS, `event 2 came ${Math.round(e.at - acked)} ms after its acknowledgement (write took ${Math.round(acked - t0)} ms)`)
      } finally {
        sub.close()
      }
      assert.equal(session.alpnProtocol, 'h2')
    })

    test('over h2: a long-poll read is woken by a write', async () => {
      const p = streamPath('lp')
      assert.equal((await write(session, 'PUT', p)).status, 201)
      const tail = (await h2request(session, { ':method': 'HEAD', ':path': p })).headers['stream-next-offset']
      const read = h2request(session, { ':path': `${p}?offset=${encodeURIComponent(tail)}&live=long-poll` })
      await sleep(300)
      assert.equal((await write(session, 'POST', p, { lp: 1 })).status, 204)
      const acked = performance.now()
      const r = await read
      const waited = performance.now() - acked
      assert.equal(r.status, 200, r.body)
      assert.equal(r.headers['x-lmstream-front'], 'live')
      assert.deepEqual(JSON.parse(r.body), [{ lp: 1 }])
      assert.ok(waited < MAX_DELAY_MS, `answered ${Math.round(waited)} ms after the write's acknowledgement`)
    })

    test('over h2, a request body without Content-Length is stored whole or refused (411), never lost', async () => {
      for (const method of ['PUT', 'POST']) {
        const p = streamPath(`nolength-${method}`)
        if (method === 'POST') assert.equal((await write(session, 'PUT', p)).status, 201)
        const value = { method, pad: 'x'.repeat(3000) }
        const r = await h2request(session, { ':method': method, ':path': p, 'content-type': JSON_CT }, JSON.stringify([value]))
        if (r.status === 411) {
          assert.match(r.headers['content-type'], /^text\/plain/, `${method}: a text answer`)
          assert.match(r.body, /^length required: .*Content-Length\n$/, `${method}: its one-line reason`)
        } else {
          assert.ok(r.status === 201 || r.status === 204, `${method} without Content-Length: ${r.status} ${r.body}`)
          const back = await h2request(session, { ':path': `${p}?offset=-1` })
          assert.deepEqual(JSON.parse(back.body), [value], `${method}: what was stored`)
        }
      }
    })

    test('plain HTTP to the TLS port fails at once, without a 2xx', async () => {
      const r = await curl(['--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${srv.port}/`])
      assert.ok(r.ms < 4000, `answered or closed within ${r.ms} ms`)
      if (kind === 'apache') {
        assert.equal(r.code, 0, r.stderr)
        assert.equal(r.stdout, '400', 'mod_ssl: "You\'re speaking plain HTTP to an SSL-enabled server port"')
      } else {
        assert.equal(r.code, 52, `curl: empty reply (connection closed): ${r.stderr}`)
      }
      // and node's client sees a 400 or a closed connection, never a success
      const outcome = await new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: srv.port, path: '/v1/stream/x', agent: false, timeout: 5000 },
          (res) => { res.resume(); resolve(`status ${res.statusCode}`) })
        req.on('timeout', () => req.destroy(new Error('timeout')))
        req.on('error', (e) => resolve(`error ${e.code || e.message}`))
      })
      assert.match(outcome, /^(status 400|error ECONNRESET|error .*hang up.*)$/, outcome)
    })

    test('--tls-cert and --tls-key: the operator\'s certificate is served', async () => {
      const dir = fs.mkdtempSync(path.join(opDir, `${kind}-`))
      const files = makeOperatorCert(dir, runOwner([kind]))
      const own = await startServer({ label: `tls-own-${kind}`, server: kind, tls: { cert: files.cert, key: files.key } })
      try {
        assert.equal(own.tlsCert, files.cert, 'the ready line names the given certificate')
        const r = await curl(['--http2', '--cacert', files.ca, '-o', '/dev/null', '-w', '%{http_version} %{http_code}',
          `https://localhost:${own.port}/`])
        assert.equal(r.stdout, '2 200', `verified with the CA alone: ${r.stderr}`)
        const served = await new Promise((resolve, reject) => {
          const sock = tls.connect({ host: '127.0.0.1', port: own.port, servername: 'localhost', ca: fs.readFileSync(files.ca) },
            () => { resolve(sock.getPeerX509Certificate()); sock.end() })
          sock.on('error', reject)
        })
        assert.equal(served.fingerprint256, new crypto.X509Certificate(fs.readFileSync(files.cert)).fingerprint256)
      } finally {
        await own.stop()
      }
    })

    test('a silent SSE response over h2 outlives the web server\'s shorter timeouts', async () => {
      const SILENCE_MS = 5000
      const siteConf = kind === 'apache'
        ? 'Timeout 2\nH2StreamTimeout 2\n'
        : 'server.max-read-idle = 2\nserver.max-keep-alive-idle = 2\nserver.max-write-idle = 3\n'
      // lighttpd closes an h2 connection whose streams wrote nothing for
      // max-write-idle: lmstream-live's heartbeat comments (1 s here, 15 s by
      // default against 360 s) keep a live response writing
      const config = { sse_lifetime: 30_000, ...(kind === 'apache' ? {} : { heartbeat: 1000 }) }
      const quiet = await startServer({ label: `tls-quiet-${kind}`, server: kind, tls: true, siteConf, config })
      const s = connect(quiet)
      try {
        const p = streamPath('quiet')
        assert.equal((await write(s, 'PUT', p)).status, 201)
        const sub = h2sse(s, `${p}?offset=-1&live=sse`)
        assert.equal((await sub.response)[':status'], 200)
        await sub.waitFor((e) => e.type === 'control', 5000, 'the first control event')
        const before = sub.events.length
        await sleep(SILENCE_MS)
        assert.equal(sub.ended, false, `the SSE response was cut during ${SILENCE_MS} ms without events (RST ${sub.rstCode})`)
        assert.equal(sub.events.length, before, 'no event meanwhile')
        assert.equal((await write(s, 'POST', p, { late: true })).status, 204)
        await sub.waitFor(dataHas({ late: true }), 3000, 'the event after the silence')
        sub.close()
      } finally {
        s.close()
        await quiet.stop()
      }
    })
  })
}

describe('deploy/run --tls where it is not offered', () => {
  const run = (args) => spawnSync(RUN_PATH, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 20_000 })

  test('--server standalone --tls: exit 2, and what to use instead', () => {
    const r = run(['--server', 'standalone', '--tls', '--port', '0'])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /--tls is not offered with --server standalone/)
    assert.match(r.stderr, /--server lighttpd --tls/)
    assert.match(r.stderr, /TLS-terminating reverse proxy/)
  })

  test('--server shared-hosting --tls: exit 2, and what to use instead', () => {
    for (const server of ['shared-hosting', 'shared-hosting-fcgid']) {
      const r = run(['--server', server, '--tls'])
      assert.equal(r.status, 2, r.stderr)
      assert.match(r.stderr, new RegExp(`--tls is not offered with --server ${server}`))
      assert.match(r.stderr, /--server apache --tls/)
    }
  })

  test('--tls-cert without --tls-key (and the reverse), or an unreadable file: exit 2', () => {
    const f = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-tls-args-'))
    try {
      fs.writeFileSync(path.join(f, 'c.pem'), 'x')
      let r = run(['--server', 'lighttpd', '--tls-cert', path.join(f, 'c.pem')])
      assert.equal(r.status, 2)
      assert.match(r.stderr, /--tls-cert needs --tls-key/)
      r = run(['--server', 'lighttpd', '--tls-key', path.join(f, 'c.pem')])
      assert.equal(r.status, 2)
      assert.match(r.stderr, /--tls-key needs --tls-cert/)
      r = run(['--server', 'apache', '--tls-cert', path.join(f, 'missing.pem'), '--tls-key', path.join(f, 'c.pem')])
      assert.equal(r.status, 2)
      assert.match(r.stderr, /cannot read TLS file/)
    } finally {
      fs.rmSync(f, { recursive: true, force: true })
    }
  })

  test('--help describes --tls', () => {
    const r = run(['--help'])
    assert.equal(r.status, 0)
    assert.match(r.stdout, /--tls\s/)
    assert.match(r.stdout, /--tls-cert FILE/)
    assert.match(r.stdout, /--tls-key FILE/)
  })
})

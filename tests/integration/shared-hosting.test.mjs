// Shared hosting: the folder `make shared-hosting` makes, uploaded into a
// site's document root as public_html/lmstream/, under an Apache set up like
// a shared host (deploy/shared-hosting/host.conf: AllowOverride All, the
// usual modules, CGI running as the site's account). The folder's
// .htaccess is all of lmstream's configuration there. deploy/run
// --server shared-hosting starts it (mod_cgid only), and
// shared-hosting-fcgid on a host that has mod_fcgid too.
//
// What a user relies on:
//   * Nothing of the folder is served but the stream API and lmstream.js:
//     the configuration, the key, the store and the libraries answer 403.
//   * The node's metrics, /lmstream/__lmstream/metrics (metrics_path as
//     deploy/run --url-path sets it), are answered by lmstream.cgi whatever
//     the method and query (?live= too), as lmstream judges a loopback
//     client from the address Apache gives it. Only who answers is checked
//     here, not the status.
//   * The folder's configuration is in force as uploaded: anonymous reads
//     and writes are refused (401), a token signed with private/auth.key
//     works in the Authorization header, in ?token= and in the cookie, and
//     a token without the right gets 403 and changes nothing.
//   * Live reads work through CGI: SSE events arrive as they are written
//     (not when the response ends), long-polls wake on a write; beyond
//     max_live_reads (8 in the folder's configuration) a live read gets 503
//     with Retry-After within seconds while writes go on, and readers that
//     leave give their slots back well before sse_lifetime.
//   * %2F in a name gets a clear 4xx from Apache (an .htaccess cannot set
//     AllowEncodedSlashes) and stores nothing; forks name their source by
//     its full path, /lmstream/v1/stream/....
//   * The program runs as the site's account, not as the test's user, and
//     finds everything relative to itself: ldd resolves nothing outside the
//     folder but glibc, and no file asks for a glibc newer than the README's
//     2.34 (build/default's folder; a sanitizer build brings its own runtime).

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { rawRequest, openSse, sseMessages } from './lib/http.mjs'
import { startServer, sleep } from './lib/server.mjs'
import { mint, claimsFor } from './lib/tokens.mjs'

const PREFIX = '/lmstream/v1/stream/'
const GLIBC_LIBS = /^(linux-vdso|ld-linux[-\w]*|libc|libm|libpthread|libdl|librt|libresolv|libutil)\.so/

/** 2.34 -> [2, 34], for comparing versions. */
const version = (v) => v.split('.').map(Number)
const newer = (a, b) => { for (let i = 0; i < Math.max(a.length, b.length); i++) { if ((a[i] || 0) !== (b[i] || 0)) return (a[i] || 0) > (b[i] || 0) } return false }
const JSON_CT = { 'Content-Type': 'application/json' }

for (const kind of ['shared-hosting', 'shared-hosting-fcgid']) {
  describe(`${kind}: the uploaded folder`, () => {
    let srv, key, upload
    const token = (rights, opts) => mint({ alg: 'HS256', kid: 'auth', key, claims: claimsFor(rights, opts) })
    let admin
    const req = (opts) => rawRequest(srv.url, { ...opts, path: PREFIX + opts.path })
    const bearer = (t) => ({ Authorization: `Bearer ${t}` })

    before(async () => {
      // Nothing but the folder's own configuration: no --config.
      srv = await startServer({ label: kind, server: kind, config: { auth: 'token' } })
      upload = path.join(srv.dataDir, 'public_html', 'lmstream')
      key = fs.readFileSync(path.join(upload, 'private', 'auth.key'), 'utf8').trim()
      admin = token({ read: ['**'], write: ['**'], admin: ['**'] })
    })
    after(async () => { await srv?.stop() })

    test('needs nothing of the host but glibc 2.34 or newer', () => {
      const cgi = path.join(upload, 'lmstream.cgi')
      const real = fs.realpathSync(upload)
      const lines = execFileSync('ldd', [cgi], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('=>'))
      assert.ok(lines.some((l) => l.startsWith('\tlibjwt')), 'lmstream.cgi links libjwt')
      for (const l of lines) {
        const [, name, where] = /^\s*(\S+) => (\S+)/.exec(l) || []
        if (GLIBC_LIBS.test(name)) continue
        assert.ok(where && where !== 'not' && fs.realpathSync(where).startsWith(real + '/lib/'), `${name} resolved at ${where}`)
      }
      const libs = fs.readdirSync(path.join(upload, 'lib')).filter((f) => f.includes('.so'))
      if (libs.some((f) => /^lib(asan|ubsan)/.test(f))) return // a sanitizer build: its runtime is newer
      let max = [0]
      for (const f of [cgi, ...libs.map((l) => path.join(upload, 'lib', l))]) {
        for (const m of execFileSync('objdump', ['-T', f], { encoding: 'utf8' }).matchAll(/GLIBC_([0-9.]+)/g)) {
          if (newer(version(m[1]), max)) max = version(m[1])
        }
      }
      assert.ok(!newer(max, [2, 34]), `needs glibc ${max.join('.')}`)
    })

    test('serves the stream API and lmstream.js, and nothing else of the folder', async () => {
      const js = await rawRequest(srv.url, { path: '/lmstream/lmstream.js' })
      assert.equal(js.status, 200)
      assert.match(js.headers['content-type'], /javascript/)
      // a stream, so that the store has files to ask for
      assert.equal((await req({ method: 'PUT', path: 'files/a', headers: bearer(admin) })).status, 201)
      for (const p of ['private/lmstream.conf', 'private/auth.key', 'private/data/data.mdb', 'private/data/lock.mdb',
        'private/', 'private/data/', 'lib/libjwt.so.0', 'lib/libcrypto.so.3', 'lib/', '.htaccess', 'README.txt', '']) {
        const r = await rawRequest(srv.url, { path: `/lmstream/${p}` })
        assert.ok(r.status === 403 || r.status === 404, `/lmstream/${p}: ${r.status}`)
        assert.ok(!r.body.includes(key), `/lmstream/${p} shows the key`)
      }
      // The store belongs to the site's account, whoever runs the tests.
      const st = fs.statSync(path.join(upload, 'private', 'data', 'data.mdb'))
      if (process.getuid() === 0) assert.notEqual(st.uid, 0, 'the CGI ran as root')
    })

    test('the metrics path is answered by lmstream.cgi, whatever the query', async () => {
      const metrics = '/lmstream/__lmstream/metrics'
      for (const [method, q] of [['GET', ''], ['HEAD', ''], ['GET', '?live=sse'], ['GET', '?live=long-poll&offset=-1']]) {
        const r = await rawRequest(srv.url, { method, path: metrics + q })
        assert.equal(r.headers['x-lmstream-front'], 'fcgi', `${method} ${metrics}${q}: ${r.status} ${r.body.toString().slice(0, 200)}`)
      }
      // that path only: nothing else under __lmstream/ reaches the program
      for (const p of ['__lmstream/metrics/', '__lmstream/', '__lmstream/metricsx']) {
        const r = await rawRequest(srv.url, { path: `/lmstream/${p}` })
        assert.ok(r.status === 403 || r.status === 404, `/lmstream/${p}: ${r.status}`)
        assert.equal(r.headers['x-lmstream-front'], undefined, `/lmstream/${p} reached lmstream.cgi`)
      }
    })

    test('anonymous requests are refused; tokens work in the header, the query and the cookie', async () => {
      const anon = await req({ method: 'PUT', path: 'tok/a' })
      assert.equal(anon.status, 401)
      assert.match(anon.body.toString(), /token is required/)
      assert.equal((await req({ path: 'tok/a' })).status, 401)

      const w = token({ read: ['tok/**'], write: ['tok/**'] })
      assert.equal((await req({ method: 'PUT', path: 'tok/a', headers: { ...JSON_CT, ...bearer(w) } })).status, 201)
      assert.equal((await req({ method: 'POST', path: 'tok/a', headers: { ...JSON_CT, ...bearer(w) }, body: '{"n":1}' })).status, 204)

      const r = token({ read: ['tok/**'] }, { ttl: 300 })
      const viaHeader = await req({ path: 'tok/a?offset=-1', headers: bearer(r) })
      const viaQuery = await req({ path: `tok/a?offset=-1&token=${r}` })
      const viaCookie = await req({ path: 'tok/a?offset=-1', headers: { Cookie: `theme=dark; lmstream_token=${r}` } })
      for (const [how, res] of [['header', viaHeader], ['query', viaQuery], ['cookie', viaCookie]]) {
        assert.equal(res.status, 200, how)
        assert.deepEqual(JSON.parse(res.body), [{ n: 1 }], how)
      }

      const denied = await req({ method: 'POST', path: 'tok/a', headers: { ...JSON_CT, ...bearer(r) }, body: '{"n":2}' })
      assert.equal(denied.status, 403)
      const forged = await req({ path: 'tok/a?offset=-1', headers: bearer(r.slice(0, -2) + 'xx') })
      assert.equal(forged.status, 401)
      const after = await req({ path: 'tok/a?offset=-1', headers: bearer(r) })
      assert.deepEqual(JSON.parse(after.body), [{ n: 1 }], 'a denied write stored nothing')
    })

    test('SSE events arrive as they are written; a long-poll wakes on a write', async () => {
      assert.equal((await req({ method: 'PUT', path: 'live/a', headers: { ...JSON_CT, ...bearer(admin) } })).status, 201)
      const sub = openSse(srv.url, `${PREFIX}live/a?offset=-1&live=sse&token=${admin}`)
      assert.equal((await sub.response).status, 200)
      await sub.waitFor((e) => e.type === 'control', 15_000, 'the first control event')
      await req({ method: 'POST', path: 'live/a', headers: { ...JSON_CT, ...bearer(admin) }, body: '{"n":1}' })
      await sub.waitFor((e) => e.type === 'data', 15_000, 'the event written after connecting')
      assert.deepEqual(sseMessages(sub), [{ n: 1 }])
      sub.close()

      const head = await req({ method: 'HEAD', path: 'live/a', headers: bearer(admin) })
      const offset = head.headers['stream-next-offset']
      const poll = req({ path: `live/a?offset=${offset}&live=long-poll`, headers: bearer(admin), timeoutMs: 30_000 })
      await sleep(500)
      await req({ method: 'POST', path: 'live/a', headers: { ...JSON_CT, ...bearer(admin) }, body: '{"n":2}' })
      const woke = await poll
      assert.equal(woke.status, 200)
      assert.deepEqual(JSON.parse(woke.body), [{ n: 2 }])
    })

    test('%2F in a name gets a 4xx and stores nothing; forks name their source by its full path', async () => {
      const enc = await req({ method: 'PUT', path: 'slash%2Fa', headers: { ...JSON_CT, ...bearer(admin) } })
      assert.ok(enc.status >= 400 && enc.status < 500, `PUT slash%2Fa: ${enc.status}`)
      assert.equal((await req({ path: 'slash/a', headers: bearer(admin) })).status, 404)

      assert.equal((await req({ method: 'PUT', path: 'fork/src', headers: { ...JSON_CT, ...bearer(admin) }, body: '[{"n":1}]' })).status, 201)
      const fork = await req({
        method: 'PUT', path: 'fork/copy',
        headers: { ...JSON_CT, ...bearer(admin), 'Stream-Forked-From': `${PREFIX}fork/src` },
      })
      assert.equal(fork.status, 201)
      assert.deepEqual(JSON.parse((await req({ path: 'fork/copy?offset=-1', headers: bearer(admin) })).body), [{ n: 1 }])
    })

    test('beyond max_live_reads (8) a live read gets 503 with Retry-After; writes go on; slots come back', async () => {
      assert.equal((await req({ method: 'PUT', path: 'cap/a', headers: { ...JSON_CT, ...bearer(admin) } })).status, 201)
      const subs = []
      try {
        for (let i = 0; i < 8; i++) {
          const s = openSse(srv.url, `${PREFIX}cap/a?offset=-1&live=sse&token=${admin}`)
          subs.push(s)
          assert.equal((await s.response).status, 200, `reader ${i + 1}`)
        }
        const t0 = Date.now()
        const ninth = await req({ path: `cap/a?offset=-1&live=long-poll`, headers: bearer(admin), timeoutMs: 20_000 })
        assert.equal(ninth.status, 503)
        assert.ok(Number(ninth.headers['retry-after']) > 0, 'Retry-After')
        assert.ok(Date.now() - t0 < 10_000, 'answered before the long-poll timeout')
        const w = await req({ method: 'POST', path: 'cap/a', headers: { ...JSON_CT, ...bearer(admin) }, body: '{"n":1}' })
        assert.equal(w.status, 204)
        await Promise.all(subs.map((s) => s.waitFor((e) => e.type === 'data', 15_000, 'the write')))
      } finally {
        for (const s of subs) s.close()
      }
      // The readers left: their CGI processes notice, and the slots come
      // back long before sse_lifetime (30 s) would end them.
      const t1 = Date.now()
      for (;;) {
        const r = await req({ path: `cap/a?offset=-1&live=long-poll`, headers: bearer(admin), timeoutMs: 30_000 })
        if (r.status === 200) break
        assert.equal(r.status, 503)
        assert.ok(Date.now() - t1 < 20_000, 'a slot came back within 20 s of the readers leaving')
        await sleep(500)
      }
    })
  })
}

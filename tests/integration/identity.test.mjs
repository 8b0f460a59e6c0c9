// Web-server identities, and a daemon that only the web server can reach.
//
// What a user relies on, on lighttpd and Apache (and lighttpd running the
// CGI program), with `auth = token`, the web server doing Basic auth on
// the prefix's users/ subtree (deploy/run --site-conf) and
// `user_read = users/{user}/** shared/{user}/**`, `user_write` and
// `user_admin = users/{user}/**`:
//   * the authenticated user may do exactly what the patterns give on
//     users/<self>/**, on the FastCGI (or CGI) path and on the live path
//     (long-poll, SSE through lmstream-live); another user's subtree is 403
//     on both paths and nothing changes there;
//   * `Authorization: Basic` is never taken for a bad token: where the web
//     server did not authenticate it, the request is anonymous (401 without
//     error="invalid_token");
//   * an identity a client forges (Forwarded remote_user=, X-Forwarded-User,
//     Remote-User, ...) grants nothing, through the web server and on
//     lmstream-live's own TCP port (standalone);
//   * lmstream-live behind the web server listens only on a unix socket of
//     mode 0660;
//   * a write with the web server's login from a page of another site is
//     refused (like a cookie), from a listed origin it is not;
//   * 4 KiB of other cookies plus the token cookie reach the daemon (200).
//
//   LMSTREAM_IDENTITY_SERVERS  deployments (default: lighttpd apache cgi)

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startServer, STREAM_PREFIX, PROXIED_KINDS } from './lib/server.mjs'
import { rawRequest, openSse, streamState } from './lib/http.mjs'
import { makeKeys, runOwner } from './lib/tokens.mjs'

const SERVERS = (process.env.LMSTREAM_IDENTITY_SERVERS || 'lighttpd apache cgi').split(/[\s,]+/).filter(Boolean)
const APP = 'http://app.example'
const EVIL = 'http://evil.example'
const P = (name) => `${STREAM_PREFIX}${name}`
const tag = crypto.randomBytes(3).toString('hex')
const PASSWORDS = { alice: `alice-${tag}`, bob: `bob-${tag}` }
const OCTET = { 'Content-Type': 'application/octet-stream' }

const basic = (user, password = PASSWORDS[user]) =>
  ({ Authorization: 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64') })

// ------------------------------------------------------------------ fixtures

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-identity-'))
fs.chmodSync(dir, 0o755)
const keys = makeKeys(path.join(dir, 'keys'), { owner: runOwner(SERVERS) })
const ROOT = keys.token({ read: ['**'], write: ['**'], admin: ['**'] }, { sub: 'fixtures' })
const bearer = (t = ROOT) => ({ Authorization: `Bearer ${t}` })
after(() => fs.rmSync(dir, { recursive: true, force: true }))

// lighttpd's "plain" backend reads user:password; Apache's file provider
// reads htpasswd lines ({SHA}: base64 of the SHA-1 of the password).
const plainFile = path.join(dir, 'users.plain')
const htpasswdFile = path.join(dir, 'users.htpasswd')
fs.writeFileSync(plainFile, Object.entries(PASSWORDS).map(([u, p]) => `${u}:${p}\n`).join(''), { mode: 0o644 })
fs.writeFileSync(htpasswdFile, Object.entries(PASSWORDS)
  .map(([u, p]) => `${u}:{SHA}${crypto.createHash('sha1').update(p).digest('base64')}\n`).join(''), { mode: 0o644 })

/** The site's own authentication: Basic on the prefix's users/ subtree only. */
function siteConf(kind) {
  if (kind === 'apache') {
    return [
      'LoadModule auth_basic_module "${LMSTREAM_APACHE_MODULES}/mod_auth_basic.so"',
      'LoadModule authn_core_module "${LMSTREAM_APACHE_MODULES}/mod_authn_core.so"',
      'LoadModule authn_file_module "${LMSTREAM_APACHE_MODULES}/mod_authn_file.so"',
      'LoadModule authz_user_module "${LMSTREAM_APACHE_MODULES}/mod_authz_user.so"',
      `<Location "${P('users/')}">`,
      '    AuthType Basic',
      '    AuthName "lmstream test"',
      '    AuthBasicProvider file',
      `    AuthUserFile "${htpasswdFile}"`,
      '    Require valid-user',
      '</Location>',
      '',
    ].join('\n')
  }
  return [
    // mod_auth itself is in lmstream's lighttpd configurations, before the handlers
    'server.modules += ( "mod_authn_file" )',
    'auth.backend = "plain"',
    `auth.backend.plain.userfile = "${plainFile}"`,
    `$HTTP["url"] =^ "${P('users/')}" {`,
    '  auth.require = ( "" => ( "method" => "basic", "realm" => "lmstream test", "require" => "valid-user" ) )',
    '}',
    '',
  ].join('\n')
}

const CONFIG = {
  auth: 'token',
  auth_key: keys.authKey,
  user_read: 'users/{user}/** shared/{user}/**',
  user_write: 'users/{user}/**',
  user_admin: 'users/{user}/**',
  cors_origins: APP,
  long_poll_timeout: 1500,
}

/** Headers with which a client claims to be alice without the web server saying so. */
const FORGED = [
  { Forwarded: 'for=192.0.2.1;proto=https;remote_user=alice' },
  { Forwarded: 'remote_user="alice"' },
  { 'X-Forwarded-User': 'alice' },
  { 'Remote-User': 'alice' },
  { 'X-Remote-User': 'alice' },
  { 'X-Lmstream-User': 'alice' },
]

const isLive = (kind) => PROXIED_KINDS.has(kind)

/** Three reads of one stream: catch-up, long-poll and SSE (each: status, then closed). */
async function reads(srv, name, headers) {
  const catchup = await rawRequest(srv.url, { path: `${P(name)}?offset=-1`, headers })
  const poll = await rawRequest(srv.url, { path: `${P(name)}?offset=-1&live=long-poll`, headers })
  const sub = openSse(srv.url, `${P(name)}?offset=-1&live=sse`, { headers })
  const sse = await sub.response
  sub.close()
  return { catchup: catchup.status, longPoll: poll.status, sse: sse.status, catchupRes: catchup }
}

// ------------------------------------------------------------------ per deployment

for (const kind of SERVERS) {
  describe(`identities from ${kind}`, () => {
    let srv
    /** What a stream holds, as its owner sees it (users/<u>/...: the web server wants u's login). */
    const owner = (name) => /^users\/([^/]+)\//.exec(name)?.[1]
    const as = (name) => (owner(name) ? basic(owner(name)) : bearer())
    const state = (name) => streamState((o) => rawRequest(srv.url, { ...o, headers: { ...as(name), ...o.headers } }), P(name))

    before(async () => {
      srv = await startServer({ label: `identity-${kind}`, server: kind, config: CONFIG, siteConf: siteConf(kind) })
      for (const name of [`users/alice/${tag}`, `users/bob/${tag}`, `shared/alice/${tag}`]) {
        const r = await rawRequest(srv.url, { method: 'PUT', path: P(name), headers: { ...as(name), ...OCTET } })
        assert.equal(r.status, 201, `PUT ${name}: ${r.body}`)
        const a = await rawRequest(srv.url, { method: 'POST', path: P(name), headers: { ...as(name), ...OCTET }, body: 'first' })
        assert.equal(a.status, 204, `POST ${name}: ${a.body}`)
      }
    })
    after(() => srv?.stop())

    test('the user does what user_* gives on users/<self>/**, on both paths', async () => {
      const own = `users/alice/own-${tag}`
      let r = await rawRequest(srv.url, { method: 'PUT', path: P(own), headers: { ...basic('alice'), ...OCTET } })
      assert.equal(r.status, 201, `PUT: ${r.body}`)
      r = await rawRequest(srv.url, { method: 'POST', path: P(own), headers: { ...basic('alice'), ...OCTET }, body: 'a1' })
      assert.equal(r.status, 204, `POST: ${r.body}`)
      r = await rawRequest(srv.url, { path: `${P(own)}?offset=-1`, headers: basic('alice') })
      assert.equal(r.status, 200)
      assert.equal(r.body.toString(), 'a1')
      assert.match(r.headers['cache-control'] || '', /private|no-store|no-cache/, 'a read needing the user is not public')
      const tail = r.headers['stream-next-offset']

      // long-poll from the tail, answered by the next append
      const poll = rawRequest(srv.url, { path: `${P(own)}?offset=${tail}&live=long-poll`, headers: basic('alice') })
      const sub = openSse(srv.url, `${P(own)}?offset=${tail}&live=sse`, { headers: basic('alice') })
      assert.equal((await sub.response).status, 200, 'SSE opens')
      if (isLive(kind)) assert.equal((await sub.response).headers['x-lmstream-front'], 'live', 'served by lmstream-live')
      await new Promise((res) => setTimeout(res, 300))
      r = await rawRequest(srv.url, { method: 'POST', path: P(own), headers: { ...basic('alice'), ...OCTET }, body: 'a2' })
      assert.equal(r.status, 204)
      const p = await poll
      assert.equal(p.status, 200, `long-poll: ${p.body}`)
      assert.equal(p.body.toString(), 'a2')
      const ev = await sub.waitFor((e) => e.type === 'data', 10_000, 'SSE data')
      assert.equal(Buffer.from(ev.data, 'base64').toString(), 'a2')
      sub.close()

      r = await rawRequest(srv.url, { method: 'DELETE', path: P(own), headers: basic('alice') })
      assert.equal(r.status, 204, 'user_admin covers DELETE')
    })

    test("another user's subtree is 403 on both paths and nothing changes", async () => {
      const theirs = `users/alice/${tag}`
      const before = await state(theirs)
      const rd = await reads(srv, theirs, basic('bob'))
      assert.deepEqual([rd.catchup, rd.longPoll, rd.sse], [403, 403, 403])
      for (const [method, body] of [['POST', 'x'], ['PUT', undefined], ['DELETE', undefined]]) {
        const r = await rawRequest(srv.url, { method, path: P(theirs), headers: { ...basic('bob'), ...OCTET }, body })
        assert.equal(r.status, 403, `${method} by bob`)
      }
      const created = await rawRequest(srv.url, { method: 'PUT', path: P(`users/alice/bob-made-${tag}`), headers: { ...basic('bob'), ...OCTET } })
      assert.equal(created.status, 403)
      assert.deepEqual(await state(theirs), before, 'unchanged')
      assert.equal((await state(`users/alice/bob-made-${tag}`)).head, 404, 'nothing created')
    })

    test('no login or a wrong password: the web server refuses, nothing changes', async () => {
      const name = `users/alice/${tag}`
      const before = await state(name)
      for (const headers of [{}, basic('alice', 'wrong')]) {
        for (const method of ['GET', 'POST']) {
          const r = await rawRequest(srv.url, { method, path: `${P(name)}?offset=-1`, headers: { ...headers, ...OCTET }, body: method === 'POST' ? 'x' : undefined })
          assert.equal(r.status, 401, `${method} with ${JSON.stringify(headers)}`)
        }
      }
      assert.deepEqual(await state(name), before)
    })

    test('Authorization: Basic where the web server did not check it is no token (anonymous 401, not invalid_token)', async () => {
      const name = `shared/alice/${tag}`
      const rd = await reads(srv, name, basic('alice'))
      assert.deepEqual([rd.catchup, rd.longPoll, rd.sse], [401, 401, 401])
      const wa = String(rd.catchupRes.headers['www-authenticate'] || '')
      assert.match(wa, /^Bearer/)
      assert.doesNotMatch(wa, /invalid_token/)
    })

    test('a forged identity grants nothing, on both paths', async () => {
      const name = `shared/alice/${tag}`
      for (const h of FORGED) {
        const rd = await reads(srv, name, h)
        assert.deepEqual([rd.catchup, rd.longPoll, rd.sse], [401, 401, 401], JSON.stringify(h))
      }
      // bob, authenticated, claiming to be alice on alice's subtree
      for (const h of FORGED) {
        const rd = await reads(srv, `users/alice/${tag}`, { ...basic('bob'), ...h })
        assert.deepEqual([rd.catchup, rd.longPoll, rd.sse], [403, 403, 403], JSON.stringify(h))
      }
    })

    test("a write with the web server's login from another site's page is refused", async () => {
      const name = `users/alice/${tag}`
      const before = await state(name)
      const evil = await rawRequest(srv.url, { method: 'POST', path: P(name), headers: { ...basic('alice'), ...OCTET, Origin: EVIL }, body: 'csrf' })
      assert.equal(evil.status, 403, String(evil.body))
      assert.deepEqual(await state(name), before, 'unchanged')
      const app = await rawRequest(srv.url, { method: 'POST', path: P(name), headers: { ...basic('alice'), ...OCTET, Origin: APP }, body: 'ok' })
      assert.equal(app.status, 204, 'a listed origin may write')
      assert.equal(app.headers['access-control-allow-origin'], APP)
      assert.equal(app.headers['access-control-allow-credentials'], 'true')
    })

    test('4 KiB of other cookies plus the token cookie reach the live reader', async () => {
      const name = `shared/alice/${tag}`
      const others = Array.from({ length: 44 }, (_, i) => `c${i}=${'x'.repeat(90)}`).join('; ')
      assert.ok(others.length >= 4096)
      const reader = keys.token({ read: ['shared/**'] })
      const headers = { Cookie: `${others}; lmstream_token=${reader}` }
      const poll = await rawRequest(srv.url, { path: `${P(name)}?offset=-1&live=long-poll`, headers })
      assert.equal(poll.status, 200, String(poll.body))
      assert.equal(poll.body.toString(), 'first')
      const sub = openSse(srv.url, `${P(name)}?offset=-1&live=sse`, { headers })
      const res = await sub.response
      assert.equal(res.status, 200)
      const ev = await sub.waitFor((e) => e.type === 'data', 10_000, 'SSE data')
      assert.equal(Buffer.from(ev.data, 'base64').toString(), 'first')
      sub.close()
    })

    if (isLive(kind)) {
      test('lmstream-live listens only on a unix socket of mode 0660', () => {
        const a = srv.liveAddress()
        assert.ok(a && a.socket, `lmstream-live's --listen: ${JSON.stringify(a)}`)
        const st = fs.statSync(a.socket)
        assert.ok(st.isSocket())
        assert.equal(st.mode & 0o777, 0o660)
      })
    }
  })
}

describe("lmstream-live's TCP port (standalone)", () => {
  let srv
  before(async () => {
    srv = await startServer({ label: 'identity-standalone', server: 'standalone', config: CONFIG })
    const name = `shared/alice/${tag}`
    const r = await rawRequest(srv.url, { method: 'PUT', path: P(name), headers: { ...bearer(), ...OCTET } })
    assert.equal(r.status, 201)
  })
  after(() => srv?.stop())

  test('identity headers sent to it grant nothing', async () => {
    for (const h of FORGED) {
      const rd = await reads(srv, `shared/alice/${tag}`, h)
      assert.deepEqual([rd.catchup, rd.longPoll, rd.sse], [401, 401, 401], JSON.stringify(h))
      const w = await rawRequest(srv.url, { method: 'PUT', path: P(`users/alice/forged-${tag}`), headers: { ...h, ...OCTET } })
      assert.equal(w.status, 401, `PUT with ${JSON.stringify(h)}`)
    }
  })
})

// Access control: with `auth = token`, a request does only what its
// credential and the public patterns allow, on every deployment.
//
// What a user relies on:
//   * Without a credential only public_read streams can be read; anything
//     else is 401 with `WWW-Authenticate: Bearer realm="lmstream"`.
//   * A credential that is bad in any way (expired, not yet valid, signed
//     with another key, alg none, an HS256 token whose HMAC secret is the RSA
//     public key, a changed payload, malformed, an unknown kid) is 401 with
//     error="invalid_token", even where an anonymous read would be allowed.
//   * A valid token that does not cover the request is 403.
//   * No denial changes anything: each stream it could touch is
//     byte-identical before and after (catch-up read and HEAD's
//     Stream-Next-Offset / Stream-Closed), and nothing is created.
//   * read covers GET and HEAD in every mode, write PUT and POST (append,
//     close), admin DELETE and POST ?compact; a fork needs read on its source
//     and write on its new path. `*` is one path segment, `**` any number
//     (`m/**` covers `m`); public rights add to a token's.
//   * Only one credential counts, taken in this order: Authorization: Bearer,
//     the cookie, the `token` query parameter; Authorization: Basic is none.
//   * A cookie authorizes a write only from this site or a listed origin; a
//     listed origin gets credentialed CORS answers; preflights need no
//     credential; a read that needed a token is never publicly cacheable.
//   * An SSE response ends when its token stops being accepted (exp plus
//     auth_skew, 2 s here); a token in the query
//     string never reaches the logs.
//
// The matrix (credential x operation x place) runs once per deployment of
// LMSTREAM_ACCESS_SERVERS (default: lighttpd fastcgi cgi apache standalone),
// each deployment configured with `auth = token`, three keys (HS256, RS256,
// ES256), `public_read = pub/**` and `cors_origins = http://app.example`.
// The expected answer of each cell comes from the rules above (expect()
// below); each failing cell is reported as request, expected, got.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startServer, STREAM_PREFIX, sleep } from './lib/server.mjs'
import { rawRequest, openSse, streamState as sharedStreamState } from './lib/http.mjs'
import { makeKeys, mint, tamper, claimsFor, keyPair, nowS, runOwner } from './lib/tokens.mjs'

const SERVERS = (process.env.LMSTREAM_ACCESS_SERVERS || 'lighttpd fastcgi cgi apache standalone')
  .split(/[\s,]+/).filter(Boolean)
const BATCH = Number(process.env.LMSTREAM_ACCESS_BATCH || 4) // cells in flight at once
const APP = 'http://app.example'
const EVIL = 'http://evil.example'
const COOKIE = 'lmstream_token'
const PUBLIC_READ = ['pub/**']
const PUBLIC_WRITE = []
const JSON_CT = { 'Content-Type': 'application/json' }
const tag = crypto.randomBytes(3).toString('hex')
const P = (name) => `${STREAM_PREFIX}${name}`

// ------------------------------------------------------------------ keys

const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-access-keys-'))
const keys = makeKeys(keyDir, { owner: runOwner(SERVERS) })
after(() => fs.rmSync(keyDir, { recursive: true, force: true }))

const M = ['m/**']
const ALL_M = { read: M, write: M, admin: M }
const otherSecret = Buffer.from(crypto.randomBytes(32).toString('hex'), 'latin1')
const otherEc = keyPair('ec')

const T = {
  // Fixtures are made and inspected with this one.
  root: keys.token({ read: ['**'], write: ['**'], admin: ['**'] }, { sub: 'fixtures' }),
  read: keys.token({ read: M }, { alg: 'HS256', sub: 'reader' }),
  write: keys.token({ write: M }, { alg: 'RS256', sub: 'writer' }),
  admin: keys.token(ALL_M, { alg: 'ES256', sub: 'admin' }),
  readNoKid: keys.token({ read: M }, { alg: 'HS256', kid: null, sub: 'reader-nokid' }),
  mStar: keys.token({ read: ['m/*'], write: ['m/*'], admin: ['m/*'] }, { alg: 'HS256', sub: 'one-level' }),
  expired: keys.token(ALL_M, { exp: nowS() - 3600 }),
  notYet: keys.token(ALL_M, { nbf: nowS() + 3600, ttl: 7200 }),
  wrongHs: mint({ alg: 'HS256', kid: 'hs', key: otherSecret, claims: claimsFor(ALL_M) }),
  wrongEc: mint({ alg: 'ES256', kid: 'ec', key: otherEc.privateKey, claims: claimsFor(ALL_M) }),
  algNone: mint({ alg: 'none', kid: 'hs', claims: claimsFor(ALL_M) }),
  algNoneNoKid: mint({ alg: 'none', claims: claimsFor(ALL_M) }),
  // The RSA public key file's bytes used as the HMAC secret.
  hsRsaPem: mint({ alg: 'HS256', kid: 'rsa', key: fs.readFileSync(keys.files.rsa), claims: claimsFor(ALL_M) }),
  hsRsaPemNoKid: mint({ alg: 'HS256', key: fs.readFileSync(keys.files.rsa), claims: claimsFor(ALL_M) }),
  malformed: 'eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln',
  unknownKid: mint({ alg: 'HS256', kid: 'nokey', key: keys.secret, claims: claimsFor(ALL_M) }),
}
// The read token with more rights written into it, its signature kept.
T.tampered = tamper(T.read, (c) => ({ ...c, lmstream: ALL_M }))

// ------------------------------------------------------------------ credentials

const bearer = (tok) => (q) => { q.headers.Authorization = `Bearer ${tok}` }
const cookie = (tok) => (q) => { q.headers.Cookie = `theme=dark; ${COOKIE}=${tok}` }
const query = (tok) => (q) => { q.path += `${q.path.includes('?') ? '&' : '?'}token=${encodeURIComponent(tok)}` }
const basic = () => (q) => { q.headers.Authorization = `Basic ${Buffer.from('user:secret').toString('base64')}` }
const both = (...fs) => (q) => { for (const f of fs) f(q) }
const none = () => () => {}

/**
 * kind: anon (no credential), valid (rights count) or bad (401 invalid_token).
 * areas: the places (AREAS below) the credential is tried on.
 */
const CREDENTIALS = [
  { id: 'anonymous', kind: 'anon', apply: none(), areas: ['m', 'pub'] },
  { id: 'read', kind: 'valid', rights: { read: M }, apply: bearer(T.read), areas: ['m', 'pub'] },
  { id: 'write', kind: 'valid', rights: { write: M }, apply: bearer(T.write), areas: ['m', 'pub'] },
  { id: 'admin', kind: 'valid', rights: ALL_M, apply: bearer(T.admin), areas: ['m', 'pub'] },
  { id: 'read-no-kid', kind: 'valid', rights: { read: M }, apply: bearer(T.readNoKid), areas: ['m'] },
  { id: 'expired', kind: 'bad', apply: bearer(T.expired), areas: ['m', 'pub'] },
  { id: 'not-yet-valid', kind: 'bad', apply: bearer(T.notYet), areas: ['m', 'pub'] },
  { id: 'wrong-key-hs256', kind: 'bad', apply: bearer(T.wrongHs), areas: ['m', 'pub'] },
  { id: 'wrong-key-es256', kind: 'bad', apply: bearer(T.wrongEc), areas: ['m'] },
  { id: 'alg-none', kind: 'bad', apply: bearer(T.algNone), areas: ['m', 'pub'] },
  { id: 'alg-none-no-kid', kind: 'bad', apply: bearer(T.algNoneNoKid), areas: ['m'] },
  { id: 'hs256-rsa-pem', kind: 'bad', apply: bearer(T.hsRsaPem), areas: ['m', 'pub'] },
  { id: 'hs256-rsa-pem-no-kid', kind: 'bad', apply: bearer(T.hsRsaPemNoKid), areas: ['m'] },
  { id: 'tampered', kind: 'bad', apply: bearer(T.tampered), areas: ['m', 'pub'] },
  { id: 'malformed', kind: 'bad', apply: bearer(T.malformed), areas: ['m', 'pub'] },
  { id: 'unknown-kid', kind: 'bad', apply: bearer(T.unknownKid), areas: ['m', 'pub'] },
  // Pattern edges.
  { id: 'm/* on mx/y', kind: 'valid', rights: { read: ['m/*'], write: ['m/*'], admin: ['m/*'] }, apply: bearer(T.mStar), areas: ['mx'] },
  { id: 'm/* on m/x/y', kind: 'valid', rights: { read: ['m/*'], write: ['m/*'], admin: ['m/*'] }, apply: bearer(T.mStar), areas: ['mxy'] },
  { id: 'm/* on m/x', kind: 'valid', rights: { read: ['m/*'], write: ['m/*'], admin: ['m/*'] }, apply: bearer(T.mStar), areas: ['m'] },
  { id: 'm/** on m', kind: 'valid', rights: ALL_M, apply: bearer(T.admin), areas: ['exact'] },
  // Where the credential comes from.
  { id: 'good header + bad cookie', kind: 'valid', rights: ALL_M, apply: both(bearer(T.admin), cookie(T.expired)), areas: ['m'] },
  { id: 'bad header + good cookie', kind: 'bad', apply: both(bearer(T.expired), cookie(T.admin)), areas: ['m'] },
  { id: 'good cookie (no Origin)', kind: 'valid', rights: ALL_M, apply: cookie(T.admin), areas: ['m'] },
  { id: 'good query', kind: 'valid', rights: ALL_M, apply: query(T.admin), areas: ['m'] },
  { id: 'bad cookie + good query', kind: 'bad', apply: both(cookie(T.expired), query(T.admin)), areas: ['m'] },
  { id: 'basic + good cookie', kind: 'valid', rights: ALL_M, apply: both(basic(), cookie(T.admin)), areas: ['m'] },
  { id: 'basic only', kind: 'anon', apply: basic(), areas: ['m', 'pub'] },
]

// ------------------------------------------------------------------ the rules

/** `*` one segment, `**` zero or more. */
function globMatch(pattern, p) {
  const ps = pattern.split('/')
  const ss = p.split('/')
  const m = (i, j) => {
    if (i === ps.length) return j === ss.length
    if (ps[i] === '**') return m(i + 1, j) || (j < ss.length && m(i, j + 1))
    if (j === ss.length) return false
    return (ps[i] === '*' || ps[i] === ss[j]) && m(i + 1, j + 1)
  }
  return m(0, 0)
}
const covers = (patterns = [], p) => patterns.some((x) => globMatch(x, p))
const isPublic = (right, p) => covers(right === 'read' ? PUBLIC_READ : right === 'write' ? PUBLIC_WRITE : [], p)

/** What the contract says about a request of cred that needs [[right, path], ...]. */
function expect(cred, needs) {
  if (cred.kind === 'bad') return { status: 401, invalid: true }
  for (const [right, p] of needs) {
    if (isPublic(right, p)) continue
    if (cred.kind === 'anon') return { status: 401, invalid: false }
    if (!covers(cred.rights[right], p)) return { status: 403 }
  }
  return { status: 200 }
}
const describeExpect = (e) => (e.status === 200 ? '2xx' : e.status === 401 ? `401${e.invalid ? ' invalid_token' : ''}` : '403')

// ------------------------------------------------------------------ places

let seq = 0
const fresh = (what) => `${what}-${tag}-${++seq}`

/**
 * name(what): a new stream path of that place. shared: read fixtures made
 * once per deployment (exact: none, every cell makes its own). forkSrc: where
 * a fork's source lives when it cannot be the place itself.
 */
const AREAS = {
  m: { name: (w) => `m/${fresh(w)}` },
  pub: { name: (w) => `pub/${fresh(w)}` },
  mx: { name: (w) => `mx/${fresh(w)}` },          // m/* does not cover mx/y
  mxy: { name: (w) => `m/${fresh(w)}/y` },        // nor m/x/y
  exact: { name: () => 'm', sequential: true, forkSrc: () => `m/${fresh('fsrc')}` }, // m/** covers m
}

// ------------------------------------------------------------------ operations

const EVENTS = JSON.stringify([
  { type: 'todo', key: 'a', value: { v: 1 }, headers: { operation: 'upsert' } },
  { type: 'todo', key: 'b', value: { v: 2 }, headers: { operation: 'upsert' } },
  { type: 'todo', key: 'a', value: { v: 3 }, headers: { operation: 'upsert' } },
])

/**
 * setup(ctx, area) -> fixture { target, src?, watch: [paths that must not
 * change on a denial], absent: [paths that must not exist after one] };
 * needs(f): [[right, path]]; req(f): the request (path relative to nothing).
 */
const OPS = [
  {
    id: 'PUT create',
    setup: async (c, a) => { const t = a.name('new'); await c.absent(t); return { target: t, watch: [], absent: [t] } },
    needs: (f) => [['write', f.target]],
    req: (f) => ({ method: 'PUT', path: P(f.target), headers: { ...JSON_CT } }),
  },
  {
    id: 'POST append',
    setup: async (c, a) => { const t = await c.plain(a.name('app')); return { target: t, watch: [t], absent: [] } },
    needs: (f) => [['write', f.target]],
    req: (f) => ({ method: 'POST', path: P(f.target), headers: { ...JSON_CT }, body: '{"n":99}' }),
  },
  {
    id: 'POST close',
    setup: async (c, a) => { const t = await c.plain(a.name('close')); return { target: t, watch: [t], absent: [] } },
    needs: (f) => [['write', f.target]],
    req: (f) => ({ method: 'POST', path: P(f.target), headers: { ...JSON_CT, 'Stream-Closed': 'true' } }),
  },
  {
    id: 'DELETE',
    setup: async (c, a) => { const t = await c.plain(a.name('del')); return { target: t, watch: [t], absent: [] } },
    needs: (f) => [['admin', f.target]],
    req: (f) => ({ method: 'DELETE', path: P(f.target) }),
  },
  {
    id: 'fork',
    setup: async (c, a) => {
      const src = await c.plain(a.forkSrc ? a.forkSrc() : a.name('fsrc'))
      const t = a.name('fork')
      await c.absent(t)
      return { target: t, src, watch: [src], absent: [t] }
    },
    needs: (f) => [['write', f.target], ['read', f.src]],
    req: (f) => ({ method: 'PUT', path: P(f.target), headers: { 'Stream-Forked-From': P(f.src) } }),
  },
  {
    id: 'fork from pub',
    areas: ['m', 'exact'],
    setup: async (c, a) => {
      const src = c.shared.pub.plain
      const t = a.name('forkpub')
      await c.absent(t)
      return { target: t, src, watch: [src], absent: [t] }
    },
    needs: (f) => [['write', f.target], ['read', f.src]],
    req: (f) => ({ method: 'PUT', path: P(f.target), headers: { 'Stream-Forked-From': P(f.src) } }),
  },
  {
    id: 'POST ?compact',
    setup: async (c, a) => { const t = await c.state(a.name('cmp')); return { target: t, watch: [t], absent: [] } },
    needs: (f) => [['admin', f.target]],
    req: (f) => ({ method: 'POST', path: `${P(f.target)}?compact`, headers: { ...JSON_CT }, body: '' }),
  },
  ...[
    ['GET catch-up', 'plain', 'GET', '?offset=-1'],
    ['GET long-poll', 'plain', 'GET', '?offset=-1&live=long-poll'],
    ['GET SSE', 'plain', 'SSE', '?offset=-1&live=sse'],
    ['GET ?snapshot', 'state', 'GET', '?snapshot'],
    ['HEAD', 'plain', 'HEAD', ''],
  ].map(([id, kind, method, q]) => ({
    id,
    read: true,
    setup: async (c, a, areaId) => {
      const t = c.shared[areaId]?.[kind] ?? await c[kind](a.name(`r${kind}`))
      return { target: t, watch: [t], absent: [] }
    },
    needs: (f) => [['read', f.target]],
    req: (f) => ({ method, path: `${P(f.target)}${q}`, headers: {} }),
  })),
]

// ------------------------------------------------------------------ checks

/** Problems with a denial's body: a short one-line text/plain reason. */
function reasonProblems(r, method) {
  if (method === 'HEAD') return []
  const out = []
  const text = r.body.toString('utf8')
  if (!/^text\/plain\b/i.test(r.headers['content-type'] || '')) out.push(`Content-Type ${JSON.stringify(r.headers['content-type'])}, want text/plain`)
  if (!text.trim()) out.push('empty reason')
  if (/[\r\n]/.test(text.replace(/\r?\n$/, ''))) out.push(`reason is not one line: ${JSON.stringify(text.slice(0, 120))}`)
  return out
}

/** Problems with the WWW-Authenticate of a 401. */
function challengeProblems(r, invalid) {
  const wa = r.headers['www-authenticate']
  if (!wa) return ['401 without WWW-Authenticate']
  const out = []
  if (!/^Bearer\b/i.test(wa) || !/realm="lmstream"/.test(wa)) out.push(`WWW-Authenticate ${JSON.stringify(wa)}, want Bearer realm="lmstream"`)
  if (invalid && !/error="invalid_token"/.test(wa)) out.push(`WWW-Authenticate ${JSON.stringify(wa)} lacks error="invalid_token"`)
  if (!invalid && /error=/.test(wa)) out.push(`WWW-Authenticate ${JSON.stringify(wa)} names an error, but no credential was sent`)
  return out
}

const noTokens = (s) => s.replace(/token=[^&\s]*/g, 'token=…')
const bodyText = (r) => (r.body ? r.body.toString('utf8').replace(/\s+$/, '').slice(0, 160) : '')

// ------------------------------------------------------------------ one deployment

function deployment(kind) {
  const state = { srv: null, cells: 0, extra: 0, ok: 0, by: { '2xx': 0, 401: 0, 403: 0 } }

  /** A request made with the fixture token. */
  const asRoot = (opts) => rawRequest(state.srv.url, { ...opts, headers: { Authorization: `Bearer ${T.root}`, ...(opts.headers || {}) } })

  const c = {
    shared: {},
    async plain(p) {
      let r = await asRoot({ method: 'PUT', path: P(p), headers: JSON_CT })
      if (r.status !== 201) throw new Error(`fixture PUT ${P(p)} -> ${r.status} ${bodyText(r)}`)
      r = await asRoot({ method: 'POST', path: P(p), headers: JSON_CT, body: '[{"n":1},{"n":2}]' })
      if (r.status !== 204) throw new Error(`fixture POST ${P(p)} -> ${r.status} ${bodyText(r)}`)
      return p
    },
    async state(p) {
      let r = await asRoot({ method: 'PUT', path: `${P(p)}?state`, headers: JSON_CT })
      if (r.status !== 201) throw new Error(`fixture PUT ${P(p)}?state -> ${r.status} ${bodyText(r)}`)
      r = await asRoot({ method: 'POST', path: P(p), headers: JSON_CT, body: EVENTS })
      if (r.status !== 204) throw new Error(`fixture POST ${P(p)} -> ${r.status} ${bodyText(r)}`)
      return p
    },
    /** Make sure p does not exist (it may: the place `m` is reused). */
    async absent(p) {
      let r = await asRoot({ method: 'HEAD', path: P(p) })
      if (r.status === 404) return
      r = await asRoot({ method: 'DELETE', path: P(p) })
      if (r.status >= 300 && r.status !== 404) throw new Error(`fixture DELETE ${P(p)} -> ${r.status}`)
      r = await asRoot({ method: 'HEAD', path: P(p) })
      if (r.status !== 404) throw new Error(`fixture: ${P(p)} still answers ${r.status} after DELETE`)
    },
  }

  /** Everything a denial must leave alone (lib/http.mjs), read with the fixtures' token. */
  const streamState = (p) => sharedStreamState(asRoot, P(p), 100)
  const statesOf = async (paths) => Object.fromEntries(await Promise.all(paths.map(async (p) => [p, await streamState(p)])))

  /** Send q (after cred.apply); SSE: open, read to the first control event, close. */
  async function send(q) {
    if (q.method !== 'SSE') return rawRequest(state.srv.url, q)
    const sub = openSse(state.srv.url, q.path, { headers: q.headers })
    try {
      const res = await sub.response
      if (res.status === 200) {
        try {
          await sub.waitFor((e) => e.type === 'control', 10_000, 'the first control event')
        } catch (e) {
          return { ...res, body: Buffer.alloc(0), sseError: e.message }
        }
        return { ...res, body: Buffer.alloc(0) }
      }
      await Promise.race([sub.ended, sleep(10_000)])
      return { ...res, body: sub.body ?? Buffer.alloc(0) }
    } finally {
      sub.close()
    }
  }

  /** One cell: returns null when it holds, else a description of what is wrong. */
  async function cell(cred, op, areaId) {
    const area = AREAS[areaId]
    let f
    try {
      if (area.sequential) await c.absent(area.name()) // the one path `m`, reused by every cell
      f = await op.setup(c, area, areaId)
    } catch (e) {
      return `setup failed: ${e.message}`
    }
    const want = expect(cred, op.needs(f))
    state.by[want.status === 200 ? '2xx' : want.status]++
    const before = want.status === 200 ? null : await statesOf(f.watch)
    const q = op.req(f)
    q.headers ??= {}
    cred.apply(q)
    const method = q.method === 'SSE' ? 'GET' : q.method
    const what = `${method} ${noTokens(q.path)}${op.id === 'GET SSE' ? ' (Accept: text/event-stream)' : ''}`
    let r
    try {
      r = await send(q)
    } catch (e) {
      return `${what}: want ${describeExpect(want)}, got a network error: ${e.message}`
    }
    const problems = []
    const got = `${r.status}${r.status >= 400 ? ` ${JSON.stringify(bodyText(r))}` : ''}`
    if (want.status === 200) {
      if (r.status < 200 || r.status > 299) problems.push(`want 2xx, got ${got}`)
      else if (r.sseError) problems.push(r.sseError)
      else if (op.read && !isPublic('read', f.target) && /\bpublic\b/i.test(r.headers['cache-control'] || '')) {
        problems.push(`a read that needed a token has Cache-Control ${JSON.stringify(r.headers['cache-control'])}`)
      }
    } else {
      if (r.status !== want.status) problems.push(`want ${describeExpect(want)}, got ${got}`)
      else {
        if (want.status === 401) problems.push(...challengeProblems(r, want.invalid))
        problems.push(...reasonProblems(r, method))
      }
      const afterState = await statesOf(f.watch)
      for (const p of f.watch) {
        try {
          assert.deepEqual(afterState[p], before[p])
        } catch {
          problems.push(`changed ${P(p)}: before ${JSON.stringify(before[p]).slice(0, 200)}, after ${JSON.stringify(afterState[p]).slice(0, 200)}`)
        }
      }
      for (const p of f.absent) {
        const h = await asRoot({ method: 'HEAD', path: P(p) })
        if (h.status !== 404) problems.push(`created ${P(p)} (HEAD -> ${h.status})`)
      }
    }
    return problems.length ? `${what}: ${problems.join('; ')}` : null
  }

  /** Run every cell of cred; throw one error listing every failing cell. */
  async function runCredential(cred) {
    const cells = []
    for (const areaId of cred.areas) {
      for (const op of OPS) {
        if (op.areas && !op.areas.includes(areaId)) continue
        cells.push({ op, areaId })
      }
    }
    const failures = []
    const runOne = async ({ op, areaId }) => {
      const problem = await cell(cred, op, areaId).catch((e) => `${op.id}: ${e.stack || e}`)
      state.cells++
      if (problem) failures.push(`[${kind}] ${cred.id} / ${op.id} / ${areaId}: ${problem}`)
      else state.ok++
    }
    const sequential = cells.filter((x) => AREAS[x.areaId].sequential)
    await pool(cells.filter((x) => !AREAS[x.areaId].sequential), BATCH, runOne)
    for (const x of sequential) await runOne(x)
    if (failures.length) {
      assert.fail(`${failures.length} of ${cells.length} cells failed:\n  ${failures.join('\n  ')}`)
    }
  }

  describe(`access control on ${kind}`, { timeout: 240_000 }, () => {
    before(async () => {
      state.srv = await startServer({
        label: `access-${kind}`,
        server: kind,
        config: {
          auth: 'token',
          auth_key: keys.authKey,
          public_read: PUBLIC_READ.join(' '),
          cors_origins: APP,
          long_poll_timeout: 1000,
          auth_skew: 2, // a live read lasts until exp + auth_skew
        },
      })
      RESULTS.set(kind, state)
      for (const areaId of ['m', 'pub', 'mx', 'mxy']) {
        c.shared[areaId] = {
          plain: await c.plain(AREAS[areaId].name('rplain')),
          state: await c.state(AREAS[areaId].name('rstate')),
        }
      }
    })
    after(async () => { await state.srv?.stop() })

    for (const cred of CREDENTIALS) {
      test(`matrix: ${cred.id} (${cred.kind === 'bad' ? '401 invalid_token everywhere' : cred.kind === 'anon' ? 'no credential' : 'its rights, and public ones'})`,
        () => runCredential(cred))
    }

    test('an SSE response authorized by a token ends when the token expires', async (t) => {
      const p = c.shared.m.plain
      const shortTok = keys.token({ read: M }, { exp: nowS() + 3, sub: 'short' })
      const t0 = performance.now()
      const short = openSse(state.srv.url, `${P(p)}?offset=-1&live=sse`, { headers: { Authorization: `Bearer ${shortTok}` } })
      const long = openSse(state.srv.url, `${P(p)}?offset=-1&live=sse`, { headers: { Authorization: `Bearer ${T.read}` } })
      let longEnded = false
      long.ended.then(() => { longEnded = true })
      try {
        assert.equal((await short.response).status, 200)
        assert.equal((await long.response).status, 200)
        await short.waitFor((e) => e.type === 'control', 10_000, 'the first control event')
        const end = await Promise.race([short.ended, sleep(15_000).then(() => null)])
        const ms = Math.round(performance.now() - t0)
        assert.ok(end, `the SSE response of a token expiring in ~3 s was still open after ${ms} ms`)
        assert.ok(ms >= 1000, `the SSE response ended after ${ms} ms, before its token expired`)
        assert.ok(ms <= 15_000, `the SSE response ended ${ms} ms after it was opened (token exp ~3 s)`)
        t.diagnostic(`${kind}: SSE ended ${ms} ms after opening (${end.complete ? 'complete' : 'cut short'})`)
        await sleep(200)
        assert.ok(!longEnded, 'an SSE response with a token valid for an hour ended along with the short one')
        state.extra++
      } finally {
        short.close()
        long.close()
      }
    })

    test('a cookie writes only from this site or a listed origin; listed origins get credentialed CORS', async () => {
      const p = await c.plain(AREAS.m.name('xsite'))
      const withCookie = { Cookie: `${COOKIE}=${T.admin}`, ...JSON_CT }
      // Cross-site form posts and deletes with the cookie: 403, nothing changes.
      for (const [method, target, extra] of [
        ['POST', p, { body: '{"evil":1}' }],
        ['POST', p, { headers: { 'Stream-Closed': 'true' } }],
        ['DELETE', p, {}],
        ['PUT', AREAS.m.name('xsite-new'), {}],
      ]) {
        const before = await streamState(p)
        const r = await rawRequest(state.srv.url, { method, path: P(target), body: extra.body, headers: { ...withCookie, Origin: EVIL, ...(extra.headers || {}) } })
        assert.equal(r.status, 403, `${method} ${P(target)} with the cookie from ${EVIL}: want 403, got ${r.status} ${bodyText(r)}`)
        assert.deepEqual(reasonProblems(r, method), [], `${method} from ${EVIL}: reason`)
        assert.deepEqual(await streamState(p), before, `${method} from ${EVIL} changed ${P(p)}`)
        if (target !== p) assert.equal((await asRoot({ method: 'HEAD', path: P(target) })).status, 404, `${method} from ${EVIL} created ${P(target)}`)
        assert.ok(!(r.headers['access-control-allow-origin'] === EVIL && r.headers['access-control-allow-credentials'] === 'true'),
          `credentialed CORS granted to ${EVIL}`)
        state.extra++
      }
      // The same from the listed origin: allowed, with credentialed CORS headers.
      const before = await streamState(p)
      let r = await rawRequest(state.srv.url, { method: 'POST', path: P(p), body: '{"app":1}', headers: { ...withCookie, Origin: APP } })
      assert.equal(r.status, 204, `POST with the cookie from ${APP}: ${r.status} ${bodyText(r)}`)
      assert.equal(r.headers['access-control-allow-origin'], APP)
      assert.equal(r.headers['access-control-allow-credentials'], 'true')
      assert.match(r.headers.vary || '', /\bOrigin\b/i, 'Vary names Origin')
      assert.notDeepEqual(await streamState(p), before, 'the allowed POST appended')
      // From this very site (Origin's host is the Host header): allowed.
      r = await rawRequest(state.srv.url, { method: 'POST', path: P(p), body: '{"self":1}', headers: { ...withCookie, Origin: `http://127.0.0.1:${state.srv.port}` } })
      assert.equal(r.status, 204, `POST with the cookie from the site itself: ${r.status} ${bodyText(r)}`)
      // A bearer token is not ambient: it authorizes a write whatever the Origin.
      r = await rawRequest(state.srv.url, { method: 'POST', path: P(p), body: '{"bearer":1}', headers: { Authorization: `Bearer ${T.admin}`, ...JSON_CT, Origin: EVIL } })
      assert.equal(r.status, 204, `POST with a bearer token from ${EVIL}: ${r.status} ${bodyText(r)}`)
      // A read with the cookie is a read: allowed from anywhere, credentialed CORS only for the listed origin.
      r = await rawRequest(state.srv.url, { path: `${P(p)}?offset=-1`, headers: { Cookie: `${COOKIE}=${T.read}`, Origin: APP } })
      assert.equal(r.status, 200, `GET with the cookie from ${APP}: ${r.status} ${bodyText(r)}`)
      assert.equal(r.headers['access-control-allow-origin'], APP)
      assert.equal(r.headers['access-control-allow-credentials'], 'true')
      assert.match(r.headers.vary || '', /\bOrigin\b/i, 'Vary names Origin')
      assert.doesNotMatch(r.headers['cache-control'] || '', /\bpublic\b/i, 'a read that needed a token is not publicly cacheable')
      r = await rawRequest(state.srv.url, { path: `${P(p)}?offset=-1`, headers: { Cookie: `${COOKIE}=${T.read}`, Origin: EVIL } })
      assert.equal(r.status, 200, `GET with the cookie from ${EVIL}: ${r.status} ${bodyText(r)}`)
      assert.ok(!(r.headers['access-control-allow-origin'] === EVIL && r.headers['access-control-allow-credentials'] === 'true'),
        `credentialed CORS granted to ${EVIL}`)
      // A denial seen by the listed origin's page carries the CORS headers too, so the page can read why.
      r = await rawRequest(state.srv.url, { path: `${P(p)}?offset=-1`, headers: { Origin: APP } })
      assert.equal(r.status, 401)
      assert.equal(r.headers['access-control-allow-origin'], APP, 'a 401 to a listed origin carries Access-Control-Allow-Origin')
      state.extra += 6
    })

    test('an OPTIONS preflight needs no credential', async () => {
      for (const target of [P(AREAS.m.name('pre')), P(c.shared.m.plain), P(c.shared.pub.plain)]) {
        const r = await rawRequest(state.srv.url, {
          method: 'OPTIONS', path: target,
          headers: { Origin: APP, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
        })
        assert.equal(r.status, 204, `OPTIONS ${target}: ${r.status} ${bodyText(r)}`)
        assert.match(r.headers['access-control-allow-headers'] || '', /\bauthorization\b/i,
          `OPTIONS ${target}: Access-Control-Allow-Headers ${JSON.stringify(r.headers['access-control-allow-headers'])}`)
        assert.equal(r.headers['access-control-allow-origin'], APP, `OPTIONS ${target}: Access-Control-Allow-Origin`)
        assert.equal(r.headers['access-control-allow-credentials'], 'true', `OPTIONS ${target}: Access-Control-Allow-Credentials`)
        state.extra++
      }
      const r = await rawRequest(state.srv.url, {
        method: 'OPTIONS', path: P(c.shared.m.plain),
        headers: { Origin: EVIL, 'Access-Control-Request-Method': 'DELETE', 'Access-Control-Request-Headers': 'authorization' },
      })
      assert.ok(r.status !== 401 && r.status !== 403, `OPTIONS from ${EVIL}: ${r.status}: a preflight needs no credential`)
      assert.ok(!(r.headers['access-control-allow-origin'] === EVIL && r.headers['access-control-allow-credentials'] === 'true'),
        `credentialed CORS granted to ${EVIL}`)
      state.extra++
    })

    test('a token in ?token= never appears in the logs', async (t) => {
      const marker = `logprobe-${tag}`
      const good = keys.token({ read: M }, { sub: marker })
      const bad = keys.token({ read: M }, { sub: marker, exp: nowS() - 3600 })
      const uncovering = keys.token({ read: ['elsewhere/**'], write: ['elsewhere/**'] }, { sub: marker })
      const p = P(c.shared.m.plain)
      const q = (tok) => `token=${encodeURIComponent(tok)}`
      const denied = state.srv.waitLog(new RegExp(`denied.*${marker}`), 10_000).then(() => true, () => false)
      const results = [
        [200, await rawRequest(state.srv.url, { path: `${p}?offset=-1&${q(good)}` })],
        [200, await rawRequest(state.srv.url, { path: `${p}?offset=-1&live=long-poll&${q(good)}` })],
        [401, await rawRequest(state.srv.url, { path: `${p}?offset=-1&${q(bad)}` })],
        [401, await rawRequest(state.srv.url, { path: `${P(c.shared.pub.plain)}?offset=-1&${q(bad)}` })],
        [403, await rawRequest(state.srv.url, { path: `${p}?offset=-1&${q(uncovering)}` })],
        [403, await rawRequest(state.srv.url, { method: 'POST', path: `${p}?${q(uncovering)}`, headers: JSON_CT, body: '{"x":1}' })],
        [401, await rawRequest(state.srv.url, { method: 'DELETE', path: `${p}?${q(bad)}` })],
      ]
      const sse = await send({ method: 'SSE', path: `${p}?offset=-1&live=sse&${q(good)}`, headers: {} })
      results.push([200, sse])
      const sseBad = await send({ method: 'SSE', path: `${p}?offset=-1&live=sse&${q(uncovering)}`, headers: {} })
      results.push([403, sseBad])
      results.forEach(([want, r], i) => assert.equal(r.status, want, `request ${i}: ${r.status} ${bodyText(r)}`))
      const sawDenial = await denied
      await sleep(500)
      const log = state.srv.logTail(1e9)
      t.diagnostic(`${kind}: ${sawDenial ? 'denials were logged' : 'no "denied" line in the log'}; log tail ${log.length} chars`)
      // The 403s above are logged with their sub: the tail searched below does reach back to them.
      if (sawDenial) assert.ok(log.includes(marker), `the logged denials of ${marker} fell out of the log tail searched`)
      for (const [name, tok] of [['valid', good], ['expired', bad], ['uncovering', uncovering]]) {
        const [h, pl, s] = tok.split('.')
        for (const [part, v] of [['whole token', tok], ['payload', pl], ['signature', s], ['header+payload', `${h}.${pl}`]]) {
          assert.ok(!log.includes(v), `the ${name} token's ${part} appears in the ${kind} logs`)
        }
      }
      state.extra++
    })
  })
}

/** Run fn over items, n at a time. */
async function pool(items, n, fn) {
  let i = 0
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) await fn(items[i++])
  }))
}

const RESULTS = new Map()
const T0 = performance.now()
after(() => {
  for (const [kind, s] of RESULTS) {
    console.log(`# access matrix on ${kind}: ${s.cells} cells checked, ${s.ok} held, ${s.cells - s.ok} failed ` +
      `(expected: ${s.by['2xx']} allowed, ${s.by[401]} 401, ${s.by[403]} 403); ${s.extra} further checks passed`)
  }
  console.log(`# access tests took ${Math.round((performance.now() - T0) / 1000)} s`)
})

for (const kind of SERVERS) deployment(kind)

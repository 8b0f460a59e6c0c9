// The URLs lmstream writes into headers: whole for the longest names, and from public_url when it is set.
//
// A stream's name may be max_path bytes (at most 480), and every byte of it may need percent-encoding: its
// URL path is then three times as long. What a user relies on:
//
//   Link      the 410 of a State stream read before its earliest offset (here: after ?compact) carries
//             Link: <PATH?snapshot>; rel="snapshot", whole (before, it was cut at 1,200 bytes) on the
//             catch-up read, the long-poll and the SSE read (lmstream-live behind a web server): its path
//             decodes to the stream's exact name, and following it answers the snapshot
//   Location  the 201 of a create and of a fork carries the stream's whole URL; without public_url its origin
//             is the request's scheme and Host, and X-Forwarded-Proto, X-Forwarded-Host and Forwarded from a
//             client change nothing
//   public_url with public_url = https://streams.example.com:8443, Location is that origin and the stream's
//             path, for every name and for forks, whatever Host, X-Forwarded-Proto/Host/Port and Forwarded
//             the request carries (before public_url, the request's Host was the only source)
// Names of max_path bytes are whole; one byte more is 414.
//
//   LMSTREAM_URLS_SERVERS  deployments (default: lighttpd apache standalone)

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { startServer, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest } from './lib/http.mjs'

const SERVERS = (process.env.LMSTREAM_URLS_SERVERS || 'lighttpd apache standalone').split(/[\s,]+/).filter(Boolean)
const P = STREAM_PREFIX
const MAX_PATH = 480 // the hard limit of max_path (src/lib/limits.h, LS_MAX_PATH_HARD)
const PUBLIC_URL = 'https://streams.example.com:8443'
const JSON_TYPE = { 'Content-Type': 'application/json' }
const TEXT_TYPE = { 'Content-Type': 'text/plain' }
/** What a client may send to make a server believe it is reached some other way. */
const FORGED = {
  'X-Forwarded-Proto': 'https',
  'X-Forwarded-Host': 'evil-xfh.example',
  'X-Forwarded-Port': '666',
  Forwarded: 'for=192.0.2.1;host=evil-fwd.example;proto=https',
}

/**
 * A name of exactly `bytes` bytes (UTF-8) under `dir`, made mostly of bytes that a URL must carry
 * percent-encoded: non-ASCII, space, '%', '?', '#', '<', '>', '"'.
 */
function longName(dir, bytes) {
  const unit = 'é %?#<>"' // 9 bytes
  let name = `${dir}/`
  while (Buffer.byteLength(name) + Buffer.byteLength(unit) <= bytes - 1) name += unit
  while (Buffer.byteLength(name) < bytes) name += 'x'
  assert.equal(Buffer.byteLength(name), bytes)
  return name
}

/** The request path of a name: each segment percent-encoded. */
const pathOf = (name) => P + name.split('/').map(encodeURIComponent).join('/')

/**
 * Checks that `url` (a path, or an absolute URL when origin is given) is origin + the prefix + name, whole:
 * only characters a URL may hold unencoded, and it decodes to exactly the name. Returns the path.
 */
function assertWhole(url, name, what, origin = '') {
  assert.ok(typeof url === 'string' && url.length > 0, `${what}: present`)
  assert.ok(url.startsWith(origin + P), `${what} starts with ${origin}${P}: ${url.slice(0, 120)}`)
  const path = url.slice(origin.length)
  assert.match(path, /^[A-Za-z0-9\-._~/!$&'()*+,;=:@%]*$/, `${what}: only URL characters in the path`)
  assert.doesNotMatch(path, /%(?![0-9A-Fa-f]{2})/, `${what}: every '%' starts an escape`)
  let decoded
  try {
    decoded = decodeURIComponent(path.slice(P.length))
  } catch (e) {
    assert.fail(`${what}: does not decode (${e.message}); ${path.length} bytes, ends with ${path.slice(-40)}`)
  }
  assert.equal(Buffer.byteLength(decoded), Buffer.byteLength(name),
    `${what}: the path decodes to ${Buffer.byteLength(decoded)} bytes, the name has ${Buffer.byteLength(name)}`)
  assert.equal(decoded, name, `${what}: decodes to the stream's name`)
  return path
}

/** A State stream `name` whose history is compacted away: reads from -1 get 410. */
async function compactedStateStream(srv, name) {
  const p = pathOf(name)
  const put = await rawRequest(srv.url, { method: 'PUT', path: `${p}?state`, headers: JSON_TYPE })
  assert.equal(put.status, 201, `PUT ${name.slice(0, 20)}...?state: ${put.body}`)
  for (const op of ['insert', 'update']) {
    const ev = [{ type: 'item', key: 'k1', value: { op }, headers: { operation: op } }]
    const r = await rawRequest(srv.url, { method: 'POST', path: p, headers: JSON_TYPE, body: JSON.stringify(ev) })
    assert.equal(r.status, 204, `POST ${op}: ${r.body}`)
  }
  const c = await rawRequest(srv.url, { method: 'POST', path: `${p}?compact`, headers: JSON_TYPE })
  assert.equal(c.status, 204, `POST ?compact: ${c.body}`)
  return p
}

for (const kind of SERVERS) {
  const workers = kind === 'apache' ? 4 : undefined

  describe(`URLs of long names on ${kind}`, () => {
    let srv
    const tag = crypto.randomBytes(3).toString('hex')

    before(async () => {
      srv = await startServer({ label: `urls-${kind}`, server: kind, workers, config: { max_path: MAX_PATH, long_poll_timeout: 2000 } })
    })
    after(async () => { await srv?.stop() })

    test(`a name of max_path (${MAX_PATH}) bytes: Link of a 410 and Location of a create and a fork are whole`, async () => {
      const over = longName(`urls/${tag}/over`, MAX_PATH + 1)
      const r414 = await rawRequest(srv.url, { method: 'PUT', path: pathOf(over), headers: TEXT_TYPE })
      assert.equal(r414.status, 414, `a name of ${MAX_PATH + 1} bytes is too long: ${r414.body}`)

      for (const bytes of [400, MAX_PATH]) {
        // Link, on each kind of read
        const state = longName(`urls/${tag}/state${bytes}`, bytes)
        const p = await compactedStateStream(srv, state)
        for (const q of ['?offset=-1', '?offset=-1&live=long-poll', '?offset=-1&live=sse']) {
          const what = `Link of GET (${bytes}-byte name)${q}`
          const r = await rawRequest(srv.url, { path: `${p}${q}` })
          assert.equal(r.status, 410, `${what}: status (${r.body})`)
          const link = r.headers.link
          const m = /^<([^>]*)>; rel="snapshot"$/.exec(link || '')
          assert.ok(m, `${what}: <URL>; rel="snapshot", got ${link ? `${link.length} bytes ending ${JSON.stringify(link.slice(-60))}` : 'none'}`)
          assert.ok(m[1].endsWith('?snapshot'), `${what}: the URL ends with ?snapshot: ...${m[1].slice(-40)}`)
          const target = assertWhole(m[1].slice(0, -'?snapshot'.length), state, what)
          const snap = await rawRequest(srv.url, { path: `${target}?snapshot` })
          assert.equal(snap.status, 200, `${what}: following the Link: ${snap.body}`)
          const events = JSON.parse(snap.body.toString('utf8'))
          assert.deepEqual(events.filter((e) => e.key === 'k1').map((e) => e.value), [{ op: 'update' }], `${what}: the snapshot holds the state`)
        }

        // Location of a create (with a client's forged forwarding headers) and of a fork
        const origin = `http://127.0.0.1:${srv.port}`
        const src = longName(`urls/${tag}/src${bytes}`, bytes)
        const put = await rawRequest(srv.url, { method: 'PUT', path: pathOf(src), headers: { ...TEXT_TYPE, ...FORGED }, body: 'source bytes' })
        assert.equal(put.status, 201, `PUT of a ${bytes}-byte name: ${put.body}`)
        assert.doesNotMatch(put.headers.location || '', /evil|^https:/, `Location of a create: no forwarding header of the client counts`)
        const loc = assertWhole(put.headers.location, src, `Location of a create (${bytes}-byte name)`, origin)
        const back = await rawRequest(srv.url, { path: `${loc}?offset=-1` })
        assert.equal(back.status, 200, 'following Location')
        assert.equal(back.body.toString('utf8'), 'source bytes', 'following Location: the stream')

        const fork = longName(`urls/${tag}/fork${bytes}`, bytes)
        const f = await rawRequest(srv.url, { method: 'PUT', path: pathOf(fork), headers: { ...TEXT_TYPE, ...FORGED, 'Stream-Forked-From': pathOf(src) } })
        assert.equal(f.status, 201, `fork of a ${bytes}-byte name: ${f.body}`)
        const floc = assertWhole(f.headers.location, fork, `Location of a fork (${bytes}-byte name)`, origin)
        const fback = await rawRequest(srv.url, { path: `${floc}?offset=-1` })
        assert.equal(fback.body.toString('utf8'), 'source bytes', 'following the fork\'s Location: the source\'s bytes')
      }
    })
  })

  describe(`Location from public_url on ${kind}`, () => {
    let srv
    const tag = crypto.randomBytes(3).toString('hex')

    before(async () => {
      srv = await startServer({ label: `urls-pub-${kind}`, server: kind, workers, config: { max_path: MAX_PATH, public_url: PUBLIC_URL } })
    })
    after(async () => { await srv?.stop() })

    test(`Location is ${PUBLIC_URL} and the path, never the request's Host or X-Forwarded-*`, async () => {
      const hostile = { ...FORGED, Host: 'evil.example:1' }
      const checks = []
      // a short name: the whole header, exactly
      const plain = `urls/${tag}/plain`
      const r1 = await rawRequest(srv.url, { method: 'PUT', path: pathOf(plain), headers: { ...TEXT_TYPE, ...hostile }, body: 'p' })
      assert.equal(r1.status, 201, `PUT ${plain} with Host: evil.example:1: ${r1.body}`)
      assert.equal(r1.headers.location, `${PUBLIC_URL}${P}${plain}`, 'Location of a create')
      checks.push(r1.headers.location)

      // with the request's own Host too (no forged headers)
      const own = `urls/${tag}/own`
      const r2 = await rawRequest(srv.url, { method: 'PUT', path: pathOf(own), headers: TEXT_TYPE })
      assert.equal(r2.status, 201, `PUT ${own}`)
      assert.equal(r2.headers.location, `${PUBLIC_URL}${P}${own}`, 'Location of a create without forged headers')

      // names of max_path bytes, created and forked with the hostile headers
      const src = longName(`urls/${tag}/src`, MAX_PATH)
      const r3 = await rawRequest(srv.url, { method: 'PUT', path: pathOf(src), headers: { ...TEXT_TYPE, ...hostile }, body: 'long source' })
      assert.equal(r3.status, 201, `PUT of a ${MAX_PATH}-byte name: ${r3.body}`)
      const loc = assertWhole(r3.headers.location, src, `Location of a create (${MAX_PATH}-byte name)`, PUBLIC_URL)
      checks.push(r3.headers.location)
      const back = await rawRequest(srv.url, { path: `${loc}?offset=-1` })
      assert.equal(back.body.toString('utf8'), 'long source', 'the path of Location is the stream')

      const fork = longName(`urls/${tag}/fork`, MAX_PATH)
      const r4 = await rawRequest(srv.url, { method: 'PUT', path: pathOf(fork), headers: { ...TEXT_TYPE, ...hostile, 'Stream-Forked-From': pathOf(src) } })
      assert.equal(r4.status, 201, `fork of a ${MAX_PATH}-byte name: ${r4.body}`)
      assertWhole(r4.headers.location, fork, `Location of a fork (${MAX_PATH}-byte name)`, PUBLIC_URL)
      checks.push(r4.headers.location)

      for (const l of checks) {
        assert.doesNotMatch(l, /evil|127\.0\.0\.1|:666\b|^http:/, `Location names nothing the request said: ${l.slice(0, 100)}`)
      }
    })
  })
}

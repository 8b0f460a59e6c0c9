// A web server's path rules hold for the streams they name, however the path is spelt.
//
// A site protects part of the prefix in its web server: Apache's <Location "/v1/stream/private/"> with
// Require all denied, lighttpd's $HTTP["url"] =~ "^/v1/stream/private/" with url.access-deny (deploy/run
// --site-conf). The web server matches its rule against the path as it understands it; lmstream decodes the
// raw request path into the stream's name. Apache (AllowEncodedSlashes NoDecode) sees "private%2Fa" where a
// decoding lmstream would use "private/a", so lmstream refuses an encoded '/' in a stream path (400). What a
// user relies on:
//
//   %2F       a stream path with %2F or %2f is 400 with lmstream's reason, for every method, on every front
//             (FastCGI workers, lmstream-live behind the web server, lmstream-live alone), and creates nothing
//   the rule  with the rule in place, /v1/stream/private/... is 403 and /v1/stream/public/... works (the rule
//             is really active); no spelling of private/a gets past it: %2F, %2f, %2F mixed with '..', %70
//             for 'p', '..' and '%2e%2e' segments, '//' and './': every PUT, POST, GET (catch-up and
//             long-poll), HEAD and DELETE is refused (400 or 403) and none answers the stream's bytes
//   the store afterwards, read straight from the data directory (lmstream.fcgi run as a CGI program, no web
//             server in between): private/a holds exactly what it held, private/b (only ever named through
//             such spellings) does not exist
//   %252F     a double-encoded slash is a name of its own, with a literal '%' ("private%2F..."): it never
//             reaches private/...
//
// lighttpd matches its conditions against the decoded path (%2F included), so its rule caught these spellings
// before lmstream refused %2F too: there the rule test guards against a regression, and the %2F test is what
// changed. mod_access must come before the handlers in server.modules: appended (server.modules +=), it never
// sees the requests that the FastCGI workers take (they are served), only the proxied live reads. The site
// configuration below puts it first.
//
//   LMSTREAM_PATHRULES_SERVERS  deployments (default: apache lighttpd standalone; standalone has no web
//                               server, so only the %2F test runs there)

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { startServer, STREAM_PREFIX, runCgi } from './lib/server.mjs'
import { rawRequest } from './lib/http.mjs'

const SERVERS = (process.env.LMSTREAM_PATHRULES_SERVERS || 'apache lighttpd standalone').split(/[\s,]+/).filter(Boolean)
const P = STREAM_PREFIX
const RULE = `${P}private/`
const SITE_CONF = {
  apache: `<Location "${RULE}">\n    Require all denied\n</Location>\n`,
  // mod_access first: see the comment at the top
  lighttpd: `server.modules := ( "mod_access" ) + server.modules\n$HTTP["url"] =~ "^${RULE}" {\n  url.access-deny = ( "" )\n}\n`,
}
const SECRET = `secret-${crypto.randomBytes(6).toString('hex')}`
const TEXT = { 'Content-Type': 'text/plain' }

/**
 * One request straight to the store: lmstream.fcgi run as a CGI program on the deployment's data directory
 * and configuration, with no web server (and no rule) in between. As root, Apache's deployment belongs to
 * www-data: the program runs as that user there. Resolves with { status, body }.
 */
async function store(srv, method, target, { body, type } = {}) {
  const user = process.env.LMSTREAM_RUN_USER || 'www-data'
  const asOwner = process.getuid?.() === 0 && srv.kind === 'apache'
  const r = await runCgi({
    method, target, body: body ?? '',
    env: { LMSTREAM_CONFIG: srv.configFile, LMSTREAM_DATA_DIR: srv.dataDir, ...(type ? { CONTENT_TYPE: type } : {}) },
    launch: asOwner ? (exe) => ['setpriv', ['--reuid', user, '--regid', user, '--init-groups', '--', exe]] : undefined,
  })
  if (!r.status) throw new Error(`CGI ${method} ${target} exited ${r.code}: ${r.head.slice(0, 200)} ${r.stderr}`)
  return { status: r.status, body: r.body }
}

/** The attempts on one spelt path: create, append, read (catch-up and long-poll), HEAD, and last DELETE. */
const ATTEMPTS = [
  { method: 'PUT', q: '', headers: TEXT, body: 'leak-put' },
  { method: 'POST', q: '', headers: TEXT, body: 'leak-post' },
  { method: 'GET', q: '?offset=-1' },
  { method: 'GET', q: '?offset=-1&live=long-poll' },
  { method: 'HEAD', q: '' },
  { method: 'DELETE', q: '' },
]

for (const kind of SERVERS) {
  const siteConf = SITE_CONF[kind]
  describe(`path rules on ${kind}${siteConf ? ` with a rule on ${RULE}` : ''}`, () => {
    let srv
    const tag = crypto.randomBytes(3).toString('hex')

    before(async () => {
      srv = await startServer({
        label: `pathrules-${kind}`, server: kind, siteConf, workers: kind === 'apache' ? 4 : undefined,
        // a long-poll that reached a stream with nothing new would wait this long (they should not)
        config: { long_poll_timeout: 2000 },
      })
      // private/a: made by the site itself, beside the web server
      const r = await store(srv, 'PUT', `${P}private/a`, { body: SECRET, type: 'text/plain' })
      assert.equal(r.status, 201, `creating private/a in the store: ${r.body}`)
    })

    after(async () => {
      await srv?.stop()
    })

    test('an encoded slash in a stream path is 400 for every method and creates nothing; %252F is a name of its own', async () => {
      const problems = []
      for (const spelt of [`public%2F${tag}`, `public%2f${tag}`, `public/${tag}%2Fdeeper`]) {
        for (const a of ATTEMPTS) {
          const r = await rawRequest(srv.url, { method: a.method, path: `${P}${spelt}${a.q}`, headers: a.headers, body: a.body })
          const what = `${a.method} ${P}${spelt}${a.q}`
          if (r.status !== 400) problems.push(`${what}: ${r.status} ${r.body.toString('utf8').slice(0, 80)}`)
          else if (a.method !== 'HEAD' && !/%2F/i.test(r.body.toString('utf8'))) problems.push(`${what}: 400 without lmstream's reason: ${r.body}`)
        }
      }
      for (const name of [`public/${tag}`, `public/${tag}/deeper`]) {
        const r = await store(srv, 'HEAD', `${P}${name}`)
        if (r.status !== 404) problems.push(`the store has ${name} (HEAD ${r.status})`)
      }
      // the same names spelt with '/' are ordinary streams
      const ok = await rawRequest(srv.url, { method: 'PUT', path: `${P}public/${tag}`, headers: TEXT, body: 'plain' })
      if (ok.status !== 201) problems.push(`PUT ${P}public/${tag}: ${ok.status} ${ok.body}`)

      // A double-encoded slash decodes once, to a literal '%': the stream "private%2F<tag>", which no rule on
      // private/ covers and which is not private/<tag>. Refusing it would do too.
      const dbl = `${P}private%252F${tag}`
      const put = await rawRequest(srv.url, { method: 'PUT', path: dbl, headers: TEXT, body: 'double' })
      if (put.status === 201) {
        const own = await store(srv, 'GET', `${dbl}?offset=-1`)
        if (own.status !== 200 || own.body.toString('utf8') !== 'double') problems.push(`the store: "private%2F${tag}" is ${own.status} ${own.body}`)
      } else if (put.status !== 400 && put.status !== 403) {
        problems.push(`PUT ${dbl}: ${put.status} (neither created nor refused)`)
      }
      const via = await rawRequest(srv.url, { path: `${P}private%252Fa?offset=-1` })
      if (via.body.includes(SECRET)) problems.push(`GET ${P}private%252Fa?offset=-1 answered private/a's bytes`)
      const b = await store(srv, 'HEAD', `${P}private/${tag}`)
      if (b.status !== 404) problems.push(`the store has private/${tag} (HEAD ${b.status})`)
      if (problems.length) assert.fail(`on ${kind}:\n${problems.join('\n')}`)
    })

    if (!siteConf) return

    test(`the rule is active, and no spelling of private/a gets past it`, async () => {
      // 1. The rule is in force: private/... refused, public/... served.
      for (const name of ['private/a', `private/${tag}`]) {
        for (const a of ATTEMPTS) {
          const r = await rawRequest(srv.url, { method: a.method, path: `${P}${name}${a.q}`, headers: a.headers, body: a.body })
          assert.equal(r.status, 403, `${a.method} ${P}${name}${a.q} is denied by the rule: ${r.body}`)
        }
      }
      const pub = `${P}public/ok-${tag}`
      assert.equal((await rawRequest(srv.url, { method: 'PUT', path: pub, headers: TEXT, body: 'one ' })).status, 201, `PUT ${pub}`)
      assert.equal((await rawRequest(srv.url, { method: 'POST', path: pub, headers: TEXT, body: 'two' })).status, 204, `POST ${pub}`)
      for (const q of ['?offset=-1', '?offset=-1&live=long-poll']) {
        const r = await rawRequest(srv.url, { path: `${pub}${q}` })
        assert.equal(r.status, 200, `GET ${pub}${q}`)
        assert.equal(r.body.toString('utf8'), 'one two', `GET ${pub}${q}: its bytes`)
      }

      // 2. Other spellings of private/a (and private/b, which must never come to exist).
      const spellings = (x) => [
        `private%2F${x}`,
        `private%2f${x}`,
        `public/..%2Fprivate%2F${x}`,
        `private%2F..%2Fprivate%2F${x}`,
        `private/..%2F${x}`,
        `private%2F.%2F${x}`,
        `%70rivate/${x}`,
        `%70rivate%2F${x}`,
        `public/../private/${x}`,
        `public/%2e%2e/private/${x}`,
        `public/%2E%2E%2Fprivate/${x}`,
        `./private/${x}`,
        `/private/${x}`,
        `public//../private/${x}`,
      ]
      const problems = []
      for (const spelt of [...spellings('a'), ...spellings('b')]) {
        for (const a of ATTEMPTS) {
          const target = `${P}${spelt}${a.q}`
          let r
          try {
            r = await rawRequest(srv.url, { method: a.method, path: target, headers: a.headers, body: a.body, timeoutMs: 10_000 })
          } catch (e) {
            problems.push(`${a.method} ${target}: ${e.message}`)
            continue
          }
          if (r.status !== 400 && r.status !== 403) problems.push(`${a.method} ${target}: ${r.status}`)
          if (r.body.includes(SECRET)) problems.push(`${a.method} ${target}: answered private/a's bytes`)
        }
      }

      // 3. The store, without the web server: private/a as it was, no private/b.
      const a = await store(srv, 'GET', `${P}private/a?offset=-1`)
      if (a.status !== 200) problems.push(`the store: GET private/a is ${a.status}`)
      else if (a.body.toString('utf8') !== SECRET) problems.push(`the store: private/a now holds ${JSON.stringify(a.body.toString('utf8'))}`)
      const b = await store(srv, 'HEAD', `${P}private/b`)
      if (b.status !== 404) problems.push(`the store: private/b exists (HEAD ${b.status})`)
      if (problems.length) assert.fail(`on ${kind}, ${problems.length} attempts got past ${RULE}:\n${problems.join('\n')}`)
    })
  })
}

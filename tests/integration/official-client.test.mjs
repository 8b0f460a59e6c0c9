// The official client (@durable-streams/client, pinned in tests/package.json,
// unmodified) reading private streams of an `auth = token` deployment.
//
// What a user relies on:
//   * With `headers: { Authorization: 'Bearer …' }` or `params: { token }` the
//     client reads a stream that has no public_read: catch-up (live: false),
//     long-poll and SSE (which the client reads with fetch, so the header
//     works there too). Live readers get every message appended after they
//     started, in order, once.
//   * Token refresh. The client evaluates a function given as a header or
//     param value again for every request it sends (the catch-up request,
//     each long-poll, each SSE (re)connection). lmstream ends a live response
//     when the token that authorized it expires, so the client's next request
//     carries whatever the function returns then: a function that returns a
//     fresh token once the old one has expired keeps the session going, and
//     every message appended before and after the expiry arrives once, in
//     order, with no error.
//   * A session whose function still returns the expired token once the
//     server refuses it is over, and the client stops (no loop):
//       - long-poll: `closed` rejects with a FetchError of status 401. The
//         client does not retry a 4xx (src/fetch.ts:127-134), does not call
//         the header function again, and does not call onError: onError
//         only wraps the first request of stream() (src/stream-api.ts:77-117);
//         a later failure goes to `closed` (src/response.ts:838-860).
//       - SSE: the server ends the SSE response when the token stops being
//         accepted (exp + auth_skew); the client's reconnection gets the 401
//         and `closed` rejects with a FetchError of status 401, as above.
//         (Had the server ended the response while still accepting the
//         token, the client would count three "short connections" and
//         "fall back to long-poll", which in 0.2.7 ends the session with no
//         error: #trySSEReconnect returns null, src/response.ts:464, and
//         #processSSEEvents reports `closed`, :538. An application should
//         treat `closed` settling either way as the end of the session.)
//     An application resumes with a new stream() from the offset of the last
//     batch it got; an onError handler on that call may refresh the token
//     and return {} to have the first request retried (the header function
//     is evaluated again). The messages still arrive once, in order.
//     (Paths are in node_modules/@durable-streams/client.)
//   * Without a token stream() rejects with a FetchError of status 401 after
//     one request (no retry loop); with a token that lacks `read`, 403.
//
// The deployments: LMSTREAM_OFFICIAL_CLIENT_SERVERS (space separated; default
// "lighttpd apache", the two that proxy live reads to lmstream-live). Each
// runs with `auth = token`, no public_read and `auth_skew = 2`: a token is
// accepted until 2 s after its exp, and a live response it authorized ends
// then.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { stream, FetchError } from '@durable-streams/client'
import { startServer, STREAM_PREFIX, sleep } from './lib/server.mjs'
import { makeKeys, nowS, runOwner } from './lib/tokens.mjs'

const SERVERS = (process.env.LMSTREAM_OFFICIAL_CLIENT_SERVERS || 'lighttpd apache')
  .split(/[\s,]+/).filter(Boolean)
const CLIENT_VERSION = createRequire(import.meta.url)('@durable-streams/client/package.json').version
const SKEW_S = 2
const tag = crypto.randomBytes(3).toString('hex')
const JSON_CT = { 'Content-Type': 'application/json' }

// ------------------------------------------------------------------ keys

const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-oc-keys-'))
const keys = makeKeys(keyDir, { owner: runOwner(SERVERS) })
after(() => fs.rmSync(keyDir, { recursive: true, force: true }))

const OC = ['oc/**']
/** Token names, for the request logs (a token itself is never printed). */
const NAMES = new Map()
function token(name, rights, opts) {
  const t = keys.token(rights, { sub: name, ...opts })
  NAMES.set(t, name)
  return t
}
const T = {
  read: token('read', { read: OC }),
  write: token('write', { write: OC }),
  other: token('read-elsewhere', { read: ['elsewhere/**'], write: OC }),
}

// ------------------------------------------------------------------ helpers

/** Poll pred every 25 ms; reject after ms. */
async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(25)
  }
}

/**
 * A fetch for the client's `fetch` option that records each request: when,
 * its live mode, where its token came from and which one, and the status.
 */
function recordingFetch() {
  const log = []
  const f = async (input, init) => {
    const u = new URL(String(input instanceof Request ? input.url : input))
    const auth = new Headers(init?.headers).get('authorization')
    const q = u.searchParams.get('token')
    const h = auth?.startsWith('Bearer ') ? auth.slice(7) : null
    const tok = h ?? q
    const e = {
      t: Date.now(), live: u.searchParams.get('live') || 'catch-up', offset: u.searchParams.get('offset'),
      via: [h && 'header', q && 'query'].filter(Boolean).join('+') || 'none',
      tok: tok ? NAMES.get(tok) || 'unknown' : 'none', status: null, contentType: null,
    }
    log.push(e)
    try {
      const res = await fetch(input, init)
      e.status = res.status
      e.contentType = res.headers.get('content-type')
      return res
    } catch (err) {
      e.status = `error: ${err.message}`
      throw err
    }
  }
  return { fetch: f, log }
}

const fmtLog = (log, t0 = log[0]?.t ?? 0) =>
  log.map((e) => `${e.t - t0}ms ${e.live} offset=${e.offset} ${e.via}:${e.tok} -> ${e.status ?? 'open'}`).join('\n    ')

/**
 * One reading session of the official client: stream() with opts, consumed
 * with subscribeJson. Returns its state: items, offset of the last batch,
 * upToDate, error (what `closed` rejected with), log of requests.
 */
async function follow(url, opts) {
  const rec = recordingFetch()
  const ac = new AbortController()
  const st = { items: [], offset: opts.offset ?? '-1', upToDate: false, ended: false, error: null, log: rec.log, ac }
  const res = await stream({ url, ...opts, fetch: rec.fetch, signal: ac.signal })
  st.res = res
  res.closed.then(() => { st.ended = true; st.endedAt = Date.now() }, (e) => { st.ended = true; st.endedAt = Date.now(); st.error = e })
  res.subscribeJson((batch) => {
    st.items.push(...batch.items)
    st.offset = batch.offset
    if (batch.upToDate) st.upToDate = true
  })
  st.stop = () => ac.abort()
  return st
}

function deployment(kind) {
  let srv
  const url = (name) => `${srv.url}${STREAM_PREFIX}${name}`
  const name = (what) => `oc/${what}-${tag}`

  async function create(n) {
    const r = await fetch(url(n), { method: 'PUT', headers: { Authorization: `Bearer ${T.write}`, ...JSON_CT } })
    await r.arrayBuffer()
    assert.ok(r.status === 201 || r.status === 200, `PUT ${n}: ${r.status}`)
  }
  async function append(n, msg) {
    const r = await fetch(url(n), {
      method: 'POST', headers: { Authorization: `Bearer ${T.write}`, ...JSON_CT }, body: JSON.stringify(msg),
    })
    await r.arrayBuffer()
    assert.ok(r.status === 204 || r.status === 200, `POST ${n}: ${r.status}`)
  }
  const msgs = (from, to) => Array.from({ length: to - from }, (_, k) => ({ i: from + k }))

  /**
   * Follow a fresh stream in live mode `live` with the credential options
   * `cred`; append messages after the reader is up to date; check each
   * arrives once, in order, through requests of that live mode.
   */
  async function followCase(live, cred, what, t) {
    const n = name(`${what}-${live}`)
    await create(n)
    for (const m of msgs(0, 2)) await append(n, m)
    const st = await follow(url(n), { live, ...cred })
    try {
      await waitFor(() => st.upToDate && st.items.length >= 2, 10_000, 'the reader to catch up')
      for (const m of msgs(2, 8)) { await append(n, m); await sleep(40) }
      await waitFor(() => st.items.length >= 8 || st.error, 10_000, `8 messages (have ${st.items.length})`)
      await sleep(300) // room for a duplicate to show
    } finally {
      st.stop()
    }
    assert.equal(st.error, null, `the session failed: ${st.error}\n    ${fmtLog(st.log)}`)
    assert.deepEqual(st.items, msgs(0, 8), `messages 0..7 once, in order\n    ${fmtLog(st.log)}`)
    const liveOk = st.log.filter((e) => e.live === live && e.status === 200)
    assert.ok(liveOk.length >= 1, `no ${live} request answered 200:\n    ${fmtLog(st.log)}`)
    if (live === 'sse') assert.match(liveOk[0].contentType || '', /text\/event-stream/)
    const want = cred.headers ? 'header' : 'query'
    assert.deepEqual(st.log.filter((e) => e.via !== want || e.tok !== 'read'), [],
      `every request carried the read token in the ${want}`)
    t.diagnostic(`${kind} ${live} (${want} token): ${st.log.length} requests: ${st.log.map((e) => `${e.live}:${e.status ?? 'open'}`).join(' ')}`)
  }

  describe(`official client ${CLIENT_VERSION} on ${kind}`, { timeout: 120_000 }, () => {
    before(async () => {
      const t0 = performance.now()
      srv = await startServer({
        label: `oc-${kind}`,
        server: kind,
        config: {
          auth: 'token',
          auth_key: keys.authKey,
          auth_skew: SKEW_S,
          long_poll_timeout: 5000,
          sse_lifetime: 30000,
        },
      })
      console.log(`${kind} started in ${Math.round(performance.now() - t0)} ms`)
    })
    after(async () => { await srv?.stop() })

    for (const [via, cred] of [
      ['header', { headers: { Authorization: `Bearer ${T.read}` } }],
      ['query', { params: { token: T.read } }],
    ]) {
      test(`catch-up read with a ${via} token`, async () => {
        const n = name(`catchup-${via}`)
        await create(n)
        for (const m of msgs(0, 5)) await append(n, m)
        const rec = recordingFetch()
        const res = await stream({ url: url(n), live: false, ...cred, fetch: rec.fetch })
        assert.deepEqual(await res.json(), msgs(0, 5))
        assert.ok(rec.log.length >= 1 && rec.log.every((e) => e.status === 200 && e.live === 'catch-up' && e.via === via),
          `requests:\n    ${fmtLog(rec.log)}`)
      })
      test(`long-poll follow with a ${via} token`, (t) => followCase('long-poll', cred, `lp-${via}`, t))
      test(`SSE follow with a ${via} token`, (t) => followCase('sse', cred, `sse-${via}`, t))
    }

    test('token refresh: a header or param function returns a fresh token once the first expires; no message lost or repeated', async (t) => {
      // tok1 expires 3-4 s from now; the function returns tok2 from then on.
      const exp1 = nowS() + 4
      const expMs = exp1 * 1000
      const tok1 = token('tok1', { read: OC }, { exp: exp1 })
      const tok2 = token('tok2', { read: OC })
      const current = () => (Date.now() < expMs ? tok1 : tok2)
      const calls = { tok1: 0, tok2: 0 }
      const counted = () => { const tk = current(); calls[NAMES.get(tk)]++; return tk }
      const variants = [
        ['header', 'long-poll', { headers: { Authorization: () => `Bearer ${counted()}` } }],
        ['header', 'sse', { headers: { Authorization: () => `Bearer ${counted()}` } }],
        ['param', 'long-poll', { params: { token: () => counted() } }],
        ['param', 'sse', { params: { token: () => counted() } }],
      ]
      const followers = []
      try {
        for (const [via, live, cred] of variants) {
          const n = name(`refresh-${via}-${live}`)
          await create(n)
          await append(n, { i: 0 })
          followers.push({ via, live, n, st: await follow(url(n), { live, ...cred }) })
        }
        await waitFor(() => followers.every((f) => f.st.upToDate && f.st.items.length >= 1), 10_000, 'every reader to catch up')
        assert.ok(Date.now() < expMs - 500, 'the readers caught up too late to see tok1 expire')
        // One message to every stream each 200 ms until 2.5 s after tok1's expiry.
        let i = 1
        let firstAfterExp = null
        while (Date.now() < expMs + 2500) {
          if (firstAfterExp === null && Date.now() >= expMs) firstAfterExp = i
          // One at a time: concurrent POSTs through mod_fcgid may wait a second for a worker.
          for (const f of followers) await append(f.n, { i })
          i++
          await sleep(200)
        }
        const total = i
        assert.ok(firstAfterExp >= 3 && total - firstAfterExp >= 2,
          `messages 1..${firstAfterExp - 1} were appended before tok1's exp, ${firstAfterExp}..${total - 1} after: want 2 or more each`)
        await waitFor(() => followers.every((f) => f.st.items.length >= total || f.st.error), 10_000,
          `${total} messages on every reader (have ${followers.map((f) => f.st.items.length).join(',')})`)
        await sleep(300)
        for (const { via, live, st } of followers) {
          const where = `${via} function, ${live}`
          const log = `\n    ${fmtLog(st.log, expMs)}`
          assert.equal(st.error, null, `${where}: the session failed: ${st.error}${log}`)
          assert.deepEqual(st.items, msgs(0, total), `${where}: messages 0..${total - 1} once, in order${log}`)
          const ok1 = st.log.filter((e) => e.tok === 'tok1' && e.status === 200)
          const ok2 = st.log.filter((e) => e.tok === 'tok2' && e.status === 200)
          assert.ok(ok1.some((e) => e.live === live), `${where}: no ${live} request with tok1 answered 200${log}`)
          assert.ok(ok2.some((e) => e.live === live), `${where}: no ${live} request with tok2 answered 200${log}`)
          assert.deepEqual(st.log.filter((e) => typeof e.status === 'number' && e.status >= 300), [], `${where}: a request failed${log}`)
          // With sse_lifetime 30 s, an SSE response opened with tok1 is only
          // ended this early because tok1 stopped being accepted (exp + auth_skew).
          const first2 = ok2[0].t - expMs
          assert.ok(first2 <= SKEW_S * 1000 + 2000, `${where}: the first request with tok2 came ${first2} ms after tok1's exp${log}`)
          t.diagnostic(`${kind} ${where}: ${total} messages (${total - firstAfterExp} appended after exp); ${ok1.length} requests with tok1, ${ok2.length} with tok2, ` +
            `the first with tok2 ${first2} ms after exp`)
        }
        assert.ok(calls.tok1 >= variants.length && calls.tok2 >= variants.length, `function calls: ${JSON.stringify(calls)}`)
      } finally {
        for (const f of followers) f.st.stop()
      }
    })

    test('a token not refreshed in time ends the session, with no retry and no further header call; resuming from the last offset loses and repeats nothing', async (t) => {
      const exp1 = nowS() + 3
      const expMs = exp1 * 1000
      const tok1 = token('stale', { read: OC }, { exp: exp1 })
      const tok2 = token('fresh', { read: OC })
      // Each reader's own token source: stale until its application refreshes it.
      const source = () => {
        const src = { refreshed: false, calls: 0 }
        src.header = () => { src.calls++; return `Bearer ${src.refreshed ? tok2 : tok1}` }
        return src
      }
      const followers = []
      const resumed = []
      try {
        for (const live of ['long-poll', 'sse']) {
          const n = name(`expire-${live}`)
          await create(n)
          await append(n, { i: 0 })
          const src = source()
          // (logWarnings: false: the SSE fallback below would print a warning about proxy buffering)
          followers.push({ live, n, src, st: await follow(url(n), { live, headers: { Authorization: src.header }, sseResilience: { logWarnings: false } }) })
        }
        await waitFor(() => followers.every((f) => f.st.upToDate && f.st.items.length >= 1), 10_000, 'every reader to catch up')
        let i = 1
        const publish = async () => { await Promise.all(followers.map((f) => append(f.n, { i }))); i++ }
        // Publish until both sessions have ended.
        const endBy = expMs + SKEW_S * 1000 + 5000
        while (!followers.every((f) => f.st.ended) && Date.now() < endBy) { await publish(); await sleep(200) }
        for (const { live, st } of followers) {
          const log = `\n    ${fmtLog(st.log, expMs)}`
          assert.ok(st.ended, `${live}: the session was still going ${endBy - expMs} ms after exp${log}`)
          assert.ok(st.endedAt >= expMs - 100, `${live}: the session ended ${expMs - st.endedAt} ms before exp${log}`)
          assert.deepEqual(st.log.filter((e) => ![200, 204, 401].includes(e.status) || e.tok !== 'stale'), [],
            `${live}: requests other than the stale token's 200, 204 and 401${log}`)
        }
        // Long-poll: a long-poll ends at exp + auth_skew at the latest, and
        // the next one gets 401; the client gives the FetchError to `closed`
        // and stops.
        {
          const { st } = followers[0]
          const log = `\n    ${fmtLog(st.log, expMs)}`
          assert.ok(st.error instanceof FetchError, `long-poll: closed settled with ${st.error?.name}: ${st.error?.message}${log}`)
          assert.equal(st.error.status, 401, `long-poll: ${st.error.message}`)
          assert.equal(st.log.at(-1).status, 401, `long-poll: the last request was not the 401${log}`)
          assert.ok(st.log.at(-1).t >= expMs + SKEW_S * 1000 - 100, `long-poll: 401 before exp + auth_skew${log}`)
        }
        // SSE: the server ends the SSE response at exp + auth_skew, and the
        // reconnection gets 401: a FetchError as above. (Were reconnections
        // ended at once while the token is still accepted, the client would
        // stop after three "short connections" with no error; see the top.)
        {
          const { st } = followers[1]
          const log = `\n    ${fmtLog(st.log, expMs)}`
          assert.ok(st.error instanceof FetchError && st.error.status === 401, `sse: closed settled with ${st.error?.name}: ${st.error?.message}${log}`)
          assert.ok(st.log.at(-1).t >= expMs + SKEW_S * 1000 - 100, `sse: 401 before exp + auth_skew${log}`)
        }
        // The client sends nothing more, and does not call the function again.
        const seen = followers.map((f) => [f.st.log.length, f.src.calls])
        await publish()
        await sleep(1000)
        assert.deepEqual(followers.map((f) => [f.st.log.length, f.src.calls]), seen,
          '[requests, header function calls] of each session grew after it ended')
        for (const { live, st } of followers) {
          const accepted = st.log.filter((e) => e.t >= expMs && e.status !== 401)
          t.diagnostic(`${kind} ${live}: session ended at exp+${st.endedAt - expMs} ms ` +
            `(${st.error ? `${st.error.name} ${st.error.status}` : 'closed without error'}); ${st.items.length} messages before; ` +
            `requests with the expired token accepted within auth_skew (${SKEW_S} s): ${accepted.length} ` +
            `(${[...new Set(accepted.map((e) => `${e.live}:${e.status}`))].join(' ')})`)
        }

        // Resume as an application does: a new stream() from the offset of
        // the last batch delivered; its onError refreshes and retries.
        for (const f of followers) {
          const errors = []
          const onError = (e) => {
            errors.push(e)
            if (e instanceof FetchError && e.status === 401) { f.src.refreshed = true; return {} }
            return undefined
          }
          // The function still returns the stale token: onError refreshes it.
          const st2 = await follow(url(f.n), { live: f.live, offset: f.st.offset, headers: { Authorization: f.src.header }, onError })
          assert.equal(errors.length, 1, `${f.live}: onError calls: ${errors.map((e) => e.message).join('; ')}`)
          assert.equal(errors[0].status, 401)
          resumed.push({ ...f, st2 })
        }
        await waitFor(() => resumed.every((r) => r.st2.upToDate), 10_000, 'the resumed readers to catch up')
        for (let k = 0; k < 5; k++) { await publish(); await sleep(50) }
        const total = i
        await waitFor(() => resumed.every((r) => r.st.items.length + r.st2.items.length >= total || r.st2.error), 10_000,
          `${total} messages on every reader`)
        await sleep(300)
        for (const { live, st, st2 } of resumed) {
          const log = `\n    ${fmtLog(st2.log, expMs)}`
          assert.equal(st2.error, null, `${live}: the resumed session failed: ${st2.error}${log}`)
          assert.deepEqual([...st.items, ...st2.items], msgs(0, total), `${live}: messages 0..${total - 1} once, in order${log}`)
          assert.equal(st2.log[0].status, 401, `${live}: the first request of the resumed session${log}`)
          // (the last request may still be open: no status yet)
          assert.ok(st2.log.slice(1).every((e) => e.tok === 'fresh' && [200, 204, null].includes(e.status)), `${live}${log}`)
          assert.ok(st2.log.some((e) => e.live === live && e.status === 200), `${live}: the resumed session went live${log}`)
        }
      } finally {
        for (const f of followers) f.st.stop()
        for (const r of resumed) r.st2.stop()
      }
    })

    for (const live of [false, 'long-poll', 'sse']) {
      test(`live: ${live}: no token is a 401 FetchError, a token without read a 403, each after one request`, async () => {
        const n = name(`denied-${live}`)
        await create(n)
        await append(n, { i: 0 })
        for (const [what, cred, status] of [
          ['no token', {}, 401],
          ['a token without read', { headers: { Authorization: `Bearer ${T.other}` } }, 403],
          ['a query token without read', { params: { token: T.other } }, 403],
        ]) {
          const rec = recordingFetch()
          const t0 = Date.now()
          const err = await stream({ url: url(n), live, ...cred, fetch: rec.fetch }).then(
            (res) => { res.cancel(); return null },
            (e) => e,
          )
          assert.ok(err, `${what}: stream() resolved`)
          assert.ok(err instanceof FetchError, `${what}: rejected with ${err.name}: ${err.message}`)
          assert.equal(err.status, status, `${what}: ${err.message}`)
          assert.equal(rec.log.length, 1, `${what}: ${rec.log.length} requests:\n    ${fmtLog(rec.log)}`)
          assert.ok(Date.now() - t0 < 5000, `${what}: took ${Date.now() - t0} ms`)
        }
      })
    }
  })
}

const T0 = performance.now()
after(() => console.log(`official-client tests took ${Math.round((performance.now() - T0) / 1000)} s`))

for (const kind of SERVERS) deployment(kind)

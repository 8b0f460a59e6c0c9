// lmstream-live restarts behind lighttpd and Apache.
//
// 1. K subscribers follow one JSON stream over SSE through the web server
//    with the official client (@durable-streams/client, unmodified) while M
//    messages are published at a steady rate and lmstream-live is killed with
//    SIGKILL twice; deploy/run restarts it each time. At the end every
//    subscriber must hold every message exactly once, in order.
//
//    The official client (0.2.6) reconnects by itself when an SSE response
//    ends properly, and retries 5xx answers and refused connections with
//    backoff while it (re)connects. When the daemon is killed, though, the
//    web server cuts the SSE response short (no final chunk); the client then
//    fails the session (`closed` rejects with "TypeError: terminated") and
//    does not resume. The test resumes it, as an application would: it opens
//    a new session with the offset of the last batch the client delivered.
//    The diagnostics count both kinds of reconnection.
//
// 2. SIGTERM sent to lmstream-live itself (not through deploy/run) drains it:
//    open SSE responses end properly (final chunk, no reset), a waiting
//    long-poll is answered, the process exits within a few seconds, and
//    deploy/run starts a new one that answers live requests again.
//
// Sizes: LMSTREAM_RESTART_SUBSCRIBERS (20) x LMSTREAM_RESTART_MESSAGES (200).
// LMSTREAM_RESTART_SERVERS (space-separated) limits the deployments run.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { DurableStream } from '@durable-streams/client'
import { startServer, sleep, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest, requestRetry, readAll, openSse } from './lib/http.mjs'

const K = Number(process.env.LMSTREAM_RESTART_SUBSCRIBERS || 20)
const M = Number(process.env.LMSTREAM_RESTART_MESSAGES || 200)
const KINDS = process.env.LMSTREAM_RESTART_SERVERS
  ? process.env.LMSTREAM_RESTART_SERVERS.split(/\s+/).filter(Boolean)
  : ['lighttpd', 'apache']
const INTERVAL_MS = 30          // one message every INTERVAL_MS
const KILL_AT = [0.3, 0.65]     // SIGKILL once this share of the messages is published
const DRAIN_SUBSCRIBERS = 10
const EXIT_WITHIN_MS = 5000     // SIGTERM -> process gone
const DELIVERY_BUDGET_MS = 30_000
const RESTART_RE = /lmstream-live exited \(([^)]*)\); restarted as pid (\d+)/

const tag = randomBytes(4).toString('hex')
const JSON_CT = { 'Content-Type': 'application/json' }

/** Wait until `at` (performance.now() time): paces the publisher, never used to assert. */
async function until(at) {
  const ms = at - performance.now()
  if (ms > 0) await sleep(ms)
}

/** A condition variable: wait(pred) resolves once pred() holds, re-checked on every poke(). */
function condition() {
  const waiters = new Set()
  return {
    poke() { for (const w of [...waiters]) w() },
    wait(pred, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = () => { if (pred()) { done(); resolve() } }
        const done = () => { clearTimeout(timer); waiters.delete(check) }
        const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)) }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
  }
}

/**
 * One subscriber: sessions of the official client, each resumed from the
 * offset of the last delivered batch when the client gives up on it.
 */
function startSubscriber(id, url, changed) {
  const st = {
    id, items: [], offset: '-1', sessions: 0, sseOpened: 0, cuts: [], errors: [], stopped: false, upToDate: false,
  }
  // Counts the SSE responses the client opens (its own reconnections included).
  const countingFetch = async (input, init) => {
    const res = await fetch(input, init)
    if (res.ok && /[?&]live=sse(&|$)/.test(String(input))) { st.sseOpened++; changed() }
    return res
  }
  const handle = new DurableStream({ url, contentType: 'application/json', fetch: countingFetch })
  st.done = (async () => {
    while (!st.stopped) {
      st.ac = new AbortController()
      st.sessions++
      let res
      try {
        res = await handle.stream({ offset: st.offset, live: 'sse', signal: st.ac.signal })
      } catch (e) {
        if (st.stopped) break
        st.errors.push(`stream(): ${e.message}`)
        await sleep(100) // the client retried 5xx itself; this is something else
        continue
      }
      res.subscribeJson((batch) => {
        st.items.push(...batch.items)
        st.offset = batch.offset
        if (batch.upToDate) st.upToDate = true
        changed()
      })
      try {
        await res.closed
        if (!st.stopped) st.cuts.push('closed')
      } catch (e) {
        if (!st.stopped) st.cuts.push(e.cause?.code || e.message)
      }
    }
  })()
  st.stop = async () => {
    st.stopped = true
    st.ac?.abort()
    let timer
    await Promise.race([st.done, new Promise((r) => { timer = setTimeout(r, 5000) })]) // never hang the test
    clearTimeout(timer)
  }
  return st
}

/** POST messages 0..M-1 at a steady rate, as an idempotent producer (a retry cannot duplicate). */
async function publishAll(srv, path, onProgress) {
  const t0 = performance.now()
  for (let i = 0; i < M; i++) {
    await until(t0 + i * INTERVAL_MS)
    const headers = { ...JSON_CT, 'Producer-Id': `restart-${tag}`, 'Producer-Epoch': '0', 'Producer-Seq': String(i) }
    const r = await requestRetry(srv.url, { method: 'POST', path, headers, body: JSON.stringify({ i }) }, 10_000)
    assert.ok(r.status === 200 || r.status === 204, `POST message ${i}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`)
    await onProgress(i + 1)
  }
}

function livePid(srv) {
  const pids = srv.livePids()
  assert.equal(pids.length, 1, `expected one lmstream-live, found ${JSON.stringify(pids)}\n${srv.logTail()}`)
  return pids[0]
}

for (const kind of KINDS) {
  describe(`restart[${kind}]`, () => {
    let srv
    before(async () => { srv = await startServer({ label: `restart-${kind}`, server: kind }) })
    after(async () => { await srv?.stop() })

    test(`${K} official-client subscribers get ${M} messages exactly once while lmstream-live is SIGKILLed twice`,
      { timeout: 60_000 }, async (t) => {
        const path = `${STREAM_PREFIX}restart-${tag}`
        const url = srv.url + path
        await DurableStream.create({ url, contentType: 'application/json' })

        const cond = condition()
        const subs = Array.from({ length: K }, (_, i) => startSubscriber(i, url, () => cond.poke()))
        const kills = []
        try {
          // Everyone is live on SSE before the first message.
          await cond.wait(() => subs.every((s) => s.upToDate && s.sseOpened >= 1), 20_000, 'every subscriber to be live')

          const killAt = KILL_AT.map((f) => Math.floor(M * f))
          const kill = async () => {
            const pid = livePid(srv)
            const opened = subs.map((s) => s.sseOpened)
            const restarted = srv.waitLog(RESTART_RE, 10_000)
            process.kill(pid, 'SIGKILL')
            const m = await restarted
            const k = { pid, why: m[1], newPid: Number(m[2]), opened }
            kills.push(k)
            assert.equal(k.why, 'killed by SIGKILL', m[0])
          }
          await publishAll(srv, path, async (published) => {
            const n = killAt.indexOf(published)
            if (n < 0) return
            if (n > 0) {
              // Every subscriber is back on SSE (through the new daemon) before the next kill.
              const prev = kills[n - 1]
              await cond.wait(() => subs.every((s, i) => s.sseOpened > prev.opened[i]), 20_000,
                'every subscriber to reopen SSE after the restart')
            }
            await kill()
          })

          await cond.wait(() => subs.every((s) => s.items.length >= M), DELIVERY_BUDGET_MS,
            `every subscriber to receive ${M} messages (have ${subs.map((s) => s.items.length).join(',')})`)
        } finally {
          await Promise.all(subs.map((s) => s.stop()))
        }

        const expected = Array.from({ length: M }, (_, i) => ({ i }))
        for (const s of subs) {
          assert.deepEqual(s.items, expected, `subscriber ${s.id}: messages differ from 0..${M - 1} exactly once in order`)
        }
        const stored = await readAll(srv.url, path, { retryMs: 10_000 })
        assert.deepEqual(stored.messages, expected, 'the stream holds every message once')

        assert.equal(kills.length, KILL_AT.length)
        assert.equal(new Set([...kills.map((k) => k.pid), ...kills.map((k) => k.newPid)]).size, kills.length + 1,
          'each kill hit the daemon started by the previous restart')
        assert.equal(livePid(srv), kills.at(-1).newPid, 'the last restarted daemon is running')

        const sessions = subs.reduce((a, s) => a + s.sessions, 0)
        const opened = subs.reduce((a, s) => a + s.sseOpened, 0)
        const cuts = new Map()
        for (const s of subs) for (const c of s.cuts) cuts.set(c, (cuts.get(c) || 0) + 1)
        const errors = subs.flatMap((s) => s.errors)
        t.diagnostic(`restart[${kind}]: ${K} subscribers x ${M} messages, ${kills.length} SIGKILLs ` +
          `(pids ${kills.map((k) => `${k.pid}->${k.newPid}`).join(', ')}); ${sessions} client sessions ` +
          `(${sessions - K} resumed by the test after the client gave up: ${[...cuts].map(([k, v]) => `${k} x${v}`).join(', ') || 'none'}); ` +
          `${opened} SSE responses opened (${opened - sessions} reconnections made by the client itself)` +
          (errors.length ? `; errors: ${errors.slice(0, 5).join(' | ')}` : ''))
        // Every subscriber was cut off by each kill, and came back.
        for (const s of subs) assert.ok(s.sseOpened >= KILL_AT.length + 1, `subscriber ${s.id} opened SSE only ${s.sseOpened} times`)
      })

    test('SIGTERM to lmstream-live drains: SSE responses end properly, it exits, deploy/run restarts it',
      { timeout: 30_000 }, async (t) => {
        const path = `${STREAM_PREFIX}drain-${tag}`
        const r0 = await rawRequest(srv.url, { method: 'PUT', path, headers: JSON_CT })
        assert.equal(r0.status, 201)
        await rawRequest(srv.url, { method: 'POST', path, headers: JSON_CT, body: '{"before":true}' })

        const subs = Array.from({ length: DRAIN_SUBSCRIBERS }, () => openSse(srv.url, `${path}?offset=-1&live=sse`))
        let longPoll
        try {
          for (const s of subs) {
            const r = await s.response
            assert.equal(r.status, 200)
            assert.equal(r.headers['x-lmstream-front'], 'live')
          }
          await Promise.all(subs.map((s) => s.waitFor((e) => e.type === 'control', 10_000, 'the first control event')))
          const tail = (await rawRequest(srv.url, { method: 'HEAD', path })).headers['stream-next-offset']
          const before = await srv.liveStats()
          longPoll = rawRequest(srv.url, { path: `${path}?offset=${tail}&live=long-poll`, timeoutMs: 20_000 })
            .then((r) => ({ ...r, at: performance.now() }), (e) => e)
          // The long-poll is waiting in the daemon once the daemon counted its request.
          const deadline = Date.now() + 5000
          while ((await srv.liveStats()).requests <= before.requests) {
            assert.ok(Date.now() < deadline, 'the long-poll never reached lmstream-live')
          }

          const pid = livePid(srv)
          const draining = srv.waitLog(/signal 15: draining (\d+) connection/, EXIT_WITHIN_MS)
          const restarted = srv.waitLog(RESTART_RE, EXIT_WITHIN_MS + 2000)
          const t0 = performance.now()
          process.kill(pid, 'SIGTERM')

          const ends = await Promise.all(subs.map((s) => s.ended))
          const tEnded = performance.now() - t0
          const m = await restarted
          const tExit = performance.now() - t0
          const nDraining = Number((await draining)[1])
          const lp = await longPoll

          for (const [i, e] of ends.entries()) {
            assert.equal(e.complete, true, `SSE ${i} was cut short (${e.error?.message || 'no final chunk'}) instead of ending properly`)
          }
          assert.equal(m[1], 'status 0', `lmstream-live after SIGTERM: ${m[0]}`)
          assert.ok(tExit < EXIT_WITHIN_MS, `lmstream-live took ${Math.round(tExit)} ms to exit after SIGTERM`)
          assert.ok(nDraining >= DRAIN_SUBSCRIBERS, `the daemon drained ${nDraining} connections, expected >= ${DRAIN_SUBSCRIBERS}`)
          assert.ok(!(lp instanceof Error), `the waiting long-poll failed: ${lp?.message}`)
          assert.ok(lp.status === 204 || lp.status === 200 || lp.status === 503, `long-poll during drain: ${lp.status}`)

          // The new daemon answers live requests through the web server.
          const liveBy = Date.now() + 10_000
          let r
          for (;;) {
            r = await rawRequest(srv.url, { path: `${path}?offset=-1&live=long-poll` }).catch((e) => e)
            if (!(r instanceof Error) && r.status === 200) break
            assert.ok(Date.now() < liveBy, `no live answer after the restart: ${r instanceof Error ? r.message : r.status}`)
            await sleep(100)
          }
          assert.equal(r.headers['x-lmstream-front'], 'live')
          assert.equal(livePid(srv), Number(m[2]))
          const lastEvents = subs.map((s) => s.events.at(-1)?.type)
          t.diagnostic(`drain[${kind}]: ${nDraining} connections drained; ${DRAIN_SUBSCRIBERS} SSE responses ended properly ` +
            `within ${Math.round(tEnded)} ms (last event: ${[...new Set(lastEvents)].join('/')}); long-poll answered ${lp.status} ` +
            `after ${Math.round(lp.at - t0)} ms; exit and restart logged after ${Math.round(tExit)} ms`)
        } finally {
          for (const s of subs) s.close()
          await longPoll
        }
      })
  })
}

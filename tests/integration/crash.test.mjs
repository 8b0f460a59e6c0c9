// Crash test: acknowledged writes survive kill -9 of FastCGI workers.
//
// K idempotent producers append to one JSON stream while a killer sends
// SIGKILL to a random lmstream.fcgi worker of this deployment every 20-150 ms.
// Every POST is retried with the same (Producer-Id, epoch, seq) until it is
// acknowledged (200, or 204 for a duplicate). Afterwards the stream must hold
// every acknowledged message exactly once, in per-producer order, nothing that
// was never sent, and parse as JSON. A second test kills workers during 4 MiB
// binary appends and checks all-or-nothing.
//
// Sizes: LMSTREAM_CRASH_PRODUCERS (8) x LMSTREAM_CRASH_MESSAGES (250).

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { startServer, sleep, IS_REFERENCE, SERVER_KIND, STREAM_PREFIX } from './lib/server.mjs'
import { readAll, requestRetry } from './lib/http.mjs'

const K = Number(process.env.LMSTREAM_CRASH_PRODUCERS || 8)
const M = Number(process.env.LMSTREAM_CRASH_MESSAGES || 250)
// A guard against a hang, not a speed target: the killer waits for an
// acknowledgement between kills, so producers always progress, however slowly
// (sanitized) workers start.
const PRODUCE_BUDGET_MS = 240_000
const REQUEST_TIMEOUT_MS = 10_000
const BIG = 4 * 1024 * 1024
const BIG_TRIALS = 8

let srv
const tag = randomBytes(4).toString('hex')

before(async () => { srv = await startServer({ label: 'crash' }) })
after(async () => { await srv?.stop() })

/**
 * Kill a random worker of our deployment every 20-150 ms until stopped; after
 * each kill, wait until some write was acknowledged again (progress.acks moves),
 * so the kills interrupt work without starving it.
 */
function startKiller(progress) {
  const state = { kills: 0, running: true, seenWorkers: new Set() }
  state.done = (async () => {
    let acksAtKill = -1
    while (state.running) {
      await sleep(20 + Math.random() * 130)
      while (state.running && progress.acks === acksAtKill) await sleep(5)
      if (!state.running) break
      const pids = srv.workers()
      pids.forEach((p) => state.seenWorkers.add(p))
      if (!pids.length) continue
      const victim = pids[Math.floor(Math.random() * pids.length)]
      try { process.kill(victim, 'SIGKILL'); state.kills++; acksAtKill = progress.acks } catch { /* already gone */ }
    }
  })()
  state.stop = async () => { state.running = false; await state.done }
  return state
}

function killAllWorkers() {
  let n = 0
  for (const p of srv.workers()) {
    try { process.kill(p, 'SIGKILL'); n++ } catch { /* already gone */ }
  }
  return n
}

async function post(url, headers, body) {
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text }
}

async function createStream(path, contentType) {
  const r = await requestRetry(srv.url, { method: 'PUT', path, headers: { 'Content-Type': contentType } }, 5000)
  assert.equal(r.status, 201, `PUT ${path}: ${r.status} ${r.body}`)
}

test('idempotent producers lose nothing and duplicate nothing while workers are SIGKILLed', { timeout: PRODUCE_BUDGET_MS + 60_000 }, async (t) => {
  const path = `${STREAM_PREFIX}crash-${tag}`
  const url = srv.url + path
  await createStream(path, 'application/json')

  const progress = { acks: 0 }
  const killer = srv.canKill ? startKiller(progress) : null
  const deadline = Date.now() + PRODUCE_BUDGET_MS
  const acked = Array.from({ length: K }, () => [])   // seqs acknowledged, per producer
  const sent = new Array(K).fill(-1)                 // highest seq ever sent, per producer
  const stats = { requests: 0, retries: 0, accepted: 0, duplicates: 0, errors: new Map() }
  let failure = null

  async function producer(p) {
    const id = `crash-${tag}-p${p}`
    for (let s = 0; s < M; s++) {
      const body = JSON.stringify({ p, s })
      const headers = {
        'Content-Type': 'application/json',
        'Producer-Id': id,
        'Producer-Epoch': '0',
        'Producer-Seq': String(s),
      }
      sent[p] = s
      let last = 'nothing'
      for (;;) {
        if (failure) return
        if (Date.now() > deadline) {
          throw new Error(`producer ${p} stuck at seq ${s} when the time budget ran out; last answer: ${last}`)
        }
        stats.requests++
        let r
        try {
          r = await post(url, headers, body)
        } catch (e) {
          const key = e.cause?.code || e.name || 'error'
          stats.errors.set(key, (stats.errors.get(key) || 0) + 1)
          last = `${key} ${e.message}`
          stats.retries++
          await sleep(5 + Math.random() * 20)
          continue
        }
        if (r.status >= 500) {
          stats.errors.set(r.status, (stats.errors.get(r.status) || 0) + 1)
          last = `${r.status} ${r.text.slice(0, 200)}`
          stats.retries++
          await sleep(5 + Math.random() * 20)
          continue
        }
        if (r.status === 200 || r.status === 204) {
          const echoed = r.headers.get('producer-seq')
          if (echoed !== null && Number(echoed) !== s) {
            throw new Error(`producer ${p} seq ${s}: ${r.status} with Producer-Seq ${echoed}`)
          }
          if (r.status === 200) stats.accepted++
          else stats.duplicates++
          acked[p].push(s)
          progress.acks++
          break
        }
        const exp = r.headers.get('producer-expected-seq')
        throw new Error(`producer ${p} seq ${s}: unexpected ${r.status}` +
          (exp !== null ? ` (Producer-Expected-Seq ${exp}: an acknowledged append was lost)` : '') +
          `: ${r.text.slice(0, 200)}`)
      }
    }
  }

  try {
    await Promise.all(Array.from({ length: K }, (_, p) => producer(p).catch((e) => { failure ??= e; throw e })))
  } finally {
    if (killer) await killer.stop()
  }

  // Read everything back (a worker may still be respawning: retry 5xx).
  const all = await readAll(srv.url, path, { retryMs: 15_000 })
  const msgs = all.messages

  const seen = Array.from({ length: K }, () => new Map()) // seq -> count
  const lastSeq = new Array(K).fill(-1)
  for (const [i, m] of msgs.entries()) {
    assert.ok(m && typeof m === 'object' && !Array.isArray(m), `message ${i} is not an object: ${JSON.stringify(m)}`)
    assert.deepEqual(Object.keys(m).sort(), ['p', 's'], `message ${i} has unexpected shape: ${JSON.stringify(m)}`)
    const { p, s } = m
    assert.ok(Number.isInteger(p) && p >= 0 && p < K, `message ${i}: unknown producer ${p}`)
    assert.ok(Number.isInteger(s) && s >= 0 && s <= sent[p], `message ${i}: producer ${p} seq ${s} was never sent`)
    assert.ok(s > lastSeq[p], `message ${i}: producer ${p} seq ${s} after seq ${lastSeq[p]} (out of order or duplicated)`)
    lastSeq[p] = s
    seen[p].set(s, (seen[p].get(s) || 0) + 1)
  }
  let checked = 0
  for (let p = 0; p < K; p++) {
    for (const s of acked[p]) {
      assert.equal(seen[p].get(s), 1, `acknowledged message producer ${p} seq ${s} appears ${seen[p].get(s) || 0} times`)
      checked++
    }
  }
  assert.equal(checked, K * M, 'every message was acknowledged')
  assert.equal(msgs.length, K * M, `stream holds ${msgs.length} messages, expected ${K * M}`)

  const errs = [...stats.errors].map(([k, v]) => `${k}:${v}`).join(' ') || 'none'
  const summary = `crash[${SERVER_KIND}]: ${killer ? killer.kills : 0} kills` +
    `${killer ? ` of ${killer.seenWorkers.size} distinct workers` : ' (reference server: kill phase skipped)'}, ` +
    `${checked} messages checked, ${stats.requests} POSTs, ${stats.retries} retried (${errs}), ` +
    `${stats.duplicates} acknowledged as duplicates, ${all.pages.length} read pages`
  t.diagnostic(summary)

  if (killer && SERVER_KIND === 'lighttpd') {
    assert.ok(killer.kills > 0, `no ${'lmstream.fcgi'} worker of this deployment was found to kill\n${srv.logTail()}`)
  }
})

test('a 4 MiB binary append killed mid-way is all or nothing, and its retry lands once', { timeout: 90_000 }, async (t) => {
  const body = randomBytes(BIG)
  const headers = (seq) => ({
    'Content-Type': 'application/octet-stream',
    'Producer-Id': `big-${tag}`,
    'Producer-Epoch': '0',
    'Producer-Seq': String(seq),
  })

  // Baseline without kills: measures how long a big append takes.
  const base = `${STREAM_PREFIX}big-${tag}-0`
  await createStream(base, 'application/octet-stream')
  const t0 = Date.now()
  const r0 = await post(srv.url + base, headers(0), body)
  const took = Date.now() - t0
  assert.equal(r0.status, 200, `baseline append: ${r0.status} ${r0.text}`)
  const b0 = await readAll(srv.url, base, { retryMs: 15_000 })
  assert.equal(b0.bytes.length, BIG)
  assert.ok(b0.bytes.equals(body), 'baseline: bytes read back differ from bytes sent')

  const outcome = { whole: 0, none: 0, kills: 0, interrupted: 0 }
  if (srv.canKill) {
    for (let i = 1; i <= BIG_TRIALS; i++) {
      const path = `${STREAM_PREFIX}big-${tag}-${i}`
      await createStream(path, 'application/octet-stream')
      const delay = Math.floor(Math.random() * (took * 2 + 20))
      const killer = sleep(delay).then(() => { outcome.kills += killAllWorkers() })
      let first
      try { first = await post(srv.url + path, headers(0), body) } catch (e) { first = e }
      await killer

      const after = await readAll(srv.url, path, { retryMs: 15_000 })
      const firstOk = !(first instanceof Error) && (first.status === 200 || first.status === 204)
      const what = first instanceof Error ? (first.cause?.code || first.name) : first.status
      if (!firstOk) outcome.interrupted++
      assert.ok(after.bytes.length === 0 || after.bytes.length === BIG,
        `trial ${i} (kill at ${delay} ms, append -> ${what}): stream holds ${after.bytes.length} bytes, torn append`)
      if (after.bytes.length === BIG) {
        assert.ok(after.bytes.equals(body), `trial ${i}: stored bytes differ from bytes sent`)
        outcome.whole++
      } else {
        assert.ok(!firstOk, `trial ${i}: append acknowledged (${what}) but stream is empty`)
        outcome.none++
      }

      // Retry with the same producer seq until acknowledged: exactly one copy.
      const deadline = Date.now() + 20_000
      let retry
      for (;;) {
        try { retry = await post(srv.url + path, headers(0), body) } catch (e) { retry = e }
        if (!(retry instanceof Error) && retry.status < 500) break
        assert.ok(Date.now() < deadline, `trial ${i}: retry never acknowledged`)
        await sleep(50)
      }
      const expected = after.bytes.length === BIG ? 204 : 200
      assert.equal(retry.status, expected,
        `trial ${i}: retry of ${after.bytes.length ? 'a stored' : 'an unstored'} append -> ${retry.status} ${retry.text}`)
      const final = await readAll(srv.url, path, { retryMs: 15_000 })
      assert.equal(final.bytes.length, BIG, `trial ${i}: after retry the stream holds ${final.bytes.length} bytes`)
      assert.ok(final.bytes.equals(body), `trial ${i}: bytes after retry differ from bytes sent`)
    }
  }
  const summary = `big-append[${SERVER_KIND}]: baseline ${took} ms; ` + (srv.canKill
    ? `${BIG_TRIALS} trials with kills (${outcome.kills} kills), ${outcome.interrupted} appends interrupted; ` +
      `afterwards ${outcome.whole} streams whole, ${outcome.none} empty, all exactly one copy after retry`
    : 'kill trials skipped (reference server)')
  t.diagnostic(summary)
})

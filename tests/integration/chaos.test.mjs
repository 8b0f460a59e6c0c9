// Chaos test: SIGKILL of every kind of process of a deployment, under
// idempotent producers and live readers; nothing acknowledged is lost or
// duplicated, and live readers see every message exactly once, in order.
//
// For each deployment (lighttpd, apache, standalone), started by deploy/run:
//  - PRODUCERS idempotent producers append batches of 1 to 3 JSON messages
//    (each message carries a pad of up to 2000 characters derived from its
//    identity) to one stream, with Producer-Id / -Epoch / -Seq, retrying the
//    same seq after any error, 5xx or dropped connection until acknowledged;
//  - two live readers, one over SSE and one over long-poll, through the web
//    server, resume from their last offset after any error or cut;
//  - KILLS times, after a random pause, a process gets SIGKILL, round-robin
//    over the kinds the deployment has: an lmstream.fcgi worker (the web
//    server starts another), lmstream-live (deploy/run restarts it; after 5
//    restarts within 60 s it gives up and exits), the web server's main
//    process, lighttpd or Apache's parent apache2 (deploy/run then stops
//    everything and exits 1). A deploy/run that exited is started again on
//    the same port and data directory (lib/server.mjs respawn(), as systemd
//    would restart the unit). Standalone has only lmstream-live to kill.
//    Each kill waits until the killed process is replaced and the stream
//    answers again before the next one.
// Then the producers finish their current append, and the test checks with
// a catch-up read of the whole stream: every acknowledged append is there
// exactly once, whole (its messages contiguous, pads intact) and in its
// producer's order, and nothing else is; and each live reader, once caught
// up, holds exactly the stream's messages, in the stream's order.
//
// Environment:
//   LMSTREAM_CHAOS_KILLS      SIGKILLs per deployment (default 10). The full
//                             run: LMSTREAM_CHAOS_KILLS=100
//                             LMSTREAM_CHAOS_SERVERS=lighttpd node --test
//                             integration/chaos.test.mjs   (a few minutes)
//   LMSTREAM_CHAOS_SERVERS    deployments, space-separated (default
//                             "lighttpd apache standalone")
//   LMSTREAM_CHAOS_PRODUCERS  idempotent producers (default 3)

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { startServer, sleep, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest, requestRetry, readAll } from './lib/http.mjs'
import { startProducer, startReader, runKiller, schedule, batchOf, padOf, counts } from './lib/chaos.mjs'

const KILLS = Number(process.env.LMSTREAM_CHAOS_KILLS || 10)
const KINDS = (process.env.LMSTREAM_CHAOS_SERVERS || 'lighttpd apache standalone').split(/\s+/).filter(Boolean)
const PRODUCERS = Number(process.env.LMSTREAM_CHAOS_PRODUCERS || 3)
const READERS = ['sse', 'long-poll']
const TARGETS = { lighttpd: ['worker', 'live', 'web'], apache: ['worker', 'live', 'web'], standalone: ['live'] }
const RECOVER_MS = 60_000   // a killed process is back (generous: the machine may be busy)
const CATCH_UP_MS = 60_000  // live readers reach the end of the stream
// Short live responses: readers also resume after responses that end properly.
const CONFIG = { sse_lifetime: 5000, long_poll_timeout: 3000 }

const tag = randomBytes(4).toString('hex')
const key = (m) => `${m.p}/${m.s}/${m.i}`

/** Wait for pred() (re-checked every 100 ms); false after ms. */
async function waitFor(pred, ms) {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) return false
    await sleep(100)
  }
  return true
}

/**
 * Check the stream's messages against what the producers sent: every
 * acknowledged append exactly once and whole, in each producer's order,
 * nothing else. Returns the number of appends checked.
 */
function checkStream(msgs, producers) {
  const K = producers.length
  const last = new Array(K).fill(null)        // [s, i] of producer p's last message
  const found = Array.from({ length: K }, () => new Map()) // s -> messages of that append seen
  for (const [x, m] of msgs.entries()) {
    assert.ok(m && typeof m === 'object' && !Array.isArray(m), `message ${x} is not an object: ${JSON.stringify(m)?.slice(0, 200)}`)
    assert.deepEqual(Object.keys(m).sort(), ['i', 'n', 'p', 'pad', 's'], `message ${x}: unexpected shape ${JSON.stringify(m).slice(0, 200)}`)
    const { p, s, i, n } = m
    assert.ok(Number.isInteger(p) && p >= 0 && p < K, `message ${x}: unknown producer ${p}`)
    assert.ok(Number.isInteger(s) && s >= 0 && s <= producers[p].sent, `message ${x}: producer ${p} seq ${s} was never sent`)
    const batch = batchOf(tag, p, s)
    assert.ok(Number.isInteger(i) && i >= 0 && i < batch.length && n === batch.length,
      `message ${x}: producer ${p} seq ${s} message ${i} of ${n}, but that append had ${batch.length} messages`)
    assert.ok(m.pad === padOf(tag, p, s, i),
      `message ${x} (${key(m)}): pad of ${m.pad.length} characters differs from the ${batch[i].pad.length} sent (torn or corrupted)`)
    const prev = last[p]
    assert.ok(!prev || s > prev[0] || (s === prev[0] && i > prev[1]),
      `message ${x}: producer ${p} ${s}/${i} after ${prev?.join('/')} (out of order, or duplicated)`)
    if (i > 0) {
      const before = msgs[x - 1]
      assert.ok(before && before.p === p && before.s === s && before.i === i - 1,
        `message ${x} (${key(m)}) does not follow ${p}/${s}/${i - 1}: the append is not contiguous (after ${before && key(before)})`)
    }
    last[p] = [s, i]
    found[p].set(s, (found[p].get(s) || 0) + 1)
  }
  let appends = 0
  for (const [p, pr] of producers.entries()) {
    for (const s of pr.acked) {
      const n = batchOf(tag, p, s).length
      assert.equal(found[p].get(s) || 0, n, `acknowledged append producer ${p} seq ${s}: ${found[p].get(s) || 0} of its ${n} messages in the stream`)
      appends++
    }
    for (const [s, c] of found[p]) {
      assert.ok(pr.acked.includes(s) || c === batchOf(tag, p, s).length,
        `unacknowledged append producer ${p} seq ${s} is in the stream in part (${c} messages)`)
    }
  }
  const expected = producers.reduce((a, pr, p) => a + pr.acked.reduce((b, s) => b + batchOf(tag, p, s).length, 0), 0)
  assert.equal(msgs.length, expected, `the stream holds ${msgs.length} messages, the acknowledged appends ${expected}`)
  return appends
}

/** A live reader's messages must be the stream's, exactly once each and in its order. */
function checkReader(r, msgs) {
  const n = Math.min(r.items.length, msgs.length)
  for (let x = 0; x < n; x++) {
    const a = r.items[x]
    const b = msgs[x]
    if (!a || a.p !== b.p || a.s !== b.s || a.i !== b.i || a.pad !== b.pad) {
      const dup = r.items.slice(0, x).some((m) => m && key(m) === key(a))
      assert.fail(`${r.id} (${r.mode}): message ${x} is ${a ? key(a) : JSON.stringify(a)}, the stream has ${key(b)} there` +
        (dup ? ` (${key(a)} was already delivered: a duplicate)` : ''))
    }
  }
  assert.equal(r.items.length, msgs.length,
    `${r.id} (${r.mode}) received ${r.items.length} messages, the stream holds ${msgs.length}` +
    (r.items.length > msgs.length ? ` (extra: ${r.items.slice(msgs.length, msgs.length + 3).map(key).join(', ')})` : ''))
}

for (const kind of KINDS) {
  describe(`chaos[${kind}]`, () => {
    let srv
    before(async () => {
      srv = await startServer({ label: `chaos-${kind}`, server: kind, config: CONFIG, workers: kind === 'apache' ? 4 : undefined })
    })
    after(async () => { await srv?.stop() })

    test(`${KILLS} SIGKILLs of ${TARGETS[kind].join(', ')}: acknowledged appends once and in order, live readers see each message once`,
      { timeout: 180_000 + KILLS * 20_000 }, async (t) => {
        const path = `${STREAM_PREFIX}chaos-${kind}-${tag}`
        const put = await requestRetry(srv.url, { method: 'PUT', path, headers: { 'Content-Type': 'application/json' } }, 15_000)
        assert.equal(put.status, 201, `PUT ${path}: ${put.status} ${put.body}`)

        const readers = READERS.map((mode, x) => startReader({ baseUrl: srv.url, path, mode, id: `reader ${x}` }))
        const producers = Array.from({ length: PRODUCERS }, (_, p) => startProducer({ baseUrl: srv.url, path, tag, p }))
        const healthy = async () => {
          try {
            return (await rawRequest(srv.url, { method: 'HEAD', path, timeoutMs: 5000 })).status === 200
          } catch { return false }
        }
        // Whatever happens, no client outlives the test (it would keep node running).
        t.after(() => Promise.all([...producers.map((pr) => pr.abort()), ...readers.map((r) => r.stop())]))
        const plan = schedule(TARGETS[kind], KILLS)
        let kills
        try {
          kills = await runKiller({
            srv, plan, healthy, recoverMs: RECOVER_MS,
            stopped: () => producers.some((pr) => pr.faults.length),
          })
        } finally {
          await Promise.all(producers.map((pr) => pr.stop()))
        }
        if (!srv.running()) await srv.respawn({ timeoutMs: RECOVER_MS })
        const faults = producers.flatMap((pr) => pr.faults)
        assert.deepEqual(faults, [], `producers got answers no kill explains:\n${faults.join('\n')}\n${srv.logTail(30)}`)

        // The whole stream, by catch-up reads (retried while something restarts).
        const all = await readAll(srv.url, path, { retryMs: RECOVER_MS })
        const msgs = all.messages
        const appends = checkStream(msgs, producers)
        assert.ok(appends > 0, 'no append was acknowledged')

        // The live readers catch up with the end of the stream.
        const caughtUp = await waitFor(() => readers.every((r) => r.items.length >= msgs.length &&
          (r.offset === all.nextOffset || r.items.length > msgs.length)), CATCH_UP_MS)
        await Promise.all(readers.map((r) => r.stop()))
        for (const r of readers) {
          assert.deepEqual(r.faults, [], `${r.id} (${r.mode}) got data no kill explains:\n${r.faults.join('\n')}`)
          checkReader(r, msgs)
        }
        assert.ok(caughtUp, `live readers did not reach the end within ${CATCH_UP_MS} ms: ` +
          readers.map((r) => `${r.mode} ${r.items.length}/${msgs.length} at ${r.offset}`).join(', '))

        const byTarget = {}
        for (const k of kills) byTarget[k.target] = (byTarget[k.target] || 0) + (k.pid ? 1 : 0)
        const missed = kills.filter((k) => !k.pid)
        const posts = producers.reduce((a, pr) => a + pr.stats.posts, 0)
        const dups = producers.reduce((a, pr) => a + pr.stats.duplicates, 0)
        const errs = new Map()
        for (const pr of producers) for (const [k, v] of pr.stats.errors) errs.set(k, (errs.get(k) || 0) + v)
        const respawns = kills.filter((k) => /respawned/.test(k.outcome)).length
        t.diagnostic(`chaos[${kind}]: ${kills.length - missed.length} SIGKILLs (${Object.entries(byTarget).map(([k, v]) => `${k} ${v}`).join(', ')}` +
          `${missed.length ? `; ${missed.length} found no process` : ''}), deploy/run respawned ${respawns} times` +
          `${srv.strayWeb?.length ? ` (${srv.strayWeb.length} web server processes outlived theirs, killed)` : ''}; ` +
          `${appends} appends (${msgs.length} messages) checked, ${posts} POSTs (${dups} answered as duplicates; errors ${counts(errs)})`)
        for (const r of readers) {
          t.diagnostic(`chaos[${kind}] ${r.mode} reader: ${r.items.length} messages in ${r.responses} responses, ` +
            `${r.resumes} resumptions (errors ${counts(r.errors)})` +
            [...r.samples].map(([k, v]) => `; first ${k}: ${JSON.stringify(v)}`).join(''))
        }
        t.diagnostic(`chaos[${kind}] kills${kills.length > 30 ? ' (the first 30)' : ''}: ${kills.slice(0, 30).map((k) => `${k.target}${k.pid ? ` ${k.pid}` : ''}: ${k.outcome}${k.ms !== null ? ` (${k.ms} ms)` : ''}`).join('; ')}`)
        assert.equal(missed.length, 0, `targets without a process to kill: ${missed.map((k) => k.target).join(', ')}`)

        // Stop here, to see how the deployment shuts down after all this. A
        // web server child that crashed (Apache: "AH00052: child pid N exit
        // signal Segmentation fault") is reported, not failed on.
        const s = srv
        srv = null
        await s.stop()
        const crashes = s.logTail(2000).split('\n').filter((l) => /AH00052|Segmentation fault|exit signal/.test(l))
        if (crashes.length) t.diagnostic(`chaos[${kind}]: crashes in the log (the last 64 KiB): ${crashes.join(' | ')}`)
      })
  })
}

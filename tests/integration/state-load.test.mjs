// Snapshots under load: while producers append change events to a State
// stream, many clients each take a snapshot and tail from its offset, the way
// an application hydrates and then subscribes. Behind lighttpd (FastCGI
// workers and lmstream-live) and with lmstream-live alone.
//
// - 3 producers append inserts, updates, upserts and deletes over 300 keys of
//   two types for about 10 s (and one `reset` half-way), in batches of 1-6,
//   in bursts of 400 ms with 200 ms of quiet between them (the clients catch
//   up, wait, and are then woken together by one commit).
//   The state stays above 64 KiB, so a snapshot over SSE comes in several
//   parts, and a part may find the state moved on (the server then sends a
//   `reset` control and starts again).
// - 24 clients start one after the other during those 10 s, in three kinds
//   (half of them lp):
//     lp:  GET ?snapshot (or ?snapshot&live=long-poll), then long-poll from
//          its Stream-Next-Offset;
//     sse: GET ?snapshot, then ?offset=<its offset>&live=sse;
//     one: ?snapshot&live=sse, the snapshot and the tail in one request.
//   Every other client restarts once: it drops its connection (or abandons a
//   long-poll) at a random moment and resumes from the last offset it
//   committed, or takes the snapshot again if it had not got it yet.
// - At the end, for every client:
//     * its snapshot equals the state built by MaterializedState
//       (@durable-streams/state) from the log up to the snapshot's offset;
//     * its offsets form one chain from the snapshot's offset to the final
//       offset: each answer starts where the one before ended (no gap, no
//       overlap);
//     * the events it applied after its snapshot are exactly a catch-up read
//       of the stream from the snapshot's offset: nothing twice, nothing
//       missing;
//     * its state equals the final ?snapshot.
//
// LMSTREAM_STATE_SEED fixes the random choices (the seed is printed); what
// the clients see still depends on timing.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { MaterializedState, isChangeEvent } from '@durable-streams/state'
import { rng, applyAll } from './lib/state.mjs'
import { startServer, sleep, IS_REFERENCE } from './lib/server.mjs'
import { rawRequest, readAll, openSse } from './lib/http.mjs'

const JSON_CT = { 'Content-Type': 'application/json' }
const SEED = Number(process.env.LMSTREAM_STATE_SEED || (Date.now() % 1_000_000))
const PRODUCE_MS = 10_000
const PRODUCERS = 3
const KEYS = 300
const TYPES = ['task', 'user']
const CLIENTS = 24
const KINDS = ['lp', 'sse', 'lp', 'one']
const OFFSET_RE = /^\d{16}_\d{16}$/
// Short long-polls, so that a client waiting at the final offset hears of it soon.
const CONFIG = { long_poll_timeout: 2000 }

/** Sorted JSON lines [type, key, value] of a MaterializedState. */
function entries(state) {
  const out = []
  for (const t of state.types) for (const [k, v] of state.getType(t)) out.push(JSON.stringify([t, k, v]))
  return out.sort()
}

function assertOffset(o, what) {
  assert.ok(typeof o === 'string' && OFFSET_RE.test(o), `${what}: not an offset: ${JSON.stringify(o)}`)
  return o
}

/** Snapshot rows: each (type, key) once, each an insert. */
function checkRows(rows, what) {
  const seen = new Set()
  for (const r of rows) {
    assert.ok(isChangeEvent(r) && r.headers.operation === 'insert', `${what}: a snapshot row is an insert: ${JSON.stringify(r)}`)
    const id = JSON.stringify([r.type, r.key])
    assert.ok(!seen.has(id), `${what}: ${id} twice in one snapshot`)
    seen.add(id)
  }
}

/**
 * A whole snapshot over GET, following Stream-Snapshot-Next pages and starting
 * again when a later page answers 409. Returns { rows, offset, cursor }.
 */
async function getSnapshot(base, path, longPoll) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = `${path}?snapshot${longPoll ? '&live=long-poll' : ''}`
    let r = await rawRequest(base, { path: first })
    assert.equal(r.status, 200, `GET ${first} -> ${r.status}: ${r.body}`)
    const offset = assertOffset(r.headers['stream-next-offset'], `GET ${first}`)
    const cursor = r.headers['stream-cursor']
    if (longPoll) assert.ok(cursor, `GET ${first}: a Stream-Cursor`)
    const items = JSON.parse(r.body.toString('utf8'))
    assert.deepEqual(items[0], { headers: { control: 'snapshot-start', offset } })
    let conflict = false
    while (r.headers['stream-snapshot-next']) {
      r = await rawRequest(base, { path: `${path}?snapshot=${encodeURIComponent(r.headers['stream-snapshot-next'])}` })
      if (r.status === 409) { conflict = true; break }
      assert.equal(r.status, 200, `snapshot page -> ${r.status}: ${r.body}`)
      assert.equal(r.headers['stream-next-offset'], offset, 'every page names the same offset')
      items.push(...JSON.parse(r.body.toString('utf8')))
    }
    if (conflict) continue
    assert.deepEqual(items.at(-1), { headers: { control: 'snapshot-end', offset } })
    return { rows: items.slice(1, -1), offset, cursor }
  }
  throw new Error(`${path}: no complete snapshot in 50 attempts`)
}

/**
 * One deployment: start it, run the producers and the clients, check every
 * client. `kind` is a deploy/run server.
 */
function loadTest(kind) {
  describe(`snapshot + tail under load (${kind})`, { skip: IS_REFERENCE && 'State streams are an lmstream extension' }, () => {
    let srv
    before(async () => { srv = await startServer({ label: `state-load-${kind}`, server: kind, config: CONFIG }) })
    after(async () => { await srv?.stop() })

    test('every client ends with the final snapshot; no event twice, none missed', { timeout: 120_000 }, async () => {
      const base = srv.url
      const path = `/v1/stream/state-load/${kind}`
      console.log(`# ${kind}: LMSTREAM_STATE_SEED=${SEED}`)
      let r = await rawRequest(base, { method: 'PUT', path: `${path}?state`, headers: JSON_CT })
      assert.equal(r.status, 201, `PUT -> ${r.status}: ${r.body}`)
      const initial = assertOffset(r.headers['stream-next-offset'], 'PUT')

      // --- producers
      const started = Date.now()
      let counter = 0
      let posts = 0
      let resetSent = false
      const event = (rand) => {
        const type = rand.pick(TYPES)
        const key = `k${rand.int(KEYS)}`
        const q = rand()
        if (q < 0.2) return { type, key, headers: { operation: 'delete' } }
        const operation = q < 0.5 ? 'insert' : q < 0.85 ? 'update' : 'upsert'
        // Sizes from a few bytes to ~600: about 300 bytes a key, 300 B x 600 keys in all.
        return { type, key, value: { n: ++counter, pad: 'x'.repeat(rand.int(600)) }, headers: { operation } }
      }
      const producer = async (p) => {
        const rand = rng(SEED + 1 + p)
        while (Date.now() - started < PRODUCE_MS) {
          let batch
          if (p === 0 && !resetSent && Date.now() - started > PRODUCE_MS / 2) {
            resetSent = true
            batch = [{ headers: { control: 'reset' } }]
          } else {
            batch = Array.from({ length: 1 + rand.int(6) }, () => event(rand))
          }
          const res = await rawRequest(base, { method: 'POST', path, headers: JSON_CT, body: JSON.stringify(batch) })
          assert.equal(res.status, 204, `POST -> ${res.status}: ${res.body}`)
          posts++
          // Bursts of 400 ms, then 200 ms of quiet in which the clients
          // catch up and wait, so that the next commit wakes many at once.
          const t = (Date.now() - started) % 600
          if (t >= 400) await sleep(600 - t)
          else if (rand() < 0.3) await sleep(rand.int(20))
        }
      }

      // --- clients
      let finalOffset = null
      let finalKnown
      const finalPromise = new Promise((res) => { finalKnown = res })
      const reached = (offset) => finalOffset !== null && offset === finalOffset

      /**
       * A client. Its record: the snapshot it used (rows, offset), then chunks
       * { from, to, messages } in the order it applied them.
       */
      const client = async (c) => {
        const rand = rng(SEED + 100 + c)
        const kindOf = KINDS[c % KINDS.length]
        const rec = { c, kind: kindOf, snap: null, chunks: [], restarts: 0, snapshotResets: 0, longPollSnapshot: false }
        await sleep(Math.floor((c * PRODUCE_MS * 0.8) / CLIENTS))
        const restartAt = c % 2 === 1 ? Date.now() + 300 + rand.int(4000) : Infinity
        const commit = (from, to, messages) => {
          const last = rec.chunks.length ? rec.chunks.at(-1).to : rec.snap.offset
          assert.equal(from, last, `client ${c}: a chunk starts where the last ended`)
          rec.chunks.push({ from, to, messages })
        }
        const position = () => (rec.chunks.length ? rec.chunks.at(-1).to : rec.snap.offset)

        // Long-poll from the snapshot's offset until the final offset.
        const tailLongPoll = async (cursor) => {
          for (;;) {
            const from = position()
            if (reached(from)) return
            let q = `${path}?offset=${from}&live=long-poll`
            if (cursor) q += `&cursor=${encodeURIComponent(cursor)}`
            let abandon = false
            if (Date.now() >= restartAt && rec.restarts === 0) {
              // Abandon this long-poll after a moment, then go on from the
              // last committed offset, as a reloaded page would.
              rec.restarts++
              abandon = true
              cursor = undefined
            }
            let res
            try {
              res = await rawRequest(base, { path: q, timeoutMs: abandon ? 1 + rand.int(300) : 30_000 })
            } catch (e) {
              if (abandon) continue // cut before or during the answer: nothing was applied
              throw e
            }
            assert.ok(res.status === 200 || res.status === 204, `client ${c}: GET ${q} -> ${res.status}: ${res.body}`)
            const to = assertOffset(res.headers['stream-next-offset'], `client ${c}: GET ${q}`)
            cursor = res.headers['stream-cursor']
            if (res.status === 204) {
              assert.equal(to, from, `client ${c}: a 204 long-poll stays at its offset`)
              continue
            }
            const messages = JSON.parse(res.body.toString('utf8'))
            assert.ok(messages.length > 0 && to > from, `client ${c}: a 200 long-poll moves on (${from} -> ${to}, ${messages.length} messages)`)
            commit(from, to, messages)
          }
        }

        // SSE, from an offset or (offset null) from ?snapshot. Returns when
        // the final offset is reached; restarts once at restartAt.
        const tailSse = async () => {
          for (;;) {
            const url = rec.snap ? `${path}?offset=${position()}&live=sse` : `${path}?snapshot&live=sse`
            if (rec.snap && reached(position())) return
            const sub = openSse(base, url)
            const head = await sub.response
            if (head.status !== 200) {
              await sub.ended
              assert.fail(`client ${c}: GET ${url} -> ${head.status}: ${sub.body}`)
            }
            let pending = []          // data since the last control event
            let snapItems = rec.snap ? null : []
            let snapEnd = null
            let i = 0
            let restart = false
            for (;;) {
              for (; i < sub.events.length; i++) {
                const e = sub.events[i]
                if (e.type === 'data') {
                  const items = JSON.parse(e.data)
                  assert.ok(Array.isArray(items), `client ${c}: a data event holds an array`)
                  if (snapItems && snapEnd === null) {
                    for (const m of items) {
                      const ctl = m.headers?.control
                      if (ctl === 'reset') { snapItems = []; rec.snapshotResets++ } else if (ctl === 'snapshot-start') snapItems = []
                      else if (ctl === 'snapshot-end') snapEnd = assertOffset(m.headers.offset, `client ${c}: snapshot-end`)
                      else snapItems.push(m)
                    }
                  } else {
                    pending.push(...items)
                  }
                } else if (e.type === 'control') {
                  const ctl = JSON.parse(e.data)
                  const to = assertOffset(ctl.streamNextOffset, `client ${c}: control event`)
                  if (snapItems && !rec.snap) {
                    assert.ok(snapEnd, `client ${c}: the control event comes after snapshot-end`)
                    assert.equal(to, snapEnd, `client ${c}: the first control event names the snapshot's offset`)
                    rec.snap = { rows: snapItems, offset: snapEnd }
                    assert.equal(pending.length, 0)
                  } else if (pending.length) {
                    commit(position(), to, pending)
                  } else {
                    assert.equal(to, position(), `client ${c}: a control event without data stays at its offset`)
                  }
                  pending = []
                }
              }
              if (rec.snap && reached(position())) { sub.close(); return }
              if (Date.now() >= restartAt && rec.restarts === 0) { rec.restarts++; restart = true; break }
              // Once the final offset is known, look again every 10 ms: a
              // race with the settled finalPromise alone would resume in a
              // microtask at once, forever, and starve the socket's events.
              const end = await Promise.race([sub.ended.then(() => 'ended'),
                finalOffset === null ? finalPromise.then(() => 'final') : sleep(10), sleep(100)])
              if (end === 'ended' && i === sub.events.length) break
            }
            sub.close()
            // Cut short (a restart, or the server ended it): what came after
            // the last control event is dropped and read again.
            if (restart) await sleep(rand.int(200))
          }
        }

        if (kindOf === 'one') {
          await tailSse()
        } else {
          const longPoll = kindOf === 'lp' && c % 2 === 0
          rec.longPollSnapshot = longPoll
          const s = await getSnapshot(base, path, longPoll)
          rec.snap = { rows: s.rows, offset: s.offset }
          if (kindOf === 'lp') await tailLongPoll(s.cursor)
          else await tailSse()
        }
        return rec
      }

      const clients = Array.from({ length: CLIENTS }, (_, c) => client(c))
      // A failing client fails the test at once, not after the others.
      const failed = Promise.all(clients)
      failed.catch(() => {})
      await Promise.race([Promise.all(Array.from({ length: PRODUCERS }, (_, p) => producer(p))), failed])
      const head = await rawRequest(base, { method: 'HEAD', path })
      finalOffset = assertOffset(head.headers['stream-next-offset'], 'HEAD')
      finalKnown()
      const results = await failed

      // --- checks
      const final = await getSnapshot(base, path, false)
      assert.equal(final.offset, finalOffset, 'the final snapshot names the final offset')
      checkRows(final.rows, 'final snapshot')
      const want = entries(applyAll(new MaterializedState(), final.rows))
      const whole = await readAll(base, path, { offset: '-1' })
      assert.equal(whole.nextOffset, finalOffset)
      assert.ok(resetSent, 'the producers sent a reset')

      let midway = 0
      for (const rec of results) {
        const who = `client ${rec.c} (${rec.kind}, snapshot at ${rec.snap.offset})`
        checkRows(rec.snap.rows, who)
        const tail = rec.chunks.flatMap((x) => x.messages)
        // The log from the snapshot's offset, read in one go at the end.
        const log = await readAll(base, path, { offset: rec.snap.offset })
        assert.deepStrictEqual(tail, log.messages, `${who}: the events after the snapshot are the log from its offset, each once`)
        // The offsets form one chain: snapshot -> ... -> final.
        let at = rec.snap.offset
        for (const ch of rec.chunks) {
          assert.equal(ch.from, at, `${who}: no gap, no overlap`)
          assert.ok(ch.to > ch.from, `${who}: offsets only move forward`)
          at = ch.to
        }
        assert.equal(at, finalOffset, `${who}: reached the final offset`)
        // The snapshot is the state of the log up to its offset.
        const prefix = whole.messages.slice(0, whole.messages.length - log.messages.length)
        assert.deepStrictEqual(entries(applyAll(new MaterializedState(), rec.snap.rows)),
          entries(applyAll(new MaterializedState(), prefix)), `${who}: the snapshot is the state at its offset`)
        // And snapshot + tail is the final state.
        const state = applyAll(applyAll(new MaterializedState(), rec.snap.rows), tail)
        assert.deepStrictEqual(entries(state), want, `${who}: the final state`)
        if (rec.snap.offset !== initial && rec.snap.offset !== finalOffset && tail.length) midway++
      }
      // The test means something only if snapshots were taken while producers wrote.
      assert.ok(midway >= CLIENTS / 2, `${midway} of ${CLIENTS} clients took their snapshot while producers were appending`)
      const restarts = results.reduce((n, x) => n + x.restarts, 0)
      const resets = results.reduce((n, x) => n + x.snapshotResets, 0)
      console.log(`# ${kind}: ${posts} appends, ${whole.messages.length} messages, ${final.rows.length} keys at the end; ` +
        `${midway} of ${CLIENTS} clients snapshot mid-way, ${restarts} restarts, ${resets} SSE snapshot restarts (reset control)`)
    })
  })
}

loadTest('lighttpd')
loadTest('standalone')

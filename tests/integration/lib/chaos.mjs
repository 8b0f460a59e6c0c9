// Clients and a killer for chaos.test.mjs: idempotent producers that retry
// until acknowledged, live readers (SSE, long-poll) that resume from their
// last offset after any error, and a killer that sends SIGKILL to the
// processes of one deploy/run deployment and brings each one back.
//
// Every client retries forever (until stopped): a refused connection, a reset,
// a cut-short response or a 5xx is expected while processes are being killed.
// Answers that no kill explains (409 sequence gap, unparseable data in a
// complete response, ...) are recorded as faults, which the test asserts empty.

import http from 'node:http'
import { createHash } from 'node:crypto'
import { sleep } from './server.mjs'
import { sseParser } from './http.mjs'

const REQUEST_TIMEOUT_MS = 10_000

/** Count `key` in a Map of counters. */
function bump(map, key) { map.set(key, (map.get(key) || 0) + 1) }

/** "k:v k:v" of a Map of counters. */
export function counts(map) {
  return [...map].map(([k, v]) => `${k}:${v}`).join(' ') || 'none'
}

/** A short name for a network error. */
function errName(e) { return e?.code || e?.cause?.code || e?.name || 'error' }

// ------------------------------------------------------------------ messages

/** A deterministic number in [0, mod) from a string. */
function hashInt(s, mod) {
  return createHash('sha256').update(s).digest().readUInt32BE(0) % mod
}

/**
 * The messages of append `s` of producer `p`: 1 to 3 JSON objects
 * { p, s, i, n, pad } whose pad (0 to 2000 characters) is derived from
 * (tag, p, s, i), so any change to a stored message is detectable.
 */
export function batchOf(tag, p, s) {
  const n = 1 + hashInt(`${tag}/${p}/${s}/n`, 3)
  return Array.from({ length: n }, (_, i) => ({ p, s, i, n, pad: padOf(tag, p, s, i) }))
}

export function padOf(tag, p, s, i) {
  const len = hashInt(`${tag}/${p}/${s}/${i}/len`, 2001)
  const unit = createHash('sha256').update(`${tag}/${p}/${s}/${i}`).digest('hex')
  return unit.repeat(Math.ceil(len / unit.length) + 1).slice(0, len)
}

// ---------------------------------------------------------------- transport

/**
 * One request with node:http (a fresh connection): resolves with
 * { status, headers, body, complete } once the response ended, where
 * complete is false if the connection was cut before its end; rejects on a
 * network error before the response, or after timeoutMs.
 */
function request(baseUrl, { method = 'GET', path, headers = {}, body, timeoutMs = REQUEST_TIMEOUT_MS, signal }) {
  const u = new URL(baseUrl)
  const payload = body === undefined ? null : Buffer.from(body)
  const hdrs = { ...headers }
  if (payload) hdrs['Content-Length'] = String(payload.length)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers: hdrs, agent: false, timeout: timeoutMs, signal }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('error', () => {}) // 'close' says it
      res.on('close', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete }))
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error(`timeout after ${timeoutMs} ms`), { code: 'TIMEOUT' })))
    req.on('error', reject)
    req.end(payload ?? undefined)
  })
}

// ---------------------------------------------------------------- producers

/**
 * Producer p: appends batchOf(tag, p, 0), batchOf(tag, p, 1), ... to path
 * as (Producer-Id, epoch 0, seq), each retried with the same seq after an
 * error, a 5xx or a dropped connection until it is acknowledged (200, or 204
 * for a duplicate), until stop() (which lets the current append finish) or
 * abort().
 * State: acked (seqs acknowledged, in order), sent (highest seq sent),
 * stats, faults (answers no kill explains: the test asserts there are none).
 */
export function startProducer({ baseUrl, path, tag, p, budgetMs = 120_000, pauseMs = 40 }) {
  const st = {
    p, acked: [], sent: -1, running: true, aborted: false, faults: [],
    stats: { posts: 0, retries: 0, accepted: 0, duplicates: 0, errors: new Map() },
  }
  const id = `chaos-${tag}-p${p}`
  st.done = (async () => {
    for (let s = 0; st.running; s++) {
      const body = JSON.stringify(batchOf(tag, p, s))
      const headers = {
        'Content-Type': 'application/json',
        'Producer-Id': id,
        'Producer-Epoch': '0',
        'Producer-Seq': String(s),
      }
      st.sent = s
      const deadline = Date.now() + budgetMs
      let last = 'nothing'
      for (;;) {
        if (st.aborted) return
        if (Date.now() > deadline) {
          st.faults.push(`producer ${p}: seq ${s} not acknowledged within ${budgetMs} ms; last answer: ${last}`)
          return
        }
        st.stats.posts++
        let r
        try {
          r = await request(baseUrl, { method: 'POST', path, headers, body })
        } catch (e) {
          r = e
        }
        if (r instanceof Error || r.status >= 500 || !r.complete) {
          const key = r instanceof Error ? errName(r) : r.status >= 500 ? r.status : 'cut'
          bump(st.stats.errors, key)
          last = r instanceof Error ? `${key} ${r.message}` : `${r.status} ${r.body.toString('utf8').slice(0, 200)}`
          st.stats.retries++
          await sleep(20 + Math.random() * 60)
          continue
        }
        if (r.status === 200 || r.status === 204) {
          const echoed = r.headers['producer-seq']
          if (echoed !== undefined && Number(echoed) !== s) {
            st.faults.push(`producer ${p} seq ${s}: ${r.status} with Producer-Seq ${echoed}`)
          }
          if (r.status === 200) st.stats.accepted++
          else st.stats.duplicates++
          st.acked.push(s)
          await sleep(pauseMs * Math.random()) // a steady flow, not a flood
          break
        }
        const exp = r.headers['producer-expected-seq']
        st.faults.push(`producer ${p} seq ${s}: unexpected ${r.status}` +
          (exp !== undefined ? ` (Producer-Expected-Seq ${exp}: an acknowledged append was lost)` : '') +
          `: ${r.body.toString('utf8').slice(0, 200)}`)
        return
      }
    }
  })()
  st.stop = async () => { st.running = false; await st.done }
  /** Stop at once, even in the middle of an append's retries. */
  st.abort = async () => { st.running = false; st.aborted = true; await st.done }
  return st
}

// ------------------------------------------------------------------ readers

/**
 * A live reader of path from offset -1, over SSE or long-poll. It keeps the
 * messages it has received and the offset after them (`items`, `offset`),
 * and after any error, refused connection, cut-short or proper end of a
 * response, asks again from that offset. Under SSE, a data event counts only
 * once the control event after it (with streamNextOffset) has arrived: data
 * whose control event was lost to a cut is read again from the old offset.
 * faults: data no kill explains (an unparseable event or body in a response
 * that was not cut short, a 200 without Stream-Next-Offset).
 */
export function startReader({ baseUrl, path, mode, id }) {
  const st = {
    id, mode, items: [], offset: '-1', cursor: null, running: true, closed: false,
    responses: 0, resumes: 0, faults: [], errors: new Map(), samples: new Map(), ac: null, changed: () => {},
  }
  const commit = (items, offset, cursor) => {
    for (const m of items) st.items.push(m) // (no spread: a catch-up may bring very many)
    st.offset = offset
    if (cursor) st.cursor = cursor
    st.changed()
  }
  // a refused live read (the daemon is down behind the proxy: 502, 503):
  // counted, its first answer of each status kept, asked again after a pause
  const refused = (status, body) => {
    bump(st.errors, status)
    if (!st.samples.has(status)) st.samples.set(status, body.toString('utf8').slice(0, 200))
  }
  const pause = () => sleep(50 + Math.random() * 150)
  const q = () => `offset=${encodeURIComponent(st.offset)}${st.cursor ? `&cursor=${encodeURIComponent(st.cursor)}` : ''}`

  const longPollOnce = async () => {
    const r = await request(baseUrl, { path: `${path}?${q()}&live=long-poll`, timeoutMs: 60_000, signal: st.ac.signal })
    if (!r.complete) { bump(st.errors, 'cut'); await pause(); return }
    if (r.status === 204) {
      const next = r.headers['stream-next-offset']
      if (next) commit([], next, r.headers['stream-cursor'])
      if (r.headers['stream-closed'] === 'true') st.closed = true
      return
    }
    if (r.status !== 200) { refused(r.status, r.body); await pause(); return }
    st.responses++
    const next = r.headers['stream-next-offset']
    if (!next) { st.faults.push(`${id}: long-poll 200 without Stream-Next-Offset`); return }
    let arr
    try {
      arr = JSON.parse(r.body.toString('utf8'))
      if (!Array.isArray(arr)) throw new Error('not a JSON array')
    } catch (e) {
      st.faults.push(`${id}: complete long-poll body at offset ${st.offset} is not a JSON array (${e.message}): ` +
        r.body.toString('utf8').slice(0, 200))
      return
    }
    commit(arr, next, r.headers['stream-cursor'])
  }

  const sseOnce = () => new Promise((resolve, reject) => {
    const u = new URL(baseUrl)
    const req = http.request({
      host: u.hostname, port: u.port, method: 'GET', path: `${path}?${q()}&live=sse`, agent: false,
      headers: { Accept: 'text/event-stream' }, signal: st.ac.signal,
    }, (res) => {
      if (res.statusCode !== 200) {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('error', () => {})
        res.on('close', () => { refused(res.statusCode, Buffer.concat(chunks)); pause().then(resolve) })
        return
      }
      st.responses++
      req.setTimeout(45_000) // from now on: silence (heartbeats come every 15 s) for this long
      let pending = [] // data events waiting for their control event
      const dispatch = (type, text) => {
        if (type === 'data') {
          pending.push(text)
        } else if (type === 'control') {
          let ctl
          try { ctl = JSON.parse(text) } catch (e) {
            st.faults.push(`${id}: unparseable control event: ${text.slice(0, 200)}`)
            req.destroy()
            return
          }
          const items = []
          for (const d of pending) {
            try {
              const v = JSON.parse(d)
              if (Array.isArray(v)) { for (const m of v) items.push(m) } else items.push(v)
            } catch (e) {
              st.faults.push(`${id}: unparseable data event at offset ${st.offset} (${e.message}): ${d.slice(0, 200)}`)
              req.destroy()
              return
            }
          }
          pending = []
          if (!ctl.streamNextOffset) {
            st.faults.push(`${id}: control event without streamNextOffset: ${text.slice(0, 200)}`)
            req.destroy()
            return
          }
          commit(items, ctl.streamNextOffset, ctl.streamCursor)
          if (ctl.streamClosed) st.closed = true
        }
      }
      res.setEncoding('utf8')
      res.on('data', sseParser({ onEvent: dispatch }))
      res.on('error', () => {})
      res.on('close', () => {
        if (!res.complete) bump(st.errors, 'cut')
        else if (pending.length) bump(st.errors, 'ended-before-control')
        resolve()
      })
    })
    // no answer (a proxy waiting for a dead backend), or a silent response:
    // give up and ask again
    req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('no response'), { code: 'TIMEOUT' })))
    req.on('error', reject)
    req.end()
  })

  st.done = (async () => {
    let first = true
    while (st.running && !st.closed) {
      if (!first) st.resumes++
      first = false
      st.ac = new AbortController()
      try {
        await (mode === 'sse' ? sseOnce() : longPollOnce())
      } catch (e) {
        if (!st.running) break
        bump(st.errors, errName(e))
        await pause()
      }
    }
  })()
  st.stop = async () => {
    st.running = false
    st.ac?.abort()
    let timer
    await Promise.race([st.done, new Promise((r) => { timer = setTimeout(r, 5000) })])
    clearTimeout(timer)
  }
  return st
}

// ------------------------------------------------------------------- killer

/** Resolve once pred() is true (polled every 50 ms); false after timeoutMs. */
async function until(pred, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await pred()) return true
    if (Date.now() > deadline) return false
    await sleep(50)
  }
}

/**
 * The kill schedule of one deployment: `kills` targets, round-robin over the
 * process kinds it has, in a random order within each round.
 */
export function schedule(targets, kills) {
  const out = []
  while (out.length < kills) {
    const round = [...targets].sort(() => Math.random() - 0.5)
    out.push(...round.slice(0, kills - out.length))
  }
  return out
}

/**
 * SIGKILL the processes of deployment srv, one after another as `plan`
 * says ('worker': an lmstream.fcgi worker, 'live': lmstream-live, 'web': the
 * web server's main process), each after a pause of pauseMs (random within
 * the range), and bring the deployment back after each, as its supervisors do:
 * the web server restarts dead workers, deploy/run restarts lmstream-live,
 * and a deploy/run that exited (its web server died, or it gave up
 * restarting lmstream-live) is started again on the same port and data
 * directory (srv.respawn(), as systemd would). healthy() must resolve true
 * once the deployment serves requests again. Returns a log of the kills;
 * throws if something does not come back within recoverMs.
 */
export async function runKiller({ srv, plan, healthy, pauseMs = [300, 1200], recoverMs = 60_000, stopped = () => false }) {
  const log = []
  for (const target of plan) {
    if (stopped()) break
    await sleep(pauseMs[0] + Math.random() * (pauseMs[1] - pauseMs[0]))
    if (!srv.running()) await srv.respawn({ timeoutMs: recoverMs })
    const pids = target === 'worker' ? srv.workers() : target === 'live' ? srv.livePids() : srv.webServerPids()
    const entry = { target, pid: null, outcome: null, ms: null }
    log.push(entry)
    if (!pids.length) { entry.outcome = 'no process found'; continue }
    const victim = pids[Math.floor(Math.random() * pids.length)]
    entry.pid = victim
    try { process.kill(victim, 'SIGKILL') } catch (e) { entry.outcome = `kill: ${e.code}`; continue }
    const t0 = Date.now()

    // Back: the killed process is gone and its role is filled again.
    let back
    if (target === 'web') {
      back = await until(() => !srv.running(), recoverMs)
      if (back) { await srv.respawn({ timeoutMs: recoverMs }); entry.outcome = 'deploy/run exited; respawned' }
    } else if (target === 'live') {
      back = await until(() => !srv.running() || srv.livePids().some((p) => p !== victim), recoverMs)
      if (back && !srv.running()) {
        await srv.respawn({ timeoutMs: recoverMs })
        entry.outcome = 'deploy/run gave up restarting lmstream-live; respawned'
      } else if (back) {
        entry.outcome = `restarted by deploy/run as ${srv.livePids().filter((p) => p !== victim).join(',')}`
      }
    } else {
      // the web server starts a new worker (lighttpd at once, mod_fcgid when
      // a request needs one): a catch-up read must be served by one
      back = await until(() => !srv.workers().includes(victim), recoverMs)
      entry.outcome = 'worker gone'
    }
    if (!back) throw new Error(`${target} ${victim}: no recovery within ${recoverMs} ms\n${srv.logTail(30)}`)
    if (!(await until(healthy, recoverMs))) {
      throw new Error(`after killing ${target} ${victim}: the deployment does not answer within ${recoverMs} ms\n${srv.logTail(30)}`)
    }
    if (target === 'worker') {
      const now = srv.workers()
      entry.outcome = now.length ? `replaced (${now.length} workers now)` : 'served without a worker process?'
    }
    entry.ms = Date.now() - t0 // until the stream answered again
  }
  return log
}

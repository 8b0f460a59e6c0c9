// Three lmstream nodes behind HAProxy (deploy/run --server cluster --nodes 3),
// each node in a network namespace of its own (tests/cluster/netns; on
// loopback ports when namespaces cannot be made), HAProxy real.
//
// What a user relies on:
//   * Every request of a stream (create, append, catch-up, HEAD, long-poll,
//     SSE) lands on one node, the one holding it: each node names itself in
//     its answers (X-Lmstream-Node, set by the node's own lighttpd), and
//     asked directly, only that node has the stream. Streams under one
//     prefix (the first segment here) share a node; the 48 prefixes of the
//     test spread over all three.
//   * A fork under its source's prefix is made on that node and reads the
//     source's data; a fork whose source is on another node gets 409 "source
//     on another node" and no node gets the stream.
//   * A node killed (SIGKILL of its web server, workers and lmstream-live)
//     for 60 s: its streams get 503 with Retry-After and one line of text,
//     for reads, appends and creations; no PUT creates one of its streams on
//     another node; the other nodes serve reads and appends as before, and
//     their live readers get every message. Readers of the dead node's
//     stream (the official client @durable-streams/client over SSE and
//     long-poll, www/lmstream.js over long-poll in Node and over SSE in
//     Chromium) retry no faster than Retry-After: every 503 carries one, and
//     an attempt starts no sooner than the Retry-After of the answers to the
//     one before (less 0.1 s) after them, an attempt being the requests of
//     one reconnection (each less than 1 s after the answer to the one
//     before, at most two: the SSE request and the catch-up read that learns
//     why it failed). Once the node is back (SIGUSR1 to deploy/run starts it
//     on its data) they resume from their offsets: each ends with exactly the
//     stream, nothing lost or doubled.
//   * Adding a node, as README ("Several machines") says: the cluster started
//     again with --nodes 4 keeps every stream where it was; a bucket marked
//     "moving" in buckets.map (SIGHUP) answers 503 with Retry-After while
//     deploy/haproxy/buckets --move-to node4 moves its streams; after the
//     next SIGHUP they are on node4 only, with their offsets and producer
//     state, and their readers (lmstream.js, the official client) end with
//     exactly the stream.
//   * SIGTERM to deploy/run stops every process of the cluster (HAProxy, each
//     node's lighttpd, workers and lmstream-live), none left behind.

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { DurableStream } from '@durable-streams/client'
import { REPO_ROOT, STREAM_PREFIX, sleep, until } from '../integration/lib/server.mjs'
import { startDeployRun } from './deploy-run.mjs'

const NETNS = path.join(REPO_ROOT, 'tests', 'cluster', 'netns')
const OUTAGE_MS = Number(process.env.LMSTREAM_CLUSTER_OUTAGE_MS || 60_000)
const RETRY_AFTER_S = 5 // deploy/haproxy/503.http
const tag = crypto.randomBytes(3).toString('hex')
const JSON_CT = 'application/json'
const netnsTag = `${process.pid}`

let cluster // { url, nodes: { node1: { url, pid } }, token, child, log, pid }
let netns = null // { names: [...], addrs: [...] }: four namespaces, or null (loopback)

async function startCluster(root, nodes = 3) {
  const conf = path.join(root, 'lmstream.conf')
  fs.writeFileSync(conf, 'auth = token\nlong_poll_timeout = 3000\n')
  const args = ['--server', 'cluster', '--nodes', String(nodes), '--port', '0', '--data', path.join(root, 'data'),
    '--config', conf, '--rundir', path.join(root, 'run')]
  if (netns) args.push('--netns', netns.names.slice(0, nodes).join(' '), '--node-addrs', netns.addrs.slice(0, nodes).join(' '))
  const c = await startDeployRun(args)
  const log = c.log()
  const byName = {}
  for (const n of log.matchAll(/lmstream: (node\d) on (http:\/\/\S+).*\(deploy\/run pid (\d+)/g)) {
    byName[n[1]] = { url: n[2], pid: Number(n[3]) }
  }
  const token = /a token for every node \([^)]*\): (\S+)/.exec(log)?.[1]
  return { ...c, nodes: byName, token }
}

/** One request through HAProxy (or to base): { status, headers, text, node }. */
async function req(method, p, { base = cluster.url, headers = {}, body } = {}) {
  const res = await fetch(base + p, {
    method, body, headers: { Authorization: `Bearer ${cluster.token}`, ...headers },
  })
  const text = method === 'HEAD' ? '' : await res.text()
  return { status: res.status, headers: res.headers, text, node: res.headers.get('x-lmstream-node') }
}

/** The node an SSE response of p comes from, once its first control event arrived. */
async function sseNode(p) {
  const ac = new AbortController()
  const res = await fetch(`${cluster.url}${p}?offset=-1&live=sse`, {
    headers: { Authorization: `Bearer ${cluster.token}` }, signal: ac.signal,
  })
  assert.equal(res.status, 200, `SSE of ${p}`)
  const reader = res.body.getReader()
  let text = ''
  while (!/event: ?control/.test(text)) {
    const { value, done } = await reader.read()
    if (done) break
    text += Buffer.from(value).toString('utf8')
  }
  ac.abort()
  return res.headers.get('x-lmstream-node')
}

/** Which nodes, asked directly, have stream p (HEAD 200). */
async function holders(p) {
  const out = []
  for (const [name, n] of Object.entries(cluster.nodes)) {
    const r = await req('HEAD', p, { base: n.url })
    assert.ok(r.status === 200 || r.status === 404, `HEAD ${p} on ${name}: ${r.status}`)
    if (r.status === 200) out.push(name)
  }
  return out
}

/** Pids of pid and every process below it. */
function tree(pid) {
  const kids = new Map()
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    let stat
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8') } catch { continue }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (!kids.has(ppid)) kids.set(ppid, [])
    kids.get(ppid).push(Number(d))
  }
  const out = []
  const stack = [pid]
  while (stack.length) {
    const p = stack.pop()
    out.push(p)
    stack.push(...(kids.get(p) || []))
  }
  return out
}

let root
before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-cluster-'))
  try {
    const out = execFileSync(NETNS, ['up', '4'], { env: { ...process.env, LMSTREAM_NETNS_TAG: netnsTag } }).toString()
    const m = /--netns '([^']*)' --node-addrs '([^']*)'/.exec(out)
    if (m) netns = { names: m[1].split(' '), addrs: m[2].split(' ') }
  } catch {
    process.stderr.write('cluster test: no network namespaces here; nodes on loopback ports\n')
  }
  cluster = await startCluster(root)
  assert.ok(cluster.token, 'deploy/run printed a token for every node')
  assert.deepEqual(Object.keys(cluster.nodes).sort(), ['node1', 'node2', 'node3'])
})

async function stopCluster() {
  if (cluster?.child && cluster.child.exitCode === null) {
    const exited = new Promise((r) => cluster.child.once('exit', r))
    cluster.child.kill('SIGTERM')
    await Promise.race([exited, sleep(20_000)])
  }
}

after(async () => {
  await stopCluster()
  try { execFileSync(NETNS, ['down'], { env: { ...process.env, LMSTREAM_NETNS_TAG: netnsTag } }) } catch {}
  if (!process.env.LMSTREAM_KEEP_DATA) fs.rmSync(root, { recursive: true, force: true })
})

const PREFIXES = Array.from({ length: 48 }, (_, i) => `t${i}-${tag}`)
const nodeOf = new Map() // prefix -> node

test('every request of a stream lands on the one node that holds it; a prefix stays on one node', async () => {
  const ct = { 'Content-Type': JSON_CT }
  for (const pre of PREFIXES) {
    const p = `${STREAM_PREFIX}${pre}/s`
    const seen = []
    const put = await req('PUT', p, { headers: ct })
    assert.equal(put.status, 201, `PUT ${p}: ${put.status} ${put.text}`)
    seen.push(put.node)
    const post = await req('POST', p, { headers: ct, body: JSON.stringify({ pre }) })
    assert.ok(post.status === 200 || post.status === 204, `POST ${p}: ${post.status}`)
    seen.push(post.node)
    const get = await req('GET', `${p}?offset=-1`)
    assert.equal(get.status, 200)
    assert.deepEqual(JSON.parse(get.text), [{ pre }])
    seen.push(get.node)
    seen.push((await req('HEAD', p)).node)
    const lp = await req('GET', `${p}?offset=-1&live=long-poll`)
    assert.equal(lp.status, 200, `long-poll of ${p}`)
    seen.push(lp.node)
    seen.push(await sseNode(p))
    // another stream under the same prefix, two segments deeper
    const deep = await req('PUT', `${STREAM_PREFIX}${pre}/a/b`, { headers: ct })
    assert.equal(deep.status, 201)
    seen.push(deep.node)
    assert.ok(seen.every((n) => /^node[123]$/.test(n || '')), `every answer names its node: ${seen}`)
    assert.equal(new Set(seen).size, 1, `${p}: answers from ${seen.join(', ')}`)
    nodeOf.set(pre, seen[0])
    assert.deepEqual(await holders(p), [seen[0]], `only ${seen[0]} has ${p}`)
  }
  const counts = {}
  for (const n of nodeOf.values()) counts[n] = (counts[n] || 0) + 1
  assert.deepEqual(Object.keys(counts).sort(), ['node1', 'node2', 'node3'], `48 prefixes over the nodes: ${JSON.stringify(counts)}`)
})

test('a fork under its source\'s prefix is made; one across nodes gets 409 "source on another node"', async () => {
  const a = PREFIXES[0]
  const b = PREFIXES.find((p) => nodeOf.get(p) !== nodeOf.get(a))
  const src = `${STREAM_PREFIX}${a}/s`
  const same = await req('PUT', `${STREAM_PREFIX}${a}/fork`, { headers: { 'Content-Type': JSON_CT, 'Stream-Forked-From': src } })
  assert.equal(same.status, 201, `fork under the same prefix: ${same.status} ${same.text}`)
  assert.equal(same.node, nodeOf.get(a))
  const read = await req('GET', `${STREAM_PREFIX}${a}/fork?offset=-1`)
  assert.deepEqual(JSON.parse(read.text), [{ pre: a }], 'the fork reads its source\'s data')

  const cross = `${STREAM_PREFIX}${b}/fork`
  const r = await req('PUT', cross, { headers: { 'Content-Type': JSON_CT, 'Stream-Forked-From': src } })
  assert.equal(r.status, 409)
  assert.equal(r.text.trim(), 'source on another node')
  assert.match(r.headers.get('content-type'), /^text\/plain/)
  assert.deepEqual(await holders(cross), [], 'no node has the refused fork')
  // the source named by a full URL is judged the same way
  const r2 = await req('PUT', cross, { headers: { 'Content-Type': JSON_CT, 'Stream-Forked-From': `${cluster.url}${src}` } })
  assert.equal(r2.status, 409)
})

// ------------------------------------------------------------ readers of one stream

/** A reader's log: messages, and every request it sent with its time and status. */
function readerLog(name) {
  return { name, items: [], requests: [], errors: [] }
}

/** fetch that notes each request of reader st (its time, and the status or the error). */
function recordingFetch(st) {
  return async (input, init) => {
    const entry = { t: Date.now(), url: String(input), status: null }
    st.requests.push(entry)
    try {
      const res = await fetch(input, init)
      entry.status = res.status
      entry.retryAfter = Number(res.headers.get('retry-after')) || 0
      entry.end = Date.now()
      return res
    } catch (e) {
      entry.status = 'error'
      entry.end = Date.now()
      throw e
    }
  }
}

/** The official client in sessions: a new stream() from the last offset when one ends. */
function officialReader(name, url, live) {
  const st = readerLog(name)
  let offset = '-1'
  let stopped = false
  let ac
  const handle = new DurableStream({
    url, contentType: JSON_CT, fetch: recordingFetch(st), headers: { Authorization: `Bearer ${cluster.token}` },
  })
  const done = (async () => {
    while (!stopped) {
      ac = new AbortController()
      let res
      try {
        res = await handle.stream({ offset, live, signal: ac.signal })
      } catch (e) {
        if (stopped) break
        st.errors.push(`stream(): ${e.message}`)
        await sleep(RETRY_AFTER_S * 1000) // (the client retried 5xx itself; this is something else)
        continue
      }
      res.subscribeJson((batch) => {
        st.items.push(...batch.items)
        offset = batch.offset
      })
      try { await res.closed } catch (e) { if (!stopped) st.errors.push(`closed: ${e.cause?.code || e.message}`) }
    }
  })()
  st.stop = async () => { stopped = true; ac?.abort(); await Promise.race([done, sleep(5000)]) }
  return st
}

/** www/lmstream.js in this process: no EventSource here, so it follows by long-poll. */
async function lmstreamJsReader(name, url) {
  await import(pathToFileURL(path.join(REPO_ROOT, 'www', 'lmstream.js')).href)
  const st = readerLog(name)
  const sub = globalThis.LmStream.follow(url, {
    token: cluster.token, persist: false, transport: 'long-poll', fetch: recordingFetch(st),
    onMessage: (m) => st.items.push(m),
  })
  st.stop = async () => sub.close()
  return st
}

/** www/lmstream.js in headless Chromium, following over SSE (EventSource) from a page of the cluster. */
async function browserReader(name, url) {
  const st = readerLog(name)
  let chromium
  try { ({ chromium } = await import('playwright-core')) } catch { return null }
  const exe = process.env.CHROMIUM || '/usr/bin/chromium'
  if (!fs.existsSync(exe)) return null
  const browser = await chromium.launch({ executablePath: exe, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] })
  const page = await browser.newPage()
  const streamPath = new URL(url).pathname
  const entries = new Map()
  page.on('request', (r) => {
    if (!new URL(r.url()).pathname.startsWith(streamPath)) return
    const e = { t: Date.now(), url: r.url(), status: null, kind: r.resourceType() }
    entries.set(r, e)
    st.requests.push(e)
  })
  page.on('response', (r) => {
    const e = entries.get(r.request())
    if (e) { e.status = r.status(); e.retryAfter = Number(r.headers()['retry-after']) || 0; e.end = Date.now() }
  })
  page.on('requestfailed', (r) => { const e = entries.get(r); if (e && e.status === null) { e.status = 'error'; e.end = Date.now() } })
  await page.goto(`${cluster.url}/lmstream.js`)
  await page.addScriptTag({ url: '/lmstream.js' })
  await page.evaluate(({ url, token }) => {
    window.got = []
    window.sub = window.LmStream.follow(url, { token, persist: false, transport: 'sse', onMessage: (m) => window.got.push(m) })
  }, { url, token: cluster.token })
  st.poll = setInterval(async () => {
    try { st.items = await page.evaluate(() => window.got) } catch {}
  }, 250)
  st.refresh = async () => { st.items = await page.evaluate(() => window.got) }
  st.stop = async () => { clearInterval(st.poll); await browser.close() }
  return st
}

/**
 * Attempts of a reader while a stream's node was down: from its first 503 to
 * its first answer that is not one, requests that start less than 1 s after
 * the answer to the one before make one attempt. Returns [{ t: when its
 * first request started, end: when its last answer came, requests,
 * retryAfter: the largest Retry-After (s) of its answers }].
 */
function attemptsWhileDown(st) {
  const reqs = st.requests.slice().sort((x, y) => x.t - y.t)
  const first = reqs.findIndex((r) => r.status === 503)
  if (first < 0) return []
  let last = reqs.findIndex((r, i) => i > first && r.status !== 503 && r.status !== 'error')
  if (last < 0) last = reqs.length - 1
  const attempts = []
  let prev = -Infinity
  for (const r of reqs.slice(first, last + 1)) {
    if (r.t - prev >= 1000) attempts.push({ t: r.t, requests: 0, retryAfter: 0 })
    const a = attempts[attempts.length - 1]
    a.requests++
    a.retryAfter = Math.max(a.retryAfter, r.retryAfter || 0)
    a.end = r.end ?? r.t
    prev = a.end
  }
  return attempts
}

test(`a node killed for ${OUTAGE_MS / 1000} s: 503 with Retry-After for its streams only, nothing created elsewhere, readers pace their retries and resume exactly`, { timeout: OUTAGE_MS + 180_000 }, async () => {
  const victim = 'node2'
  const vp = PREFIXES.find((p) => nodeOf.get(p) === victim)
  const sp = PREFIXES.find((p) => nodeOf.get(p) !== victim)
  const others = PREFIXES.filter((p) => nodeOf.get(p) !== victim)
  const V = `${STREAM_PREFIX}${vp}/live`
  const S = `${STREAM_PREFIX}${sp}/live`
  const ct = { 'Content-Type': JSON_CT }
  for (const p of [V, S]) assert.equal((await req('PUT', p, { headers: ct })).status, 201)
  const append = async (p, i) => {
    const r = await req('POST', p, { headers: ct, body: JSON.stringify({ i }) })
    assert.ok(r.status === 200 || r.status === 204, `POST ${p} ${i}: ${r.status} ${r.text}`)
  }
  for (let i = 0; i < 10; i++) await append(V, i)
  for (let i = 0; i < 3; i++) await append(S, i)

  const readers = [
    officialReader('official client, SSE', cluster.url + V, 'sse'),
    officialReader('official client, long-poll', cluster.url + V, 'long-poll'),
    await lmstreamJsReader('lmstream.js, long-poll (Node)', cluster.url + V),
  ]
  const browser = await browserReader('lmstream.js, SSE (Chromium)', cluster.url + V)
  if (browser) readers.push(browser)
  else process.stderr.write('cluster test: no Chromium; the SSE reader of lmstream.js is left out\n')
  const survivor = officialReader('official client, SSE, on another node', cluster.url + S, 'sse')
  try {
    await until('every reader has the first 10 messages', () => readers.every((r) => r.items.length >= 10), 30_000)
    await until('the survivor reader has 3 messages', () => survivor.items.length >= 3, 30_000)

    // kill the node: its lighttpd, workers and lmstream-live, and its deploy/run, at once
    const node = cluster.nodes[victim]
    const pids = tree(node.pid)
    assert.ok(pids.length >= 4, `the node's processes: ${pids}`)
    for (const p of pids.reverse()) { try { process.kill(p, 'SIGKILL') } catch {} }
    const tKill = Date.now()

    // while it is down
    await sleep(3000)
    for (const [method, p, body] of [['GET', `${V}?offset=-1`], ['HEAD', V], ['POST', V, '{"i":-1}'],
      ['PUT', V], ['PUT', `${STREAM_PREFIX}${vp}/new-${tag}`], ['GET', `${V}?offset=-1&live=sse`]]) {
      const r = await req(method, p, { headers: ct, body })
      assert.equal(r.status, 503, `${method} ${p} while its node is down: ${r.status} ${r.text}`)
      assert.equal(r.headers.get('retry-after'), String(RETRY_AFTER_S))
      assert.match(r.headers.get('content-type') || '', /^text\/plain/)
      if (method !== 'HEAD') assert.match(r.text, /^[^\n]+\n?$/, 'one line of text')
      assert.equal(r.node, null, 'answered by HAProxy, not by a node')
    }
    // the other nodes go on: appends and reads on each of their prefixes
    let sCount = 3
    while (Date.now() - tKill < OUTAGE_MS) {
      await append(S, sCount++)
      const pre = others[sCount % others.length]
      const r = await req('GET', `${STREAM_PREFIX}${pre}/s?offset=-1`)
      assert.equal(r.status, 200, `read on ${nodeOf.get(pre)} while ${victim} is down`)
      assert.equal(r.node, nodeOf.get(pre))
      await sleep(Math.min(4000, Math.max(0, OUTAGE_MS - (Date.now() - tKill))))
    }
    await until('the survivor reader has every message appended meanwhile', () => survivor.items.length >= sCount, 15_000)
    assert.deepEqual(survivor.items.map((m) => m.i), [...Array(sCount).keys()])

    // back: deploy/run starts every node that is down on SIGUSR1
    process.kill(cluster.pid, 'SIGUSR1')
    await until('the node to be back', async () => (await req('HEAD', V)).status === 200, 60_000)
    const tBack = Date.now()
    for (let i = 10; i < 20; i++) await append(V, i)
    await until('every reader to have the 20 messages',
      async () => { if (browser) await browser.refresh(); return readers.every((r) => r.items.length >= 20) }, 60_000)
    await sleep(1000) // anything doubled would have come by now
    if (browser) await browser.refresh()

    const report = []
    for (const r of readers) {
      assert.deepEqual(r.items.map((m) => m.i), [...Array(20).keys()], `${r.name}: every message once, in order`)
      const attempts = attemptsWhileDown(r)
      const starts = attempts.map((a) => a.t)
      // from the answer that said Retry-After to the next attempt
      const gaps = attempts.slice(1).map((a, k) => a.t - attempts[k].end)
      report.push(`${r.name}: ${r.requests.length} requests, ${starts.length} attempts while down, gaps ${gaps.map((g) => (g / 1000).toFixed(1)).join(' ')} s` +
        ` (Retry-After ${attempts.map((a) => a.retryAfter).join(' ')})`)
      // every request from 2 s before the kill, for a failure's message: start+duration(status) in s
      const trace = r.requests.filter((q) => q.t >= tKill - 2000)
        .map((q) => `${((q.t - tKill) / 1000).toFixed(2)}+${(((q.end ?? q.t) - q.t) / 1000).toFixed(2)}(${q.status}${q.retryAfter ? ` ra ${q.retryAfter}` : ''})`).join(' ')
      assert.ok(starts.length >= 2, `${r.name} tried again while the node was down:\n${report.join('\n')}`)
      assert.ok(starts[0] < tBack, `${r.name}: its first 503 came while the node was down`)
      // (at most a reconnection and the catch-up read that learns why it failed)
      assert.ok(attempts.every((a) => a.requests <= 2), `${r.name}: an attempt of more than 2 requests:\n${report.join('\n')}\n${trace}`)
      // every 503 said when to come back: HAProxy's 5 s, or 1 s from the node's own
      // lighttpd for a request under way when its backends died first
      assert.ok(r.requests.every((q) => q.status !== 503 || q.retryAfter > 0), `${r.name}: a 503 without Retry-After\n${trace}`)
      assert.ok(attempts.some((a) => a.retryAfter === RETRY_AFTER_S), `${r.name}: HAProxy's 503 (Retry-After ${RETRY_AFTER_S})\n${trace}`)
      gaps.forEach((g, k) => assert.ok(g >= attempts[k].retryAfter * 1000 - 100,
        `${r.name}: retried ${g} ms after an answer with Retry-After ${attempts[k].retryAfter}:\n${report.join('\n')}\n${trace}`))
    }
    process.stderr.write(`cluster test, readers of the stream on the killed node:\n  ${report.join('\n  ')}\n`)

    // nothing was created elsewhere: the stream PUT while its node was down exists nowhere,
    // and the stream of the killed node is on that node only
    assert.deepEqual(await holders(`${STREAM_PREFIX}${vp}/new-${tag}`), [])
    assert.deepEqual(await holders(V), [victim])
  } finally {
    for (const r of [...readers, survivor]) await r.stop()
  }
})

test('adding a node: a bucket marked moving answers 503 while its streams move to the new node, with their offsets; readers resume exactly', { timeout: 180_000 }, async () => {
  const dataDir = path.join(root, 'data')
  const buckets = path.join(REPO_ROOT, 'deploy', 'haproxy', 'buckets')
  const where = (name) => execFileSync(buckets, ['--data', dataDir, name]).toString().trim().split('\t')
  // a prefix on node1 and another prefix of node1 in another bucket, which stays
  const mp = PREFIXES.find((p) => nodeOf.get(p) === 'node1')
  const bucket = where(mp)[2].replace('bucket ', '')
  const stay = PREFIXES.find((p) => nodeOf.get(p) === 'node1' && where(p)[2] !== `bucket ${bucket}`)
  const M = `${STREAM_PREFIX}${mp}/moved`
  const ct = { 'Content-Type': JSON_CT }
  const append = async (i, seq = i) => {
    const r = await req('POST', M, { headers: { ...ct, 'Producer-Id': `mover-${tag}`, 'Producer-Epoch': '0', 'Producer-Seq': String(seq) }, body: JSON.stringify({ i }) })
    assert.ok(r.status === 200 || r.status === 204, `POST ${M} ${i}: ${r.status} ${r.text}`)
    return r
  }

  assert.equal(cluster.child.exitCode, null, `the cluster still runs:\n${cluster.log().slice(-3000)}`)
  await stopCluster()
  cluster = await startCluster(root, 4)
  assert.deepEqual(Object.keys(cluster.nodes).sort(), ['node1', 'node2', 'node3', 'node4'])
  // every stream where it was: the map gives node4 nothing yet
  for (const pre of PREFIXES.slice(0, 12)) {
    assert.equal((await req('HEAD', `${STREAM_PREFIX}${pre}/s`)).node, nodeOf.get(pre), `${pre} after the restart with 4 nodes`)
  }
  assert.equal((await req('PUT', M, { headers: ct })).status, 201)
  for (let i = 0; i < 5; i++) await append(i)
  const before = (await req('HEAD', M)).headers.get('stream-next-offset')

  const readers = [
    officialReader('official client, SSE', cluster.url + M, 'sse'),
    await lmstreamJsReader('lmstream.js, long-poll (Node)', cluster.url + M),
  ]
  try {
    await until('the readers to have 5 messages', () => readers.every((r) => r.items.length >= 5), 30_000)
    const settled = () => (cluster.log().match(/HAProxy: the process before the reload has finished/g) || []).length
    const reload = async () => {
      const n = settled()
      process.kill(cluster.pid, 'SIGHUP')
      await until('HAProxy to reload, and its old process to finish', () => settled() > n, 30_000)
    }
    const map = path.join(dataDir, 'buckets.map')
    fs.writeFileSync(map, fs.readFileSync(map, 'utf8').replace(new RegExp(`^${bucket} node1$`, 'm'), `${bucket} moving`))
    await reload()
    const r = await req('GET', `${M}?offset=-1`)
    assert.equal(r.status, 503, 'a stream of a moving bucket')
    assert.equal(r.headers.get('retry-after'), String(RETRY_AFTER_S))
    assert.equal((await req('GET', `${STREAM_PREFIX}${stay}/s?offset=-1`)).status, 200, 'another bucket of the same node is served meanwhile')
    await sleep(RETRY_AFTER_S * 1000 + 1000) // (an operator's pace: the readers meet the 503)
    const out = execFileSync(buckets, ['--data', dataDir, '--move-to', 'node4']).toString()
    assert.match(out, new RegExp(`moved ${mp}/moved \\(bucket ${bucket}\\) from node1 to node4`))
    await reload()

    const h = await req('HEAD', M)
    assert.equal(h.status, 200)
    assert.equal(h.node, 'node4')
    assert.equal(h.headers.get('stream-next-offset'), before, 'the same offsets on the new node')
    assert.deepEqual(await holders(M), ['node4'])
    assert.deepEqual(await holders(`${STREAM_PREFIX}${stay}/s`), ['node1'], 'the other bucket stayed')
    // the producer's state came along: a retry of its last append is a duplicate
    assert.equal((await append(4, 4)).status, 204)
    for (let i = 5; i < 10; i++) await append(i)
    await until('the readers to have the 10 messages', () => readers.every((r) => r.items.length >= 10), 60_000)
    await sleep(1000)
    for (const rd of readers) assert.deepEqual(rd.items.map((m) => m.i), [...Array(10).keys()], `${rd.name}: every message once, in order`)
    // (a long-poll reader asks again every few seconds, so it met the 503 of
    // the move; an SSE response that began before stays on the old HAProxy
    // process until its stream is deleted on node1)
    assert.ok(readers[1].requests.some((q) => q.status === 503), 'the long-poll reader met the move (503)')
  } finally {
    for (const rd of readers) await rd.stop()
  }
})

test('stopping the cluster (SIGTERM) stops every process it started, nodes and HAProxy', async () => {
  const mine = () => fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid).filter((d) => {
    try { return fs.readFileSync(`/proc/${d}/environ`, 'latin1').includes(root) || fs.readFileSync(`/proc/${d}/cmdline`, 'latin1').includes(root) } catch { return false }
  })
  assert.ok(mine().length > 0, 'the cluster runs')
  await stopCluster()
  assert.notEqual(cluster.child.exitCode, null, 'deploy/run exited')
  await until('no process of the cluster left', () => mine().length === 0, 10_000).catch(() => {})
  assert.deepEqual(mine().map((d) => fs.readFileSync(`/proc/${d}/cmdline`, 'latin1').replace(/\0/g, ' ')), [])
})

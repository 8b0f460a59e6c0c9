// node tests/bench/webhook.mjs BASE_URL SAMPLES: commit-to-webhook latency of
// one server (tests/bench/run, workload webhook).
//
// A receiver on 127.0.0.1 answers every delivery {"done": true}; a webhook
// subscription follows bench/*; then, one at a time, an append to one
// stream and the wait for the delivery that covers it. The latency is from
// sending the POST to the webhook's arrival: an upper bound of commit to
// webhook, which includes the append's own round trip (reported too). The
// first 20 samples warm up and are left out. Prints one JSON line:
// {"p50_ms", "p99_ms", "mean_ms", "post_p50_ms", "samples", "lost"}.
import http from 'node:http'

const [base, samplesRaw = '300'] = process.argv.slice(2)
const samples = Number(samplesRaw)
const warm = 20
const id = `b${process.pid}${Date.now()}`
const stream = `bench/${id}`

let waiting = null // { need: the append's Stream-Next-Offset, resolve }
const rx = http.createServer((q, s) => {
  const chunks = []
  q.on('data', (c) => chunks.push(c))
  q.on('end', () => {
    const at = performance.now()
    s.writeHead(200, { 'content-type': 'application/json' }).end('{"done":true}')
    try {
      const wake = JSON.parse(Buffer.concat(chunks))
      const st = wake.streams.find((x) => x.path === stream)
      // offsets are opaque but ordered as strings (PROTOCOL.md)
      if (waiting && !waiting.need && st) waiting.seen.push({ tail: st.tail_offset, at })
      if (waiting && waiting.need && st && st.tail_offset >= waiting.need) {
        const w = waiting
        waiting = null
        w.resolve(at)
      }
    } catch {}
  })
})
await new Promise((r) => rx.listen(0, '127.0.0.1', r))
const hook = `http://127.0.0.1:${rx.address().port}/hook`

const call = async (method, path, body) => {
  const r = await fetch(`${base}/v1/stream/${path}`, {
    method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  })
  await r.arrayBuffer()
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status}`)
  return r.headers.get('stream-next-offset')
}

await call('PUT', `__ds/subscriptions/${id}`, { type: 'webhook', pattern: 'bench/*', webhook: { url: hook } })
await call('PUT', stream)
const lat = [], post = []
let lost = 0
for (let i = 0; i < samples + warm; i++) {
  let early = null // a delivery that came before the POST's answer
  const arrived = new Promise((resolve) => { waiting = { need: null, resolve, seen: [] } })
  const t0 = performance.now()
  const next = await call('POST', stream, [{ i }])
  const t1 = performance.now()
  if (waiting) {
    waiting.need = next
    early = waiting.seen.find((x) => x.tail >= next)
    if (early) { waiting.resolve(early.at); waiting = null }
  }
  const t2 = await Promise.race([arrived, new Promise((r) => setTimeout(() => r(null), 10_000))])
  if (t2 === null) {
    lost++
    waiting = null
    continue
  }
  if (i >= warm) {
    lat.push(t2 - t0)
    post.push(t1 - t0)
  }
}
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))] }
console.log(JSON.stringify({
  p50_ms: q(lat, 0.5), p99_ms: q(lat, 0.99), mean_ms: lat.reduce((a, b) => a + b, 0) / (lat.length || 1),
  post_p50_ms: q(post, 0.5), samples: lat.length, lost,
}))
rx.close()
process.exit(0)

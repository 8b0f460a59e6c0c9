// state-cost: what a State stream costs, against a running lmstream.
//
//   deploy/run --server standalone --port 8090 --data /tmp/sc &
//   node tests/perf/state-cost.mjs http://127.0.0.1:8090
//
// Prints the time of one append (3,000 sequential single-event appends, each
// waiting for its answer) to a plain JSON stream and to a State stream, twice
// each, then the time to read a snapshot of 100,000 keys, three times.
import http from 'node:http'
const base = new URL(process.argv[2])
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const req = (method, path, body, headers = {}) => new Promise((res, rej) => {
  const r = http.request({ host: base.hostname, port: base.port, method, path, agent,
    headers: { 'Content-Type': 'application/json', ...(body ? { 'Content-Length': Buffer.byteLength(body) } : { 'Content-Length': 0 }), ...headers } },
    (resp) => { const c = []; resp.on('data', (d) => c.push(d)); resp.on('end', () => res({ status: resp.statusCode, headers: resp.headers, body: Buffer.concat(c) })) })
  r.on('error', rej); r.end(body)
})
const N = 3000
for (const kind of ['plain', 'state', 'plain', 'state']) {
  const p = `/v1/stream/m-${kind}-${Math.random().toString(36).slice(2)}`
  await req('PUT', kind === 'state' ? `${p}?state` : p)
  const t0 = performance.now()
  for (let i = 0; i < N; i++) {
    const ev = JSON.stringify({ type: 'todo', key: `k${i % 500}`, value: { n: i, text: 'x'.repeat(40) }, headers: { operation: 'upsert' } })
    const r = await req('POST', p, ev)
    if (r.status !== 204) throw new Error(`${r.status} ${r.body}`)
  }
  const ms = performance.now() - t0
  console.log(`${kind}: ${N} sequential single-event appends, ${(ms / N * 1000).toFixed(0)} us each`)
}
const p = `/v1/stream/m-big-${Math.random().toString(36).slice(2)}`
await req('PUT', `${p}?state`)
for (let b = 0; b < 100; b++) {
  const batch = []
  for (let i = 0; i < 1000; i++) batch.push({ type: 'row', key: `key-${b}-${i}`, value: { n: i, text: 'y'.repeat(40) }, headers: { operation: 'insert' } })
  const r = await req('POST', p, JSON.stringify(batch))
  if (r.status !== 204) throw new Error(`${r.status}`)
}
for (let run = 0; run < 3; run++) {
  const t0 = performance.now()
  let r = await req('GET', `${p}?snapshot`)
  let pages = 1, bytes = r.body.length, rows = JSON.parse(r.body).length - 1
  while (r.headers['stream-snapshot-next']) {
    r = await req('GET', `${p}?snapshot=${encodeURIComponent(r.headers['stream-snapshot-next'])}`)
    pages++; bytes += r.body.length; rows += JSON.parse(r.body).length
  }
  console.log(`snapshot of 100,000 keys: ${(performance.now() - t0).toFixed(0)} ms, ${pages} pages, ${(bytes / 1048576).toFixed(1)} MiB, ${rows - 1} rows`)
}
agent.destroy()

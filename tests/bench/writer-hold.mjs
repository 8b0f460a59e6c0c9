// How long one large request holds the writer lock, as another writer sees
// it: while one POST appends N JSON messages of about BYTES in all, a second
// connection appends tiny messages to another stream back to back; the
// slowest of those is the wait one request imposes on every other writer.
//
//   node tests/bench/writer-hold.mjs BASE_URL N BYTES
//
// The server must accept the body (max_body >= BYTES) and anonymous writes
// under /v1/stream/hold/. Prints one JSON line.
import http from 'node:http'
const [base, nStr, bytesStr] = process.argv.slice(2)
const N = Number(nStr), BYTES = Number(bytesStr)
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
function req(method, path, body, ct = 'application/json') {
  return new Promise((res, rej) => {
    const r = http.request(base + path, { method, agent, headers: { 'Content-Type': ct } }, (x) => { x.resume(); x.on('end', () => res(x.statusCode)) })
    r.on('error', rej); r.end(body)
  })
}
const tag = `${N}-${Date.now()}`
await req('PUT', `/v1/stream/hold/big-${tag}`, '')
await req('PUT', `/v1/stream/hold/small-${tag}`, '')
const pad = 'x'.repeat(Math.max(0, Math.floor(BYTES / N) - 12))
const parts = []
for (let i = 0; i < N; i++) parts.push(`{"p":"${pad}"}`)
const body = Buffer.from('[' + parts.join(',') + ']')
let stop = false, worst = 0, n = 0
const small = (async () => { while (!stop) { const t = performance.now(); await req('POST', `/v1/stream/hold/small-${tag}`, '{"s":1}'); const d = performance.now() - t; worst = Math.max(worst, d); n++ } })()
await new Promise((r) => setTimeout(r, 300))
const t0 = performance.now()
const st = await req('POST', `/v1/stream/hold/big-${tag}`, body)
const big = performance.now() - t0
await new Promise((r) => setTimeout(r, 300))
stop = true; await small
console.log(JSON.stringify({ messages: N, bodyMiB: +(body.length / 1048576).toFixed(1), status: st, bigPostMs: Math.round(big), worstSmallAppendMs: Math.round(worst), smallAppends: n }))
agent.destroy()

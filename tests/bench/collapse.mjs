// node tests/bench/collapse.mjs URL ORIGIN VARNISH_DIR CLIENTS MESSAGES
// N long-poll clients on one new stream URL through Varnish; MESSAGES
// appends sent to ORIGIN (HAProxy behind Varnish, so that they are not
// counted), one at a time once every client has the one before; then quiet
// until the long-polls time out twice. Counts the requests Varnish sent to
// its origin (varnishstat -n VARNISH_DIR MAIN.backend_req) per wake-up and
// per timeout, and prints one line:
//   clients=N per_wakeup=X per_timeout=Y ratio=X/N wake_ms=P50 ok=1
// (wake_ms: the median time from an append to its last client; ok=0 when a
// client missed or doubled a message).
import { execFileSync } from 'node:child_process'
import http from 'node:http'

const [url, origin, vdir, nArg, mArg] = process.argv.slice(2)
const N = Number(nArg), M = Number(mArg)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const backendReq = () => Number(/MAIN\.backend_req\s+(\d+)/.exec(
  execFileSync('varnishstat', ['-n', vdir, '-1', '-f', 'MAIN.backend_req']).toString())[1])

// one keep-alive connection per client at most (fetch may open more than
// one per client while the old ones close, and 10,000 clients are near the
// descriptor limit)
const agent = new http.Agent({ keepAlive: true, maxSockets: N, maxFreeSockets: N })
function get (u) {
  return new Promise((resolve, reject) => {
    http.get(u, { agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
      res.on('error', reject)
    }).on('error', reject)
  })
}
const ct = { 'content-type': 'text/plain' }
const put = await fetch(origin, { method: 'PUT', headers: ct })
if (put.status !== 201) throw new Error(`PUT ${origin}: ${put.status}`)
let stop = false
const got = new Array(N).fill(0)
let bad = 0, errors = 0, timeouts0 = 0
async function client (i) {
  let offset = '-1', cursor = ''
  while (!stop) {
    let res
    try {
      res = await get(`${url}?offset=${offset}&live=long-poll${cursor ? `&cursor=${cursor}` : ''}`)
    } catch { errors++; await sleep(200); continue }
    const body = res.body
    if (res.status === 200) {
      for (const m of body.split('\n').filter(Boolean)) {
        if (m !== `m${got[i]}`) bad++
        got[i]++
      }
    } else if (res.status === 204) {
      if (i === 0) timeouts0++
    } else { errors++; await sleep(200); continue }
    offset = res.headers['stream-next-offset'] || offset
    cursor = res.headers['stream-cursor'] || cursor
  }
}
const loops = []
for (let i = 0; i < N; i++) {
  loops.push(client(i))
  if (i % 500 === 499) await sleep(50) // connect in steps
}
await sleep(2000)
const wake = [], wakeMs = []
for (let k = 0; k < M; k++) {
  const b = backendReq()
  const t = Date.now()
  await fetch(origin, { method: 'POST', headers: ct, body: `m${k}\n` })
  while (got.some((g) => g <= k)) {
    if (Date.now() - t > 60_000) break
    await sleep(10)
  }
  wakeMs.push(Date.now() - t)
  await sleep(500)
  wake.push(backendReq() - b)
}
const b = backendReq(), t0 = timeouts0
while (timeouts0 < t0 + 2) await sleep(50)
await sleep(300)
const perTimeout = (backendReq() - b) / (timeouts0 - t0)
const ok = got.every((g) => g === M) && bad === 0 ? 1 : 0
stop = true
await fetch(origin, { method: 'POST', headers: ct, body: 'end\n' })
await Promise.race([Promise.all(loops), sleep(30_000)])
const avg = wake.reduce((a, x) => a + x, 0) / wake.length
wakeMs.sort((x, y) => x - y)
console.log(`clients=${N} per_wakeup=${avg.toFixed(2)} per_timeout=${perTimeout.toFixed(2)} ratio=${(avg / N).toExponential(2)} ` +
  `wake_ms=${wakeMs[wakeMs.length >> 1]} errors=${errors} ok=${ok}`)
process.exit(0)

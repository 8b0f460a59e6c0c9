// node tests/bench/fill.mjs URL CHUNK TOTAL OFFSETS_FILE
// Creates URL as an application/octet-stream stream and appends CHUNK-byte
// messages until TOTAL bytes, 4 requests in flight. Writes the offset before
// each message (the first is -1) to OFFSETS_FILE, for tests/bench/read.lua.
import { writeFileSync } from 'node:fs'

const [url, chunkArg, totalArg, offFile] = process.argv.slice(2)
const chunk = Number(chunkArg), total = Number(totalArg)
const ct = { 'content-type': 'application/octet-stream' }
const put = await fetch(url, { method: 'PUT', headers: ct })
if (put.status !== 201 && put.status !== 200) throw new Error(`PUT ${url}: ${put.status}`)
const body = Buffer.alloc(chunk, 0x61)
const n = Math.ceil(total / chunk)
const next = new Array(n)
let i = 0
async function worker () {
  // the messages are identical, so their order does not matter; each
  // answer's Stream-Next-Offset is the end of one message
  while (i < n) {
    const k = i++
    const r = await fetch(url, { method: 'POST', headers: ct, body })
    await r.arrayBuffer()
    if (r.status < 200 || r.status > 299) throw new Error(`POST ${url}: ${r.status}`)
    next[k] = r.headers.get('stream-next-offset')
  }
}
await Promise.all([worker(), worker(), worker(), worker()])
next.sort()
writeFileSync(offFile, ['-1', ...next.slice(0, -1)].join('\n') + '\n')
console.log(`filled ${n} x ${chunk} bytes`)

// The reference Durable Streams server (npm @durable-streams/server 0.3.7, in
// tests/bench/node_modules: tests/bench/package.json; fanout and append-rate
// run `npm install` there on first use), run as a benchmark peer.
//   node tests/bench/node-peer.mjs PORT [DATA_DIR]
// Loopback only. With DATA_DIR it uses its file-backed store, else memory.
// PEER_WEBHOOKS=1 turns on its webhook subscriptions (the webhook workload).
// Prints "ready <url>" on stdout once listening; stops on SIGTERM/SIGINT.
import { DurableStreamTestServer } from '@durable-streams/server'

const port = Number(process.argv[2] ?? 0)
const dataDir = process.argv[3] || undefined
const server = new DurableStreamTestServer({
  port,
  host: '127.0.0.1',
  longPollTimeout: 30000,
  webhooks: process.env.PEER_WEBHOOKS === '1',
  ...(dataDir ? { dataDir } : {}),
})
const url = await server.start()
console.log(`ready ${url}`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  const t = setTimeout(() => process.exit(0), 3000)
  t.unref()
  try {
    await server.stop()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

#!/usr/bin/env node
// Starts the reference Node server (@durable-streams/server) so the
// conformance harness can be exercised without lmstream. Mirrors the
// interface of deploy/run: foreground, prints a ready line to stderr, exits on
// SIGTERM/SIGINT.
//
//   node reference-server.mjs --port N [--longpoll-ms MS] [--data DIR]
//
// With --data the reference server uses its file-backed (LMDB) store,
// otherwise its in-memory store.
import { DurableStreamTestServer } from "@durable-streams/server"

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt
}
const port = Number(opt(`--port`, `0`))
const longPollTimeout = Number(opt(`--longpoll-ms`, `20000`))
const dataDir = opt(`--data`, undefined)

const server = new DurableStreamTestServer({
  port,
  host: `127.0.0.1`,
  longPollTimeout,
  ...(dataDir ? { dataDir } : {}),
})
const url = await server.start()
process.stderr.write(
  `lmstream: ready on ${url} (reference @durable-streams/server, long-poll ${longPollTimeout} ms${dataDir ? `, data ${dataDir}` : `, in-memory`})\n`
)

let stopping = false
const stop = async (sig) => {
  if (stopping) return
  stopping = true
  process.stderr.write(`reference-server: ${sig}, stopping\n`)
  const t = setTimeout(() => process.exit(1), 5000)
  t.unref()
  await server.stop()
  process.exit(0)
}
process.on(`SIGTERM`, () => stop(`SIGTERM`))
process.on(`SIGINT`, () => stop(`SIGINT`))

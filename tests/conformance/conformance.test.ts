// Runs the official Durable Streams server conformance suite
// (@durable-streams/server-conformance-tests) against one running server.
//
// Environment:
//   LMSTREAM_BASE_URL     base URL of the server, e.g. http://127.0.0.1:8080
//                         (the suite requests ${base}/v1/stream/...)
//   LMSTREAM_LONGPOLL_MS  the server's long-poll timeout in ms (default 20000);
//                         the suite sizes its long-poll test timeouts from it.
//   LMSTREAM_TOKEN        a token for a server with auth = token: every request
//                         the suite makes carries it (Authorization: Bearer),
//                         unless the suite sets Authorization itself.
//   LMSTREAM_SUBSCRIPTIONS "0" leaves out the subscription group (the server
//                         must let webhooks call the suite's receiver on
//                         127.0.0.1: subscriptions_allow_loopback = on).
//
// Normally invoked through tests/conformance/run.

// The suite calls the global fetch; wrap it before the suite is loaded.
const token = process.env.LMSTREAM_TOKEN
if (token) {
  const plainFetch = globalThis.fetch
  globalThis.fetch = (input: RequestInfo | URL, init: RequestInit = {}) => {
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined))
    if (!headers.has(`authorization`)) headers.set(`authorization`, `Bearer ${token}`)
    return plainFetch(input, { ...init, headers })
  }
}
// Through HAProxy in front of several nodes (deploy/run --server cluster), a
// fork whose source lives on another node is refused with 409 "source on
// another node". LMSTREAM_CROSS_NODE_LOG names a file that gets the full name
// of each test that received such an answer, one a line, so that
// summarize.mjs can tell those refusals from real failures.
const crossNodeLog = process.env.LMSTREAM_CROSS_NODE_LOG
if (crossNodeLog) {
  const { appendFileSync } = await import(`node:fs`)
  const { expect } = await import(`vitest`)
  const innerFetch = globalThis.fetch
  globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const res = await innerFetch(input, init)
    if (res.status === 409 && !res.headers.has(`x-lmstream-node`) &&
        (await res.clone().text()).trim() === `source on another node`) {
      appendFileSync(crossNodeLog, `${expect.getState().currentTestName ?? `?`}\n`)
    }
    return res
  }
}
const { runConformanceTests } = await import(`@durable-streams/server-conformance-tests`)

const baseUrl = process.env.LMSTREAM_BASE_URL
if (!baseUrl) {
  throw new Error(
    `LMSTREAM_BASE_URL is not set (use tests/conformance/run, or export it)`
  )
}

const longPollRaw = process.env.LMSTREAM_LONGPOLL_MS ?? `20000`
const longPollTimeoutMs = Number(longPollRaw)
if (!Number.isInteger(longPollTimeoutMs) || longPollTimeoutMs <= 0) {
  throw new Error(`LMSTREAM_LONGPOLL_MS must be a positive integer, got "${longPollRaw}"`)
}

runConformanceTests({
  baseUrl: baseUrl.replace(/\/+$/, ``),
  longPollTimeoutMs,
  // The `Reserved subscription APIs` group (PROTOCOL.md 6-7).
  subscriptions: process.env.LMSTREAM_SUBSCRIPTIONS !== `0`,
})

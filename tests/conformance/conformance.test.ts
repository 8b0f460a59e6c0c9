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
// Normally invoked through tests/conformance/run, which also applies the
// test-name filter that excludes the `Fork - ...` groups.

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

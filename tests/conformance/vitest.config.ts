import { defineConfig } from "vitest/config"

// Config for the conformance run. tests/conformance/run sets
// LMSTREAM_RESULTS_JSON to a per-deployment path; the JSON reporter output is
// what the run script counts. The default reporter is for humans/CI logs.
const jsonOut = process.env.LMSTREAM_RESULTS_JSON ?? `results/conformance.json`

// Per-test timeout for tests that don't set their own. Property-based tests
// issue hundreds of requests; a fork-per-request CGI deployment needs headroom.
// Long-poll tests set their own timeout (server long-poll timeout + 1 s).
const testTimeout = Number(process.env.LMSTREAM_TEST_TIMEOUT_MS ?? 60_000)

export default defineConfig({
  // keep vite's cache out of the source tree: in the run's results (runs
  // side by side then never share one), else in tests/node_modules
  cacheDir: process.env.LMSTREAM_VITE_CACHE ?? `${import.meta.dirname}/../node_modules/.vite`,
  test: {
    root: import.meta.dirname,
    include: [`conformance.test.ts`],
    environment: `node`,
    // One file, one server: never run files in parallel. Inside the file,
    // tests run one after another except those the suite marks
    // test.concurrent (the TTL expiry group, which mostly sleeps); those run
    // at vitest's default maxConcurrency (5).
    fileParallelism: false,
    maxConcurrency: Number(process.env.LMSTREAM_TEST_CONCURRENCY ?? 5),
    pool: `forks`,
    testTimeout,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
    // A flaky pass must not hide a protocol bug.
    retry: 0,
    bail: 0,
    watch: false,
    reporters: [`default`, `json`],
    outputFile: { json: jsonOut },
  },
})

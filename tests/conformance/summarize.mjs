#!/usr/bin/env node
// Counts one conformance run from vitest's JSON report.
//
//   node summarize.mjs NAME RESULTS.json EXPECTED_RUN COUNTS_OUT
//
// Prints the failed tests (with the first lines of their error) and one line
//   conformance[NAME]: P passed, F failed, S skipped (...)
// and writes "passed failed skipped" to COUNTS_OUT for the caller to sum.
// With LMSTREAM_CROSS_NODE_LOG (a file of test names, see conformance.test.ts)
// a failed test of a Fork group that received 409 "source on another node"
// from HAProxy is counted apart, as refused across nodes (neither passed nor
// failed), and the line gets ", X refused across nodes".
// Exit status: 0 all run tests passed and the number run is as expected,
//              1 failures, 2 fewer/more tests ran than expected or no report.
import { existsSync, readFileSync, writeFileSync } from "node:fs"

const [name, jsonPath, expectedRaw, countsOut] = process.argv.slice(2)
const expectedRun = Number(expectedRaw)

let report
try {
  report = JSON.parse(readFileSync(jsonPath, `utf8`))
} catch (e) {
  console.log(`conformance[${name}]: no usable vitest JSON report at ${jsonPath} (${e.message})`)
  if (countsOut) writeFileSync(countsOut, `0 0 0\n`)
  process.exit(2)
}

const tests = (report.testResults ?? []).flatMap((f) => f.assertionResults ?? [])
const group = (t) => (t.ancestorTitles?.[0] ?? ``)
const counts = { passed: 0, failed: 0, forkPassed: 0, forkFailed: 0, crossNode: 0, filtered: 0, subs: 0, otherSkip: 0 }
const failed = []
const isFork = (t) => /^Fork - /.test(group(t))
const crossLog = process.env.LMSTREAM_CROSS_NODE_LOG
const refused = new Set(crossLog && existsSync(crossLog) ? readFileSync(crossLog, `utf8`).split(`\n`).filter(Boolean) : [])
const fullName = (t) => [...(t.ancestorTitles ?? []), t.title].join(` > `)
for (const t of tests) {
  if (t.status === `passed`) {
    counts.passed++
    if (isFork(t)) counts.forkPassed++
  } else if (t.status === `failed` && isFork(t) && refused.has(fullName(t))) {
    counts.crossNode++
  } else if (t.status === `failed`) {
    counts.failed++
    if (isFork(t)) counts.forkFailed++
    failed.push(t)
  } else if (group(t) === `Reserved subscription APIs`) counts.subs++
  else if (process.env.LMSTREAM_CONFORMANCE_FILTER) counts.filtered++
  else counts.otherSkip++
}
// A file-level error (e.g. the suite failed to import) has no assertions.
const fileErrors = (report.testResults ?? []).filter(
  (f) => f.status === `failed` && (f.assertionResults ?? []).length === 0
)

for (const t of failed) {
  const msg = (t.failureMessages ?? [``])[0] ?? ``
  const lines = msg
    .split(`\n`)
    .filter((l) => l.trim() && !/^\s+at /.test(l))
    .slice(0, 3)
    .map((l) => `      ${l.trim().slice(0, 200)}`)
  console.log(`  FAIL [${name}] ${[...(t.ancestorTitles ?? []), t.title].join(` > `)}`)
  if (lines.length) console.log(lines.join(`\n`))
}
for (const f of fileErrors) {
  console.log(`  FILE ERROR [${name}] ${f.name}: ${(f.message ?? ``).split(`\n`)[0]}`)
}

const run = counts.passed + counts.failed + counts.crossNode
const skipped = counts.filtered + counts.subs + counts.otherSkip
const parts = [`Fork groups: ${counts.forkPassed} passed, ${counts.forkFailed} failed` +
  (crossLog ? `, ${counts.crossNode} refused across nodes (409 source on another node)` : ``)]
if (counts.filtered) parts.push(`${counts.filtered} filtered out by LMSTREAM_CONFORMANCE_FILTER`)
if (counts.subs) parts.push(`${counts.subs} of the subscription group not run`)
if (counts.otherSkip) parts.push(`${counts.otherSkip} skipped by the suite`)
console.log(
  `conformance[${name}]: ${counts.passed} passed, ${counts.failed} failed, ${skipped} skipped` +
  (crossLog ? `, ${counts.crossNode} refused across nodes` : ``) + ` (${parts.join(`; `)})`
)
// (a fourth figure: the refusals across nodes, when every test vitest saw
// fail is one of them, so that the caller can accept vitest's failing status)
const onlyRefused = counts.crossNode > 0 && report.numFailedTests === counts.crossNode && counts.failed === 0
if (countsOut) writeFileSync(countsOut, `${counts.passed} ${counts.failed} ${skipped}${onlyRefused ? ` ${counts.crossNode}` : ``}\n`)

let status = counts.failed > 0 || fileErrors.length > 0 ? 1 : 0
if (!(run > 0) || run + counts.otherSkip !== expectedRun) {
  console.log(
    `conformance[${name}]: ERROR: ${run} tests ran (+${counts.otherSkip} skipped by the suite), expected ${expectedRun}`
  )
  status = 2
}
process.exit(status)

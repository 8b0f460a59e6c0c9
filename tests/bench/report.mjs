// node tests/bench/report.mjs DIR: turns DIR/raw.csv (tests/bench/run) into
// DIR/summary.md (medians, ratios to the peers of the same run, targets),
// DIR/results.json (medians and every repetition) and DIR/*.png (gnuplot).
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

const dir = process.argv[2]
const rows = readFileSync(join(dir, 'raw.csv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => l.split(','))
  .map(([workload, variant, system, rep, metric, value]) => ({ workload, variant, system, rep, metric, value }))
const env = existsSync(join(dir, 'env.txt')) ? readFileSync(join(dir, 'env.txt'), 'utf8').trim() : ''

// median over the repetitions of one figure (numbers only)
const groups = new Map()
for (const r of rows) {
  const k = [r.workload, r.variant, r.system, r.metric].join('|')
  if (!groups.has(k)) groups.set(k, [])
  const v = Number(r.value)
  if (r.value !== '' && r.value !== '-' && Number.isFinite(v)) groups.get(k).push(v)
}
function median (a) {
  if (!a || !a.length) return undefined
  const s = [...a].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const med = (w, v, s, m) => median(groups.get([w, v, s, m].join('|')))
const runs = (w, v, s, m) => (groups.get([w, v, s, m].join('|')) || []).length
const variants = (w) => [...new Set(rows.filter((r) => r.workload === w).map((r) => r.variant))]
const systems = (w, v) => [...new Set(rows.filter((r) => r.workload === w && r.variant === v).map((r) => r.system))]

function fmt (x, d = 0) {
  if (x === undefined || Number.isNaN(x)) return '—'
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
}
const ratio = (a, b) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined)
const fx = (r) => (r === undefined ? '—' : `${r.toFixed(r >= 10 ? 1 : 2)}×`)

const names = {
  lighttpd: 'lmstream, lighttpd (FastCGI + daemon)',
  standalone: 'lmstream-live alone',
  cgi: 'lmstream, lighttpd CGI',
  'node-memory': 'DS-Node, in memory',
  'node-file': 'DS-Node, file-backed',
  'node-webhooks': 'DS-Node, in memory, webhooks on',
  static: 'lighttpd, static file (Range)',
  lmstream: 'lmstream-live',
  nchan: 'Nchan (nginx)',
  node: 'DS-Node, in memory',
}
const fsync = {
  lighttpd: 'yes (group commit)',
  standalone: 'yes (group commit)',
  cgi: 'yes (group commit)',
  'node-memory': 'no (nothing on disk)',
  'node-file': 'yes (fdatasync of the segment file)',
}

const md = []
const json = { env, medians: {}, targets: [] }
md.push('# lmstream benchmarks', '', '```', env, '```', '')
md.push('Every figure is the median over the repetitions (the `runs` column); ratios compare medians of the same run.', '')

function table (w, metrics, extra = []) {
  for (const v of variants(w)) {
    const head = ['system', ...extra.map((e) => e[0]), ...metrics.map((m) => m[1]), 'runs']
    md.push(`**${v}**`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`)
    for (const s of systems(w, v)) {
      const cells = metrics.map(([m, , d]) => {
        const x = med(w, v, s, m)
        json.medians[[w, v, s, m].join('|')] = x
        return fmt(x, d)
      })
      md.push(`| ${names[s] || s} | ${extra.map((e) => e[1](s)).join(' | ')}${extra.length ? ' | ' : ''}${cells.join(' | ')} | ${runs(w, v, s, metrics[0][0])} |`)
    }
    md.push('')
  }
}
function ratios (w, m, pairs, label) {
  const out = []
  for (const v of variants(w)) {
    for (const [a, b] of pairs) {
      const r = ratio(med(w, v, a, m), med(w, v, b, m))
      if (r !== undefined) out.push(`${v}: ${a}/${b} ${fx(r)}`)
    }
  }
  if (out.length) md.push(`${label}: ${out.join('; ')}.`, '')
}

const targets = []
function target (text, r, ok) {
  targets.push({ text, ratio: r, met: r === undefined ? null : ok(r) })
}
// a target whose figures came with failed requests is not met, and says so
function targetErrs (text, r, ok, errs, shown = fx) {
  const s = r === undefined ? undefined : errs ? `${shown(r)} (${fmt(errs)} failed requests)` : shown(r)
  targets.push({ text, ratio: r, shown: s, met: r === undefined ? null : !errs && ok(r) })
}

// append variants are "C conns N streams" (N = 1: "C conns 1 stream")
function appendShape (v) {
  const m = /^(\d+) conns (\d+) streams?$/.exec(v)
  return m ? { conns: Number(m[1]), streams: Number(m[2]) } : { conns: 0, streams: 0 }
}
const byShape = (a, b) => appendShape(a).streams - appendShape(b).streams || appendShape(a).conns - appendShape(b).conns
const shapeTitle = (v) => {
  const { conns, streams } = appendShape(v)
  return `${streams.toLocaleString('en-US')} stream${streams === 1 ? '' : 's'}, ${conns} connections`
}
const kib2mib = (x) => (x === undefined ? undefined : x / 1024)
// one table of the append workload per variant: appends/s, latency, the server's RSS after the runs
function appendTables (vs) {
  for (const v of vs) {
    md.push(`**${shapeTitle(v)}**`, '', '| system | fsync before ack | appends/s | p50 ms | p99 ms | RSS MiB | streams created in s | errors | runs |', '|---|---|---|---|---|---|---|---|---|')
    for (const s of systems('append', v)) {
      if (runs('append', v, s, 'appends_s') === 0 && med('append', v, s, 'failed') !== undefined) {
        md.push(`| ${names[s] || s} | ${fsync[s] || '—'} | did not start | | | | | | 0 |`)
        continue
      }
      for (const m of ['appends_s', 'p50_ms', 'p99_ms', 'rss_kb', 'errors', 'create_s', 'create_errors']) json.medians[['append', v, s, m].join('|')] = med('append', v, s, m)
      const errs = (med('append', v, s, 'errors') || 0) + (med('append', v, s, 'create_errors') || 0)
      md.push(`| ${names[s] || s} | ${fsync[s] || '—'} | ${fmt(med('append', v, s, 'appends_s'))} | ${fmt(med('append', v, s, 'p50_ms'), 2)} | ${fmt(med('append', v, s, 'p99_ms'), 2)} | ${fmt(kib2mib(med('append', v, s, 'rss_kb')), 1)} | ${fmt(med('append', v, s, 'create_s'), 2)} | ${fmt(errs)} | ${runs('append', v, s, 'appends_s')} |`)
    }
    md.push('')
    const stopped = systems('append', v).filter((s) => med('append', v, s, 'stopped') !== undefined)
    if (stopped.length) md.push(`Stopped during the runs (the figures of those runs count their failed requests; see logs/): ${stopped.map((s) => names[s] || s).join(', ')}.`, '')
    const out = []
    for (const [a, b] of [['lighttpd', 'node-file'], ['lighttpd', 'node-memory'], ['standalone', 'node-memory'], ['standalone', 'node-file']]) {
      const r = ratio(med('append', v, a, 'appends_s'), med('append', v, b, 'appends_s'))
      if (r !== undefined) out.push(`${a}/${b} ${fx(r)}`)
    }
    if (out.length) md.push(`Appends/s ratios: ${out.join('; ')}.`, '')
    // the reference server in memory on many streams: say so when it did not cope
    const { streams } = appendShape(v)
    if (streams > 1000 && systems('append', v).includes('node-memory')) {
      const failed = med('append', v, 'node-memory', 'failed') !== undefined
      const errs = (med('append', v, 'node-memory', 'errors') || 0) + (med('append', v, 'node-memory', 'create_errors') || 0)
      if (failed) md.push(`DS-Node in memory did not start for ${streams.toLocaleString('en-US')} streams.`, '')
      else if (errs > 0) md.push(`DS-Node in memory did not cope with ${streams.toLocaleString('en-US')} streams: ${fmt(errs)} failed requests (median of the runs, stream creation included).`, '')
      else if (runs('append', v, 'node-memory', 'appends_s') > 0) md.push(`DS-Node in memory coped with ${streams.toLocaleString('en-US')} streams (no failed request).`, '')
    }
  }
}
const appendVariants = variants('append').sort(byShape)
if (appendVariants.some((v) => appendShape(v).streams <= 1000)) {
  md.push('## 1. Durable appends', '', 'C connections, each POSTs a ~100-byte JSON message and waits for the answer (`publish`, saturated), for the whole duration, over N streams (connection k starts at stream k and moves to the next one with each append). The streams are created empty (`publish --create`) on a fresh data directory, and every repetition appends to them. RSS: VmRSS summed over the server\'s processes right after each run (lighttpd, its `lmstream.fcgi` workers and lmstream-live; lmstream-live alone; the Node process), median.', '')
  appendTables(appendVariants.filter((v) => appendShape(v).streams <= 1000))
  md.push('lmstream (durable): the appends waiting in one process go into one transaction (src/store/batch.c), committed by its writer thread; its flusher thread then makes the commits durable (one flush for every commit since the last) and tells the owner of each request, while the writer runs the next batch (group commit). DS-Node file-backed writes the message to a segment file and awaits `fdatasync` on it (concurrent appends share one in-flight call) before answering; its metadata goes to an LMDB index without a sync of its own. DS-Node in memory keeps nothing on disk.', '')
}
if (appendVariants.some((v) => appendShape(v).streams > 1000)) {
  md.push('## 1b. Many streams', '', 'As above, the appends spread over many streams (the shape of Electric\'s public benchmark): each connection moves to the next stream with each append, so every stream gets a few appends per run. lmstream through lighttpd, lmstream-live alone, and DS-Node in memory (DS-Node file-backed and CGI are left out at this size).', '')
  appendTables(appendVariants.filter((v) => appendShape(v).streams > 1000))
}
if (appendVariants.length) {
  const key = (c, n) => `${c} conns ${n} ${n === 1 ? 'stream' : 'streams'}`
  const a = (c, n, s) => med('append', key(c, n), s, 'appends_s')
  const e = (c, n, ...ss) => ss.reduce((t, s) => t + (med('append', key(c, n), s, 'errors') || 0), 0)
  const absolute = (text, c, n, s, goal) => targetErrs(text, a(c, n, s), (x) => x >= goal, e(c, n, s), (x) => `${fmt(x)} (${fx(x / goal)} the goal)`)
  const versus = (text, c, n, s, peer, goal) => targetErrs(text, ratio(a(c, n, s), a(c, n, peer)), (r) => r >= goal, e(c, n, s, peer))
  absolute('lmstream-live alone: ≥ 100,000 durable appends/s, 64 connections, 1 stream', 64, 1, 'standalone', 100000)
  absolute('lmstream-live alone: ≥ 100,000 durable appends/s, 64 connections, 1,000 streams', 64, 1000, 'standalone', 100000)
  versus('lmstream-live alone: appends/s ≥ 3.5× DS-Node in memory, 64 connections, 1 stream', 64, 1, 'standalone', 'node-memory', 3.5)
  versus('lmstream-live alone: appends/s ≥ 3.5× DS-Node in memory, 64 connections, 1,000 streams', 64, 1000, 'standalone', 'node-memory', 3.5)
  for (const c of [16, 64]) {
    absolute(`through lighttpd: ≥ 25,000 durable appends/s, ${c} connections, 1 stream`, c, 1, 'lighttpd', 25000)
    versus(`through lighttpd: appends/s ≥ DS-Node in memory, ${c} connections, 1 stream`, c, 1, 'lighttpd', 'node-memory', 1)
  }
  versus('durable appends/s through lighttpd ≥ 20× DS-Node file-backed (16 connections, 1 stream)', 16, 1, 'lighttpd', 'node-file', 20)
}
if (variants('producer').some((v) => v !== 'setup')) {
  md.push('## 2. Idempotent producer appends', '', 'One deployment per system with two streams: plain appends to one, idempotent-producer appends (`Producer-Id` per connection, `Producer-Epoch`, `Producer-Seq`) to the other; each repetition runs both in turn, the order swapping, on the same number of connections. × plain: producer appends/s over plain appends/s of the same deployment.', '')
  md.push('| system | connections | plain appends/s | producer appends/s | × plain | producer p50 ms | producer p99 ms | plain p99 ms | errors | runs |', '|---|---|---|---|---|---|---|---|---|---|')
  const pv = variants('producer').filter((v) => v !== 'setup').sort((x, y) => parseInt(x) - parseInt(y))
  for (const s of [...new Set(pv.flatMap((v) => systems('producer', v)))]) {
    for (const v of pv) {
      const p = med('producer', v, s, 'appends_s'), q = med('producer', v, s, 'plain_appends_s')
      for (const m of ['appends_s', 'plain_appends_s', 'p50_ms', 'p99_ms', 'plain_p99_ms']) json.medians[['producer', v, s, m].join('|')] = med('producer', v, s, m)
      const errs = (med('producer', v, s, 'errors') || 0) + (med('producer', v, s, 'plain_errors') || 0)
      md.push(`| ${names[s] || s} | ${parseInt(v)} | ${fmt(q)} | ${fmt(p)} | ${fx(ratio(p, q))} | ${fmt(med('producer', v, s, 'p50_ms'), 2)} | ${fmt(med('producer', v, s, 'p99_ms'), 2)} | ${fmt(med('producer', v, s, 'plain_p99_ms'), 2)} | ${fmt(errs)} | ${runs('producer', v, s, 'appends_s')} |`)
    }
  }
  md.push('')
  for (const s of ['standalone', 'lighttpd']) {
    for (const v of pv) {
      const errs = (med('producer', v, s, 'errors') || 0) + (med('producer', v, s, 'plain_errors') || 0)
      targetErrs(`${names[s]}: producer appends/s within 10% of plain appends (${parseInt(v)} connections, 1 stream)`, ratio(med('producer', v, s, 'appends_s'), med('producer', v, s, 'plain_appends_s')), (r) => r >= 0.9, errs)
    }
  }
}
if (variants('halfrate').length) {
  md.push('## 2b. Append latency at half the saturated rate', '', 'One stream. Each repetition publishes as fast as possible (saturated), then at a fixed rate of half what that run reached, on the same connections (`publish --rate`: connection k sends at start + (k + j·C)/rate; a message whose connection still waits for its previous answer goes out when that answer is in, and counts as late when that is more than 1 ms after its time). p50/p99: from sending a request to its whole answer; p99 from due: from the time the message was due.', '')
  md.push('| system | connections | saturated appends/s | fixed rate | appends/s reached | p50 ms | p99 ms | p99 from due ms | late | errors | runs |', '|---|---|---|---|---|---|---|---|---|---|---|')
  for (const v of variants('halfrate')) {
    for (const s of systems('halfrate', v)) {
      for (const m of ['sat_appends_s', 'target_s', 'appends_s', 'p50_ms', 'p99_ms', 'sched_p99_ms', 'late']) json.medians[['halfrate', v, s, m].join('|')] = med('halfrate', v, s, m)
      md.push(`| ${names[s] || s} | ${parseInt(v)} | ${fmt(med('halfrate', v, s, 'sat_appends_s'))} | ${fmt(med('halfrate', v, s, 'target_s'))} | ${fmt(med('halfrate', v, s, 'appends_s'))} | ${fmt(med('halfrate', v, s, 'p50_ms'), 2)} | ${fmt(med('halfrate', v, s, 'p99_ms'), 2)} | ${fmt(med('halfrate', v, s, 'sched_p99_ms'), 2)} | ${fmt(med('halfrate', v, s, 'late'))} | ${fmt((med('halfrate', v, s, 'errors') || 0) + (med('halfrate', v, s, 'sat_errors') || 0))} | ${runs('halfrate', v, s, 'p99_ms')} |`)
    }
  }
  md.push('')
  const hv = '64 conns 1 stream'
  targetErrs('lmstream-live alone: append p99 ≤ 5 ms at half the saturated rate (64 connections, 1 stream)', med('halfrate', hv, 'standalone', 'p99_ms'), (p) => p <= 5,
    (med('halfrate', hv, 'standalone', 'errors') || 0) + (med('halfrate', hv, 'standalone', 'sat_errors') || 0), (p) => `${fmt(p, 2)} ms`)
}
if (variants('tinyget').length) {
  md.push('## 2c. Tiny catch-up GETs against appends', '', 'One deployment per system: wrk reads a stream holding one small message at its first offset (`read.lua`), and `publish` appends to another stream, on the same number of connections; each repetition measures both in turn, the order swapping. appends/s ÷ GETs/s is the ratio `tests/perf/append-guard` checks (with shorter rounds), recorded in the top-level README.', '')
  md.push('| system | connections | tiny GETs/s | GET p50 ms | GET p99 ms | appends/s | append p50 ms | append p99 ms | appends/s ÷ GETs/s | errors | runs |', '|---|---|---|---|---|---|---|---|---|---|---|')
  for (const v of variants('tinyget')) {
    for (const s of systems('tinyget', v)) {
      const g = med('tinyget', v, s, 'reads_s'), ap = med('tinyget', v, s, 'append_appends_s')
      json.medians[['tinyget', v, s, 'reads_s'].join('|')] = g
      json.medians[['tinyget', v, s, 'appends_s'].join('|')] = ap
      json.medians[['tinyget', v, s, 'ratio'].join('|')] = ratio(ap, g)
      md.push(`| ${names[s] || s} | ${parseInt(v)} | ${fmt(g)} | ${fmt(med('tinyget', v, s, 'p50_ms'), 2)} | ${fmt(med('tinyget', v, s, 'p99_ms'), 2)} | ${fmt(ap)} | ${fmt(med('tinyget', v, s, 'append_p50_ms'), 2)} | ${fmt(med('tinyget', v, s, 'append_p99_ms'), 2)} | ${ratio(ap, g) === undefined ? '—' : ratio(ap, g).toFixed(2)} | ${fmt((med('tinyget', v, s, 'errors') || 0) + (med('tinyget', v, s, 'append_errors') || 0))} | ${runs('tinyget', v, s, 'reads_s')}/${runs('tinyget', v, s, 'append_appends_s')} |`)
    }
  }
  md.push('')
}
if (variants('catchup').length) {
  md.push('## 3. Catch-up reads', '', 'A stream of messages of the given size, ~100 MB in all; 16 connections (wrk) read at random message offsets. Each server answers as much as it sends in one response: lmstream ~1 MiB, DS-Node everything up to the end of the stream. The static file row asks lighttpd for the same number of bytes per read as lmstream through lighttpd got (`Range`), from a file of the stream\'s size.', '')
  table('catchup', [['reads_s', 'reads/s', 1], ['mib_s', 'MiB/s', 1], ['bytes_per_read', 'bytes/read', 0], ['p50_ms', 'p50 ms', 2], ['p99_ms', 'p99 ms', 2], ['errors', 'errors', 0]])
  ratios('catchup', 'mib_s', [['lighttpd', 'node-memory'], ['lighttpd', 'node-file'], ['lighttpd', 'static'], ['standalone', 'static']], 'MiB/s ratios')
  ratios('catchup', 'reads_s', [['lighttpd', 'node-memory'], ['lighttpd', 'static']], 'Reads/s ratios')
  for (const v of variants('catchup')) {
    target(`catch-up ${v}: MiB/s through lighttpd ≥ 3× DS-Node in memory`, ratio(med('catchup', v, 'lighttpd', 'mib_s'), med('catchup', v, 'node-memory', 'mib_s')), (r) => r >= 3)
    target(`catch-up ${v}: reads/s through lighttpd ≥ 3× DS-Node in memory`, ratio(med('catchup', v, 'lighttpd', 'reads_s'), med('catchup', v, 'node-memory', 'reads_s')), (r) => r >= 3)
    target(`catch-up ${v}: ≥ 50% of lighttpd's static-file rate for the same bytes`, ratio(med('catchup', v, 'lighttpd', 'mib_s'), med('catchup', v, 'static', 'mib_s')), (r) => r >= 0.5)
    target(`catch-up ${v}, lmstream-live alone: ≥ 50% of the static-file rate`, ratio(med('catchup', v, 'standalone', 'mib_s'), med('catchup', v, 'static', 'mib_s')), (r) => r >= 0.5)
  }
}
if (variants('cgi').length) {
  md.push('## 6. CGI cold catch-up reads', '', 'One connection reads a small stream (100 messages of 100 bytes) at random offsets; under `cgi` lighttpd starts a new `lmstream.fcgi` process for every request. FastCGI on the same data is the warm reference.', '')
  table('cgi', [['reads_s', 'reads/s', 0], ['p50_ms', 'p50 ms', 2], ['p99_ms', 'p99 ms', 2], ['errors', 'errors', 0]])
  const p = med('cgi', '1 conn', 'cgi', 'p50_ms')
  targets.push({ text: 'CGI cold catch-up read ≤ 3 ms (p50)', value: p, met: p === undefined ? null : p <= 3 })
}
// the query token of a fan-out workload's subscribers (fanout --auth token): its bytes, or 0
function tokenBytes (w) {
  const b = rows.filter((r) => r.workload === w && r.metric === 'query_token_bytes').map((r) => Number(r.value)).filter((x) => x > 0)
  return b.length ? Math.max(...b) : 0
}
function authSentence (w) {
  const b = tokenBytes(w)
  if (!b) return 'Auth: none (no token; lmstream with `auth = none`).'
  return `Auth: lmstream with \`auth = token\` (HS256); every subscriber sends a ${fmt(b)}-byte token in its query (\`&token=…\`), the publisher the same token in \`Authorization: Bearer\`; Nchan and DS-Node get a query parameter \`token=\` of the same length (ignored), so every peer reads requests of the same size.`
}
if (variants('fanout').length) {
  md.push('## 4. Live fan-out (SSE)', '', 'N idle SSE subscribers over 127.0.0.x; one 100-byte message per second with its send time, then a few seconds of publishing as fast as possible. Latency is send → receive at the subscriber. CPU is the server\'s, in % of one core, over the 1 msg/s phase and over the saturated phase. ' + authSentence('fanout'), '')
  const fm = [['held', 'held', 0], ['p50', 'p50 ms', 1], ['p99', 'p99 ms', 1], ['max', 'max ms', 1], ['lost', 'lost', 0], ['dup', 'dup', 0],
    ['kib', 'KiB/idle sub', 2], ['rss1', 'RSS KiB', 0], ['cpu', 'CPU % (1 msg/s)', 1], ['sat', 'sat. deliveries/s', 0], ['satcpu', 'CPU % (sat.)', 0], ['http_err', 'sub. requests not 200', 0]]
  const vs = variants('fanout').sort((a, b) => Number(a) - Number(b))
  for (const v of vs) {
    md.push(`**${Number(v).toLocaleString('en-US')} subscribers**`, '', `| peer | ${fm.map((m) => m[1]).join(' | ')} | runs |`, `|---|${fm.map(() => '---').join('|')}|---|`)
    for (const s of systems('fanout', v)) {
      md.push(`| ${names[s] || s} | ${fm.map(([m, , d]) => { const x = med('fanout', v, s, m); json.medians[['fanout', v, s, m].join('|')] = x; return fmt(x, d) }).join(' | ')} | ${runs('fanout', v, s, 'p99')} |`)
    }
    const r99 = ratio(med('fanout', v, 'lmstream', 'p99'), med('fanout', v, 'nchan', 'p99'))
    const rk = ratio(med('fanout', v, 'lmstream', 'kib'), med('fanout', v, 'nchan', 'kib'))
    const rs = ratio(med('fanout', v, 'lmstream', 'sat'), med('fanout', v, 'nchan', 'sat'))
    md.push('', `lmstream/Nchan: p99 ${fx(r99)}, KiB per idle subscriber ${fx(rk)}, saturated deliveries/s ${fx(rs)}.`, '')
    if (v === '10000') {
      target('fan-out p99 at 10,000 subscribers ≤ 0.5× Nchan\'s', r99, (r) => r <= 0.5)
      target('saturated deliveries/s at 10,000 ≥ Nchan\'s', rs, (r) => r >= 1)
    }
  }
  const kibs = vs.map((v) => med('fanout', v, 'lmstream', 'kib')).filter((x) => x !== undefined)
  if (kibs.length) targets.push({ text: '≤ 8 KiB daemon memory per idle subscriber (largest over the sizes)', value: Math.max(...kibs), met: Math.max(...kibs) <= 8 })
  const big = vs.filter((v) => Number(v) >= 50000)
  for (const v of big) {
    const held = med('fanout', v, 'lmstream', 'held')
    targets.push({ text: `${Number(v).toLocaleString('en-US')} subscribers held`, value: held, met: held === undefined ? null : held >= Number(v) && (med('fanout', v, 'lmstream', 'lost') || 0) === 0 })
  }
}

if (variants('longpoll').length) {
  md.push('## 5. Long-poll fan-out', '', 'N long-poll subscribers over 127.0.0.x, each looping `GET ?offset=X&live=long-poll(&cursor=C)` from the previous answer\'s `Stream-Next-Offset` (Nchan: `nchan_subscriber longpoll` with all pending messages in one multipart answer, `If-Modified-Since`/`If-None-Match`); one 100-byte message per second with its send time, then a few seconds of publishing as fast as possible. Through lighttpd, subscribers and publisher talk to lighttpd (long-polls proxied to lmstream-live, appends to the FastCGI workers); memory and CPU are summed over lighttpd, its workers and the daemon. `reconnects`: connections the server closed after an answer (the subscriber reconnects and continues from the same offset). ' + authSentence('longpoll'), '')
  const lm = [['held', 'held', 0], ['p50', 'p50 ms', 1], ['p99', 'p99 ms', 1], ['max', 'max ms', 1], ['lost', 'lost', 0], ['dup', 'dup', 0], ['dropped', 'dropped', 0],
    ['kib', 'KiB/idle sub', 2], ['rss1', 'RSS KiB', 0], ['cpu', 'CPU % (1 msg/s)', 1], ['sat', 'sat. deliveries/s', 0], ['satlost', 'sat. lost', 0], ['satcpu', 'CPU % (sat.)', 0], ['polls', 'answers', 0], ['reconnects', 'reconnects', 0], ['http_err', 'polls not 2xx', 0], ['dropped_all', 'dropped (all phases)', 0]]
  const vs = variants('longpoll').sort((a, b) => Number(a) - Number(b))
  for (const v of vs) {
    md.push(`**${Number(v).toLocaleString('en-US')} subscribers**`, '', `| peer | ${lm.map((m) => m[1]).join(' | ')} | runs |`, `|---|${lm.map(() => '---').join('|')}|---|`)
    for (const s of systems('longpoll', v)) {
      md.push(`| ${names[s] || s} | ${lm.map(([m, , d]) => { const x = med('longpoll', v, s, m); json.medians[['longpoll', v, s, m].join('|')] = x; return fmt(x, d) }).join(' | ')} | ${runs('longpoll', v, s, 'p99')} |`)
    }
    const out = []
    for (const [a, b] of [['lmstream', 'nchan'], ['lighttpd', 'nchan'], ['lmstream', 'node'], ['lighttpd', 'node']]) {
      const r99 = ratio(med('longpoll', v, a, 'p99'), med('longpoll', v, b, 'p99'))
      const rk = ratio(med('longpoll', v, a, 'kib'), med('longpoll', v, b, 'kib'))
      const rs = ratio(med('longpoll', v, a, 'sat'), med('longpoll', v, b, 'sat'))
      if (r99 !== undefined || rk !== undefined) out.push(`${a}/${b}: p99 ${fx(r99)}, KiB/idle sub ${fx(rk)}, sat. deliveries/s ${fx(rs)}`)
    }
    md.push('', out.length ? out.join('; ') + '.' : '', '')
  }
}

if (variants('held').length) {
  md.push('## 5b. Subscribers held with a publisher', '', 'N idle SSE subscribers over 127.0.0.x (lmstream-live: `max_connections` N + N/16 + 1,000, as in the fan-out; Nchan: a worker per 19,000 connections), then one 100-byte message per second and a few seconds of publishing as fast as possible (4 connections) while they stay connected. Every POST of the publisher is counted: 2xx, or not (a non-2xx answer or a failed connection; a 503 means a connection cap left the writer no room). ' + authSentence('held'), '')
  const hm = [['held', 'held', 0], ['failed', 'refused/failed', 0], ['http_err', 'sub. requests not 200', 0], ['pub_ok', 'POSTs 2xx (1 msg/s)', 0], ['pub_errors', 'POSTs not 2xx (1 msg/s)', 0], ['pub_p99', 'POST p99 ms (1 msg/s)', 1], ['satpub_ok', 'POSTs 2xx (sat.)', 0], ['satpub_errors', 'POSTs not 2xx (sat.)', 0], ['satpub_p99', 'POST p99 ms (sat.)', 1],
    ['p50', 'p50 ms', 1], ['p99', 'p99 ms', 1], ['lost', 'lost', 0], ['dropped', 'dropped', 0], ['kib', 'KiB/idle sub', 2], ['rss1', 'RSS KiB', 0], ['sat', 'sat. deliveries/s', 0]]
  for (const v of variants('held').sort((a, b) => Number(a) - Number(b))) {
    md.push(`**${Number(v).toLocaleString('en-US')} subscribers**`, '', `| peer | ${hm.map((m) => m[1]).join(' | ')} | runs |`, `|---|${hm.map(() => '---').join('|')}|---|`)
    for (const s of systems('held', v)) {
      md.push(`| ${names[s] || s} | ${hm.map(([m, , d]) => { const x = med('held', v, s, m); json.medians[['held', v, s, m].join('|')] = x; return fmt(x, d) }).join(' | ')} | ${runs('held', v, s, 'held')} |`)
    }
    md.push('')
  }
}

// Issue 23 (live delivery at the send floor), against Nchan in the same run
// and with auth on: its own table under the targets
const targets23 = []
{
  const t23 = (text, shown, met) => targets23.push({ text, shown, met })
  const ms = (x) => `${fmt(x, 1)} ms`
  // a fan-out figure is not met when subscribers were missing or deliveries lost
  const faults = (w, v, s) => {
    const out = []
    const held = med(w, v, s, 'held'), lost = med(w, v, s, 'lost') || 0, dropped = med(w, v, s, 'dropped') || 0
    if (held !== undefined && held < Number(v)) out.push(`${fmt(Number(v) - held)} subscribers not held`)
    if (lost) out.push(`${fmt(lost)} deliveries lost`)
    if (dropped) out.push(`${fmt(dropped)} dropped`)
    // these two summed over the repetitions: one run with refusals is enough
    const sum = (m) => (groups.get([w, v, s, m].join('|')) || []).reduce((a, b) => a + b, 0)
    const herr = sum('http_err'), dall = sum('dropped_all')
    if (herr) out.push(`${fmt(herr)} subscriber requests answered other than 200 in all runs`)
    if (dall > dropped) out.push(`${fmt(dall)} subscription${dall === 1 ? '' : 's'} ended by the server in all runs`)
    return out
  }
  const withFaults = (shown, f) => (f.length ? `${shown} (${f.join(', ')})` : shown)
  const tb = (w) => (tokenBytes(w) ? `, ${fmt(tokenBytes(w))}-byte query token` : ', no token (--fanout-auth none)')
  if (variants('fanout').includes('10000')) {
    const v = '10000'
    const p = med('fanout', v, 'lmstream', 'p99'), n = med('fanout', v, 'nchan', 'p99')
    const f = faults('fanout', v, 'lmstream')
    t23(`SSE fan-out, 10,000 subscribers, 1 msg/s: lmstream-live p99 ≤ 50 ms${tb('fanout')}`,
      p === undefined ? undefined : withFaults(`${ms(p)} (${fx(p / 50)} the goal); Nchan ${n === undefined ? '—' : ms(n)}, lmstream/Nchan ${fx(ratio(p, n))}`, f),
      p === undefined ? null : p <= 50 && !f.length)
    const k = med('fanout', v, 'lmstream', 'kib'), kn = med('fanout', v, 'nchan', 'kib')
    t23(`memory per idle SSE subscriber at 10,000: lmstream-live ≤ 4 KiB${tb('fanout')}`,
      k === undefined ? undefined : `${fmt(k, 2)} KiB (${fx(k / 4)} the goal); Nchan ${fmt(kn, 2)} KiB, lmstream/Nchan ${fx(ratio(k, kn))}`,
      k === undefined ? null : k <= 4)
  } else {
    t23('SSE fan-out, 10,000 subscribers, 1 msg/s: lmstream-live p99 ≤ 50 ms (`fanout` with --fanout-sizes including 10000)', undefined, null)
    t23('memory per idle SSE subscriber at 10,000: lmstream-live ≤ 4 KiB (the same run)', undefined, null)
  }
  if (variants('longpoll').includes('1000')) {
    const v = '1000', n = med('longpoll', v, 'nchan', 'p99')
    for (const s of ['lmstream', 'lighttpd']) {
      const p = med('longpoll', v, s, 'p99')
      if (p === undefined && s === 'lighttpd') continue
      const f = faults('longpoll', v, s)
      const r = ratio(p, n)
      t23(`long-poll fan-out, 1,000 subscribers: ${s === 'lmstream' ? 'lmstream-live alone' : 'lmstream through lighttpd'} p99 ≤ Nchan's${tb('longpoll')}`,
        r === undefined ? undefined : withFaults(`${fx(r)} (${ms(p)} against ${ms(n)})`, f), r === undefined ? null : r <= 1 && !f.length)
    }
  } else {
    t23('long-poll fan-out, 1,000 subscribers: lmstream-live p99 ≤ Nchan\'s (`longpoll` with --longpoll-sizes including 1000)', undefined, null)
  }
  const cv = variants('catchup')
  for (const v of cv) {
    const a = med('catchup', v, 'lighttpd', 'mib_s'), b = med('catchup', v, 'static', 'mib_s')
    const r = ratio(a, b), e = (med('catchup', v, 'lighttpd', 'errors') || 0) + (med('catchup', v, 'static', 'errors') || 0)
    t23(`catch-up through lighttpd, ${v} messages: ≥ 0.5× lighttpd's static file of the same bytes (MiB/s)`,
      r === undefined ? undefined : `${fx(r)} (${fmt(a, 1)} against ${fmt(b, 1)} MiB/s)${e ? ` (${fmt(e)} failed requests)` : ''}`, r === undefined ? null : r >= 0.5 && !e)
  }
  if (!cv.length) t23('catch-up through lighttpd: ≥ 0.5× lighttpd\'s static file of the same bytes (`catchup`)', undefined, null)
  const hv = variants('held').sort((a, b) => Number(a) - Number(b))
  for (const v of hv) {
    const n = Number(v)
    const one = (s) => {
      const held = med('held', v, s, 'held'), ok = (med('held', v, s, 'pub_ok') || 0) + (med('held', v, s, 'satpub_ok') || 0)
      const bad = (med('held', v, s, 'pub_errors') || 0) + (med('held', v, s, 'satpub_errors') || 0)
      if (held === undefined) return { shown: '—', met: null }
      const p99 = med('held', v, s, 'pub_p99'), sent = med('held', v, s, 'pub_sent')
      const more = sent === undefined ? '' : ` (at 1 msg/s ${fmt(sent)} sent, POST p99 ${fmt(p99, 1)} ms)`
      return { shown: `${fmt(held)} held, publisher ${fmt(ok)} POSTs 2xx, ${fmt(bad)} not${more}`, met: held >= n && bad === 0 && ok > 0 }
    }
    const lm = one('lmstream'), nc = one('nchan')
    t23(`subscribers held on 2 cores: ${n.toLocaleString('en-US')} SSE${n === 50000 ? '' : ' (the goal: 50,000)'}, with a publisher still served (lmstream-live${tb('held')})`,
      lm.met === null ? undefined : `${lm.shown}; Nchan: ${nc.shown}`, lm.met)
  }
  if (!hv.length) t23('subscribers held on 2 cores: 50,000 SSE, with a publisher still served (`held`)', undefined, null)
}

if (variants('webhook').length) {
  md.push('## 9. From an append to its webhook', '', 'A webhook subscription following `bench/*` and a receiver on 127.0.0.1 that answers every delivery `{"done": true}`; then 300 times (after 20 to warm up), one append and the wait for the delivery that covers it (`tests/bench/webhook.mjs`). Latency: from sending the POST to the webhook\'s arrival, an upper bound of commit to webhook that includes the append\'s own round trip (its median is shown too). lmstream delivers from lmstream-live\'s thread alone and through lighttpd (a FastCGI worker commits, the daemon delivers), and from the CGI process itself (a detached child after its answer, no daemon). × DS-Node: the ratio of p99s.', '')
  md.push('| system | webhook p50 ms | webhook p99 ms | append p50 ms | samples | lost | × DS-Node (p99) | runs |', '|---|---|---|---|---|---|---|---|')
  const peer = med('webhook', 'append', 'node-webhooks', 'p99_ms')
  for (const sy of systems('webhook', 'append')) {
    for (const k of ['p50_ms', 'p99_ms', 'post_p50_ms']) json.medians[['webhook', 'append', sy, k].join('|')] = med('webhook', 'append', sy, k)
    const p99 = med('webhook', 'append', sy, 'p99_ms')
    md.push(`| ${names[sy] || sy} | ${fmt(med('webhook', 'append', sy, 'p50_ms'), 2)} | ${fmt(p99, 2)} | ${fmt(med('webhook', 'append', sy, 'post_p50_ms'), 2)} | ${fmt(med('webhook', 'append', sy, 'samples'))} | ${fmt(med('webhook', 'append', sy, 'lost'))} | ${sy === 'node-webhooks' ? '' : fx(ratio(p99, peer))} | ${runs('webhook', 'append', sy, 'p99_ms')} |`)
  }
  md.push('')
}

if (variants('metrics-append').length) {
  md.push('## 8. What counting costs', '', 'Two deployments of each system at once, on data directories of their own prepared alike: `metrics = on` (the default: every request, commit and live read counted in the shared file `lmstream.metrics`) and `metrics = off`; each repetition measures both in turn, the order swapping. Appends: `publish`, 16 connections, 100-byte JSON messages, a stream of each per repetition. × off: the ratio to `metrics = off` of the same system.', '')
  md.push('| system | metrics | appends/s | × off | append p50 ms | append p99 ms | errors | runs |', '|---|---|---|---|---|---|---|---|')
  for (const s of [...new Set(variants('metrics-append').flatMap((v) => systems('metrics-append', v)))]) {
    for (const m of ['on', 'off']) {
      const a = med('metrics-append', m, s, 'appends_s')
      for (const k of ['appends_s', 'p50_ms', 'p99_ms']) json.medians[['metrics-append', m, s, k].join('|')] = med('metrics-append', m, s, k)
      md.push(`| ${names[s] || s} | ${m} | ${fmt(a)} | ${fx(ratio(a, med('metrics-append', 'off', s, 'appends_s')))} | ${fmt(med('metrics-append', m, s, 'p50_ms'), 2)} | ${fmt(med('metrics-append', m, s, 'p99_ms'), 2)} | ${fmt(med('metrics-append', m, s, 'errors'))} | ${runs('metrics-append', m, s, 'appends_s')} |`)
    }
    target(`${names[s] || s}: appends/s with metrics = on ≥ 97% of off`, ratio(med('metrics-append', 'on', s, 'appends_s'), med('metrics-append', 'off', s, 'appends_s')), (r) => r >= 0.97)
  }
  md.push('')
}

if (variants('cluster-append').length || variants('cluster-read').length) {
  md.push('## 9. The hop through HAProxy', '', 'Three deployments at once, each on a data directory of its own: one lighttpd node alone (`deploy/run --server lighttpd`), the same node behind HAProxy (`deploy/run --server cluster --nodes 1`: what the hop costs), and three nodes behind HAProxy (`--nodes 3`, on the same cores: the routing cost, not scaling); each repetition measures all three in turn, in a rotating order. Appends: `publish`, 16 connections over 100 JSON streams, 100-byte messages; reads: wrk, 16 connections, `GET ?offset=X` of one small message. Added per request: C / rate − C / rate of the node alone (C = 16 connections: the mean time a request takes, by Little\'s law); Δ p50 likewise.', '')
  md.push('| system | appends/s | × alone | append p50 ms | added per append ms | Δ p50 ms | reads/s | × alone | read p50 ms | added per read ms | Δ p50 ms | errors | runs |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  const C = 16
  const cnames = { lighttpd: 'one node alone (lighttpd)', cluster1: 'the node behind HAProxy', cluster3: '3 nodes behind HAProxy' }
  const added = (r, r0) => (r && r0 ? (C / r - C / r0) * 1000 : undefined)
  const diff = (a, b) => (a !== undefined && b !== undefined ? a - b : undefined)
  for (const sys of ['lighttpd', 'cluster1', 'cluster3']) {
    const a = med('cluster-append', '100 streams', sys, 'appends_s'), a0 = med('cluster-append', '100 streams', 'lighttpd', 'appends_s')
    const rd = med('cluster-read', 'tiny', sys, 'reads_s'), rd0 = med('cluster-read', 'tiny', 'lighttpd', 'reads_s')
    const ap50 = med('cluster-append', '100 streams', sys, 'p50_ms'), rp50 = med('cluster-read', 'tiny', sys, 'p50_ms')
    for (const [w, v, k] of [['cluster-append', '100 streams', 'appends_s'], ['cluster-append', '100 streams', 'p50_ms'], ['cluster-read', 'tiny', 'reads_s'], ['cluster-read', 'tiny', 'p50_ms']]) json.medians[[w, v, sys, k].join('|')] = med(w, v, sys, k)
    const errs = (med('cluster-append', '100 streams', sys, 'errors') || 0) + (med('cluster-read', 'tiny', sys, 'errors') || 0)
    const base = sys === 'lighttpd'
    md.push(`| ${cnames[sys]} | ${fmt(a)} | ${fx(ratio(a, a0))} | ${fmt(ap50, 2)} | ${base ? '' : fmt(added(a, a0), 3)} | ${base ? '' : fmt(diff(ap50, med('cluster-append', '100 streams', 'lighttpd', 'p50_ms')), 3)} | ${fmt(rd)} | ${fx(ratio(rd, rd0))} | ${fmt(rp50, 2)} | ${base ? '' : fmt(added(rd, rd0), 3)} | ${base ? '' : fmt(diff(rp50, med('cluster-read', 'tiny', 'lighttpd', 'p50_ms')), 3)} | ${fmt(errs)} | ${runs('cluster-append', '100 streams', sys, 'appends_s')}/${runs('cluster-read', 'tiny', sys, 'reads_s')} |`)
  }
  md.push('')
}

if (variants('varnish-catchup').length || variants('varnish-longpoll').length) {
  md.push('## 10. Varnish in front of HAProxy', '', 'One node behind HAProxy with Varnish in front (`deploy/run --server cluster --nodes 1`, `deploy/varnish/lmstream.vcl`, auth none). Catch-up: wrk, 16 connections, `GET ?offset=X` of one 8 MB stream of 4 KiB messages, X at random among the offsets a reader catching up from the start asks for (-1, then each answer\'s `Stream-Next-Offset`: reads of up to 1 MB), through Varnish and through HAProxy directly (the same node and data), in turn. Long-poll collapse: N clients (Node fetch, one process) long-polling one stream through Varnish with `offset` and `cursor`, 5 appends one at a time; origin requests = what Varnish sent to HAProxy (varnishstat `MAIN.backend_req`) per wake-up and per long-poll timeout; ratio = origin requests per wake-up / N; wake = the median time from an append to its last client.', '')
  md.push('| catch-up through | reads/s | MiB/s | p50 ms | p99 ms | errors | runs |', '|---|---|---|---|---|---|---|')
  for (const sys of ['haproxy', 'varnish']) {
    const g = (k) => med('varnish-catchup', '4 KiB', sys, k)
    for (const k of ['reads_s', 'mib_s', 'p50_ms']) json.medians[['varnish-catchup', '4 KiB', sys, k].join('|')] = g(k)
    md.push(`| ${sys === 'varnish' ? 'Varnish (cached)' : 'HAProxy alone'} | ${fmt(g('reads_s'))} | ${fmt(g('mib_s'), 1)} | ${fmt(g('p50_ms'), 2)} | ${fmt(g('p99_ms'), 2)} | ${fmt(g('errors'))} | ${runs('varnish-catchup', '4 KiB', sys, 'reads_s')} |`)
  }
  md.push('', '| long-poll clients | origin requests per wake-up | per timeout | collapse ratio | wake ms | client errors | every message once |', '|---|---|---|---|---|---|---|')
  for (const v of variants('varnish-longpoll')) {
    const g = (k) => med('varnish-longpoll', v, 'varnish', k)
    for (const k of ['per_wakeup', 'per_timeout', 'ratio']) json.medians[['varnish-longpoll', v, 'varnish', k].join('|')] = g(k)
    md.push(`| ${v} | ${fmt(g('per_wakeup'), 2)} | ${fmt(g('per_timeout'), 2)} | ${g('ratio') === undefined ? '—' : g('ratio').toExponential(1)} | ${fmt(g('wake_ms'))} | ${fmt(g('errors'))} | ${g('ok') === 1 ? 'yes' : 'NO'} |`)
  }
  md.push('')
}

if (variants('auth-append').length || variants('auth-read').length || variants('auth-verify').length) {
  md.push('## 7. What tokens cost', '', 'Three deployments of each system at once, on copies of one data directory: `auth = none`, `auth = token` (an HS256 secret and an EC P-256 public key in `auth_key`), and `auth = token` with `LMSTREAM_BENCH_NO_AUTH_CACHE=1` (every request verifies its token); each repetition measures every mode in turn, in a rotating order. Each request carries the mode\'s token in `Authorization: Bearer` (one token for every request, as a browser or a producer sends it). Appends: `publish`, 16 connections, 100-byte JSON messages; reads: wrk, 16 connections, `GET ?offset=X` at random offsets of a small stream (100 messages of 100 bytes). × none: the ratio to `auth = none` of the same system.', '')
  const modeNames = { none: 'auth = none', hs256: 'token, HS256', es256: 'token, ES256', 'hs256-nocache': 'token, HS256, no cache', 'es256-nocache': 'token, ES256, no cache' }
  const modes = Object.keys(modeNames).filter((m) => variants('auth-append').includes(m) || variants('auth-read').includes(m))
  const syss = [...new Set(['auth-append', 'auth-read'].flatMap((w) => variants(w).flatMap((v) => systems(w, v))))]
  for (const s of syss) {
    md.push(`**${names[s] || s}**`, '', '| auth | appends/s | × none | append p50 ms | append p99 ms | reads/s | × none | read p50 ms | read p99 ms | bytes/read | errors | runs |', '|---|---|---|---|---|---|---|---|---|---|---|---|')
    for (const m of modes) {
      const a = med('auth-append', m, s, 'appends_s')
      const rd = med('auth-read', m, s, 'reads_s')
      for (const [w, k] of [['auth-append', 'appends_s'], ['auth-append', 'p50_ms'], ['auth-append', 'p99_ms'], ['auth-read', 'reads_s'], ['auth-read', 'p50_ms'], ['auth-read', 'p99_ms']]) json.medians[[w, m, s, k].join('|')] = med(w, m, s, k)
      const errs = (med('auth-append', m, s, 'errors') || 0) + (med('auth-read', m, s, 'errors') || 0)
      md.push(`| ${modeNames[m]} | ${fmt(a)} | ${fx(ratio(a, med('auth-append', 'none', s, 'appends_s')))} | ${fmt(med('auth-append', m, s, 'p50_ms'), 2)} | ${fmt(med('auth-append', m, s, 'p99_ms'), 2)} | ${fmt(rd)} | ${fx(ratio(rd, med('auth-read', 'none', s, 'reads_s')))} | ${fmt(med('auth-read', m, s, 'p50_ms'), 2)} | ${fmt(med('auth-read', m, s, 'p99_ms'), 2)} | ${fmt(med('auth-read', m, s, 'bytes_per_read'))} | ${fmt(errs)} | ${runs('auth-append', m, s, 'appends_s')}/${runs('auth-read', m, s, 'reads_s')} |`)
    }
    md.push('')
    for (const [w, k, what] of [['auth-append', 'appends_s', 'appends/s'], ['auth-read', 'reads_s', 'reads/s']]) {
      target(`${names[s] || s}: ${what} with an HS256 token ≥ 95% of auth = none`, ratio(med(w, 'hs256', s, k), med(w, 'none', s, k)), (r) => r >= 0.95)
    }
  }
  const vm = Object.keys(modeNames).filter((m) => variants('auth-verify').includes(m))
  if (vm.length) {
    md.push('`auth_verify` alone (`auth-verify`: threads calling it in a loop on one struct auth with one token, 2 s; µs per call and thread, and calls/s of all threads):', '',
      '| token | 1 thread: µs/call | calls/s | 2 threads: µs/call | calls/s | runs |', '|---|---|---|---|---|---|')
    for (const m of vm) {
      const c = (t, k) => { const x = med('auth-verify', m, t, k); json.medians[['auth-verify', m, t, k].join('|')] = x; return x }
      md.push(`| ${modeNames[m]} | ${fmt(c('1 thread', 'us_per_call'), 2)} | ${fmt(c('1 thread', 'calls_s'))} | ${fmt(c('2 threads', 'us_per_call'), 2)} | ${fmt(c('2 threads', 'calls_s'))} | ${runs('auth-verify', m, '1 thread', 'us_per_call')} |`)
    }
    md.push('')
  }
}

md.push('## Targets', '', '| target | measured | met |', '|---|---|---|')
for (const t of targets) {
  const m = t.shown !== undefined ? t.shown : t.ratio !== undefined ? fx(t.ratio) : t.value !== undefined ? fmt(t.value, 2) : '—'
  md.push(`| ${t.text} | ${m} | ${t.met === null || t.met === undefined ? 'not measured' : t.met ? 'yes' : 'no'} |`)
}
md.push('')
const issue23 = ['fanout', 'longpoll', 'held'].some((w) => variants(w).length)
if (issue23) {
  md.push('### Targets of issue 23 (live delivery), against Nchan in the same run', '', '| target | measured | met |', '|---|---|---|')
  for (const t of targets23) md.push(`| ${t.text} | ${t.shown === undefined ? '—' : t.shown} | ${t.met === null || t.met === undefined ? 'not measured' : t.met ? 'yes' : 'no'} |`)
  md.push('')
}
json.targets = targets
json.targets23 = targets23
json.rows = rows

// --- plots --------------------------------------------------------------------------------
const plots = []
function bars (name, title, ylabel, w, metric, logscale = false, keep = () => true) {
  const kept = variants(w).filter(keep)
  const vs = w === 'append' ? kept.sort(byShape) : kept
  if (!vs.length) return
  const ss = [...new Set(vs.flatMap((v) => systems(w, v)))]
  const dat = [['system', ...vs.map((v) => `"${v}"`)].join(' ')]
  for (const s of ss) dat.push([`"${s}"`, ...vs.map((v) => { const x = med(w, v, s, metric); return x === undefined ? 'NaN' : x })].join(' '))
  writeFileSync(join(dir, `${name}.dat`), dat.join('\n') + '\n')
  const cols = vs.map((v, i) => `'${name}.dat' using ${i + 2}:xtic(1) title columnheader(${i + 2})`).join(', ')
  writeFileSync(join(dir, `${name}.gp`), `set terminal pngcairo size 900,480 noenhanced
set output '${name}.png'
set title '${title}'
set ylabel '${ylabel}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top right
set grid ytics
set xtics rotate by -20
${logscale ? 'set logscale y' : 'set yrange [0:*]'}
plot ${cols}
`)
  plots.push(name)
}
bars('appends', 'Durable appends/s (100-byte JSON), median', 'appends/s', 'append', 'appends_s', true, (v) => appendShape(v).streams <= 1000)
bars('appends-many', 'Durable appends/s over many streams, median', 'appends/s', 'append', 'appends_s', false, (v) => appendShape(v).streams > 1000)
bars('appends-rss', 'Server RSS after the append runs (KiB), median', 'KiB', 'append', 'rss_kb', true)
bars('producer', 'Idempotent producer appends/s, median', 'appends/s', 'producer', 'appends_s', true, (v) => v !== 'setup')
bars('catchup', 'Catch-up reads at random offsets, MiB/s, median', 'MiB/s', 'catchup', 'mib_s', true)
bars('cgi', 'Catch-up read latency p50 (one connection), ms', 'ms', 'cgi', 'p50_ms')
bars('longpoll-p99', 'Long-poll fan-out: delivery latency p99 at 1 msg/s, median', 'ms', 'longpoll', 'p99')
bars('longpoll-kib', 'Long-poll fan-out: server memory per idle subscriber, median', 'KiB', 'longpoll', 'kib')
bars('auth-append', 'Appends/s by auth mode (16 connections), median', 'appends/s', 'auth-append', 'appends_s')
bars('metrics-append', 'Appends/s with metrics = on and off (16 connections), median', 'appends/s', 'metrics-append', 'appends_s')
bars('auth-read', 'Small catch-up reads/s by auth mode (16 connections), median', 'reads/s', 'auth-read', 'reads_s')
if (variants('fanout').length) {
  const vs = variants('fanout').sort((a, b) => Number(a) - Number(b))
  const ps = [...new Set(vs.flatMap((v) => systems('fanout', v)))]
  for (const [name, metric, title, ylabel] of [['fanout-p99', 'p99', 'SSE fan-out: delivery latency p99 at 1 msg/s', 'ms'],
    ['fanout-kib', 'kib', 'SSE fan-out: server memory per idle subscriber', 'KiB'],
    ['fanout-sat', 'sat', 'SSE fan-out: saturated deliveries/s', 'deliveries/s']]) {
    const dat = [['subscribers', ...ps].join(' ')]
    for (const v of vs) dat.push([v, ...ps.map((p) => { const x = med('fanout', v, p, metric); return x === undefined ? 'NaN' : x })].join(' '))
    writeFileSync(join(dir, `${name}.dat`), dat.join('\n') + '\n')
    writeFileSync(join(dir, `${name}.gp`), `set terminal pngcairo size 900,480 noenhanced
set output '${name}.png'
set title '${title}'
set xlabel 'subscribers'
set ylabel '${ylabel}'
set logscale x
set grid
set key top left
set datafile missing 'NaN'
plot ${ps.map((p, i) => `'${name}.dat' using 1:${i + 2} with linespoints lw 2 title '${names[p] || p}'`).join(', ')}
`)
    plots.push(name)
  }
}
let plotted = []
for (const p of plots) {
  try {
    execFileSync('gnuplot', [`${p}.gp`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    plotted.push(p)
  } catch (e) {
    console.error(`report: gnuplot ${p}.gp failed: ${e.message.split('\n')[0]}`)
  }
}
if (plotted.length) md.push('## Plots', '', ...plotted.map((p) => `![${p}](${p}.png)`), '')
writeFileSync(join(dir, 'summary.md'), md.join('\n'))
writeFileSync(join(dir, 'results.json'), JSON.stringify(json, null, 1) + '\n')
console.error(`report: ${join(dir, 'summary.md')}, results.json, ${plotted.length} plot(s)`)

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

if (variants('append').length) {
  md.push('## 1. Durable appends', '', '16 connections, each POSTs a ~100-byte JSON message and waits for the answer (`publish`), for the whole duration.', '')
  table('append', [['appends_s', 'appends/s', 0], ['p50_ms', 'p50 ms', 2], ['p99_ms', 'p99 ms', 2], ['errors', 'errors', 0]],
    [['fsync before ack', (s) => fsync[s] || '—']])
  ratios('append', 'appends_s', [['lighttpd', 'node-file'], ['lighttpd', 'node-memory'], ['standalone', 'node-memory']], 'Appends/s ratios')
  md.push('lmstream (durable): the appends waiting in one process go into one transaction (src/store/batch.c); its commit flushes the data pages inside LMDB\'s writer lock, and the meta page is on disk before the answer (flushed along with the next commit\'s data, or by a group commit shared between processes). DS-Node file-backed writes the message to a segment file and awaits `fdatasync` on it (concurrent appends share one in-flight call) before answering; its metadata goes to an LMDB index without a sync of its own. DS-Node in memory keeps nothing on disk.', '')
  const v = '1 stream'
  target('durable appends/s through lighttpd ≥ 20× DS-Node file-backed (1 stream)', ratio(med('append', v, 'lighttpd', 'appends_s'), med('append', v, 'node-file', 'appends_s')), (r) => r >= 20)
  target('durable appends/s through lighttpd ≥ DS-Node in memory (1 stream)', ratio(med('append', v, 'lighttpd', 'appends_s'), med('append', v, 'node-memory', 'appends_s')), (r) => r >= 1)
}
if (variants('producer').length) {
  md.push('## 2. Idempotent producer appends', '', 'As above, each connection an idempotent producer (`Producer-Id`, `Producer-Epoch`, `Producer-Seq`), one stream.', '')
  table('producer', [['appends_s', 'appends/s', 0], ['p50_ms', 'p50 ms', 2], ['p99_ms', 'p99 ms', 2], ['errors', 'errors', 0]])
  ratios('producer', 'appends_s', [['lighttpd', 'node-file'], ['lighttpd', 'node-memory']], 'Appends/s ratios')
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
if (variants('fanout').length) {
  md.push('## 4. Live fan-out (SSE)', '', 'N idle SSE subscribers over 127.0.0.x; one 100-byte message per second with its send time, then a few seconds of publishing as fast as possible. Latency is send → receive at the subscriber. CPU is the server\'s, in % of one core, over the 1 msg/s phase and over the saturated phase.', '')
  const fm = [['held', 'held', 0], ['p50', 'p50 ms', 1], ['p99', 'p99 ms', 1], ['max', 'max ms', 1], ['lost', 'lost', 0], ['dup', 'dup', 0],
    ['kib', 'KiB/idle sub', 2], ['rss1', 'RSS KiB', 0], ['cpu', 'CPU % (1 msg/s)', 1], ['sat', 'sat. deliveries/s', 0], ['satcpu', 'CPU % (sat.)', 0]]
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
  md.push('## 5. Long-poll fan-out', '', 'N long-poll subscribers over 127.0.0.x, each looping `GET ?offset=X&live=long-poll(&cursor=C)` from the previous answer\'s `Stream-Next-Offset` (Nchan: `nchan_subscriber longpoll` with all pending messages in one multipart answer, `If-Modified-Since`/`If-None-Match`); one 100-byte message per second with its send time, then a few seconds of publishing as fast as possible. Through lighttpd, subscribers and publisher talk to lighttpd (long-polls proxied to lmstream-live, appends to the FastCGI workers); memory and CPU are summed over lighttpd, its workers and the daemon. `reconnects`: connections the server closed after an answer (the subscriber reconnects and continues from the same offset).', '')
  const lm = [['held', 'held', 0], ['p50', 'p50 ms', 1], ['p99', 'p99 ms', 1], ['max', 'max ms', 1], ['lost', 'lost', 0], ['dup', 'dup', 0], ['dropped', 'dropped', 0],
    ['kib', 'KiB/idle sub', 2], ['rss1', 'RSS KiB', 0], ['cpu', 'CPU % (1 msg/s)', 1], ['sat', 'sat. deliveries/s', 0], ['satlost', 'sat. lost', 0], ['satcpu', 'CPU % (sat.)', 0], ['polls', 'answers', 0], ['reconnects', 'reconnects', 0]]
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
  const m = t.ratio !== undefined ? fx(t.ratio) : t.value !== undefined ? fmt(t.value, 2) : '—'
  md.push(`| ${t.text} | ${m} | ${t.met === null || t.met === undefined ? 'not measured' : t.met ? 'yes' : 'no'} |`)
}
md.push('')
json.targets = targets
json.rows = rows

// --- plots --------------------------------------------------------------------------------
const plots = []
function bars (name, title, ylabel, w, metric, logscale = false) {
  const vs = variants(w)
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
bars('appends', 'Durable appends/s (16 connections, 100-byte JSON), median', 'appends/s', 'append', 'appends_s', true)
bars('producer', 'Idempotent producer appends/s, median', 'appends/s', 'producer', 'appends_s', true)
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

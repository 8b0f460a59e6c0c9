// lmstream status page: reads the node's metrics (Prometheus text format) every second and draws the last
// 5 minutes of appends/s, deliveries/s, live connections, commit latency p99 and map use on <canvas>, each
// with its current value as text (in the element's text for people, in data-value for scripts).
//
// URL: status.html[?metrics=/path][&interval=ms]
//   metrics   the metrics path on this site (default /__lmstream/metrics, the config's metrics_path default)
//   interval  the polling period in ms (default 1000, at least 200)
//
// The metrics are open to loopback clients; anyone else needs a token granting admin on "**". On 401/403
// the page shows the server's reason and a token field; the token stays in sessionStorage (this tab) and
// is sent as "Authorization: Bearer". It is only ever sent to this page's own origin (see metricsUrl).
// Text from the server is shown with textContent, never as HTML.
'use strict'

const DEFAULT_PATH = '/__lmstream/metrics'
const WINDOW_MS = 5 * 60 * 1000 // what the charts keep
const TOKEN_KEY = 'lmstream.status.token'
const QUANTILE = 0.99

// ---------------------------------------------------------------- metrics text (no DOM: testable alone)

/** A sample value of the text format: a decimal number, +Inf, -Inf or NaN; null if it is none of them. */
function parseValue (s) {
  const lower = s.toLowerCase()
  if (lower === '+inf' || lower === 'inf') return Infinity
  if (lower === '-inf') return -Infinity
  if (lower === 'nan') return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return null
  return Number(s)
}

/**
 * One sample line, `name{label="value",...} value [timestamp]`, as { name, labels, value }, or null if it
 * does not parse. Labels may come in any order; their values are unescaped (\\ \" \n).
 */
function parseSample (line) {
  const head = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
  if (!head) return null
  const name = head[0]
  const labels = {}
  let i = name.length
  const blanks = () => { while (line[i] === ' ' || line[i] === '\t') i++ }
  blanks()
  if (line[i] === '{') {
    i++
    for (;;) {
      blanks()
      if (line[i] === '}') { i++; break } // also after a trailing comma, which the format allows
      const key = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))
      if (!key) return null
      i += key[0].length
      blanks()
      if (line[i++] !== '=') return null
      blanks()
      if (line[i++] !== '"') return null
      let value = ''
      for (;;) {
        const c = line[i++]
        if (c === undefined) return null // unterminated
        if (c === '"') break
        if (c === '\\') {
          const e = line[i++]
          if (e === undefined) return null
          value += e === 'n' ? '\n' : e // \\ and \" stand for themselves
        } else value += c
      }
      labels[key[0]] = value
      blanks()
      if (line[i] === ',') { i++; continue }
      if (line[i] === '}') { i++; break }
      return null
    }
  }
  const fields = line.slice(i).trim().split(/[ \t]+/) // the value, then an optional timestamp
  const value = parseValue(fields[0])
  return value === null ? null : { name, labels, value }
}

/**
 * Every sample of a text exposition: [{ name, labels, value }]. Comments (# HELP, # TYPE, others), blank
 * lines and lines that do not parse are skipped, so an unknown or odd series never hides the others.
 */
function parseMetrics (text) {
  const samples = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line[0] === '#') continue
    const s = parseSample(line)
    if (s) samples.push(s)
  }
  return samples
}

/**
 * What the page needs from one scrape: counters and gauges summed over the samples of a name (should a
 * series ever gain labels, the total stays right), each null if the scrape lacks it, and the commit-time
 * histogram as cumulative buckets sorted by bound ([{ le, count }], the last with le Infinity).
 */
function snapshotOf (samples) {
  const sum = (name, match) => {
    let total = null
    for (const s of samples) if (s.name === name && (!match || match(s.labels))) total = (total ?? 0) + s.value
    return total
  }
  const byBound = new Map()
  for (const s of samples) {
    if (s.name !== 'lmstream_commit_seconds_bucket' || !('le' in s.labels)) continue
    const le = parseValue(s.labels.le)
    if (le === null || Number.isNaN(le)) continue
    byBound.set(le, (byBound.get(le) || 0) + s.value)
  }
  const info = samples.find((s) => s.name === 'lmstream_build_info')
  return {
    appended: sum('lmstream_appended_messages_total'),
    delivered: sum('lmstream_delivered_messages_total'),
    longPoll: sum('lmstream_live_connections', (l) => l.mode === 'long-poll'),
    sse: sum('lmstream_live_connections', (l) => l.mode === 'sse'),
    buckets: [...byBound].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
    mapUsed: sum('lmstream_map_used_bytes'),
    mapSize: sum('lmstream_map_size_bytes'),
    streams: sum('lmstream_streams'),
    version: info ? info.labels.version ?? null : null,
  }
}

/**
 * How much a counter grew from before to now. Counters only go up; a smaller value means the counter
 * started again from zero (a restarted node), so all of now is new. null when either is unknown.
 */
function increase (before, now) {
  if (before == null || now == null || !Number.isFinite(before) || !Number.isFinite(now)) return null
  return now >= before ? now - before : now
}

/**
 * The histogram of the commits between two scrapes: cumulative buckets of now minus those of before. If
 * any bucket went down, or the bounds changed, the histogram started again (a restart): now counts whole.
 * Made non-decreasing, as counters read at slightly different moments by several processes may not be.
 */
function bucketIncrease (before, now) {
  const old = new Map(before.map((b) => [b.le, b.count]))
  const restarted = now.some((b) => !old.has(b.le) || b.count < old.get(b.le))
  let floor = 0
  return now.map((b) => {
    const count = Math.max(floor, restarted ? b.count : b.count - old.get(b.le))
    floor = count
    return { le: b.le, count }
  })
}

/**
 * The q-quantile of cumulative buckets (sorted, the last +Inf), estimated as Prometheus's
 * histogram_quantile does: find the bucket holding the rank q * total and interpolate linearly inside it
 * (from 0 for the first bucket); a rank in the +Inf bucket gives the highest finite bound. null without
 * observations, or without a +Inf bucket and a finite one.
 */
function quantile (q, buckets) {
  const n = buckets.length
  if (n < 2 || buckets[n - 1].le !== Infinity) return null
  const total = buckets[n - 1].count
  if (!(total > 0)) return null
  const rank = q * total
  const i = buckets.findIndex((b) => b.count >= rank)
  if (i === n - 1) return buckets[n - 2].le
  const upper = buckets[i].le
  if (i === 0 && upper <= 0) return upper
  const lower = i === 0 ? 0 : buckets[i - 1].le
  const below = i === 0 ? 0 : buckets[i - 1].count
  return lower + (upper - lower) * (rank - below) / (buckets[i].count - below)
}

/**
 * One point of the charts from two successive scrapes (before may be null: the first scrape, or the first
 * after a failure) dt seconds apart: rates over the interval, p99 of its commits in ms (null when none
 * happened), the gauges as they are now.
 */
function pointOf (before, now, dt) {
  const rate = (a, b) => {
    const d = before && dt > 0 ? increase(a, b) : null
    return d === null ? null : d / dt
  }
  let p99 = null
  if (before && before.buckets.length && now.buckets.length) {
    const q = quantile(QUANTILE, bucketIncrease(before.buckets, now.buckets))
    p99 = q === null ? null : q * 1000
  }
  return {
    appends: rate(before && before.appended, now.appended),
    deliveries: rate(before && before.delivered, now.delivered),
    longPoll: now.longPoll,
    sse: now.sse,
    p99,
    mapPct: now.mapUsed != null && now.mapSize > 0 ? 100 * now.mapUsed / now.mapSize : null,
  }
}

// Read by the browser test (and handy in a console): the parts above, without the page.
const StatusMetrics = { parseValue, parseSample, parseMetrics, snapshotOf, increase, bucketIncrease, quantile, pointOf }

// ---------------------------------------------------------------- formatting

/** Three significant digits, without an exponent: 0.0123, 1.23, 123, 12300. */
const sig3 = (x) => String(Number(x.toPrecision(3)))
const rateText = (x) => (x >= 100 ? String(Math.round(x)) : x.toFixed(1))
/** Bytes in MiB, with the decimals a small store needs. */
const mib = (bytes) => { const m = bytes / 1048576; return m >= 100 ? m.toFixed(0) : m >= 1 ? m.toFixed(1) : m.toFixed(2) }
/** An axis label: three significant digits, thousands as k and millions as M. */
const axisText = (x) => (x >= 1e6 ? sig3(x / 1e6) + 'M' : x >= 1e4 ? sig3(x / 1e3) + 'k' : sig3(x))
/** A percentage; below 0.01 % only "< 0.01" (the exact value stays in data-value). */
const pctText = (x) => (x > 0 && x < 0.01 ? '< 0.01' : sig3(x))

// ---------------------------------------------------------------- page

function startPage () {
  const $ = (id) => document.getElementById(id)
  const params = new URLSearchParams(location.search)
  const interval = Math.min(60000, Math.max(200, Number(params.get('interval')) || 1000))

  /**
   * The metrics URL: ?metrics= resolved against this page, and only if it stays on this page's origin,
   * since a token is sent along: a link to status.html?metrics=https://elsewhere must not leak it.
   */
  let pathProblem = null
  let metricsUrl = new URL(DEFAULT_PATH, location.href)
  if (params.has('metrics')) {
    try {
      const u = new URL(params.get('metrics'), location.href)
      if (u.origin === location.origin) metricsUrl = u
      else pathProblem = '?metrics= must be a path on this site; using ' + DEFAULT_PATH
    } catch {
      pathProblem = '?metrics= is not a URL path; using ' + DEFAULT_PATH
    }
  }
  $('source').textContent = metricsUrl.pathname + metricsUrl.search
  $('period').textContent = interval === 1000 ? 'second' : interval + ' ms'

  // sessionStorage can be refused (storage disabled): then the token lives as long as the page.
  let memoryToken = ''
  const token = {
    get () { try { return sessionStorage.getItem(TOKEN_KEY) || '' } catch { return memoryToken } },
    set (t) { memoryToken = t; try { t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY) } catch {} },
  }

  // ---- the charts: one entry per chart, each line a field of the points and a look that is not only colour
  const css = getComputedStyle(document.documentElement)
  const colour = (name, fallback) => css.getPropertyValue(name).trim() || fallback
  const accent = colour('--accent', '#2a6fdb')
  const charts = [
    { id: 'appends', label: 'Appends per second', unit: '/s', lines: [{ field: 'appends', colour: accent, fill: true }] },
    { id: 'deliveries', label: 'Deliveries per second', unit: '/s', lines: [{ field: 'deliveries', colour: accent, fill: true }] },
    { id: 'live', label: 'Live connections', unit: '',
      lines: [{ field: 'sse', colour: accent, name: 'SSE' },
        { field: 'longPoll', colour: colour('--warn', '#b35900'), dash: [5, 4], name: 'long-poll' }] },
    { id: 'p99', label: 'Commit latency p99', unit: ' ms', least: 0.1, lines: [{ field: 'p99', colour: accent, fill: true }] },
    { id: 'map', label: 'Map use', unit: ' %', max: 100, lines: [{ field: 'mapPct', colour: accent, fill: true }] },
  ]
  const points = [] // { t (ms since the epoch), appends, deliveries, longPoll, sse, p99, mapPct } or { t, gap: true }

  // ---- state line
  const labels = {
    connecting: 'connecting', live: 'live', unauthorized: 'token needed', forbidden: 'not allowed',
    error: 'error', down: 'server unreachable',
  }
  let state = ''
  function setState (next, detail) {
    $('status').dataset.state = next
    $('conn').textContent = labels[next]
    $('detail').textContent = detail
    if (next !== state && (next === 'unauthorized' || next === 'forbidden')) {
      $('auth').open = true
      if (document.activeElement === document.body) $('token').focus()
    }
    state = next
  }

  // ---- one scrape
  let before = null // the last snapshot, with its time { snap, at (performance.now()) }
  let timer = 0
  let inFlight = false
  let again = false

  /** Stops the lines at a failed scrape, and the next rates start afresh rather than averaging over it. */
  function gap (reason) {
    before = null
    points.push({ t: Date.now(), gap: true })
    const reasonEl = $('reason')
    reasonEl.textContent = reason
    reasonEl.hidden = false
  }

  function accept (text) {
    const snap = snapshotOf(parseMetrics(text))
    if (snap.appended === null && snap.mapSize === null) {
      gap('The answer holds no lmstream metrics. Is ' + metricsUrl.pathname + ' the node\'s metrics_path?')
      return setState('error', 'no lmstream metrics at this URL')
    }
    const at = performance.now()
    const point = pointOf(before && before.snap, snap, before ? (at - before.at) / 1000 : 0)
    before = { snap, at }
    point.t = Date.now()
    points.push(point)
    while (points.length && points[0].t < point.t - WINDOW_MS) points.shift()
    $('reason').hidden = !pathProblem
    $('reason').textContent = pathProblem || ''
    showValues(point, snap)
    setState('live', token.get() ? 'with the stored token' : 'no token sent')
    drawAll()
  }

  async function poll () {
    inFlight = true
    const started = performance.now()
    const abort = new AbortController()
    const timeout = setTimeout(() => abort.abort(), Math.max(10000, 3 * interval))
    try {
      const headers = {}
      if (token.get()) headers.Authorization = 'Bearer ' + token.get()
      const res = await fetch(metricsUrl, { headers, cache: 'no-store', signal: abort.signal })
      const body = await res.text()
      // The server's reason is the first line of a plain-text answer, shown as text (it comes from the
      // network: never as HTML); of an HTML error page only the status text is worth showing.
      const plain = /^text\/plain\b/i.test(res.headers.get('Content-Type') || '')
      const reason = (plain && body.split('\n')[0].trim().slice(0, 300)) || res.statusText || 'no reason given'
      if (res.status === 401 || res.status === 403) {
        gap('The server answered ' + res.status + ': ' + reason)
        setState(res.status === 401 ? 'unauthorized' : 'forbidden',
          res.status === 401 ? 'a token granting admin on ** is needed' : 'this token may not read the metrics')
      } else if (!res.ok) {
        gap('The server answered ' + res.status + ': ' + reason)
        setState('error', 'HTTP ' + res.status + '; still trying')
      } else accept(body)
    } catch (e) {
      gap('No answer from ' + metricsUrl.pathname + ' (' + (e.name === 'AbortError' ? 'timed out' : e.message) + ')')
      setState('down', 'trying again every ' + (interval === 1000 ? 'second' : interval + ' ms'))
    }
    clearTimeout(timeout)
    inFlight = false
    const wait = again ? 0 : Math.max(0, interval - (performance.now() - started))
    again = false
    timer = setTimeout(poll, wait)
  }

  /** Scrape now (a new token), or right after the scrape under way. */
  function pollSoon () {
    if (inFlight) { again = true; return }
    clearTimeout(timer)
    poll()
  }

  // ---- current values as text (and data-* for scripts: "" when unknown)
  function put (id, main, sub, data) {
    const el = $(id)
    el.querySelector('.num').textContent = main
    el.querySelector('.sub').textContent = sub
    for (const [k, v] of Object.entries(data)) el.dataset[k] = v == null || !Number.isFinite(v) ? '' : String(v)
  }

  function showValues (p, snap) {
    put('appends', p.appends == null ? '–' : rateText(p.appends), 'appends/s', { value: p.appends })
    put('deliveries', p.deliveries == null ? '–' : rateText(p.deliveries), 'messages/s', { value: p.deliveries })
    const total = p.sse == null && p.longPoll == null ? null : (p.sse || 0) + (p.longPoll || 0)
    put('live', total == null ? '–' : String(total), 'SSE ' + (p.sse ?? '?') + ' · long-poll ' + (p.longPoll ?? '?'),
      { value: total, sse: p.sse, longPoll: p.longPoll })
    put('p99', p.p99 == null ? '–' : sig3(p.p99) + ' ms', p.p99 == null ? 'no commits in the last interval' : '',
      { value: p.p99 })
    put('map', p.mapPct == null ? '–' : pctText(p.mapPct) + ' %',
      snap.mapSize == null ? '' : mib(snap.mapUsed) + ' of ' + mib(snap.mapSize) + ' MiB',
      { value: p.mapPct, used: snap.mapUsed, size: snap.mapSize })
    const streams = $('streams')
    streams.textContent = snap.streams == null ? '? streams' : snap.streams + (snap.streams === 1 ? ' stream' : ' streams')
    streams.dataset.value = snap.streams == null ? '' : String(snap.streams)
    $('version').textContent = snap.version ? 'lmstream ' + snap.version : 'version ?'
    const now = new Date()
    $('updated').dateTime = now.toISOString()
    $('updated').textContent = now.toLocaleTimeString()
  }

  // ---- drawing
  /** The smallest 1, 2 or 5 times a power of ten at or above x (at least `least`): a round top for a chart. */
  function roundTop (x, least) {
    if (!(x > least)) return least
    const e = Math.pow(10, Math.floor(Math.log10(x)))
    for (const m of [1, 2, 5, 10]) if (m * e >= x) return m * e
    return x
  }

  function draw (chart) {
    const canvas = $(chart.id + '-chart')
    const w = canvas.clientWidth
    const h = canvas.clientHeight
    if (!w || !h) return
    const dpr = window.devicePixelRatio || 1
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr)
      canvas.height = Math.round(h * dpr)
    }
    const ctx = canvas.getContext('2d')
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
    ctx.clearRect(0, 0, w, h)
    const ink = getComputedStyle(canvas).color
    const now = Date.now()
    const t0 = now - WINDOW_MS
    let highest = 0
    for (const p of points) for (const l of chart.lines) if (Number.isFinite(p[l.field])) highest = Math.max(highest, p[l.field])
    // a round top above the highest value of the window (at least `least`, at most `max`)
    const top = Math.min(chart.max || Infinity, roundTop(highest, chart.least || 1))
    const yTop = 16
    const yBottom = h - 16
    const x = (t) => (t - t0) / WINDOW_MS * w
    const y = (v) => yBottom - Math.min(v, top) / top * (yBottom - yTop)

    // frame: the top and zero lines with their values, the time axis' ends
    ctx.font = '11px system-ui, sans-serif'
    ctx.fillStyle = ink
    ctx.strokeStyle = ink
    ctx.globalAlpha = 0.25
    ctx.lineWidth = 1
    ctx.setLineDash([2, 3])
    ctx.beginPath()
    ctx.moveTo(0, yTop + 0.5); ctx.lineTo(w, yTop + 0.5)
    ctx.moveTo(0, yBottom + 0.5); ctx.lineTo(w, yBottom + 0.5)
    ctx.stroke()
    ctx.globalAlpha = 0.7
    ctx.textBaseline = 'alphabetic'
    ctx.textAlign = 'left'
    ctx.fillText(axisText(top) + chart.unit, 2, yTop - 4)
    ctx.fillText('5 min ago', 2, h - 3)
    ctx.textAlign = 'right'
    ctx.fillText('now', w - 2, h - 3)
    ctx.globalAlpha = 1

    for (const line of chart.lines) {
      // the line in runs of known values; a failed scrape or a missing value ends a run
      const runs = []
      let run = null
      for (const p of points) {
        const v = p[line.field]
        if (p.gap || v == null || !Number.isFinite(v)) { run = null; continue }
        if (!run) runs.push(run = [])
        run.push([x(p.t), y(v)])
      }
      ctx.strokeStyle = line.colour
      ctx.fillStyle = line.colour
      ctx.lineWidth = 2
      ctx.setLineDash(line.dash || [])
      for (const r of runs) {
        ctx.beginPath()
        r.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)))
        ctx.stroke()
        if (line.fill && r.length > 1) {
          ctx.lineTo(r[r.length - 1][0], yBottom)
          ctx.lineTo(r[0][0], yBottom)
          ctx.closePath()
          ctx.globalAlpha = 0.15
          ctx.fill()
          ctx.globalAlpha = 1
        }
      }
      const last = runs.length ? runs[runs.length - 1].at(-1) : null
      if (last) { ctx.beginPath(); ctx.arc(last[0], last[1], 2.5, 0, 2 * Math.PI); ctx.fill() }
    }
    ctx.setLineDash([])

    // the chart's text alternative: what the lines show, in words
    const latest = points.length ? points[points.length - 1] : null
    const words = chart.lines.map((l) => {
      const v = latest && latest[l.field]
      return (l.name ? l.name + ' ' : '') + (Number.isFinite(v) ? sig3(v) + chart.unit : 'unknown')
    })
    canvas.setAttribute('aria-label', chart.label + ', last 5 minutes: now ' + words.join(', ') +
      '; chart top ' + sig3(top) + chart.unit)
  }

  function drawAll () { for (const c of charts) draw(c) }

  // ---- token form
  /** Takes a token (or none), says whether one is stored, and scrapes with it at once. */
  function useToken (t) {
    token.set(t)
    $('token').value = ''
    $('token').placeholder = token.get() ? 'a token is stored' : 'paste a token'
    pollSoon()
  }
  $('token-form').addEventListener('submit', (e) => { e.preventDefault(); useToken($('token').value.trim()) })
  $('forget').addEventListener('click', () => useToken(''))
  $('token').placeholder = token.get() ? 'a token is stored' : 'paste a token'

  let resizing = 0
  window.addEventListener('resize', () => { cancelAnimationFrame(resizing); resizing = requestAnimationFrame(drawAll) })
  if (pathProblem) { $('reason').textContent = pathProblem; $('reason').hidden = false }
  drawAll()
  poll()
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', startPage)
  else startPage()
}

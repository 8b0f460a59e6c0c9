// lmstream demo: renders a build (todos, tool calls, streaming output) from a stream with lmstream.js.
// URL: index.html[?transport=sse|long-poll|poll][&share=1]#demo/NAME (without a name: the last build listed
// in demo/builds). The events shown and the offset are saved together, so a reload resumes, never replays.
'use strict'

const PREFIX = '/v1/stream/'
const KEEP = 5000 // events kept in the saved view
const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)

let events = [] // every event applied, in stream order
const todos = new Map() // id -> { text, state }
const tools = new Map() // id -> { name, args, state, result }
let output = ''
let done = null
let sub = null

// ---------------------------------------------------------------- model

function reduce (e) {
  if (!e || typeof e !== 'object') return
  if (e.type === 'build' && typeof e.title === 'string') $('title').textContent = e.title
  else if (e.type === 'todo') {
    const t = todos.get(e.id) || { text: e.id, state: 'pending', done: 0, total: 0 }
    if (typeof e.text === 'string') t.text = e.text
    if (typeof e.state === 'string') t.state = e.state
    todos.set(e.id, t)
  } else if (e.type === 'progress') {
    const t = todos.get(e.id)
    if (t) { t.done = e.done; t.total = e.total }
  } else if (e.type === 'tool') {
    const c = tools.get(e.id) || { name: '?', args: '', state: 'pending', result: '' }
    for (const k of ['name', 'args', 'state', 'result']) if (typeof e[k] === 'string') c[k] = e[k]
    tools.set(e.id, c)
  } else if (e.type === 'text' && typeof e.delta === 'string') output += e.delta
  else if (e.type === 'done') done = e
}

// ---------------------------------------------------------------- view

function el (tag, cls, text) {
  const n = document.createElement(tag)
  if (cls) n.className = cls
  if (text != null) n.textContent = text
  return n
}

function summary (e) {
  if (!e || typeof e !== 'object') return JSON.stringify(e)
  const rest = Object.entries(e).filter(([k]) => k !== 'n' && k !== 'type').map(([k, v]) => k + '=' + JSON.stringify(v))
  return (e.type || '?') + ' ' + rest.join(' ')
}

function logItem (e) {
  const li = el('li', 'ev', summary(e))
  li.dataset.n = String(e && e.n)
  return li
}

let scheduled = false
function render () { // at most once a frame: a catch-up of thousands of events stays cheap
  if (scheduled) return
  scheduled = true
  requestAnimationFrame(() => {
    scheduled = false
    $('todos').replaceChildren(...[...todos].map(([id, t]) => {
      const li = el('li', 'todo ' + t.state)
      li.dataset.id = id
      li.dataset.state = t.state
      li.append(el('span', 'mark', t.state === 'done' ? '✔' : t.state === 'active' ? '▶' : '○'), el('span', 'text', t.text))
      if (t.total) li.append(el('span', 'frac', ` ${t.done}/${t.total}`))
      return li
    }))
    const all = [...todos.values()]
    const finished = all.filter((t) => t.state === 'done').length
    $('bar').style.width = all.length ? (100 * finished / all.length) + '%' : '0'
    $('tools').replaceChildren(...[...tools].slice(-8).map(([id, c]) => {
      const li = el('li', 'tool ' + c.state)
      li.dataset.id = id
      li.dataset.state = c.state
      li.append(el('span', 'mark', c.state === 'done' ? '✔' : '…'), el('code', 'call', c.name + ' ' + c.args),
        el('span', 'result', c.state === 'done' ? c.result : 'running'))
      return li
    }))
    const out = $('output')
    out.textContent = output
    out.scrollTop = out.scrollHeight
  })
}

function renderStatus () {
  const s = $('status')
  s.dataset.offset = sub ? sub.offset : ''
  s.dataset.count = String(events.length)
  $('offset').textContent = sub ? sub.offset : '-1'
  $('count').textContent = String(events.length)
}

const LABELS = { sse: 'live (SSE)', 'long-poll': 'live (long-poll)', shared: 'live (shared with another tab)' }
// Not named "history": a top-level binding of that name in this classic script would shadow window.history.
const stateLog = [] // { state, transport, at } of every change, for the curious (and the tests)
function setConn (state, transport) {
  stateLog.push({ state, transport: transport || '', at: Date.now() })
  const s = $('status')
  s.dataset.state = state
  s.dataset.transport = transport || ''
  $('conn').textContent = state === 'live' ? LABELS[transport] || 'live'
    : state === 'closed' ? 'complete' : state === 'reconnecting' ? 'reconnecting…' : state
}

function showDone () {
  $('done').hidden = !sub || !sub.closed
  $('result').textContent = done ? done.result : 'ended'
}

// ---------------------------------------------------------------- stream

function apply (e) {
  events.push(e)
  reduce(e)
  const log = $('log')
  log.append(logItem(e))
}

function start (name) {
  $('stream').textContent = name
  document.title = 'lmstream — ' + name
  const transport = params.get('transport') || 'auto'
  sub = LmStream.follow(PREFIX + name, {
    transport,
    share: params.get('share') === '1',
    saveState: () => ({ events: events.slice(-KEEP) }),
    onRestore (state) {
      if (!state || !Array.isArray(state.events)) return
      for (const e of state.events) apply(e)
      render()
      renderStatus()
    },
    // The build was restored from an older backup: show it afresh from its first event.
    onReset () {
      events = []
      todos.clear()
      tools.clear()
      output = ''
      done = null
      $('log').textContent = ''
      render()
      renderStatus()
    },
    onMessage (e) { apply(e) },
    onBatch () { render(); renderStatus() },
    onState (state, info) { setConn(state, info.transport); renderStatus(); showDone() },
    onClosed () { render(); renderStatus(); showDone() },
    onError (err) { setConn('error', ''); $('conn').textContent = 'error: ' + err.message },
  })
  window.lmDemo = { get events () { return events }, sub, history: stateLog }
}

// The last build listed in demo/builds (a JSON stream of { stream } records written by the producer).
async function latest () {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 10000)) {
    try {
      const res = await fetch(PREFIX + 'demo/builds?offset=-1', { cache: 'no-store' })
      if (res.ok) {
        const list = await res.json()
        const last = list.length && list[list.length - 1]
        if (last && typeof last.stream === 'string') return last.stream
      }
    } catch { /* retry */ }
    $('empty').hidden = false
    setConn('waiting', '')
    await new Promise((resolve) => setTimeout(resolve, delay))
  }
}

async function main () {
  let name = ''
  try { name = decodeURIComponent(location.hash.slice(1)) } catch {}
  if (!/^[A-Za-z0-9_./-]{1,200}$/.test(name) || name.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    name = await latest()
    $('empty').hidden = true
    window.history.replaceState(null, '', '#' + name) // no reload: hashchange is not fired
  }
  start(name)
}

window.addEventListener('hashchange', () => location.reload())
main()

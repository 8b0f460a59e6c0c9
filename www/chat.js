// lmstream chat demo: one JSON stream per room, followed and written with lmstream.js (saved offsets, idempotent sends).
'use strict'

const PREFIX = '/v1/stream/chat/'
const TOKEN_URL = '/demo-token' // deploy/run --demo with auth = token: short-lived tokens that write chat/**
const TOKEN_REFRESH_MS = 8 * 60 * 1000 // the tokens last 10 minutes
const KEEP = 500 // messages kept on screen and in localStorage (older ones are counted, not shown)
const MAX_DELAY = 8000 // longest wait between attempts to create the room
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/

const $ = (id) => document.getElementById(id)

// ---------------------------------------------------------------- identity

function randomHex (bytes) {
  const a = crypto.getRandomValues(new Uint8Array(bytes))
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('')
}

// sessionStorage lives as long as the tab: the same producer and name survive a reload.
function tabValue (key, make) {
  let v = sessionStorage.getItem(key)
  if (!v) { v = make(); sessionStorage.setItem(key, v) }
  return v
}

const NAMES = ['otter', 'heron', 'lynx', 'finch', 'marten', 'newt', 'ibis', 'vole', 'wren', 'yak']
const me = tabValue('lmstream.name', () =>
  NAMES[crypto.getRandomValues(new Uint8Array(1))[0] % NAMES.length] + '-' + randomHex(2))

// ---------------------------------------------------------------- room state

let room = null // current room name
let view = null // { total, closed, messages } of the current room
let sub = null // LmStream.follow of the current room
let out = null // LmStream.producer of the current room
let run = 0 // bumped on every room switch: loops of an older run stop

const streamUrl = (r) => PREFIX + encodeURIComponent(r)

// ---------------------------------------------------------------- write token

// Reads are public in the demo; writes carry a token when the server hands them out (auth = token).
// The object is shared with the producer and changed in place, so a refreshed token applies at once.
const writeHeaders = {}

async function refreshToken () {
  try {
    const res = await fetch(TOKEN_URL, { cache: 'no-store' })
    if (res.ok) writeHeaders.Authorization = 'Bearer ' + (await res.text()).trim()
  } catch { /* no token endpoint (auth = none): write without */ }
}
const tokenReady = refreshToken()
setInterval(refreshToken, TOKEN_REFRESH_MS)

function emptyView () { return { total: 0, closed: false, messages: [] } }

// ---------------------------------------------------------------- rendering

function setConn (state) {
  $('status').dataset.state = state
  $('conn').textContent = state
}

function renderStatus () {
  const s = $('status')
  s.dataset.offset = sub ? sub.offset : '-1'
  s.dataset.count = String(view.total)
  $('offset').textContent = sub ? sub.offset : '-1'
  $('count').textContent = String(view.total)
  $('eof').hidden = !view.closed
  $('send').disabled = view.closed
  $('text').disabled = view.closed
  $('close').disabled = view.closed
  const hidden = view.total - view.messages.length
  $('log').dataset.hidden = String(hidden)
  $('log').title = hidden ? hidden + ' earlier messages not shown' : ''
}

function messageItem (m, n) {
  const li = document.createElement('li')
  li.className = 'msg'
  li.dataset.n = String(n)
  const isObj = m && typeof m === 'object' && !Array.isArray(m)
  const from = document.createElement('span')
  from.className = 'from'
  from.textContent = isObj && typeof m.from === 'string' ? m.from : '?'
  if (isObj && m.from === me) li.classList.add('mine')
  const time = document.createElement('time')
  const at = isObj ? new Date(m.at) : new Date(NaN)
  if (!isNaN(at)) {
    time.dateTime = at.toISOString()
    time.textContent = at.toLocaleTimeString()
  }
  const text = document.createElement('span')
  text.className = 'text'
  text.textContent = isObj && typeof m.text === 'string' ? m.text : JSON.stringify(m)
  li.append(from, time, text)
  return li
}

function renderAll () {
  const log = $('log')
  const first = view.total - view.messages.length + 1
  log.replaceChildren(...view.messages.map((m, i) => messageItem(m, first + i)))
  renderStatus()
}

function notice (text) { $('outbox').textContent = text }

// ---------------------------------------------------------------- joining

function join (name) {
  const my = ++run
  if (sub) sub.close()
  room = name
  $('room').value = name
  document.title = 'lmstream — ' + name
  view = emptyView()
  sub = null
  renderAll()
  notice('')
  setConn('connecting')
  out = LmStream.producer(streamUrl(name), { onChange: renderOutbox, headers: writeHeaders })
  renderOutbox()
  ensureStream(my) // meanwhile the subscription waits for the stream to exist
  sub = LmStream.follow(streamUrl(name), {
    // The rendered messages are saved with the offset, so a reload shows them and reads on from there.
    saveState: () => ({ total: view.total, messages: view.messages }),
    onRestore (state, info) {
      if (state && Array.isArray(state.messages) && Number.isInteger(state.total) && state.total >= state.messages.length) {
        view = { total: state.total, closed: info.closed, messages: state.messages }
      }
      renderAll()
    },
    // The room was restored from an older backup, or deleted and created again: show it afresh.
    onReset () { view = emptyView(); renderAll() },
    onMessage: addMessage,
    onBatch () {
      renderStatus()
      $('log').lastElementChild?.scrollIntoView({ block: 'nearest' })
    },
    onState (state) { if (my === run) { setConn(state); renderStatus() } },
    onClosed () { view.closed = true; renderStatus(); notice('') },
  })
}

// Create the room's stream. 200/201: ready; 409: it exists already (maybe closed). Retries while unreachable.
async function ensureStream (my) {
  await tokenReady
  for (let delay = 500; my === run; delay = Math.min(delay * 2, MAX_DELAY)) {
    try {
      const res = await fetch(streamUrl(room), {
        method: 'PUT', headers: { ...writeHeaders, 'Content-Type': 'application/json' }, cache: 'no-store'
      })
      if (res.ok || res.status === 409) return
      if (res.status < 500 && res.status !== 429) {
        setConn('error')
        notice('Cannot open room: HTTP ' + res.status)
        return
      }
    } catch { /* network error: retry */ }
    await new Promise((resolve) => setTimeout(resolve, delay))
  }
}

function addMessage (m) {
  view.total++
  view.messages.push(m)
  const log = $('log')
  log.append(messageItem(m, view.total))
  const extra = view.messages.length - KEEP
  if (extra > 0) {
    view.messages.splice(0, extra)
    for (let i = 0; i < extra; i++) log.firstElementChild.remove()
  }
}

// ---------------------------------------------------------------- sending

function renderOutbox () {
  const n = out ? out.pending : 0
  const why = out && out.lastError ? ' (' + out.lastError + ', retrying)' : ''
  notice(n ? n + (n === 1 ? ' message' : ' messages') + ' waiting to be sent' + why : '')
}

function enqueue (text) {
  out.append({ text, at: new Date().toISOString(), from: me }).catch((e) => notice('Message not sent: ' + e.message))
}

async function closeStream () {
  $('close').disabled = true
  try {
    const res = await fetch(streamUrl(room), {
      method: 'POST', headers: { ...writeHeaders, 'Stream-Closed': 'true' }, cache: 'no-store'
    })
    if (!res.ok) throw new Error('HTTP ' + res.status)
    notice('Closing…')
  } catch (e) {
    notice('Close failed (' + e.message + '), try again')
    $('close').disabled = view.closed
  }
}

// ---------------------------------------------------------------- wiring

function roomFromHash () {
  let r = ''
  try { r = decodeURIComponent(location.hash.slice(1)) } catch { /* bad escape */ }
  return ROOM_RE.test(r) ? r : 'lobby'
}

$('me').textContent = me

$('room-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const r = $('room').value.trim()
  if (!ROOM_RE.test(r)) return
  if (r === room) return
  location.hash = encodeURIComponent(r) // hashchange joins
})

$('send-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const text = $('text').value
  if (!text.trim() || view.closed) return
  enqueue(text)
  $('text').value = ''
  $('text').focus()
})

$('close').addEventListener('click', closeStream)

window.addEventListener('hashchange', () => {
  const r = roomFromHash()
  if (r !== room) join(r)
})

join(roomFromHash())

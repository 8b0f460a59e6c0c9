// lmstream demo: one JSON stream per room; sends with an idempotent producer, tails over SSE, resumes from the stored offset.
'use strict'

const PREFIX = '/v1/stream/demo/'
const KEEP = 500 // messages kept on screen and in localStorage (older ones are counted, not shown)
const IDLE_MS = 75000 // no byte for this long (the server sends keep-alives): assume a dead link, reconnect
const MAX_DELAY = 8000 // longest wait between reconnect or resend attempts
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
const producerId = tabValue('lmstream.producer', () => 'tab-' + randomHex(8))
const me = tabValue('lmstream.name', () =>
  NAMES[crypto.getRandomValues(new Uint8Array(1))[0] % NAMES.length] + '-' + randomHex(2))

// ---------------------------------------------------------------- room state

let room = null // current room name
let view = null // { offset, total, closed, messages } of the current room
let run = 0 // bumped on every room switch: loops of an older run stop
let sse = null // AbortController of the current SSE request
const wakers = new Set() // end the pending retry waits early (back online)

const streamUrl = (r) => PREFIX + encodeURIComponent(r)
const viewKey = (r) => 'lmstream.room.' + r

function emptyView () { return { offset: '-1', total: 0, closed: false, messages: [] } }

// Offset and rendered messages are stored together, so a reload always sees a matching pair.
function loadView (r) {
  try {
    const v = JSON.parse(localStorage.getItem(viewKey(r)))
    if (v && typeof v.offset === 'string' && Array.isArray(v.messages) &&
        Number.isInteger(v.total) && v.total >= v.messages.length) {
      return { offset: v.offset, total: v.total, closed: v.closed === true, messages: v.messages }
    }
  } catch { /* unreadable: start over */ }
  return emptyView()
}

function saveView () {
  try {
    localStorage.setItem(viewKey(room), JSON.stringify(view))
  } catch {
    localStorage.removeItem(viewKey(room)) // full: the next visit re-reads from the start
  }
}

// ---------------------------------------------------------------- rendering

function setConn (state) {
  $('status').dataset.state = state
  $('conn').textContent = state
}

function renderStatus () {
  const s = $('status')
  s.dataset.offset = view.offset
  s.dataset.count = String(view.total)
  $('offset').textContent = view.offset
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

async function join (name) {
  const my = ++run
  if (sse) sse.abort()
  room = name
  $('room').value = name
  document.title = 'lmstream — ' + name
  view = loadView(name)
  renderAll()
  notice('')
  setConn('connecting')
  if (!(await ensureStream(my))) return
  pump()
  tail(my)
}

// Create the room's stream. 200/201: ready; 409: it exists already (maybe closed). Retries while unreachable.
async function ensureStream (my) {
  for (let delay = 500; my === run; delay = Math.min(delay * 2, MAX_DELAY)) {
    try {
      const res = await fetch(streamUrl(room), {
        method: 'PUT', headers: { 'Content-Type': 'application/json' }, cache: 'no-store'
      })
      if (res.ok || res.status === 409) return my === run
      if (res.status < 500 && res.status !== 429) {
        setConn('error')
        notice('Cannot open room: HTTP ' + res.status)
        return false
      }
    } catch { /* network error: retry */ }
    setConn('reconnecting')
    await retryWait(delay)
  }
  return false
}

// Wait before a retry; coming back online cuts the wait short.
function retryWait (ms) {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms)
    function done () { clearTimeout(t); wakers.delete(done); resolve() }
    wakers.add(done)
  })
}

// ---------------------------------------------------------------- live tail (SSE over fetch)

// Reconnects after every end or error from the last offset whose control event arrived; stops on streamClosed.
async function tail (my) {
  let delay = 0
  while (my === run && !view.closed) {
    if (delay) {
      setConn(navigator.onLine ? 'reconnecting' : 'offline')
      await retryWait(delay)
      if (my !== run) return
    }
    const ctl = new AbortController()
    sse = ctl
    let progressed = false
    try {
      const q = '?offset=' + encodeURIComponent(view.offset) + '&live=sse'
      const res = await fetch(streamUrl(room) + q, { signal: ctl.signal, cache: 'no-store' })
      if (my !== run) return
      if (res.status === 404 || (res.status === 400 && view.offset !== '-1')) {
        // The stream was deleted (or our offset is not from it): start the room over.
        view = emptyView()
        saveView()
        renderAll()
        if (!(await ensureStream(my))) return
        continue
      }
      if (!res.ok) throw new Error('HTTP ' + res.status)
      setConn('live')
      progressed = await readSse(res.body, ctl, my)
    } catch { /* aborted or network error: reconnect below */ }
    if (sse === ctl) sse = null
    if (my !== run) return
    if (view.closed) break
    setConn(navigator.onLine ? 'reconnecting' : 'offline')
    delay = progressed ? 0 : Math.min(delay ? delay * 2 : 500, MAX_DELAY)
  }
  if (my === run && view.closed) setConn('closed')
}

// Parse one SSE response. Messages of a data event are applied only with the control event that
// follows (it carries their end offset), so a connection lost in between replays them instead of
// losing or doubling them. Returns true if at least one control event was applied.
async function readSse (body, ctl, my) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  let event = ''
  let data = []
  let pending = []
  let progressed = false
  let idle = setTimeout(() => ctl.abort(), IDLE_MS)
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done || my !== run) return progressed
      clearTimeout(idle)
      idle = setTimeout(() => ctl.abort(), IDLE_MS)
      buf += value
      for (let m; (m = /\r\n|\r|\n/.exec(buf));) {
        if (m[0] === '\r' && m.index === buf.length - 1) break // maybe half of a CRLF
        const line = buf.slice(0, m.index)
        buf = buf.slice(m.index + m[0].length)
        if (line === '') { // end of event
          if (data.length) {
            const text = data.join('\n')
            if (event === 'data') {
              const msgs = JSON.parse(text)
              pending.push(...(Array.isArray(msgs) ? msgs : [msgs]))
            } else if (event === 'control') {
              apply(pending, JSON.parse(text))
              pending = []
              progressed = true
              if (view.closed) { ctl.abort(); return progressed }
            }
          }
          event = ''
          data = []
        } else if (line[0] !== ':') { // ":" starts a comment (keep-alive)
          const i = line.indexOf(':')
          const field = i < 0 ? line : line.slice(0, i)
          let val = i < 0 ? '' : line.slice(i + 1)
          if (val[0] === ' ') val = val.slice(1)
          if (field === 'event') event = val
          else if (field === 'data') data.push(val)
        }
      }
    }
  } finally {
    clearTimeout(idle)
  }
}

function apply (msgs, control) {
  if (!control || typeof control.streamNextOffset !== 'string') throw new Error('bad control event')
  if (view.offset !== '-1' && control.streamNextOffset < view.offset) {
    // Offsets only grow: this is a new stream under the same name (deleted, data reset). Start over.
    view = emptyView()
    saveView()
    renderAll()
    throw new Error('stream replaced')
  }
  const log = $('log')
  for (const m of msgs) {
    view.total++
    view.messages.push(m)
    log.append(messageItem(m, view.total))
  }
  const extra = view.messages.length - KEEP
  if (extra > 0) {
    view.messages.splice(0, extra)
    for (let i = 0; i < extra; i++) log.firstElementChild.remove()
  }
  view.offset = control.streamNextOffset
  if (control.streamClosed === true) view.closed = true
  saveView()
  renderStatus()
  if (msgs.length) log.lastElementChild.scrollIntoView({ block: 'nearest' })
  if (view.closed) { setConn('closed'); notice('') }
}

// ---------------------------------------------------------------- sending

// Outbox per room in sessionStorage: [{ body, seq }]. An entry keeps its Producer-Seq across retries and
// reloads, so a resend after a lost response is recognised by the server as a duplicate (204).
const boxKey = (r) => 'lmstream.outbox.' + r
const seqKey = (r) => 'lmstream.seq.' + r
function readBox (r) { try { return JSON.parse(sessionStorage.getItem(boxKey(r))) || [] } catch { return [] } }
function writeBox (r, box) { sessionStorage.setItem(boxKey(r), JSON.stringify(box)) }
function nextSeq (r) { return Number(sessionStorage.getItem(seqKey(r)) || 0) }

function renderOutbox (extra) {
  const n = readBox(room).length
  notice(n ? n + (n === 1 ? ' message' : ' messages') + ' waiting to be sent' + (extra || '') : '')
}

function enqueue (text) {
  const body = JSON.stringify({ text, at: new Date().toISOString(), from: me })
  const box = readBox(room)
  box.push({ body, seq: null })
  writeBox(room, box)
  renderOutbox()
  pump()
}

let pumping = false
async function pump () {
  if (pumping) return
  pumping = true
  let delay = 500
  const retry = async (why) => {
    renderOutbox(' (' + why + ', retrying)')
    await retryWait(delay)
    delay = Math.min(delay * 2, MAX_DELAY)
  }
  try {
    for (;;) {
      const r = room
      const box = readBox(r)
      if (!box.length) break
      const item = box[0]
      if (item.seq == null) { item.seq = nextSeq(r); writeBox(r, box) }
      let res
      try {
        res = await fetch(streamUrl(r), {
          method: 'POST',
          cache: 'no-store',
          headers: {
            'Content-Type': 'application/json',
            'Producer-Id': producerId,
            'Producer-Epoch': '0',
            'Producer-Seq': String(item.seq)
          },
          body: item.body
        })
      } catch {
        await retry('offline')
        continue
      }
      if (res.ok) { // 200 appended, 204 already appended by an earlier try
        sessionStorage.setItem(seqKey(r), String(item.seq + 1))
        box.shift()
        writeBox(r, box)
        delay = 500
        renderOutbox()
        continue
      }
      if (res.status >= 500 || res.status === 429) { await retry('HTTP ' + res.status); continue }
      if (res.status === 404) { await ensureStream(run); continue }
      const expected = res.headers.get('Producer-Expected-Seq')
      if (res.status === 409 && expected !== null && /^\d+$/.test(expected)) {
        item.seq = Number(expected) // the server knows fewer of our sends than we do: resend at its number
        writeBox(r, box)
        continue
      }
      box.shift() // refused for good; its seq was not used, so the next message takes it
      writeBox(r, box)
      renderOutbox()
      notice('Message not sent: ' + (res.headers.get('Stream-Closed') === 'true'
        ? 'the stream is closed' : 'HTTP ' + res.status))
    }
  } finally {
    pumping = false
  }
}

async function closeStream () {
  $('close').disabled = true
  try {
    const res = await fetch(streamUrl(room), {
      method: 'POST', headers: { 'Stream-Closed': 'true' }, cache: 'no-store'
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

// Leaving the network kills the SSE link without telling us: drop it now, and retry at once when back.
window.addEventListener('offline', () => {
  if (sse) sse.abort()
  setConn(view && view.closed ? 'closed' : 'offline')
})
window.addEventListener('online', () => {
  for (const w of [...wakers]) w()
  pump()
})

join(roomFromHash())

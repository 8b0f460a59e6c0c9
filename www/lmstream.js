// lmstream.js: follow a Durable Stream from a browser, each message once and in order, append to it safely, and keep
// the state of a State stream (stateMap).
// No dependencies, no build step. A classic <script> defines window.LmStream; lmstream.mjs re-exports it for
// `import`. See the README ("Browser client") for the options.
//
// Credentials (follow() and producer()), for a server with `auth = token`:
//   token            a string, or a function (it may be async) that returns one: a JWT sent as
//                    "Authorization: Bearer <token>" on every fetch (catch-up, long-poll, snapshot, write) and as
//                    the query parameter token=<token> of the SSE URL (EventSource cannot send headers). A
//                    function is asked at the first request, again after a 401, and when the exp of the JWT it
//                    gave has passed (or will within a second); cache in it what you can. A string cannot be
//                    refreshed. null or '' from the function: no token.
//   withCredentials  true: send the cookie (auth_cookie) across origins: fetch with credentials: 'include',
//                    new EventSource(url, { withCredentials: true }). The server must list the page's origin in
//                    cors_origins. Give the cookie or a token: the server uses only one (header, cookie, query).
// What follow() does when it is refused:
//   401              with a token function: asks it for a new token and retries from the last offset it applied
//                    (nothing lost, nothing doubled): at once after a token that worked (it merely expired), then
//                    after authBackoffMin (1000 ms), doubling up to authBackoffMax (30000 ms), with jitter, so a
//                    function that only gives refused tokens costs a handful of requests a minute. A request sent
//                    with a JWT whose exp has already passed counts as refused whatever the answer (a server may
//                    still accept it for auth_skew seconds): the function is asked again, with the same backoff.
//                    Without a function (a string token, or the cookie alone) a 401 stops it, as a 403 does.
//   403              stops: no more requests until sub.resync() (after the app fixed the credentials) or close().
//   Each refusal calls onState('unauthorized' or 'forbidden', info) and onError(err): err.status (401/403),
//   err.reason (the server's one-line reason), err.stopped (true when it waits for resync()), err.retryIn (ms).
//   EventSource shows no status: when it fails before opening (and before reopening it after a refusal), one
//   catch-up read with the same credentials tells a refusal from other failures.
// 503 (or any failure) with Retry-After, as from a web server whose backend is restarting or HAProxy whose node
// is down: the next request of follow() or producer() waits at least that long, on every rung of the ladder.
;(function (root) {
  'use strict'

  const LEVELS = ['sse', 'long-poll', 'poll'] // the fallback ladder, best first

  const enc = encodeURIComponent
  const join = (url, query) => url + (url.indexOf('?') < 0 ? '?' : '&') + query
  const absolute = (url) => new URL(url, root.location ? root.location.href : undefined).href

  function storageOf (name) {
    try { const s = root[name]; s.length; return s } catch { return null } // disabled or sandboxed
  }

  function sleep (ms, signal) {
    return new Promise((resolve) => {
      if (signal && signal.aborted) return resolve()
      const t = setTimeout(done, ms)
      function done () { clearTimeout(t); if (signal) signal.removeEventListener('abort', done); resolve() }
      if (signal) signal.addEventListener('abort', done)
    })
  }

  // A Retry-After header (seconds, or an HTTP date) in ms, at most 10 minutes; 0 when absent or unreadable.
  function retryAfterMs (value) {
    if (!value) return 0
    const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - Date.now()
    return Number.isFinite(ms) && ms > 0 ? Math.min(ms, 600000) : 0
  }

  // The ms until the exp of a JWT, Infinity for a token that is not one (or none): it is sent as it is.
  function expiresIn (tok) {
    if (typeof tok !== 'string' || typeof root.atob !== 'function') return Infinity
    const part = tok.split('.')
    if (part.length !== 3) return Infinity
    try {
      const exp = JSON.parse(root.atob(part[1].replace(/-/g, '+').replace(/_/g, '/'))).exp
      return typeof exp === 'number' ? exp * 1000 - Date.now() : Infinity
    } catch { return Infinity }
  }

  // options.token: a string as it is, or a function asked at the first get(), after refresh() (a 401), and when
  // the JWT it gave expires within a second. One call at a time: concurrent requests share its answer.
  function tokenHolder (opt) {
    const fn = typeof opt === 'function' ? opt : null
    let pending = null
    const h = {
      value: fn || opt == null || opt === '' ? null : String(opt),
      due: !!fn,
      given: fn !== null || (opt != null && opt !== ''),
      refreshable: fn !== null,
      worked: false, // the current value got a 2xx answer
      async get () {
        if (!fn || !(h.due || (h.value !== null && expiresIn(h.value) < 1000))) return h.value
        if (!pending) {
          pending = Promise.resolve().then(() => fn()).then((v) => {
            h.value = v == null || v === '' ? null : String(v)
            h.due = false
            h.worked = false
          }).finally(() => { pending = null })
        }
        await pending
        return h.value
      },
      refresh () { if (fn) h.due = true },
    }
    return h
  }

  const bearer = (headers, tok) => tok ? Object.assign({}, headers, { Authorization: 'Bearer ' + tok }) : headers

  // Parses the body of a catch-up or long-poll read, or the data of an SSE "data" event.
  function parseMessages (text, json) {
    if (!json) return text === '' ? [] : [text]
    if (text.trim() === '') return []
    const v = JSON.parse(text)
    return Array.isArray(v) ? v : [v]
  }

  /**
   * follow(url, options): calls options.onMessage(message, info) once per message of the stream at `url`,
   * in order, from the saved offset (or options.offset), and keeps following it until close() or until the
   * stream is closed. Returns { close(), offset, state, transport, closed, resync() }.
   */
  function follow (url, opts) {
    opts = opts || {}
    const href = absolute(url)
    const json = opts.json !== false
    const fetchFn = opts.fetch || root.fetch.bind(root)
    const backoffMin = opts.backoffMin || 500
    const backoffMax = opts.backoffMax || 15000
    const pollInterval = opts.pollInterval || 1500
    const sseStallMs = opts.sseStallMs || 10000 // an SSE response with no control event for this long: a buffering proxy
    const idleMs = opts.idleMs || 90000 // no event on an open SSE response for this long: assume a dead link
    const requestTimeout = opts.requestTimeout || 45000 // longest wait for a long-poll or catch-up answer
    const probeMs = opts.probeMs || 15000 // on a lower rung, how often to try the better transports again
    const authBackoffMin = opts.authBackoffMin || 1000 // after a refused token: the first wait, doubling
    const authBackoffMax = opts.authBackoffMax || 30000
    const forced = opts.transport && opts.transport !== 'auto' ? opts.transport : null
    if (forced && LEVELS.indexOf(forced) < 0) throw new Error('lmstream: unknown transport ' + forced)
    const storage = opts.persist === false ? null : storageOf('localStorage')
    const key = typeof opts.persist === 'string' ? opts.persist : 'lmstream:' + href
    const call = (fn, ...args) => { if (typeof fn === 'function') return fn(...args) }

    const stopper = new AbortController() // aborted by close(): ends every wait and request
    const sub = {
      offset: '-1',
      cursor: null,
      closed: false,
      state: 'connecting',
      transport: null,
      role: 'solo', // 'leader' or 'follower' when tabs share one connection
      close,
      resync, // retry now (e.g. after the app knows the network is back, or fixed the credentials)
    }
    let waker = null // aborts the current backoff wait
    let current = null // { abort() } of the request in flight
    let bc = null
    const auth = tokenHolder(opts.token)
    const credentials = opts.withCredentials ? 'include' : undefined
    let authFailures = 0 // refusals since the last answer that accepted the token
    let authDelay = 0 // the next wait after a refusal
    let held = false // stopped by a refusal until resync()
    let sentStale = false // this attempt sent a token whose exp had passed

    function setState (state, transport) {
      if (sub.closed && state !== 'closed') return
      if (state === sub.state && transport === sub.transport) return
      sub.state = state
      sub.transport = transport
      call(opts.onState, state, { transport, offset: sub.offset, role: sub.role })
    }

    function save () {
      if (!storage) return
      const rec = { offset: sub.offset, closed: sub.closed, cursor: sub.cursor }
      if (typeof opts.saveState === 'function') rec.state = opts.saveState()
      try { storage.setItem(key, JSON.stringify(rec)) } catch { try { storage.removeItem(key) } catch {} }
    }

    // The one place messages reach the application. A batch read from offset `from` applies only if `from`
    // is still our offset: a late answer of an abandoned request, or a batch another tab already gave us,
    // is dropped, so nothing is delivered twice; and we never move past messages we did not deliver.
    function deliver (from, msgs, next, closed, cursor) {
      if (stopper.signal.aborted || from !== sub.offset || typeof next !== 'string' || next === '') return false
      let i = 0
      for (const m of msgs) call(opts.onMessage, m, { offset: next, last: ++i === msgs.length })
      sub.offset = next
      if (cursor) sub.cursor = cursor
      if (closed) sub.closed = true
      save()
      if (msgs.length) call(opts.onBatch, msgs, { from, offset: next })
      if (bc && sub.role === 'leader') bc.postMessage({ t: 'batch', from, next, msgs, closed: sub.closed })
      if (sub.closed) finish()
      return true
    }

    function finish () {
      setState('closed', null)
      call(opts.onClosed, { offset: sub.offset })
      stop()
    }

    function stop () {
      if (stopper.signal.aborted) return
      stopper.abort()
      if (current) current.abort()
      if (bc) { try { bc.close() } catch {} }
      root.removeEventListener && root.removeEventListener('online', wake)
      root.removeEventListener && root.removeEventListener('offline', onOffline)
    }

    function close () { stop() }

    function wake () { if (waker) waker.abort() }
    function onOffline () { if (current) current.abort() } // the link is gone: do not wait for a timeout
    function resync () {
      if (held) { held = false; authFailures = 0; authDelay = 0; auth.refresh() }
      wake()
    }

    // Waits ms (null: until woken), or less when woken (resync(), online) or stopped.
    async function pause (ms) {
      if (stopper.signal.aborted) return
      waker = new AbortController()
      const both = new AbortController()
      const a = () => both.abort()
      waker.signal.addEventListener('abort', a)
      stopper.signal.addEventListener('abort', a)
      if (ms == null) await new Promise((resolve) => both.signal.addEventListener('abort', resolve))
      else await sleep(ms, both.signal)
      stopper.signal.removeEventListener('abort', a)
      waker = null
    }

    // The backoff wait, or while held by a refusal, until resync().
    async function rest (ms) {
      do await pause(held ? null : ms)
      while (held && !stopper.signal.aborted)
    }

    // ------------------------------------------------------------ credentials

    async function token () {
      try {
        return await auth.get()
      } catch (e) {
        const err = new Error('lmstream: options.token failed: ' + (e && e.message ? e.message : e))
        err.token = true
        err.cause = e
        throw err
      }
    }

    // A 2xx answer to a request whose token (if any) had not expired: the credentials work.
    function accepted () {
      authFailures = 0
      authDelay = 0
      auth.worked = true
    }

    // A refusal (401, 403, or a token sent after its exp): reports it and returns how long to wait before the
    // next try, or null when it stops (403, or 401 without a token function) until resync().
    function refused (e) {
      e.stopped = e.status === 403 || !auth.refreshable
      e.retryIn = null
      if (e.stopped) {
        held = true
      } else {
        const again = authFailures++ === 0 && auth.worked // the token worked, then expired: a new one at once
        auth.refresh()
        if (again) {
          e.retryIn = 0
          authDelay = authBackoffMin
        } else {
          const d = authDelay || authBackoffMin
          e.retryIn = Math.round(d / 2 + Math.random() * d / 2)
          authDelay = Math.min(authBackoffMax, d * 2)
        }
      }
      setState(e.status === 403 ? 'forbidden' : 'unauthorized', LEVELS[level])
      call(opts.onError, e)
      return e.retryIn
    }

    function staleError () {
      const e = new Error('lmstream: the token had expired when it was sent')
      e.status = 401
      e.reason = 'token expired (its exp had passed)'
      return e
    }

    // ------------------------------------------------------------ one request per transport

    // fetch with our stop signal, a per-request abort, a time limit and the credentials.
    async function get (query, timeout) {
      const tok = await token()
      if (stopper.signal.aborted) throw new Error('lmstream: closed')
      const ctl = new AbortController()
      const abort = () => ctl.abort()
      current = { abort }
      stopper.signal.addEventListener('abort', abort)
      const t = setTimeout(abort, timeout)
      const stale = expiresIn(tok) <= 0
      if (stale) sentStale = true
      try {
        const res = await fetchFn(join(href, query), { cache: 'no-store', signal: ctl.signal, headers: bearer(opts.headers, tok), credentials })
        const body = await res.text()
        if (res.ok && !stale) accepted()
        return { res, body }
      } finally {
        clearTimeout(t)
        stopper.signal.removeEventListener('abort', abort)
        if (current && current.abort === abort) current = null
      }
    }

    function fromHeaders (from, res, body) {
      const h = (n) => res.headers.get(n)
      const next = h('Stream-Next-Offset')
      if (!next) throw new Error('no Stream-Next-Offset')
      const msgs = res.status === 204 ? [] : parseMessages(body, json)
      deliver(from, msgs, next, h('Stream-Closed') === 'true', h('Stream-Cursor'))
      return h('Stream-Up-To-Date') === 'true'
    }

    // err.reason: the server's one-line reason (the body of lmstream's errors).
    function httpError (res, body) {
      const reason = typeof body === 'string' && body.length < 300 ? body.trim() : ''
      const e = new Error('HTTP ' + res.status + (reason ? ': ' + reason : ''))
      e.status = res.status
      e.reason = reason
      e.retryAfter = retryAfterMs(res.headers.get('Retry-After'))
      return e
    }

    // 400 "offset is beyond the stream's tail": the stream was restored from an older backup, or deleted and
    // created again, so our offset belongs to another copy of it. With onReset, the application drops what it
    // shows and the subscription starts over from the beginning; without it, the subscription stops with the
    // error (reading on would mix two copies). Returns true when e was that error.
    function beyondTail (e) {
      if (!e || e.status !== 400 || !/^offset is beyond the stream's tail/.test(e.reason || '')) return false
      const old = sub.offset
      if (typeof opts.onReset !== 'function') {
        call(opts.onError, e)
        setState('error', null)
        stop()
        return true
      }
      sub.offset = '-1'
      sub.cursor = null
      sub.closed = false
      if (storage) { try { storage.removeItem(key) } catch {} }
      call(opts.onReset, { offset: old, reason: e.reason })
      return true
    }

    // Catch-up reads until up to date. Returns { progressed }.
    async function runPoll () {
      let progressed = false
      for (;;) {
        const from = sub.offset
        const { res, body } = await get('offset=' + enc(from), requestTimeout)
        if (!res.ok) throw httpError(res, body)
        setState('polling', 'poll')
        const upToDate = fromHeaders(from, res, body)
        progressed = true
        if (upToDate || sub.closed || stopper.signal.aborted) return { progressed, wait: pollInterval }
      }
    }

    async function runLongPoll () {
      const from = sub.offset
      let q = 'offset=' + enc(from) + '&live=long-poll'
      if (sub.cursor) q += '&cursor=' + enc(sub.cursor)
      const { res, body } = await get(q, requestTimeout)
      if (res.status !== 200 && res.status !== 204) throw httpError(res, body)
      setState('live', 'long-poll')
      fromHeaders(from, res, body)
      return { progressed: true, wait: 0 }
    }

    // One EventSource response. Messages of "data" events are held until the "control" event that carries
    // their end offset, so a response cut in between loses nothing and doubles nothing. The EventSource is
    // closed on any error or end: its own reconnect would restart from the first URL's offset. A token goes in
    // the query (token=), the cookie with withCredentials.
    function runSse (tok) {
      return new Promise((resolve) => {
        let from = sub.offset
        let q = 'offset=' + enc(from) + '&live=sse'
        if (sub.cursor) q += '&cursor=' + enc(sub.cursor)
        if (tok) q += '&token=' + enc(tok)
        const stale = expiresIn(tok) <= 0
        if (stale) sentStale = true
        const es = opts.withCredentials ? new root.EventSource(join(href, q), { withCredentials: true }) : new root.EventSource(join(href, q))
        let pending = []
        let progressed = false
        let opened = false
        let done = false
        let stall = setTimeout(() => end({ stalled: true }), sseStallMs)
        let idle = null
        const touch = () => { clearTimeout(idle); idle = setTimeout(() => end({}), idleMs) }
        function end (extra) {
          if (done) return
          done = true
          clearTimeout(stall)
          clearTimeout(idle)
          es.close()
          stopper.signal.removeEventListener('abort', abort)
          if (current && current.abort === abort) current = null
          resolve(Object.assign({ progressed, opened, wait: 0 }, extra))
        }
        const abort = () => end({})
        current = { abort }
        stopper.signal.addEventListener('abort', abort)
        touch()
        es.onopen = () => { opened = true; if (!stale) accepted() }
        es.addEventListener('data', (e) => {
          touch()
          try { pending = pending.concat(parseMessages(e.data, json)) } catch { end({}) }
        })
        es.addEventListener('control', (e) => {
          touch()
          let c
          try { c = JSON.parse(e.data) } catch { return end({}) }
          clearTimeout(stall)
          if (!deliver(from, pending, c.streamNextOffset, c.streamClosed === true, c.streamCursor)) return end({})
          from = sub.offset
          pending = []
          progressed = true
          setState('live', 'sse')
          if (sub.closed) end({})
        })
        es.onerror = () => end({})
      })
    }

    // SSE with credentials. EventSource shows no status: when it fails before opening, and before it opens
    // again after a refusal, one catch-up read (which delivers what it reads) throws the refusal, or a 404.
    // After a request with an expired token (sentStale), the loop counts a refusal: no second request.
    async function runSseChecked () {
      const checked = auth.given || !!opts.withCredentials
      const failed = { progressed: false, opened: false, wait: 0 }
      if (checked && authFailures > 0) {
        await check()
        if (sentStale) return failed
      }
      const tok = await token()
      if (stopper.signal.aborted) return failed // closed while the token function ran
      const r = await runSse(tok)
      // (not opened: one catch-up read learns why, e.g. a 503 and its Retry-After)
      if (!r.opened && !r.progressed && !sentStale && !stopper.signal.aborted) await check()
      return r
    }

    async function check () {
      const from = sub.offset
      const { res, body } = await get('offset=' + enc(from), requestTimeout)
      if (!res.ok) throw httpError(res, body)
      fromHeaders(from, res, body)
    }

    // ------------------------------------------------------------ the ladder

    const best = forced ? LEVELS.indexOf(forced) : (typeof root.EventSource === 'function' ? 0 : 1)
    let level = best
    let lastProbe = 0

    async function runLoop () {
      let failures = 0
      let levelFailures = 0
      let delay = 0
      while (!stopper.signal.aborted) {
        if (held || delay > 0) {
          await rest(delay)
          if (stopper.signal.aborted) return
        }
        // Known to be offline: no request can succeed, and failing ones must not push us down the ladder.
        if (root.navigator && root.navigator.onLine === false) {
          setState('offline', LEVELS[level])
          delay = backoffMax
          continue
        }
        // On a lower rung, try the best transport again now and then.
        let tried = level
        if (!forced && level > best && Date.now() - lastProbe > probeMs) { tried = best; lastProbe = Date.now() }
        let r
        sentStale = false
        try {
          r = tried === 0 ? await runSseChecked() : tried === 1 ? await runLongPoll() : await runPoll()
        } catch (e) {
          if (stopper.signal.aborted) return
          // 404: not created yet (or deleted): wait for it with backoff, on the same rung.
          r = { progressed: false, error: e, missing: e && e.status === 404 }
        }
        if (stopper.signal.aborted) return
        if (beyondTail(r.error)) {
          if (stopper.signal.aborted) return
          delay = 0
          continue
        }
        // Refused: a new token (or a stop), with its own backoff; the transport is not to blame.
        const denied = r.error && (r.error.status === 401 || r.error.status === 403)
        if (denied || sentStale) {
          delay = refused(denied ? r.error : staleError())
          continue
        }
        if (r.error && r.error.token) call(opts.onError, r.error)
        if (r.progressed) {
          if (tried !== level) level = tried // the probe worked: climb back
          failures = 0
          levelFailures = 0
          delay = r.wait
          continue
        }
        // A server that said when to come back (503 and Retry-After: a node or a backend is down) is asked
        // no sooner, whatever the rung.
        const notBefore = (r.error && r.error.retryAfter) || 0
        if (tried !== level) { delay = notBefore; continue } // a failed probe: back to the rung that works, at once
        failures++
        levelFailures++
        // Go one rung down when this one keeps failing, or at once when SSE connects but stays silent.
        if (r.missing || (r.error && r.error.token)) levelFailures = 0
        if (!forced && level < LEVELS.length - 1 && (r.stalled || levelFailures >= 3)) {
          level++
          levelFailures = 0
          failures = 0
          lastProbe = Date.now()
          delay = 0
        } else {
          const d = Math.min(backoffMax, backoffMin * Math.pow(2, failures - 1))
          delay = d / 2 + Math.random() * d / 2 // jitter: tabs of many users do not return in step
        }
        delay = Math.max(delay, notBefore)
        setState(root.navigator && root.navigator.onLine === false ? 'offline' : r.missing ? 'waiting' : 'reconnecting', LEVELS[level])
      }
    }

    // ------------------------------------------------------------ start: restore, snapshot, share

    // GET ?snapshot, page by page (Stream-Snapshot-Next); a 409 on a later page means the state changed
    // meanwhile: start again. Returns false when the server offers no snapshot (the caller replays instead).
    async function loadSnapshot () {
      const ctl = (m) => m && typeof m === 'object' && m.headers && typeof m.headers === 'object' ? m.headers.control : undefined
      for (let attempt = 0; attempt < 8 && !stopper.signal.aborted; attempt++) {
        let q = 'snapshot'
        const rows = []
        for (;;) {
          const { res, body } = await get(q, requestTimeout)
          if (res.status === 409 && q !== 'snapshot') break // changed between pages: start over
          if (res.status === 401 || res.status === 403) throw httpError(res, body)
          if (!res.ok) return false
          const next = res.headers.get('Stream-Next-Offset')
          const page = JSON.parse(body)
          if (!next || !Array.isArray(page)) return false
          for (const m of page) if (ctl(m) === undefined) rows.push(m)
          const more = res.headers.get('Stream-Snapshot-Next')
          if (more) { q = 'snapshot=' + enc(more); continue }
          call(opts.onSnapshot, rows, { offset: next })
          sub.offset = next
          sub.closed = res.headers.get('Stream-Closed') === 'true'
          save()
          return true
        }
      }
      throw new Error('snapshot kept changing')
    }

    async function start () {
      let rec = null
      if (storage) { try { rec = JSON.parse(storage.getItem(key)) } catch {} }
      const snapshot = opts.snapshot === 'always' || (opts.snapshot && !(rec && typeof rec.offset === 'string'))
      if (!snapshot && rec && typeof rec.offset === 'string') {
        sub.offset = rec.offset
        sub.cursor = typeof rec.cursor === 'string' ? rec.cursor : null
        sub.closed = rec.closed === true
        call(opts.onRestore, rec.state, { offset: sub.offset, closed: sub.closed })
        if (sub.closed) return finish() // a closed stream never changes again: no request at all
      } else {
        sub.offset = opts.offset != null ? String(opts.offset) : '-1'
      }
      if (snapshot) {
        for (let failures = 0; !stopper.signal.aborted; failures++) {
          try {
            if (await loadSnapshot()) break
            sub.offset = opts.offset != null ? String(opts.offset) : '-1' // not offered: replay the stream
            break
          } catch (e) {
            if (e && (e.status === 401 || e.status === 403)) { await rest(refused(e)); continue }
            setState('reconnecting', null)
            await sleep(Math.min(backoffMax, backoffMin * Math.pow(2, failures)), stopper.signal)
          }
        }
        if (sub.closed) return finish()
      }
      if (root.addEventListener) {
        root.addEventListener('online', wake)
        root.addEventListener('offline', onOffline)
      }
      const share = opts.share && typeof root.BroadcastChannel === 'function' &&
        root.navigator && root.navigator.locks && typeof root.navigator.locks.request === 'function'
      if (!share) return runLoop()
      startShared(typeof opts.share === 'string' ? opts.share : 'lmstream:' + href)
    }

    // Tabs of one origin hold one connection: the tab holding the Web Lock is the leader and posts every
    // batch it delivers; the others apply those that start at their own offset and catch up with plain
    // reads when they are behind. When the leader goes away, the lock passes to another tab.
    function startShared (name) {
      bc = new root.BroadcastChannel(name)
      sub.role = 'follower'
      let catching = false
      async function catchUp () {
        if (catching) return
        catching = true
        try {
          for (let failures = 0; !stopper.signal.aborted && sub.role === 'follower';) {
            try {
              const from = sub.offset
              const { res, body } = await get('offset=' + enc(from), requestTimeout)
              if (res.status === 401) auth.refresh()
              if (!res.ok) throw httpError(res, body)
              if (fromHeaders(from, res, body)) return
            } catch (e) {
              if (beyondTail(e)) continue
              failures++
              await sleep(Math.min(backoffMax, backoffMin * Math.pow(2, failures)), stopper.signal)
            }
          }
        } finally { catching = false }
      }
      bc.onmessage = (e) => {
        const m = e.data
        if (!m || sub.role !== 'follower') return
        if (m.t === 'batch') {
          if (m.from === sub.offset) deliver(m.from, m.msgs, m.next, m.closed, null)
          else if (m.next > sub.offset) catchUp() // we missed something (offsets sort as strings)
          setState('live', 'shared')
        } else if (m.t === 'tip' && m.offset !== sub.offset && m.offset > sub.offset) {
          catchUp()
        }
        if (m.t === 'tip' || m.t === 'batch') setState('live', 'shared')
      }
      root.navigator.locks.request(name, { signal: stopper.signal }, () => {
        if (stopper.signal.aborted) return
        sub.role = 'leader'
        bc.onmessage = (e) => { if (e.data && e.data.t === 'hello') bc.postMessage({ t: 'tip', offset: sub.offset }) }
        // Held until this subscription stops (or the tab goes away).
        return new Promise((resolve) => {
          stopper.signal.addEventListener('abort', resolve)
          runLoop().then(resolve, resolve)
        })
      }).catch(() => {})
      setTimeout(() => {
        if (sub.role !== 'follower' || stopper.signal.aborted) return
        bc.postMessage({ t: 'hello' })
        catchUp() // up to the tail now; the leader's batches keep us there
      }, 0)
    }

    setTimeout(() => { start().catch((e) => { call(opts.onError, e); setState('error', null) }) }, 0)
    return sub
  }

  /**
   * producer(url, options): an idempotent producer (Producer-Id, Producer-Epoch, Producer-Seq). append(value)
   * queues value and resolves once the server has it (200, or 204 for a retry it already had). Each queued
   * item keeps its sequence number across retries and, with options.storage (default sessionStorage), across
   * reloads, so resending after a lost answer never stores a message twice. options.token and
   * options.withCredentials as for follow(): after a 401 a token function is asked again and the item resent
   * after the backoff; a 401 without one, and a 403, refuse the item. Returns { append, pending, id }.
   */
  function producer (url, opts) {
    opts = opts || {}
    const href = absolute(url)
    const fetchFn = opts.fetch || root.fetch.bind(root)
    const storage = opts.storage === null ? null : (opts.storage || storageOf('sessionStorage'))
    const contentType = opts.contentType || 'application/json'
    const epoch = String(opts.epoch || 0)
    const backoffMax = opts.backoffMax || 8000
    const idKey = 'lmstream-producer:' + href
    let id = opts.id
    if (!id && storage) id = storage.getItem(idKey)
    if (!id) id = 'p-' + Array.from(root.crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('')
    if (storage) { try { storage.setItem(idKey, id) } catch {} }
    const boxKey = 'lmstream-outbox:' + href + ':' + id
    const load = () => {
      try { const v = JSON.parse(storage && storage.getItem(boxKey)); if (v && Array.isArray(v.box)) return v } catch {}
      return { next: 0, box: [] }
    }
    const st = load()
    const waiters = new Map() // body index -> resolve/reject of append()
    let uid = 0
    const persist = () => { if (storage) { try { storage.setItem(boxKey, JSON.stringify(st)) } catch {} } }
    const changed = () => { if (typeof opts.onChange === 'function') opts.onChange(st.box.length, api.lastError) }
    let pumping = false
    let waker = null
    const auth = tokenHolder(opts.token)
    const credentials = opts.withCredentials ? 'include' : undefined
    const NO_TOKEN = {}

    async function pump () {
      if (pumping) return
      pumping = true
      let delay = 500
      try {
        while (st.box.length) {
          const item = st.box[0]
          if (item.seq == null) { item.seq = st.next; persist() }
          let res = null
          const tok = await auth.get().catch(() => NO_TOKEN)
          if (tok === NO_TOKEN) {
            api.lastError = 'options.token failed'
          } else {
            try {
              res = await fetchFn(href, {
                method: 'POST',
                cache: 'no-store',
                credentials,
                headers: Object.assign({}, bearer(opts.headers, tok), {
                  'Content-Type': contentType,
                  'Producer-Id': id,
                  'Producer-Epoch': epoch,
                  'Producer-Seq': String(item.seq),
                }),
                body: item.body,
              })
            } catch (e) { api.lastError = 'offline' }
          }
          if (res && res.ok) { // 200 stored now, 204 stored by an earlier try whose answer was lost
            st.next = item.seq + 1
            st.box.shift()
            persist()
            api.lastError = null
            delay = 500
            settle(item, null)
            changed()
            continue
          }
          const expected = res && res.headers.get('Producer-Expected-Seq')
          if (res && res.status === 409 && expected !== null && /^\d+$/.test(expected)) {
            item.seq = Number(expected) // the server knows fewer of our sends than we do: resend at its number
            persist()
            continue
          }
          if (res && res.status === 401 && auth.refreshable) {
            auth.refresh() // a new token for the retry below
          } else if (res && res.status < 500 && res.status !== 429) { // refused for good; its seq was not used
            st.box.shift()
            persist()
            api.lastError = res.headers.get('Stream-Closed') === 'true' ? 'stream closed' : 'HTTP ' + res.status
            settle(item, new Error(api.lastError))
            changed()
            continue
          }
          if (res) api.lastError = 'HTTP ' + res.status
          changed()
          waker = new AbortController()
          await sleep(Math.max(delay / 2 + Math.random() * delay / 2, retryAfterMs(res && res.headers.get('Retry-After'))), waker.signal)
          waker = null
          delay = Math.min(delay * 2, backoffMax)
        }
      } finally { pumping = false }
    }

    function settle (item, err) {
      const w = waiters.get(item.uid)
      if (!w) return
      waiters.delete(item.uid)
      if (err) w.reject(err); else w.resolve()
    }

    const api = {
      id,
      lastError: null,
      get pending () { return st.box.length },
      append (value) {
        const body = contentType.indexOf('json') >= 0 && typeof value !== 'string' ? JSON.stringify(value) : String(value)
        const item = { body, seq: null, uid: Date.now() + ':' + (uid++) }
        st.box.push(item)
        persist()
        changed()
        const p = new Promise((resolve, reject) => waiters.set(item.uid, { resolve, reject }))
        pump()
        return p
      },
      retryNow () { if (waker) waker.abort(); pump() },
    }
    if (root.addEventListener) root.addEventListener('online', () => api.retryNow())
    if (st.box.length) setTimeout(pump, 0) // items left by an earlier page of this tab
    return api
  }

  /**
   * stateMap(saved): the current value of every (type, key) of a State stream, built from its change events.
   * apply(event): insert/update/upsert set the value, delete removes it, a `reset` control message clears
   * everything, other control messages (snapshot-start/-end) are ignored. apply needs no `this`, so
   * `onSnapshot: (rows) => rows.forEach(m.apply)` and `onMessage: m.apply` work as they are. toJSON() is a
   * plain array for saveState; stateMap(saved) or load(saved) (in onRestore) brings it back.
   */
  function stateMap (saved) {
    const types = new Map() // type -> Map(key -> value)
    const ops = { insert: 1, update: 1, upsert: 1 }
    function apply (ev) {
      const h = ev && typeof ev === 'object' && ev.headers && typeof ev.headers === 'object' ? ev.headers : null
      if (!h) return
      if (h.control === 'reset') return types.clear()
      if (typeof ev.type !== 'string' || typeof ev.key !== 'string') return
      let t = types.get(ev.type)
      if (h.operation === 'delete') {
        if (t && t.delete(ev.key) && t.size === 0) types.delete(ev.type)
      } else if (ops[h.operation] === 1) {
        if (!t) types.set(ev.type, t = new Map())
        t.set(ev.key, ev.value)
      }
    }
    function entries () { // [[type, key, value], ...]
      const out = []
      for (const [type, t] of types) for (const [key, value] of t) out.push([type, key, value])
      return out
    }
    function load (rows) {
      types.clear()
      if (Array.isArray(rows)) {
        for (const r of rows) if (Array.isArray(r)) apply({ type: r[0], key: r[1], value: r[2], headers: { operation: 'insert' } })
      }
    }
    const m = {
      apply,
      get: (type, key) => { const t = types.get(type); return t ? t.get(key) : undefined },
      has: (type, key) => { const t = types.get(type); return !!t && t.has(key) },
      type: (type) => types.get(type) || new Map(), // the Map of one type (key -> value)
      types,
      entries,
      get size () { let n = 0; for (const t of types.values()) n += t.size; return n },
      clear: () => types.clear(),
      load,
      toJSON: entries,
    }
    load(saved)
    return m
  }

  const LmStream = { follow, producer, stateMap, version: '0.1.0' }
  root.LmStream = LmStream
  if (typeof module === 'object' && module && module.exports) module.exports = LmStream
})(typeof globalThis !== 'undefined' ? globalThis : this)

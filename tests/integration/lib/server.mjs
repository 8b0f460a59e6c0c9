// Start and stop one lmstream deployment for a black-box integration test.
//
//   LMSTREAM_TEST_SERVER  which deployment: passed to `deploy/run --server`
//                         (default "lighttpd"); "reference" starts the Node
//                         reference server of the protocol in this process.
//                         A test may name its deployment itself instead:
//                         startServer({ server: 'apache' }).
//   LMSTREAM_RUN          path of deploy/run (default: <repo>/deploy/run).
//   LMSTREAM_KEEP_DATA=1  keep the temporary data directory after the test.
//
// Each deployment gets a fresh temporary directory (data dir, config file) and
// a free loopback port. Only processes that this module started, or that
// descend from them, are ever signalled.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = path.resolve(HERE, '..', '..', '..')
export const SERVER_KIND = process.env.LMSTREAM_TEST_SERVER || 'lighttpd'
export const IS_REFERENCE = SERVER_KIND === 'reference'
export const RUN_PATH = process.env.LMSTREAM_RUN || path.join(REPO_ROOT, 'deploy', 'run')
export const STREAM_PREFIX = '/v1/stream/'
export const WORKER_NAME = 'lmstream.fcgi'
export const LIVE_NAME = 'lmstream-live'
/** deploy/run deployments that start lmstream-live behind a web server. */
export const PROXIED_KINDS = new Set(['lighttpd', 'apache'])

const READY_RE = /lmstream: ready on (https?:\/\/\S+)/
// with --tls, the ready line ends "..., certificate=FILE)"
const CERT_RE = /lmstream: ready on https:\/\/\S+ \(.*certificate=(\S+)\)/g
/** The certificate file named by the last ready line in text, or null. */
const lastCert = (text) => [...text.matchAll(CERT_RE)].pop()?.[1] ?? null
// setpriv (util-linux, which deploy/run needs anyway), if installed.
const SETPRIV = (process.env.PATH || '/usr/bin:/bin').split(':').concat('/usr/bin', '/bin')
  .map((d) => path.join(d || '.', 'setpriv')).find((f) => { try { fs.accessSync(f, fs.constants.X_OK); return true } catch { return false } })
const READY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 10_000

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Resolves with fn()'s first truthy value (fn may be async), polling every 100 ms; fails after ms. */
export async function until(what, fn, ms = 20_000) {
  const t0 = Date.now()
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

/** Resolve with p's value, or with `fallback` after ms; the timer never outlives the race. */
function within(p, ms, fallback = null) {
  let timer
  return Promise.race([p, new Promise((r) => { timer = setTimeout(() => r(fallback), ms) })])
    .finally(() => clearTimeout(timer))
}

/**
 * Connections of a listening address: { port } counts TCP sockets on that
 * local port that are established (01) or closing on the server's side
 * (08, CLOSE_WAIT); { socket } counts the connected (03) unix sockets
 * accepted on that path (accepted sockets carry the listener's path).
 */
export function countConnections({ port, socket }) {
  let n = 0
  const files = socket ? ['/proc/net/unix'] : ['/proc/net/tcp', '/proc/net/tcp6']
  for (const file of files) {
    let text
    try { text = fs.readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (socket) {
        if (cols.length >= 8 && cols[7] === socket && cols[5] === '03') n++
      } else if (cols.length >= 4 && parseInt(cols[1].split(':')[1], 16) === port &&
                 (cols[3] === '01' || cols[3] === '08')) n++
    }
  }
  return n
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Render a config object as the `key = value` lines lmstream reads. */
export function renderConfig(config) {
  return Object.entries(config).map(([k, v]) => `${k} = ${v}\n`).join('')
}

/**
 * Resolve after any HTTP response (whatever its status) from host:port, so we
 * know the listener accepts and answers. Rejects after timeoutMs. tls: ask
 * over HTTPS (any certificate will do for this probe).
 */
export async function waitHttp(port, timeoutMs = 10_000, { tls = false } = {}) {
  const deadline = Date.now() + timeoutMs
  let lastErr
  while (Date.now() < deadline) {
    try {
      await new Promise((resolve, reject) => {
        const req = (tls ? https : http).request(
          { host: '127.0.0.1', port, method: 'HEAD', path: `${STREAM_PREFIX}__ready_probe__`, agent: false, timeout: 2000,
            ...(tls ? { rejectUnauthorized: false } : {}) },
          (res) => { res.resume(); res.on('end', resolve) },
        )
        req.on('timeout', () => req.destroy(new Error('probe timeout')))
        req.on('error', reject)
        req.end()
      })
      return
    } catch (e) {
      lastErr = e
      await sleep(100)
    }
  }
  throw new Error(`no HTTP answer on port ${port} within ${timeoutMs} ms: ${lastErr?.message}`)
}

/**
 * Wait for the "lmstream: ready on URL" line on the child's stderr.
 * Rejects if the child exits first or the timeout passes.
 */
export function waitReady(child, log, timeoutMs = READY_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    let buf = ''
    const done = (fn, arg) => {
      clearTimeout(timer)
      child.stderr.off('data', onData)
      child.off('exit', onExit)
      fn(arg)
    }
    const onData = (chunk) => {
      buf += chunk.toString('utf8')
      const m = READY_RE.exec(buf)
      if (m) done(resolve, m[1])
    }
    const onExit = (code, signal) =>
      done(reject, new Error(`deploy/run exited before ready (code ${code}, signal ${signal})\n${log.tail()}`))
    const timer = setTimeout(
      () => done(reject, new Error(`deploy/run not ready after ${timeoutMs} ms\n${log.tail()}`)),
      timeoutMs,
    )
    child.stderr.on('data', onData)
    child.on('exit', onExit)
  })
}

// ---------------------------------------------------------------- /proc walk

function readProc(pid, file) {
  try { return fs.readFileSync(`/proc/${pid}/${file}`) } catch { return null }
}

function procTable() {
  const table = new Map()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const status = readProc(name, 'status')
    if (!status) continue
    const m = /^PPid:\s+(\d+)/m.exec(status.toString('latin1'))
    if (!m) continue
    const cmd = readProc(name, 'cmdline')
    table.set(Number(name), {
      ppid: Number(m[1]),
      argv: cmd ? cmd.toString('utf8').split('\0').filter(Boolean) : [],
    })
  }
  return table
}

function isProgram(pid, info, name) {
  // argv[0] is the binary; argv[1] when an interpreter runs a script of that name.
  if (info.argv.slice(0, 2).some((a) => path.basename(a) === name)) return true
  try { return path.basename(fs.readlinkSync(`/proc/${pid}/exe`)) === name } catch { return false }
}

function isWorker(pid, info) {
  return isProgram(pid, info, WORKER_NAME)
}

/**
 * Pids of lmstream.fcgi processes that belong to the deployment started as
 * rootPid: its descendants, or (if a front end daemonised away from us) ones
 * whose command line or environment names our private temporary directory.
 */
export function findWorkers(rootPid, marker) {
  return findPrograms(rootPid, marker, WORKER_NAME)
}

/**
 * Like findPrograms, without those whose parent runs `name` too: the main
 * process of a server that forks children of its own name (Apache).
 */
export function topPrograms(rootPid, marker, name) {
  const table = procTable()
  const pids = new Set(findPrograms(rootPid, marker, name))
  return [...pids].filter((p) => !pids.has(table.get(p)?.ppid))
}

/** Like findWorkers, for processes running the program `name`. */
export function findPrograms(rootPid, marker, name) {
  const table = procTable()
  const children = new Map()
  for (const [pid, info] of table) {
    if (!children.has(info.ppid)) children.set(info.ppid, [])
    children.get(info.ppid).push(pid)
  }
  const mine = new Set()
  const stack = [rootPid]
  while (stack.length) {
    const p = stack.pop()
    for (const c of children.get(p) || []) { mine.add(c); stack.push(c) }
  }
  const out = []
  for (const [pid, info] of table) {
    if (!isProgram(pid, info, name)) continue
    if (mine.has(pid)) { out.push(pid); continue }
    if (marker) {
      const env = readProc(pid, 'environ')
      if (info.argv.join(' ').includes(marker) || (env && env.includes(marker))) out.push(pid)
    }
  }
  return out
}

// ---------------------------------------------------------------- start/stop

function makeLog(limit = 64 * 1024) {
  let text = ''
  let partial = ''
  const lineListeners = new Set()
  return {
    add(chunk) {
      const s = chunk.toString('utf8')
      text += s
      if (text.length > limit) text = text.slice(-limit)
      if (!lineListeners.size) { partial = ''; return }
      const lines = (partial + s).split('\n')
      partial = lines.pop()
      for (const line of lines) for (const fn of [...lineListeners]) fn(line)
    },
    tail(n = 40) { return text.split('\n').slice(-n).join('\n') },
    get text() { return text },
    /** Call fn(line) for each complete line added from now on; returns an unsubscribe function. */
    onLine(fn) { lineListeners.add(fn); return () => lineListeners.delete(fn) },
  }
}

async function loadReference() {
  const roots = [
    path.join(REPO_ROOT, 'tests', 'node_modules'),
    path.join(HERE, '..', 'node_modules'),
    '/tmp/ct/node_modules',
  ]
  for (const root of roots) {
    const dir = path.join(root, '@durable-streams', 'server')
    let pkg
    try { pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) } catch { continue }
    const rel = pkg.exports?.['.']?.import?.default || pkg.module || 'dist/index.js'
    return import(pathToFileURL(path.join(dir, rel)).href)
  }
  throw new Error(`@durable-streams/server not found in: ${roots.join(', ')}`)
}

async function startReference({ label }) {
  const { DurableStreamTestServer } = await loadReference()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `lmstream-it-${label}-`))
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const server = new DurableStreamTestServer({ port, host: '127.0.0.1', longPollTimeout: 2000 })
    try {
      const url = await server.start()
      return {
        kind: 'reference', url, port, root, dataDir: null, pid: process.pid,
        canKill: false, hasLimits: false,
        workers: () => [],
        logTail: () => '(reference server runs in-process)',
        async stop() {
          await server.stop()
          if (!process.env.LMSTREAM_KEEP_DATA) fs.rmSync(root, { recursive: true, force: true })
        },
      }
    } catch (e) {
      if (attempt >= 2) throw e
    }
  }
}

async function startDeployment({ label, config, kind = SERVER_KIND, workers, liveRestart = true, demo = false, siteConf, tls, env }) {
  if (!fs.existsSync(RUN_PATH)) {
    throw new Error(`${RUN_PATH} not found (set LMSTREAM_RUN, or LMSTREAM_TEST_SERVER=reference)`)
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `lmstream-it-${label}-`))
  const dataDir = path.join(root, 'data')
  fs.mkdirSync(dataDir)
  // As root, deploy/run runs Apache and lmstream-live as www-data: it must be
  // able to reach the data directory (and read the config) inside ours.
  if ((kind === 'apache' || kind.startsWith('shared-hosting')) && process.getuid?.() === 0) fs.chmodSync(root, 0o711)
  // The shipped lmstream.conf requires tokens (auth = token): a test that
  // does not set auth itself runs an open server, as before access control.
  const configFile = path.join(root, 'lmstream.conf')
  fs.writeFileSync(configFile, renderConfig({ auth: 'none', ...(config || {}) }))

  // deploy/run's arguments for a port: the same on a respawn (see below).
  const argsFor = (port) => {
    const args = ['--server', kind, '--port', String(port), '--data', dataDir]
    args.push('--config', configFile)
    if (workers) args.push('--workers', String(workers))
    if (!liveRestart) args.push('--no-live-restart')
    if (demo) args.push('--demo')
    if (tls === true) args.push('--tls')
    else if (tls) args.push('--tls-cert', tls.cert, '--tls-key', tls.key)
    if (siteConf) {
      const f = path.join(root, 'site.conf')
      fs.writeFileSync(f, siteConf)
      args.push('--site-conf', f)
    }
    return args
  }
  // Start deploy/run on port, logging to log; resolve once it is ready and
  // answers, with { child, exited, onProcessExit, url }. On failure it is
  // stopped again, and the error carries inUse: true if the port was taken.
  const launch = async (port, log) => {
    const args = argsFor(port)
    // Under setpriv --pdeathsig, deploy/run gets SIGTERM (and stops everything
    // it started) even if this test process is killed before it can clean up.
    const [cmd, cmdArgs] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'TERM', '--', RUN_PATH, ...args]] : [RUN_PATH, args]
    const child = spawn(cmd, cmdArgs, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env })
    let own = '' // what this start writes (log may hold an earlier one's too)
    const add = (c) => { log.add(c); if (own.length < 64 * 1024) own += c.toString('utf8') }
    child.stdout.on('data', add)
    child.stderr.on('data', add)
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    const onProcessExit = () => { try { child.kill('SIGTERM') } catch {} }
    process.once('exit', onProcessExit)
    child.once('error', (e) => add(`spawn error: ${e.message}\n`))

    try {
      const url = await waitReady(child, log)
      await waitHttp(port, undefined, { tls: !!tls })
      return { child, exited, onProcessExit, url }
    } catch (e) {
      try { child.kill('SIGTERM') } catch {}
      await within(exited, STOP_TIMEOUT_MS)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      process.off('exit', onProcessExit)
      e.inUse = /address already in use|EADDRINUSE|bind|cannot listen/i.test(own)
      throw e
    }
  }

  let lastErr
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const log = makeLog()
    let child, exited, onProcessExit, url
    try {
      ({ child, exited, onProcessExit, url } = await launch(port, log))
    } catch (e) {
      lastErr = e
      if (e.inUse) continue
      break
    }
    url = url.replace(/\/+$/, '')
    // --tls: the certificate it serves (the self-signed one deploy/run made,
    // which lives in its run directory until it exits), read now
    const tlsCert = tls ? lastCert(log.text) : null
    const tlsCa = tlsCert ? fs.readFileSync(tlsCert) : null

    /**
     * Web-server processes of this deployment still running after its
     * deploy/run exited: deploy/run stops its children's whole process
     * groups, yet once in a chaos run Apache children outlived a killed
     * parent and their deploy/run, held the port (every respawn failed) and
     * the log pipe (the test never ended). They are killed here and listed
     * in handle.strayWeb, and their number is in the log.
     */
    const killStrayWeb = () => {
      const stray = ['apache2', 'lighttpd'].flatMap((name) => findPrograms(-1, root, name))
      for (const p of stray) { try { process.kill(p, 'SIGKILL') } catch {} }
      if (stray.length) {
        log.add(`lmstream test: killed ${stray.length} web server process(es) left by an exited deploy/run: ${stray.join(' ')}\n`)
        process.stderr.write(`lmstream test: killed ${stray.length} web server process(es) left by an exited deploy/run\n`)
      }
      handle.strayWeb = (handle.strayWeb || []).concat(stray)
    }
    const handle = {
      kind, url, port, root, dataDir, configFile, pid: child.pid, child, tlsCert, tlsCa,
      canKill: true, hasLimits: true,
      workers: () => findWorkers(child.pid, root),
      /** Pids of this deployment's lmstream-live (one, unless it is being restarted). */
      livePids: () => findPrograms(child.pid, root, LIVE_NAME),
      /**
       * Where lmstream-live listens (from its --listen argument): { host, port },
       * or { socket } for a unix socket (behind lighttpd and Apache); null if none.
       */
      liveAddress() {
        for (const pid of handle.livePids()) {
          const argv = (readProc(pid, 'cmdline') || Buffer.alloc(0)).toString('utf8').split('\0')
          const i = argv.indexOf('--listen')
          const a = i >= 0 ? argv[i + 1] || '' : ''
          if (a.startsWith('unix:')) return { socket: a.slice(5) }
          const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(a)
          if (m) return { host: m[1], port: Number(m[2]) }
        }
        return null
      },
      /** Connections lmstream-live holds open now (established, or closing on its side). */
      liveConnections() {
        const a = handle.liveAddress()
        return a ? countConnections(a) : 0
      },
      /**
       * Resolve with the match of the first stderr line matching re that
       * deploy/run (or a child) writes from now on. Call it before the action
       * that causes the line. Rejects after timeoutMs or if deploy/run exits.
       */
      waitLog(re, timeoutMs = 10_000) {
        return new Promise((resolve, reject) => {
          let off = null
          const finish = (fn, arg) => { clearTimeout(timer); off?.(); child.off('exit', onExit); fn(arg) }
          const onExit = (code, sig) =>
            finish(reject, new Error(`deploy/run exited (code ${code}, signal ${sig}) while waiting for ${re}\n${log.tail()}`))
          const timer = setTimeout(
            () => finish(reject, new Error(`no stderr line matching ${re} within ${timeoutMs} ms\n${log.tail()}`)),
            timeoutMs,
          )
          off = log.onLine((line) => { const m = re.exec(line); if (m) finish(resolve, m) })
          child.once('exit', onExit)
        })
      },
      /**
       * The daemon's own counters: sends SIGHUP to lmstream-live and parses
       * the line it logs, "N connections, N requests, N wake-ups, ..., N
       * bytes buffered, N commit notices ignored".
       */
      async liveStats(timeoutMs = 5000) {
        const pids = handle.livePids()
        if (pids.length !== 1) throw new Error(`expected one ${LIVE_NAME}, found ${JSON.stringify(pids)}`)
        const line = handle.waitLog(/(\d+) connections, (\d+) requests, (\d+) wake-ups(?:.* (\d+) bytes buffered, (\d+) commit notices ignored)?/, timeoutMs)
        process.kill(pids[0], 'SIGHUP')
        const m = await line
        return {
          connections: Number(m[1]), requests: Number(m[2]), wakeups: Number(m[3]),
          bufferedBytes: Number(m[4]), ignoredNotices: Number(m[5]),
        }
      },
      logTail: (n) => log.tail(n),
      /**
       * Pids of the web server's main process (lighttpd, or Apache's parent
       * apache2): the topmost process of that name below deploy/run. Empty
       * for standalone, or while deploy/run is down.
       */
      webServerPids() {
        const name = { lighttpd: 'lighttpd', fastcgi: 'lighttpd', cgi: 'lighttpd', apache: 'apache2' }[kind]
        return name && handle.running() ? topPrograms(child.pid, root, name) : []
      },
      /** True while this incarnation of deploy/run has not exited. */
      running: () => child.exitCode === null && child.signalCode === null,
      /** Resolves with { code, signal } once this incarnation of deploy/run has exited. */
      exited: () => exited,
      /**
       * Start deploy/run again after it has exited (its web server died, or
       * it gave up restarting lmstream-live), on the same port, data
       * directory and configuration, as a supervisor such as systemd would
       * restart it. Waits up to waitExitMs for the old one to exit (throws if
       * it does not), then retries the start (for example while the port is
       * still held) until timeoutMs has passed. Updates pid and child.
       */
      async respawn({ timeoutMs = 60_000, waitExitMs = STOP_TIMEOUT_MS } = {}) {
        if (!(await within(exited, waitExitMs))) {
          throw new Error(`respawn: deploy/run (pid ${child.pid}) has not exited\n${log.tail()}`)
        }
        process.off('exit', onProcessExit)
        killStrayWeb()
        const deadline = Date.now() + timeoutMs
        for (let n = 1; ; n++) {
          log.add(`lmstream test: respawning deploy/run on port ${port} (attempt ${n})\n`)
          try {
            ({ child, exited, onProcessExit } = await launch(port, log))
            handle.child = child
            handle.pid = child.pid
            handle.respawns = (handle.respawns || 0) + 1
            if (tls) { // a new run directory: a new self-signed certificate
              handle.tlsCert = lastCert(log.text)
              handle.tlsCa = handle.tlsCert ? fs.readFileSync(handle.tlsCert) : null
            }
            return handle
          } catch (e) {
            if (Date.now() > deadline) throw e
            await sleep(250)
          }
        }
      },
      async stop() {
        const leftovers = handle.workers()
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM')
          const r = await within(exited, STOP_TIMEOUT_MS)
          if (!r) {
            process.stderr.write(`lmstream test: deploy/run ignored SIGTERM for ${STOP_TIMEOUT_MS} ms; sending SIGKILL\n`)
            child.kill('SIGKILL')
            await exited
          }
        }
        process.off('exit', onProcessExit)
        // Workers of this deployment must be gone once deploy/run has stopped.
        await sleep(200)
        const alive = findWorkers(-1, root).concat(leftovers.filter((p) => {
          const info = readProc(p, 'cmdline')
          return info && info.toString('utf8').split('\0').slice(0, 2).some((a) => path.basename(a) === WORKER_NAME)
        }))
        for (const p of new Set(alive)) {
          process.stderr.write(`lmstream test: worker ${p} outlived deploy/run; sending SIGKILL\n`)
          try { process.kill(p, 'SIGKILL') } catch {}
        }
        handle.strayWorkers = [...new Set(alive)]
        const strayLive = findPrograms(-1, root, LIVE_NAME)
        for (const p of strayLive) {
          process.stderr.write(`lmstream test: ${LIVE_NAME} ${p} outlived deploy/run; sending SIGKILL\n`)
          try { process.kill(p, 'SIGKILL') } catch {}
        }
        handle.strayLive = strayLive
        killStrayWeb()
        if (!process.env.LMSTREAM_KEEP_DATA) fs.rmSync(root, { recursive: true, force: true })
      },
    }
    return handle
  }
  fs.rmSync(root, { recursive: true, force: true })
  throw lastErr
}

/**
 * Start the deployment chosen by LMSTREAM_TEST_SERVER.
 * options.label: short name used in the temporary directory name.
 * options.config: object of lmstream config keys (written to a file and
 *   passed as --config); ignored by the reference server.
 * options.server: deployment to start instead of LMSTREAM_TEST_SERVER's
 *   (lighttpd, fastcgi, cgi, apache, standalone, shared-hosting,
 *   shared-hosting-fcgid or reference). shared-hosting serves the uploaded
 *   folder at /lmstream/ (streams under /lmstream/v1/stream/), and options.config
 *   is added to the folder's own configuration (auth = token, its key).
 * options.workers: --workers for deploy/run.
 * options.liveRestart: false passes --no-live-restart (a killed lmstream-live
 *   stays down; the web server keeps running).
 * options.demo: true passes --demo (public_read of demo/** and chat/**, the
 *   looping build producer and, with auth = token, GET /demo-token: a
 *   10-minute token that writes chat/**, under lighttpd and Apache only).
 * options.siteConf: text of a web server configuration fragment passed as
 *   deploy/run --site-conf (lighttpd or Apache syntax, as the kind needs).
 * options.tls: true passes --tls (HTTPS with HTTP/2, a self-signed
 *   certificate); { cert, key } passes --tls-cert and --tls-key. url is then
 *   https://127.0.0.1:PORT, tlsCert the certificate's path (as deploy/run
 *   printed it: it goes away with deploy/run) and tlsCa its PEM text (a
 *   Buffer), for the `ca` option of node:https / node:http2.
 * options.env: variables added to the environment deploy/run starts with
 *   (and passes on to the servers and workers it starts).
 * Returns { kind, url, port, canKill, hasLimits, workers(), logTail(), stop() }
 * (and tlsCert, tlsCa: null without tls);
 * deploy/run deployments also have livePids(), liveAddress(), waitLog(re)
 * and liveStats() (lmstream-live's own counters, through SIGHUP), and
 * webServerPids(), running(), exited() and respawn() (deploy/run started
 * again on the same port and data directory once it has exited).
 */
export function startServer({ label = 'it', config, server, workers, liveRestart, demo, siteConf, tls, env } = {}) {
  const kind = server || SERVER_KIND
  return kind === 'reference'
    ? startReference({ label })
    : startDeployment({ label, config, kind, workers, liveRestart, demo, siteConf, tls, env })
}

/**
 * Run lmstream.fcgi once as a CGI program, as a web server would, for
 * `method target` (target may carry a query) with `body`. env adds to or
 * replaces the CGI variables (CONTENT_TYPE, LMSTREAM_CONFIG, ...);
 * launch(exe) gives [command, args] to run it another way (as another
 * user). Resolves with { code, status (0 if none), head, body (a Buffer),
 * stderr }.
 */
export function runCgi({ method = 'GET', target, body = '', env = {}, launch = (exe) => [exe, []] }) {
  const bindir = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'src')
  const payload = Buffer.from(body)
  const q = target.indexOf('?')
  const [cmd, args] = launch(path.join(bindir, 'lmstream.fcgi'))
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        GATEWAY_INTERFACE: 'CGI/1.1',
        SERVER_PROTOCOL: 'HTTP/1.1',
        REQUEST_METHOD: method,
        REQUEST_URI: target,
        QUERY_STRING: q < 0 ? '' : target.slice(q + 1),
        CONTENT_LENGTH: String(payload.length),
        HTTP_HOST: '127.0.0.1',
        ...env,
      },
    })
    const out = []
    const err = []
    child.stdout.on('data', (c) => out.push(c))
    child.stderr.on('data', (c) => err.push(c))
    child.on('error', reject)
    child.on('close', (code) => {
      const all = Buffer.concat(out)
      const end = all.indexOf('\r\n\r\n')
      const head = all.subarray(0, end < 0 ? all.length : end).toString('latin1')
      const m = /^Status: (\d+)/m.exec(head)
      resolve({ code, status: m ? Number(m[1]) : 0, head, body: end < 0 ? Buffer.alloc(0) : all.subarray(end + 4),
        stderr: Buffer.concat(err).toString() })
    })
    child.stdin.on('error', () => {}) // a program that answers without reading its body (GET, HEAD)
    child.stdin.end(payload)
  })
}

/**
 * Append `value` (JSON) to stream p with lmstream.fcgi run as a CGI program
 * on the deployment's data directory (another process than the servers);
 * extraEnv adds to its environment. Resolves with the CGI status.
 */
export async function cgiPost(srv, p, value, extraEnv = {}) {
  const r = await runCgi({
    method: 'POST', target: p, body: JSON.stringify(value),
    env: { CONTENT_TYPE: 'application/json', LMSTREAM_CONFIG: srv.configFile, LMSTREAM_DATA_DIR: srv.dataDir, ...extraEnv },
  })
  if (r.code !== 0 || !r.status) throw new Error(`lmstream.fcgi (CGI) exited ${r.code}: ${r.head.slice(0, 200)} ${r.stderr}`)
  return r.status
}

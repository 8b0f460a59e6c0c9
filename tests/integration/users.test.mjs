// The two-user deployment the README and deploy/systemd describe: lmstream-live runs as
// its own user, the FastCGI/CGI workers as the web server's user, both in one group, on
// one data directory (group-owned, setgid). Web servers run with umask 022, so whatever
// one user creates (the LMDB files, the lock file, the sync file, the notify socket)
// must still be writable by the other: lmstream creates files 0660 and directories
// 0770 and sets umask 007 itself. Before, files came out 0640 and the second user got
// "Permission denied" on every request.
//
// Needs root (to switch uids with setpriv); skipped, and counted as skipped, otherwise.
// The uids and the gid are numeric and need no /etc/passwd entries.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { freePort, REPO_ROOT, runCgi, STREAM_PREFIX } from './lib/server.mjs'

const BINDIR = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'build', 'default', 'src')
const GROUP = 64100 // the group "lmstream"
const LIVE_UID = 64101 // the user "lmstream"
const WEB_UID = 64102 // the web server's user, a member of the group
const IS_ROOT = process.getuid?.() === 0

/** argv that runs cmd as uid in GROUP with the web server's umask 022. */
function asUser(uid, cmd, args) {
  const q = (s) => `'${String(s).replace(/'/g, "'\\''")}'`
  const inner = [cmd, ...args].map(q).join(' ')
  return ['setpriv', ['--reuid', String(uid), '--regid', String(GROUP), '--clear-groups', '--',
    'sh', '-c', `umask 022; exec ${inner}`]]
}

/** Run lmstream.fcgi as a CGI program as uid; resolves { status, body, head, stderr }. */
async function cgi(uid, dir, method, name, body = '', headers = {}) {
  const env = { LMSTREAM_CONFIG: path.join(dir, 'lmstream.conf'), ...headers }
  // LeakSanitizer cannot follow a process whose uid changed under it.
  if (process.env.ASAN_OPTIONS) env.ASAN_OPTIONS = `${process.env.ASAN_OPTIONS}:detect_leaks=0`
  const r = await runCgi({ method, target: STREAM_PREFIX + name, body, env, launch: (exe) => asUser(uid, exe, []) })
  return { ...r, body: r.body.toString() }
}

function request(port, method, p, body = '', headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent: false,
      headers: { 'Content-Length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** A data directory laid out as lmstream.tmpfiles.conf does: root:lmstream 2770. */
function makeSite(label) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `lmstream-it-users-${label}-`))
  fs.chmodSync(root, 0o755)
  const data = path.join(root, 'data')
  fs.mkdirSync(data)
  fs.chownSync(data, 0, GROUP)
  fs.chmodSync(data, 0o2770)
  fs.writeFileSync(path.join(root, 'lmstream.conf'), `auth = none\ndata_dir = ${data}\n`)
  fs.chmodSync(path.join(root, 'lmstream.conf'), 0o644)
  return { root, data }
}

/** Start lmstream-live as LIVE_UID on a free port; resolves { port, stop() }. */
async function startLive(site) {
  const port = await freePort()
  const [cmd, args] = asUser(LIVE_UID, path.join(BINDIR, 'lmstream-live'),
    ['--config', path.join(site.root, 'lmstream.conf'), '--listen', `127.0.0.1:${port}`])
  const env = { ...process.env }
  if (env.ASAN_OPTIONS) env.ASAN_OPTIONS = `${env.ASAN_OPTIONS}:detect_leaks=0`
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (c) => { log += c })
  const exited = new Promise((r) => child.once('exit', r))
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`lmstream-live exited ${child.exitCode}: ${log}`)
    try { await request(port, 'HEAD', `${STREAM_PREFIX}__probe__`); break } catch {}
    if (Date.now() > deadline) throw new Error(`lmstream-live not answering: ${log}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    port,
    log: () => log,
    async stop() { child.kill('SIGTERM'); await exited },
  }
}

/** Every file the programs created under dir, with its mode, owner and group. */
function created(dir) {
  return fs.readdirSync(dir).map((f) => {
    const st = fs.lstatSync(path.join(dir, f))
    return { f, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, sock: st.isSocket() }
  })
}

function assertShared(dir) {
  const files = created(dir)
  assert.ok(files.some((x) => x.f === 'data.mdb'), JSON.stringify(files))
  for (const x of files) {
    assert.equal(x.mode & 0o060, 0o060, `${x.f} is ${x.mode.toString(8)}: the group cannot read and write it`)
    assert.equal(x.mode & 0o007, 0, `${x.f} is ${x.mode.toString(8)}: others have access`)
    assert.equal(x.gid, GROUP, `${x.f} belongs to group ${x.gid}`)
  }
}

describe('two users of one group share the store (umask 022)', { skip: !IS_ROOT && 'needs root to switch uids' }, () => {
  const sites = []
  after(() => { for (const s of sites) fs.rmSync(s.root, { recursive: true, force: true }) })

  test('the workers create the store, then lmstream-live as another user reads and writes it', async () => {
    const site = makeSite('web-first')
    sites.push(site)
    const put = await cgi(WEB_UID, site.root, 'PUT', 'a', '', { CONTENT_TYPE: 'text/plain' })
    assert.equal(put.status, 201, `${put.head} ${put.stderr}`)
    assert.equal((await cgi(WEB_UID, site.root, 'POST', 'a', 'one', { CONTENT_TYPE: 'text/plain' })).status, 204)

    const live = await startLive(site)
    try {
      const post = await request(live.port, 'POST', `${STREAM_PREFIX}a`, 'two', { 'Content-Type': 'text/plain' })
      assert.equal(post.status, 204, `lmstream-live as the second user: ${post.status} ${post.body} ${live.log()}`)
      const read = await request(live.port, 'GET', `${STREAM_PREFIX}a?offset=-1`)
      assert.equal(read.status, 200)
      assert.equal(read.body, 'onetwo')
      // and the workers again, now that lmstream-live created its own files (sync, notify socket)
      const again = await cgi(WEB_UID, site.root, 'POST', 'a', 'three', { CONTENT_TYPE: 'text/plain' })
      assert.equal(again.status, 204, `${again.head} ${again.stderr}`)
      assert.equal((await request(live.port, 'GET', `${STREAM_PREFIX}a?offset=-1`)).body, 'onetwothree')
    } finally {
      await live.stop()
    }
    assertShared(site.data)
  })

  test('lmstream-live creates the store, then the workers as another user read and write it', async () => {
    const site = makeSite('live-first')
    sites.push(site)
    const live = await startLive(site)
    try {
      assert.equal((await request(live.port, 'PUT', `${STREAM_PREFIX}b`, '', { 'Content-Type': 'text/plain' })).status, 201)
      assert.equal((await request(live.port, 'POST', `${STREAM_PREFIX}b`, 'x', { 'Content-Type': 'text/plain' })).status, 204)
      const post = await cgi(WEB_UID, site.root, 'POST', 'b', 'y', { CONTENT_TYPE: 'text/plain' })
      assert.equal(post.status, 204, `the workers as the second user: ${post.head} ${post.stderr}`)
      const get = await cgi(WEB_UID, site.root, 'GET', 'b')
      assert.equal(get.status, 200)
      assert.equal(get.body, 'xy')
      // a long-poll on lmstream-live is woken by the workers' commit (the notify socket)
      const tail = (await request(live.port, 'HEAD', `${STREAM_PREFIX}b`)).headers['stream-next-offset']
      const wait = request(live.port, 'GET', `${STREAM_PREFIX}b?offset=${tail}&live=long-poll`)
      await new Promise((r) => setTimeout(r, 300))
      assert.equal((await cgi(WEB_UID, site.root, 'POST', 'b', 'z', { CONTENT_TYPE: 'text/plain' })).status, 204)
      const woke = await wait
      assert.equal(woke.status, 200)
      assert.equal(woke.body, 'z')
    } finally {
      await live.stop()
    }
    assertShared(site.data)
  })
})

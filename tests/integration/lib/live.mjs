// lmstream-live started alone on a data directory, without deploy/run: for
// tests of the store itself (an older store upgraded, a full map, system
// calls under strace).

import { execFileSync, spawn } from 'node:child_process'
import path from 'node:path'
import { freePort, until, REPO_ROOT } from './server.mjs'
import { rawRequest } from './http.mjs'

const BINDIR = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'src')

/**
 * lmstream-live on dataDir with auth = none and a free loopback port, env
 * added to its environment, run under wrap (e.g. ['strace', '-f', ...]) if
 * given: { url, up (it listens), child, exited, log(), stop() }.
 */
export async function startLiveAlone(dataDir, env = {}, wrap = null) {
  const port = await freePort()
  const live = path.join(BINDIR, 'lmstream-live')
  const [cmd, args] = wrap ? [wrap[0], [...wrap.slice(1), live]] : [live, []]
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      // LeakSanitizer cannot run under ptrace (strace): the rest of ASan can.
      ASAN_OPTIONS: (process.env.ASAN_OPTIONS || '') + (wrap ? ':detect_leaks=0' : ''),
      UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || '',
      LMSTREAM_DATA_DIR: dataDir, LMSTREAM_LISTEN: `127.0.0.1:${port}`, LMSTREAM_AUTH: 'none', ...env,
    },
  })
  let log = ''
  child.stdout.on('data', (c) => { log += c })
  child.stderr.on('data', (c) => { log += c })
  const exited = new Promise((r) => child.on('exit', (code) => r(code)))
  const url = `http://127.0.0.1:${port}`
  const up = await Promise.race([
    exited.then(() => false),
    until('lmstream-live to listen', async () => (await rawRequest(url, { path: '/v1/stream/' }).catch(() => null)) !== null, 15_000),
  ])
  return {
    url, up, child, exited, log: () => log,
    async stop() {
      if (child.exitCode !== null) return
      if (wrap) {
        // A signal to strace would leave lmstream-live running: stop it, and
        // strace ends with it.
        const pids = execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)
        for (const pid of pids) process.kill(Number(pid), 'SIGTERM')
      } else {
        child.kill('SIGTERM')
      }
      await exited
    },
  }
}

// deploy/run --server cluster for the tests of tests/cluster/: started with
// the given arguments (SIGTERM to it if the test process dies), resolved
// once it prints "ready on": { url, child, pid, log() }.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { REPO_ROOT } from '../integration/lib/server.mjs'

const RUN = path.join(REPO_ROOT, 'deploy', 'run')

export function startDeployRun(args) {
  const child = spawn('setpriv', ['--pdeathsig', 'TERM', '--', RUN, ...args],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  const add = (c) => { log += c.toString('utf8'); if (log.length > 1 << 20) log = log.slice(-(1 << 19)) }
  child.stdout.on('data', add)
  child.stderr.on('data', add)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster not ready in 90 s:\n${log.slice(-4000)}`)), 90_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`deploy/run exited (${code}):\n${log.slice(-4000)}`)) })
    const poll = setInterval(() => {
      const m = /lmstream: ready on (http:\/\/\S+) \(server=cluster/.exec(log)
      if (!m) return
      clearInterval(poll)
      clearTimeout(timer)
      resolve({ url: m[1], child, pid: child.pid, log: () => log })
    }, 100)
  })
}

// A FastCGI worker does not outlive the web server that started it.
//
// A web server stopped properly stops its FastCGI workers; one killed with
// SIGKILL (the OOM killer, a crash, kill -9) cannot, and its workers would go
// on: each holding the store open and its socket, listening for a web server
// that will never come back. With exit_with_parent = on (the default) they
// stop by themselves. Here deploy/run and the whole web server (lighttpd;
// Apache with its mod_fcgid process manager) are killed with SIGKILL, so
// nothing else is left to stop the workers. The control, exit_with_parent =
// off (for spawn-fcgi, which exits once the workers run), shows that they do
// stay without it.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, findPrograms, until, sleep, WORKER_NAME } from './lib/server.mjs'

/** Every process of this deployment named name, found by its root in argv or environ. */
const processes = (srv, name) => findPrograms(-1, srv.root, name)

async function killWebServer(srv, webName) {
  const workers = processes(srv, WORKER_NAME)
  assert.ok(workers.length >= 1, `the deployment's ${WORKER_NAME} workers: ${workers}`)
  // deploy/run is frozen first: it would stop the web server's process group
  // (the workers with it) once it saw the web server die, and its own death
  // would send the web server SIGTERM (setpriv --pdeathsig)
  process.kill(srv.pid, 'SIGSTOP')
  for (const p of processes(srv, webName)) { try { process.kill(p, 'SIGKILL') } catch {} }
  await until(`no ${webName} left`, () => processes(srv, webName).length === 0, 10_000)
  process.kill(srv.pid, 'SIGKILL')
  return workers
}

for (const [kind, webName] of [['fastcgi', 'lighttpd'], ['apache', 'apache2']]) {
  test(`${kind}: ${webName} killed with SIGKILL, its ${WORKER_NAME} workers stop by themselves`, { timeout: 60_000 }, async () => {
    const srv = await startServer({ server: kind })
    let workers = []
    try {
      const r = await fetch(`${srv.url}/v1/stream/parent-${Date.now()}`, { method: 'PUT' })
      assert.ok(r.status === 201 || r.status === 401, `a worker answers: ${r.status}`)
      workers = await killWebServer(srv, webName)
      await until('the workers to stop', () => processes(srv, WORKER_NAME).length === 0, 10_000)
    } finally {
      for (const p of [...workers, ...processes(srv, WORKER_NAME)]) { try { process.kill(p, 'SIGKILL') } catch {} }
      await srv.stop().catch(() => {})
    }
  })
}

test(`fastcgi, exit_with_parent = off: the workers of a killed lighttpd stay (what the default prevents)`, { timeout: 60_000 }, async () => {
  const srv = await startServer({ server: 'fastcgi', env: { LMSTREAM_EXIT_WITH_PARENT: 'off' } })
  let workers = []
  try {
    workers = await killWebServer(srv, 'lighttpd')
    await sleep(3000)
    assert.deepEqual(processes(srv, WORKER_NAME).sort(), [...workers].sort(), 'the workers are still running')
  } finally {
    for (const p of [...workers, ...processes(srv, WORKER_NAME)]) { try { process.kill(p, 'SIGKILL') } catch {} }
    await srv.stop().catch(() => {})
  }
})

// What the configuration and the status lines promise a user, on real deployments:
//
//  - one precedence for settings, the one the README states: flags, then LMSTREAM_<KEY>
//    variables, then the configuration file, then the defaults. deploy/run always passes a
//    --config file; a variable must still win over the file's value (LMSTREAM_MAX_BODY=1K
//    over "max_body = 64M" in the file: a 2 KiB append gets 413), for the FastCGI workers
//    and for lmstream-live alike;
//  - every answer carries its real reason phrase. lmstream.fcgi writes its own "Status:"
//    line as a CGI program (and in FastCGI records): a deleted stream's "410 Gone", never
//    "410 Status". lighttpd and Apache replace the phrase with their own, so the CGI program
//    is also run here directly, as a web server would, and its output read.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { startServer, STREAM_PREFIX, REPO_ROOT } from './lib/server.mjs'

const BINDIR = process.env.LMSTREAM_BINDIR || path.join(REPO_ROOT, 'build', 'default', 'src')

/** One request; resolves with { status, message, body }. */
function request(baseUrl, method, path, headers = {}, body = '') {
  const u = new URL(baseUrl)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, agent: false,
      headers: { 'Content-Length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, message: res.statusMessage, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

for (const kind of ['fastcgi', 'standalone']) {
  describe(`settings precedence on ${kind}`, () => {
    let srv
    before(async () => {
      process.env.LMSTREAM_MAX_BODY = '1K'
      try {
        srv = await startServer({ label: `config-${kind}`, server: kind, config: { max_body: '64M' } })
      } finally {
        delete process.env.LMSTREAM_MAX_BODY
      }
    })
    after(async () => { await srv?.stop() })

    test('LMSTREAM_MAX_BODY overrides max_body of the --config file', async () => {
      const p = `${STREAM_PREFIX}precedence-${kind}`
      const ct = { 'Content-Type': 'text/plain' }
      assert.equal((await request(srv.url, 'PUT', p, ct)).status, 201)
      assert.equal((await request(srv.url, 'POST', p, ct, 'x'.repeat(512))).status, 204)
      const big = await request(srv.url, 'POST', p, ct, 'x'.repeat(2048))
      assert.equal(big.status, 413, `a 2 KiB body over LMSTREAM_MAX_BODY=1K: ${big.status} ${big.body}`)
    })
  })
}

for (const kind of ['fastcgi', 'cgi']) {
  describe(`status lines on ${kind}`, () => {
    let srv
    before(async () => { srv = await startServer({ label: `status-${kind}`, server: kind, config: { max_body: '1K' } }) })
    after(async () => { await srv?.stop() })

    test('each status has its reason phrase', async () => {
      const src = `${STREAM_PREFIX}status-src`
      const ct = { 'Content-Type': 'text/plain' }
      const seen = []
      const expect = async (r, status, message) => {
        seen.push(status)
        assert.equal(r.status, status, r.body)
        assert.equal(r.message, message, `${status} comes with "${message}"`)
      }
      await expect(await request(srv.url, 'PUT', src, ct), 201, 'Created')
      await expect(await request(srv.url, 'PUT', src, ct), 200, 'OK')
      await expect(await request(srv.url, 'POST', src, ct, 'a'), 204, 'No Content')
      await expect(await request(srv.url, 'PUT', src, { 'Content-Type': 'application/json' }), 409, 'Conflict')
      await expect(await request(srv.url, 'GET', `${src}?offset=bogus`), 400, 'Bad Request')
      await expect(await request(srv.url, 'GET', `${STREAM_PREFIX}status-none`), 404, 'Not Found')
      await expect(await request(srv.url, 'POST', src, ct, 'x'.repeat(4096)), 413, 'Payload Too Large')
      await expect(await request(srv.url, 'PATCH', src), 405, 'Method Not Allowed')
      // A fork keeps its deleted source readable to itself: the source answers 410.
      await expect(await request(srv.url, 'PUT', `${STREAM_PREFIX}status-fork`, { 'Stream-Forked-From': src }), 201, 'Created')
      await expect(await request(srv.url, 'DELETE', src), 204, 'No Content')
      await expect(await request(srv.url, 'GET', src), 410, 'Gone')
      assert.equal(seen.length, 11)
    })
  })
}

describe('lmstream.fcgi run as a CGI program', () => {
  let data
  before(() => { data = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-cgi-')) })
  after(() => fs.rmSync(data, { recursive: true, force: true }))

  /** One CGI request: the Status line of what the program printed. */
  const cgi = (method, uri, headers = {}) => {
    const env = { PATH: process.env.PATH, GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: method,
      REQUEST_URI: uri, SERVER_PROTOCOL: 'HTTP/1.1', CONTENT_LENGTH: '0', LMSTREAM_DATA_DIR: data, ...headers }
    const r = spawnSync(path.join(BINDIR, 'lmstream.fcgi'), [], { env, input: '', timeout: 10_000 })
    return r.stdout.toString().split('\r\n')[0]
  }

  test('Status lines carry the reason phrase of their status', () => {
    const src = `${STREAM_PREFIX}cgi-src`
    assert.equal(cgi('PUT', src, { CONTENT_TYPE: 'text/plain' }), 'Status: 201 Created')
    assert.equal(cgi('PUT', `${STREAM_PREFIX}cgi-fork`, { HTTP_STREAM_FORKED_FROM: src }), 'Status: 201 Created')
    assert.equal(cgi('DELETE', src), 'Status: 204 No Content')
    assert.equal(cgi('GET', src), 'Status: 410 Gone')
    assert.equal(cgi('GET', `${STREAM_PREFIX}cgi-none`), 'Status: 404 Not Found')
    assert.equal(cgi('PATCH', src), 'Status: 405 Method Not Allowed')
  })
})

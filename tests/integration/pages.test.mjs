// Catch-up pages through the FastCGI workers, byte for byte. A worker writes
// an answer whose body fills a libfcgi record (8 KiB) or more in FastCGI
// records of its own, gathered from head and body, and one of over 64 KiB
// through a small socket buffer (src/front/fcgi.c, write_response); smaller
// answers go through libfcgi's stream. Whatever the path, the client must get
// exactly the bytes that were appended:
//
//  - messages of sizes around the record and buffer bounds (8183, 8184,
//    8185, 64 KiB + 1, ...), each read back at its own offset: the body is
//    the message, Content-Length its length;
//  - a stream of ~3 MiB read from the start: pages of ~1 MiB
//    (LS_READ_PAGE_BYTES), whose concatenation is the stream;
//  - HEAD of a large page: its headers, no body;
//  - a JSON stream whose pages are over 8 KiB: valid arrays of the messages.
//
// Run on lighttpd with FastCGI workers (the default kind), and on Apache
// (mod_fcgid) where it is installed: both read the records the workers write.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { startServer, STREAM_PREFIX } from './lib/server.mjs'
import { rawRequest, readAll } from './lib/http.mjs'

const tag = randomBytes(4).toString('hex')
const KiB = 1024
const OCTETS = { 'Content-Type': 'application/octet-stream' }
const kinds = ['lighttpd']
if (fs.existsSync('/usr/lib/apache2/modules/mod_fcgid.so')) kinds.push('apache')

for (const kind of kinds) {
  describe(`catch-up pages through the FastCGI workers (${kind})`, () => {
    let srv
    before(async () => {
      srv = await startServer({ label: `pages-${kind}`, server: kind, config: { max_body: '2M' } })
    })
    after(async () => { await srv?.stop() })

    test('messages around the record and buffer sizes read back exactly, each at its offset', async () => {
      const p = `${STREAM_PREFIX}pages-sizes-${kind}-${tag}`
      assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: OCTETS })).status, 201)
      const sizes = [1, 8 * KiB - 9, 8 * KiB - 8, 8 * KiB - 7, 8 * KiB, 16 * KiB + 3, 64 * KiB, 64 * KiB + 1, 300 * KiB, 1024 * KiB]
      let offset = '-1'
      const sent = []
      for (const n of sizes) {
        const body = randomBytes(n)
        const r = await rawRequest(srv.url, { method: 'POST', path: p, headers: OCTETS, body })
        assert.equal(r.status, 204, `append of ${n} bytes`)
        sent.push({ n, body, offset })
        offset = r.headers['stream-next-offset']
      }
      // each message alone: the page at its offset starts with it (a small
      // one shares its page with the next messages up to ~1 MiB)
      for (const { n, body, offset: at } of sent) {
        const r = await rawRequest(srv.url, { method: 'GET', path: `${p}?offset=${encodeURIComponent(at)}` })
        assert.equal(r.status, 200, `page at the message of ${n} bytes`)
        assert.equal(Number(r.headers['content-length']), r.body.length, `Content-Length of the page at the message of ${n} bytes`)
        assert.ok(r.body.subarray(0, n).equals(body), `the page at the message of ${n} bytes starts with it`)
      }
      const all = await readAll(srv.url, p)
      assert.ok(all.bytes.equals(Buffer.concat(sent.map((s) => s.body))), 'the whole stream, page by page')
    })

    test('a ~3 MiB stream reads back in ~1 MiB pages, byte for byte; HEAD of a page has no body', async () => {
      const p = `${STREAM_PREFIX}pages-big-${kind}-${tag}`
      assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: OCTETS })).status, 201)
      const parts = []
      for (let i = 0; i < 48; i++) {
        const body = randomBytes(64 * KiB)
        parts.push(body)
        assert.equal((await rawRequest(srv.url, { method: 'POST', path: p, headers: OCTETS, body })).status, 204)
      }
      const all = await readAll(srv.url, p)
      assert.ok(all.pages.length >= 3, `${all.pages.length} pages for 3 MiB`)
      assert.ok(all.pages[0].length > 512 * KiB, `a first page of ${all.pages[0].length} bytes`)
      assert.ok(all.bytes.equals(Buffer.concat(parts)), 'the pages together are the stream')

      const head = await rawRequest(srv.url, { method: 'HEAD', path: `${p}?offset=-1` })
      assert.equal(head.status, 200)
      assert.equal(head.body.length, 0, 'HEAD: no body')
      assert.ok(head.headers['stream-next-offset'], 'HEAD: Stream-Next-Offset')
    })

    test('JSON pages over 8 KiB are arrays of the messages', async () => {
      const p = `${STREAM_PREFIX}pages-json-${kind}-${tag}`
      const json = { 'Content-Type': 'application/json' }
      assert.equal((await rawRequest(srv.url, { method: 'PUT', path: p, headers: json })).status, 201)
      const messages = []
      for (let i = 0; i < 40; i++) {
        const m = { i, pad: randomBytes(3 * KiB).toString('hex') }
        messages.push(m)
        assert.equal((await rawRequest(srv.url, { method: 'POST', path: p, headers: json, body: JSON.stringify(m) })).status, 204)
      }
      const all = await readAll(srv.url, p)
      assert.ok(all.pages[0].length > 8 * KiB, `a first page of ${all.pages[0].length} bytes`)
      assert.deepEqual(all.messages, messages)
    })
  })
}

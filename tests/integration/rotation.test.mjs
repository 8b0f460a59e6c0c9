// Key rotation as the README describes it, on a real deployment (fastcgi, and standalone for the
// daemon): with the old and the new key both in auth_key, tokens of either work; once the old key
// file is removed from auth_key and the server restarted, a token of the old key gets 401
// invalid_token while a token of the new key still works. Revocation is the same step.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startServer, STREAM_PREFIX } from './lib/server.mjs'
import { mint, claimsFor } from './lib/tokens.mjs'

/** An HS256 key file named NAME.key (kid NAME) in dir: its path and secret. */
function hsKey(dir, name) {
  const text = crypto.randomBytes(32).toString('hex')
  const file = path.join(dir, `${name}.key`)
  fs.writeFileSync(file, `${text}\n`, { mode: 0o600 })
  return { file, kid: name, secret: Buffer.from(text, 'latin1') }
}

const token = (k) => mint({ alg: 'HS256', kid: k.kid, key: k.secret, claims: claimsFor({ read: ['r/**'], write: ['r/**'] }) })

async function put(srv, name, tok) {
  const res = await fetch(`${srv.url}${STREAM_PREFIX}r/${name}`, {
    method: 'PUT', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${tok}` },
  })
  return { status: res.status, auth: res.headers.get('www-authenticate') }
}

for (const kind of ['fastcgi', 'standalone']) {
  describe(`key rotation on ${kind}`, () => {
    let dir, oldKey, newKey
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmstream-rotation-'))
      oldKey = hsKey(dir, 'k2026-11')
      newKey = hsKey(dir, 'k2026-12')
    })
    after(() => fs.rmSync(dir, { recursive: true, force: true }))

    test('both keys loaded: tokens of either work; old key removed: its tokens get 401', async () => {
      let srv = await startServer({ label: `rot-${kind}`, server: kind,
        config: { auth: 'token', auth_key: `${oldKey.file} ${newKey.file}` } })
      try {
        assert.equal((await put(srv, 'a', token(oldKey))).status, 201, 'old key, both loaded')
        assert.equal((await put(srv, 'b', token(newKey))).status, 201, 'new key, both loaded')
      } finally {
        await srv.stop()
      }
      srv = await startServer({ label: `rot2-${kind}`, server: kind, config: { auth: 'token', auth_key: newKey.file } })
      try {
        const old = await put(srv, 'c', token(oldKey))
        assert.equal(old.status, 401, 'a token of the removed key')
        assert.match(old.auth ?? '', /error="invalid_token"/)
        assert.equal((await put(srv, 'd', token(newKey))).status, 201, 'the new key still works')
      } finally {
        await srv.stop()
      }
    })
  })
}

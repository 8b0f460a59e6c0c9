// Keys and signed tokens (JWT) for the access control tests, made with
// node:crypto only.
//
//   const keys = makeKeys(dir)        HS256 secret, RSA and EC P-256 key pairs;
//                                     writes hs.key, rsa.pem, ec.pem (mode 0600)
//   keys.authKey                      the value of the auth_key config key
//   mint({ alg, kid, key, claims })   a compact JWT
//   keys.token({ read, write, admin }, { alg, ttl, ... })  a token of those rights
//
// A key's id ("kid") is its file name without directory and extension, as
// lmstream reads it: "hs", "rsa", "ec".

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

export const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url')
const json64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url')

/** Seconds since the epoch, as JWT claims count them. */
export const nowS = () => Math.floor(Date.now() / 1000)

/**
 * A compact JWT. alg: HS256 (key: Buffer or string secret), RS256 / ES256
 * (key: a private KeyObject), or "none" (no signature). header: extra header
 * fields (they may override alg / kid: for tokens that lie about themselves).
 */
export function mint({ alg, kid, key, claims, header = {} }) {
  const head = { alg, typ: 'JWT', ...(kid !== undefined ? { kid } : {}), ...header }
  const input = `${json64(head)}.${json64(claims)}`
  return `${input}.${sign(alg, key, input)}`
}

/** The base64url signature of input under alg. */
export function sign(alg, key, input) {
  const data = Buffer.from(input)
  switch (alg) {
    case 'HS256': return crypto.createHmac('sha256', key).update(data).digest('base64url')
    case 'RS256': return crypto.sign('sha256', data, key).toString('base64url')
    case 'ES256': return crypto.sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    case 'none': return ''
    default: throw new Error(`unknown alg ${alg}`)
  }
}

/** Decode the payload of a compact JWT (no verification). */
export function payloadOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'))
}

/** The same token with its payload replaced (the header and signature kept). */
export function tamper(token, change) {
  const [h, , s] = token.split('.')
  const claims = change(payloadOf(token))
  return `${h}.${json64(claims)}.${s}`
}

/** The claims of a token granting rights ({ read, write, admin }: pattern arrays). */
export function claimsFor(rights, { ttl = 3600, exp, nbf, sub = 'test' } = {}) {
  const lm = {}
  for (const r of ['read', 'write', 'admin']) if (rights[r]) lm[r] = rights[r]
  const c = { sub, exp: exp ?? nowS() + ttl, lmstream: lm }
  if (nbf !== undefined) c.nbf = nbf
  return c
}

/** A fresh RSA (2048) or EC (P-256) key pair: { privateKey, publicPem }. */
export function keyPair(type) {
  const { privateKey, publicKey } = type === 'rsa'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) }
}

/**
 * The account deploy/run runs lmstream and the web server as, when it is not
 * ours: as root, Apache and lmstream-live run as www-data (or
 * LMSTREAM_RUN_USER), so key and password files must be theirs. Returns
 * { uid, gid }, or undefined when it is ours (not root, or servers without
 * apache among them).
 */
export function runOwner(servers = ['apache']) {
  if (process.getuid?.() !== 0 || !servers.includes('apache')) return undefined
  const user = process.env.LMSTREAM_RUN_USER || 'www-data'
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`))
  if (!line) return undefined
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

/**
 * Make the three keys of a deployment in dir: hs.key (32 random bytes,
 * hex-encoded, with a trailing newline), rsa.pem and ec.pem (spki PEM public
 * keys), each mode 0600. owner: optional { uid, gid } to give the files to
 * (a deployment that runs lmstream as another user must read them).
 */
export function makeKeys(dir, { owner } = {}) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const hsText = crypto.randomBytes(32).toString('hex')
  const rsa = keyPair('rsa')
  const ec = keyPair('ec')
  const files = {
    hs: path.join(dir, 'hs.key'),
    rsa: path.join(dir, 'rsa.pem'),
    ec: path.join(dir, 'ec.pem'),
  }
  fs.writeFileSync(files.hs, `${hsText}\n`, { mode: 0o600 })
  fs.writeFileSync(files.rsa, rsa.publicPem, { mode: 0o600 })
  fs.writeFileSync(files.ec, ec.publicPem, { mode: 0o600 })
  for (const f of [...Object.values(files), dir]) {
    if (owner) fs.chownSync(f, owner.uid, owner.gid)
  }
  for (const f of Object.values(files)) fs.chmodSync(f, 0o600)
  const secret = Buffer.from(hsText, 'latin1') // the file's bytes without the newline
  const signer = {
    HS256: { kid: 'hs', key: secret },
    RS256: { kid: 'rsa', key: rsa.privateKey },
    ES256: { kid: 'ec', key: ec.privateKey },
  }
  return {
    dir, files, secret, rsa, ec,
    authKey: Object.values(files).join(' '),
    /** A token of the given rights signed by this deployment's key for alg. */
    token(rights, { alg = 'HS256', kid, ...opts } = {}) {
      const s = signer[alg]
      return mint({ alg, kid: kid === undefined ? s.kid : kid ?? undefined, key: s.key, claims: claimsFor(rights, opts) })
    },
  }
}

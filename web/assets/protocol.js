// The viewer side of the wire protocol (docs/PROTOCOL.md), with WebCrypto only: the device
// fingerprint, the device proof key and its signatures, the X25519 key exchange, the HKDF
// session key, the CEK unwrap and the per-segment AES-256-GCM decryption.

const enc = new TextEncoder();

export const SESSION_KEY_INFO = 'leaktrace/v1/session-key';
export const CEK_AAD = 'leaktrace/v1/cek/';
export const SEGMENT_AAD = 'leaktrace/v1/segment/';
export const DEVICE_PROOF = 'leaktrace/v1/device-proof/';
const NONCE = 12;

function toHex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function b64decode(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let bin = '';
  for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The inputs of the device fingerprint, as shown to the viewer. */
export function fingerprintInputs() {
  return {
    user_agent: navigator.userAgent,
    screen: `${screen.width}x${screen.height}x${screen.colorDepth}`,
    time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone || '',
    language: navigator.language || '',
    platform: navigator.platform || '',
  };
}

/** SHA-256 (64 hex) of the user agent, screen, time zone, language and platform. */
export async function deviceFingerprint(inputs = fingerprintInputs()) {
  const text = [inputs.user_agent, inputs.screen, inputs.time_zone, inputs.language, inputs.platform].join('\n');
  return toHex(await crypto.subtle.digest('SHA-256', enc.encode(text)));
}

const KEY_DB = 'leaktrace';
const KEY_STORE = 'device-keys';

/** Runs `work(store)` on the device-key store of this origin's IndexedDB; answers its result. */
function withKeyStore(mode, work) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(KEY_DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(KEY_STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(KEY_STORE, mode);
      const request = work(tx.objectStore(KEY_STORE));
      tx.oncomplete = () => { db.close(); resolve(request.result); };
      tx.onerror = () => { db.close(); reject(tx.error); };
    };
  });
}

/**
 * This browser's device proof key for `name` (the user and fingerprint): an ECDSA P-256 key
 * pair whose private half is not extractable (no script, this page's included, can read it
 * out), kept in IndexedDB so that other tabs and later visits sign with the same key (a new
 * key would supersede the tokens of the tabs already playing). Made when there is none.
 * Answers {keyPair, publicKey: base64 of the uncompressed point}, as registration sends it.
 */
export async function deviceKey(name) {
  let keyPair = null;
  try {
    keyPair = await withKeyStore('readonly', (store) => store.get(name));
  } catch (_) { /* no IndexedDB (private mode): a key for this page only */ }
  if (!keyPair) {
    keyPair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    try {
      await withKeyStore('readwrite', (store) => store.put(keyPair, name));
    } catch (_) { /* kept in memory only */ }
  }
  const publicKey = b64encode(await crypto.subtle.exportKey('raw', keyPair.publicKey));
  return { keyPair, publicKey };
}

/** Forgets the device key for `name` (signing out). */
export async function forgetDeviceKey(name) {
  try {
    await withKeyStore('readwrite', (store) => store.delete(name));
  } catch (_) { /* nothing kept */ }
}

/**
 * The device's proof (base64 of the 64-byte r || s signature) of `purpose` ('refresh',
 * 'key-exchange' or 'logout') for `deviceId` over `binding`: the presented token's jti, or
 * `${sessionId}\n${clientPublicKey}` for a key exchange.
 */
export async function deviceProof(keyPair, purpose, deviceId, binding) {
  const message = enc.encode(`${DEVICE_PROOF}${purpose}\n${deviceId}\n${binding}`);
  return b64encode(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keyPair.privateKey, message));
}

/** The `jti` claim of a token (read, not verified: the server verifies). */
export function tokenId(token) {
  const payload = token.split('.')[1] || '';
  const base64 = payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '=');
  return JSON.parse(new TextDecoder().decode(b64decode(base64))).jti;
}

/** Whether this browser's WebCrypto has X25519 (Chromium 133+, Firefox 130+, Safari 17+). */
export async function hasX25519() {
  try {
    await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    return true;
  } catch (_) {
    return false;
  }
}

/**
 * Runs the client half of the key exchange for `sessionId` against the server's public key
 * (base64). Answers {clientPublicKey (base64), sessionKey (CryptoKey), sharedSecretHash}.
 */
export async function keyExchange(sessionId, serverPublicKeyB64) {
  const serverRaw = b64decode(serverPublicKeyB64);
  if (serverRaw.length !== 32) throw new Error('the server public key is not 32 bytes');
  const pair = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
  const serverKey = await crypto.subtle.importKey('raw', serverRaw, { name: 'X25519' }, false, []);
  const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: serverKey }, pair.privateKey, 256));
  if (shared.every((b) => b === 0)) throw new Error('the key exchange gave an all-zero secret');
  const ikm = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  const sessionKey = await crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: enc.encode(sessionId), info: enc.encode(SESSION_KEY_INFO) },
    ikm, { name: 'AES-GCM', length: 256 }, false, ['decrypt']);
  const clientPublicKey = b64encode(await crypto.subtle.exportKey('raw', pair.publicKey));
  const sharedSecretHash = toHex(await crypto.subtle.digest('SHA-256', shared));
  shared.fill(0);
  return { clientPublicKey, sessionKey, sharedSecretHash };
}

/** Opens `nonce || ciphertext || tag` under `key` with `aad`. */
export async function open(key, sealed, aad) {
  const bytes = sealed instanceof Uint8Array ? sealed : new Uint8Array(sealed);
  if (bytes.length < NONCE + 16) throw new Error('the encrypted body is too short');
  return crypto.subtle.decrypt(
    { name: 'AES-GCM', iv: bytes.subarray(0, NONCE), additionalData: enc.encode(aad), tagLength: 128 },
    key, bytes.subarray(NONCE));
}

/**
 * Unwraps the session's CEK (base64 `encrypted_cek`) with the session key. Answers {key
 * (CryptoKey for segments), raw (Uint8Array, shown by the encryption demo)}.
 */
export async function unwrapCek(sessionKey, sessionId, encryptedCekB64) {
  const raw = new Uint8Array(await open(sessionKey, b64decode(encryptedCekB64), CEK_AAD + sessionId));
  if (raw.length !== 32) throw new Error('the content key is not 32 bytes');
  const key = await crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['decrypt']);
  return { key, raw };
}

const SEGMENT_PATH = /\/api\/video\/stream\/([^/]+)\/([^/]+)\/?$/;

/** The session and segment names of a segment URL, or null for any other URL. */
export function segmentOf(url) {
  const m = SEGMENT_PATH.exec(new URL(url, location.href).pathname);
  return m ? { sessionId: decodeURIComponent(m[1]), segment: decodeURIComponent(m[2]) } : null;
}

/** Decrypts one segment body of `sessionId`. */
export function decryptSegment(cek, sessionId, segment, body) {
  return open(cek, body, `${SEGMENT_AAD}${sessionId}/${segment}`);
}

/** Whether `bytes` start like an ISOBMFF (MP4) file or fragment: a sane size and a known box. */
export function looksLikeMp4(bytes) {
  const b = new Uint8Array(bytes.slice ? bytes.slice(0, 8) : bytes);
  if (b.length < 8) return false;
  const size = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  const type = String.fromCharCode(b[4], b[5], b[6], b[7]);
  return size >= 8 && ['ftyp', 'styp', 'moof', 'moov', 'sidx', 'mdat', 'free', 'uuid'].includes(type);
}

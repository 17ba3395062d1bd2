// The viewer: sign in, register this device, list titles, run the key exchange and play the
// session's encrypted DASH stream with Shaka Player, decrypting every segment in the page.
// Beside the player, the transparency panels show what each protection does.

import {
  $, api, ApiError, badge, describeError, el, every, hex, renderHeader,
  onSignOut, showError, showNotice, signInForm, signOut, startPage,
} from './common.js';
import * as proto from './protocol.js';

const STATUS_POLL_MS = 3000;
const DEMO_POLL_MS = 4000;
/** Refresh the device token this long before it expires. */
const REFRESH_MARGIN_S = 60;

const state = {
  device: null, // {id, token, fingerprint, inputs, expiresAt, keyPair, publicKey, keyName}
  refreshTimer: null,
  session: null, // {id, videoId, title, cek, cekRaw, clientPublicKey, serverPublicKey, sharedSecretHash}
  player: null,
  stopPolls: [],
  watermark: null,
  played: new Set(),
  delivered: new Map(), // unit number -> { bytes, rendition } (0: the top rendition)
  stats: { segments: [] },
  ended: false,
};
// Read by the browser tests and by anyone measuring the page: per-segment decryption timings,
// the session state, and the token refresh (which otherwise runs a minute before expiry).
window.leaktrace = { stats: state.stats, state, refreshNow: () => refreshDevice() };

// ---------------------------------------------------------------------------------------
// Device

async function registerDevice(user) {
  const inputs = proto.fingerprintInputs();
  const fingerprint = await proto.deviceFingerprint(inputs);
  // The proof key's private half stays inside WebCrypto, so a copied device token cannot be
  // refreshed, used for a key exchange or signed out elsewhere.
  const keyName = `${user.username}/${fingerprint}`;
  const { keyPair, publicKey } = await proto.deviceKey(keyName);
  const r = await api('/api/register-device/', {
    method: 'POST', token: user.token, json: { device_fingerprint: fingerprint, device_public_key: publicKey },
  });
  state.device = {
    id: r.device_id, token: r.device_token, fingerprint, inputs, expiresAt: Date.now() + r.expires_in * 1000,
    keyPair, publicKey, keyName,
  };
  scheduleRefresh(r.expires_in);
  renderDevice();
}

/** Revokes this device on the server (its tokens and sessions end); part of signing out. */
async function forgetDevice() {
  const d = state.device;
  if (!d) return;
  state.device = null;
  clearTimeout(state.refreshTimer);
  try {
    const proof = await proto.deviceProof(d.keyPair, 'logout', d.id, proto.tokenId(d.token));
    await api('/api/auth/logout/', { method: 'POST', token: d.token, json: { device_proof: proof } });
  } catch (_) { /* signing the user token out revokes the device too */ }
  await proto.forgetDeviceKey(d.keyName);
}

function scheduleRefresh(expiresIn) {
  clearTimeout(state.refreshTimer);
  const wait = Math.max(5, expiresIn - REFRESH_MARGIN_S) * 1000;
  state.refreshTimer = setTimeout(refreshDevice, wait);
}

async function refreshDevice() {
  try {
    const d = state.device;
    const proof = await proto.deviceProof(d.keyPair, 'refresh', d.id, proto.tokenId(d.token));
    const r = await api('/api/refresh-device-token/', {
      method: 'POST', token: d.token, json: { device_fingerprint: d.fingerprint, device_proof: proof },
    });
    state.device.token = r.device_token;
    state.device.expiresAt = Date.now() + r.expires_in * 1000;
    scheduleRefresh(r.expires_in);
  } catch (e) {
    if (e instanceof ApiError && e.status !== 0 && e.status !== 429 && e.status < 500) {
      endViewing(`Your device sign-in could not be renewed: ${describeError(e)}`);
    } else {
      // A passing network or server failure: try again shortly while the token still lives.
      state.refreshTimer = setTimeout(refreshDevice, 10000);
    }
  }
}

function renderDevice() {
  const d = state.device;
  $('#device').replaceChildren(
    el('dl', { class: 'facts' },
      el('dt', {}, 'Device id'), el('dd', { class: 'mono' }, d.id),
      el('dt', {}, 'Fingerprint'), el('dd', { class: 'mono', title: 'SHA-256 of the values below' }, d.fingerprint),
      el('dt', {}, 'Proof key'), el('dd', { class: 'mono', title: 'ECDSA P-256; the private half cannot be exported, not even by this page' }, d.publicKey),
      ...Object.entries(d.inputs).flatMap(([k, v]) => [el('dt', {}, k.replace('_', ' ')), el('dd', {}, v || '—')])));
}

// ---------------------------------------------------------------------------------------
// Titles and the stream

async function listTitles() {
  const list = await api('/api/videos/', { token: state.device.token });
  const ul = $('#titles');
  if (!list.length) {
    ul.replaceChildren(el('li', { class: 'muted' }, 'No titles are packaged yet.'));
    return;
  }
  ul.replaceChildren(...list.map((v) => el('li', {},
    el('button', { type: 'button', testid: 'title', 'data-video-id': v.id, onclick: () => play(v) },
      el('strong', {}, v.title), el('br'),
      el('span', { class: 'muted' }, `${Math.round(v.duration_seconds)} s`)))));
}

async function play(video) {
  showError(null);
  showNotice('');
  await stopPlayback();
  state.ended = false;
  try {
    showNotice(`Opening a protected session for “${video.title}”…`);
    const token = state.device.token;
    const s = await api('/api/request-stream/', { method: 'POST', token, json: { video_id: video.id } });
    const kx = await proto.keyExchange(s.session_id, s.server_public_key);
    const d = state.device;
    const proof = await proto.deviceProof(d.keyPair, 'key-exchange', d.id, `${s.session_id}\n${kx.clientPublicKey}`);
    const r = await api('/api/complete-key-exchange/', {
      method: 'POST', token: d.token, json: { session_id: s.session_id, client_public_key: kx.clientPublicKey, device_proof: proof },
    });
    const cek = await proto.unwrapCek(kx.sessionKey, s.session_id, r.encrypted_cek);
    state.session = {
      id: s.session_id, videoId: video.id, title: video.title, cek: cek.key, cekRaw: cek.raw,
      clientPublicKey: kx.clientPublicKey, serverPublicKey: s.server_public_key, sharedSecretHash: kx.sharedSecretHash,
    };
    state.played.clear();
    state.delivered.clear();
    state.stats.segments.length = 0;
    $('#now-playing').textContent = video.title;
    $('#player-card').hidden = false;
    $('#panels').hidden = false;
    await startPlayer();
    watchSession();
    showNotice('');
  } catch (e) {
    showNotice('');
    if (e instanceof ApiError && e.status === 401) return endViewing(describeError(e));
    showError(`The title could not be opened: ${describeError(e)}`);
  }
}

function segmentBody(data) {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

async function startPlayer() {
  const video = $('#video');
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) throw new Error('this browser cannot play DASH with Media Source Extensions');
  const player = new shaka.Player();
  await player.attach(video);
  state.player = player;
  player.configure({
    streaming: { bufferingGoal: 12, rebufferingGoal: 2, retryParameters: { maxAttempts: 2, timeout: 20000 } },
    manifest: { retryParameters: { maxAttempts: 2, timeout: 20000 } },
  });
  const net = player.getNetworkingEngine();
  net.registerRequestFilter((type, request) => {
    const url = new URL(request.uris[0], location.href);
    if (url.origin === location.origin) request.headers.Authorization = 'Bearer ' + state.device.token;
  });
  net.registerResponseFilter(async (type, response) => {
    const seg = proto.segmentOf(response.uri);
    if (!seg || !state.session || seg.sessionId !== state.session.id) return;
    const wire = segmentBody(response.data);
    const t0 = performance.now();
    const plain = await proto.decryptSegment(state.session.cek, seg.sessionId, seg.segment, wire);
    const ms = performance.now() - t0;
    response.data = plain;
    noteSegment(seg.segment, wire, new Uint8Array(plain), ms);
  });
  player.addEventListener('error', (ev) => onPlayerError(ev.detail));
  video.addEventListener('timeupdate', notePlayed);
  await player.load(`/api/video/manifest/${encodeURIComponent(state.session.id)}/`);
  try {
    await video.play();
  } catch (_) {
    showNotice('Press play to start.');
  }
}

async function stopPlayback() {
  state.stopPolls.forEach((stop) => stop());
  state.stopPolls = [];
  const video = $('#video');
  video.removeEventListener('timeupdate', notePlayed);
  if (state.player) {
    const p = state.player;
    state.player = null;
    try { await p.destroy(); } catch (_) { /* already gone */ }
  }
  video.removeAttribute('src');
  video.load();
}

async function onPlayerError(error) {
  if (state.ended) return;
  // A refused segment usually means the session ended: ask the server why.
  const status = await sessionStatus().catch(() => null);
  if (status && status.status !== 'ok') return sessionEnded(status);
  const data = error && error.data ? error.data : [];
  const http = data.find((d) => typeof d === 'number' && d >= 400);
  showError(`Playback failed (Shaka error ${error && error.code}${http ? `, HTTP ${http}` : ''}). Try the title again.`);
}

// ---------------------------------------------------------------------------------------
// Session status: stop playback with a sign-in prompt on expiry or revocation

function sessionStatus() {
  return api(`/api/security/status/${encodeURIComponent(state.session.id)}/`, { token: state.device.token });
}

function watchSession() {
  state.stopPolls.push(every(STATUS_POLL_MS, async () => {
    if (!state.session || state.ended) return;
    try {
      const s = await sessionStatus();
      $('#session-status').replaceChildren(badge(s.status), ` ${s.state}`);
      if (s.status !== 'ok') sessionEnded(s);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) endViewing(describeError(e));
    }
  }));
  state.stopPolls.push(every(DEMO_POLL_MS, refreshPanels));
}

function sessionEnded(status) {
  const why = status.status === 'revoked'
    ? `Your viewing session was revoked${status.reason ? ` (${status.reason})` : ''}.`
    : 'Your viewing session has expired.';
  endViewing(why);
}

/** Stops playback, forgets every token and key, and asks the viewer to sign in again. */
async function endViewing(message) {
  if (state.ended) return;
  state.ended = true;
  clearTimeout(state.refreshTimer);
  await stopPlayback();
  if (state.session) state.session.cek = null;
  state.device = null;
  signOut();
  renderHeader();
  const dialog = $('#signin-prompt');
  dialog.replaceChildren(
    el('p', { role: 'alert', testid: 'signin-message' }, message, ' Please sign in again to keep watching.'),
    signInForm({
      title: 'Sign in again',
      onSignedIn: async (user) => {
        dialog.close();
        state.ended = false;
        await begin(user);
      },
    }));
  if (!dialog.open) dialog.showModal();
}

// ---------------------------------------------------------------------------------------
// Transparency panels

function noteSegment(segment, wire, plain, ms) {
  const entry = {
    segment, bytes: wire.length, ms,
    wireHead: hex(wire.subarray(0, 64)), plainHead: hex(plain.subarray(0, 64)),
    wireLooksLikeMp4: proto.looksLikeMp4(wire), plainLooksLikeMp4: proto.looksLikeMp4(plain),
  };
  state.stats.segments.push(entry);
  // Video segments: `7` (the top rendition) or `r2-7` (lower rendition 2); the last fetch
  // wins. A segment holds one watermark unit, or two (`segment_units`).
  const video = /^(?:r(\d+)-)?(\d+)$/.exec(segment);
  if (video) state.delivered.set(Number(video[2]), { bytes: wire.length, rendition: Number(video[1] || 0) });
  renderEncryption(entry);
  renderTimeline();
}

function notePlayed() {
  const w = state.watermark;
  const t = $('#video').currentTime;
  if (!w || !(t >= 0)) return;
  const unit = Math.min(w.unit_count, Math.floor(t / w.unit_seconds) + 1);
  if (!state.played.has(unit)) {
    state.played.add(unit);
    renderTimeline();
  }
}

function asciiBoxes(hexText) {
  let s = '';
  for (let i = 0; i < hexText.length; i += 2) {
    const c = parseInt(hexText.slice(i, i + 2), 16);
    s += c >= 32 && c < 127 ? String.fromCharCode(c) : '.';
  }
  return s;
}

function renderEncryption(last) {
  const segs = state.stats.segments;
  const mean = segs.reduce((a, s) => a + s.ms, 0) / segs.length;
  $('#encryption').replaceChildren(
    el('p', {}, `Segment “${last.segment}”: ${last.bytes} bytes on the wire, decrypted in ${last.ms.toFixed(2)} ms `
      + `(mean ${mean.toFixed(2)} ms over ${segs.length} segments).`),
    el('div', { class: 'bytes' },
      el('div', {}, el('h3', {}, 'On the wire'),
        el('p', { class: 'muted' }, 'nonce ‖ AES-256-GCM ciphertext ‖ tag — ',
          el('strong', { testid: 'wire-is-mp4' }, last.wireLooksLikeMp4 ? 'looks like MP4' : 'not MP4')),
        el('pre', {}, last.wireHead)),
      el('div', {}, el('h3', {}, 'Decrypted in this page'),
        el('p', { class: 'muted' }, 'ISOBMFF boxes for the player — ',
          el('strong', {}, last.plainLooksLikeMp4 ? 'MP4' : 'not MP4')),
        el('pre', {}, last.plainHead, '\n', asciiBoxes(last.plainHead)))),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Content key (CEK)'), el('dd', { class: 'mono', testid: 'cek' }, hex(state.session.cekRaw)),
      el('dt', {}, 'Segment AAD'), el('dd', { class: 'mono' }, `${proto.SEGMENT_AAD}${state.session.id}/${last.segment}`)));
}

function renderTimeline() {
  const w = state.watermark;
  if (!w) return;
  const names = renditionNames();
  const renditionName = (index) => names.get(index) || `rendition ${index}`;
  const perSegment = w.segment_units || 1;
  let deliveredUnits = 0;
  const spans = [...w.code].map((variant, i) => {
    const unit = i + 1;
    const played = state.played.has(unit);
    const got = state.delivered.get(Math.ceil(unit / perSegment));
    if (got) deliveredUnits += 1;
    const where = got ? `, delivered in ${renditionName(got.rendition)}` : '';
    return el('span', {
      class: `${variant}${played ? ' played' : ''}${got && got.rendition ? ' lower' : ''}`,
      'data-rendition': got ? String(got.rendition) : '',
      title: `unit ${unit}: variant ${variant}${where}${played ? ', played' : ''}`,
    }, variant);
  });
  $('#timeline').replaceChildren(...spans);
  const perRendition = new Map();
  for (const { rendition } of state.delivered.values()) perRendition.set(rendition, (perRendition.get(rendition) || 0) + 1);
  const mix = [...perRendition.entries()].sort((a, b) => a[0] - b[0])
    .map(([r, n]) => `${n} in ${renditionName(r)}`).join(', ');
  const segments = perSegment > 1 ? `, in ${state.delivered.size} segments of ${perSegment} units` : '';
  $('#played-summary').textContent = `${state.played.size} of ${w.unit_count} units played, ${deliveredUnits} delivered${segments}${mix ? ` (${mix})` : ''}. `
    + 'Every rendition carries the same variant of a unit: your code.';
}

/** Rendition number -> "the top rendition" or "rendition 2 (640x360)", from the player's tracks. */
function renditionNames() {
  const names = new Map([[0, 'the top rendition']]);
  const tracks = state.player && state.player.getVariantTracks ? state.player.getVariantTracks() : [];
  for (const t of tracks) {
    const m = /^video-r(\d+)$/.exec(String(t.originalVideoId));
    if (m && t.width) names.set(Number(m[1]), `rendition ${m[1]} (${t.width}x${t.height})`);
  }
  return names;
}

function fact(name, value, cls) {
  return [el('dt', {}, name), el('dd', { class: cls }, value == null ? '—' : String(value))];
}

async function refreshPanels() {
  const s = state.session;
  if (!s || state.ended) return;
  const token = state.device.token;
  const id = encodeURIComponent(s.id);
  try {
    const [sec, wm] = await Promise.all([
      api(`/api/demo/security/${id}/`, { token }),
      state.watermark ? Promise.resolve(state.watermark) : api(`/api/demo/watermark/${id}/`, { token }),
    ]);
    state.watermark = wm;
    renderSecurity(sec);
    renderWatermark(wm);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      $('#security').textContent = 'The operator has turned the demonstration API off.';
    }
  }
}

function renderSecurity(sec) {
  const s = state.session;
  const deviceLeft = Math.max(0, Math.round((state.device.expiresAt - Date.now()) / 1000));
  $('#security').replaceChildren(
    el('h3', {}, 'Key exchange'),
    el('dl', { class: 'facts' },
      ...fact('Session', s.id, 'mono'),
      ...fact('Server X25519 key', s.serverPublicKey, 'mono'),
      ...fact('Page X25519 key', s.clientPublicKey, 'mono'),
      ...fact('SHA-256 of shared secret', s.sharedSecretHash, 'mono'),
      ...fact('Session key', `HKDF-SHA256(salt = session id, info = "${proto.SESSION_KEY_INFO}")`),
      ...fact('CEK wrap', `AES-256-GCM, AAD "${proto.CEK_AAD}${s.id}"`)),
    el('h3', {}, 'Active protections'),
    el('ul', {},
      el('li', {}, `Session bound to device ${sec.device_id}; device token bound to this fingerprint`),
      el('li', {}, `Every segment encrypted for this session alone (${sec.segments_served} served)`),
      el('li', {}, `At most ${sec.limits.max_concurrent_sessions} open sessions per account (you have ${sec.user_open_sessions})`),
      el('li', {}, `Ripping watch: flagged above ${sec.limits.ripping_flag_speed}x real time, `
        + `${sec.limits.ripping_action} above ${sec.limits.ripping_limit_speed}x after a ${sec.limits.ripping_burst_seconds} s burst`),
      el('li', {}, 'Forensic watermark: this session’s own A/B sequence (below)')),
    el('h3', {}, 'Timers'),
    el('dl', { class: 'facts' },
      ...fact('Status', `${sec.status} (${sec.state})`),
      ...fact('Session idles out in', `${sec.expires_in} s (after ${sec.limits.idle_seconds} s without a request)`),
      ...fact('Device token renews in', `${Math.max(0, deviceLeft - REFRESH_MARGIN_S)} s (expires in ${deviceLeft} s)`),
      ...fact('Pace', sec.pace ? `${sec.pace.speed.toFixed(2)}x (${sec.pace.content_seconds.toFixed(0)} s of content in ${sec.pace.elapsed_seconds.toFixed(0)} s)` : 'not started')),
    el('h3', {}, 'Security events of this session'),
    sec.events.length
      ? el('ul', {}, sec.events.map((e) => el('li', {}, badge(e.severity), ` ${e.kind}: ${e.detail}`)))
      : el('p', { class: 'muted' }, 'None.'));
}

function renderWatermark(wm) {
  $('#watermark-facts').replaceChildren(el('dl', { class: 'facts' },
    ...fact('Algorithm', wm.algorithm),
    ...fact('Strength', wm.strength),
    ...fact('Units', `${wm.unit_count} of ${wm.unit_seconds} s`),
    ...fact('Code hash', wm.code_hash, 'mono'),
    ...fact('Metadata layer', wm.metadata_layer ? `${wm.metadata_layer.box} box, ${wm.metadata_layer.signature} signature` : 'none')));
  renderTimeline();
}

async function probeDirectAccess() {
  const s = state.session;
  const out = $('#probe-results');
  const tries = [
    ['A guessed media file', `/media/${s.videoId}/init.mp4`, {}],
    ['The data folder', `/data/videos/${s.videoId}/A/00001.m4s`, {}],
    ['This session’s unit 1 without a token', `/api/video/stream/${encodeURIComponent(s.id)}/1/`, {}],
    ['This session’s unit 1 with a forged token', `/api/video/stream/${encodeURIComponent(s.id)}/1/`, { Authorization: 'Bearer forged.token.value' }],
  ];
  out.replaceChildren();
  for (const [what, path, headers] of tries) {
    let result;
    try {
      const r = await fetch(path, { headers, cache: 'no-store' });
      const body = await r.json().catch(() => null);
      result = `${r.status} ${body && body.error ? body.error.code : r.ok ? 'served' : ''}`;
    } catch (e) {
      result = `failed: ${e.message}`;
    }
    out.append(el('tr', { testid: 'direct-request-result' }, el('td', {}, what), el('td', { class: 'mono' }, path), el('td', {}, result)));
  }
}

// ---------------------------------------------------------------------------------------

async function begin(user) {
  if (!['viewer', 'admin'].includes(user.role)) return;
  showError(null);
  if (!(await proto.hasX25519())) {
    showError('This browser’s WebCrypto has no X25519: use a current Chromium, Firefox or Safari.');
    return;
  }
  try {
    await registerDevice(user);
    await listTitles();
  } catch (e) {
    showError(`This device could not be registered: ${describeError(e)}`);
  }
}

onSignOut(forgetDevice);
$('#probe').addEventListener('click', () => probeDirectAccess().catch(showError));
$('#signin-prompt').addEventListener('cancel', (ev) => ev.preventDefault());
startPage(['viewer', 'admin'], begin);

// The admin console: package titles (upload or inbox path) with upload and job progress,
// the titles and packaging jobs, users, API keys, and the live security events stream with
// session revocation.

import {
  $, authed, badge, describeError, el, every, formatTime, showError, showNotice, startPage, upload,
} from './common.js';

const EVENTS_POLL_MS = 2000;

function table(headers, rows) {
  if (!rows.length) return el('p', { class: 'muted' }, 'None yet.');
  return el('div', { class: 'table-wrap' }, el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows)));
}

// ---------------------------------------------------------------------------------------
// Titles and packaging

async function refreshTitles() {
  const list = await authed('/api/admin/titles/');
  $('#titles').replaceChildren(table(['Title', 'Length', 'Watermark', 'Picture', 'Id'], list.map((t) => el('tr', {},
    el('td', {}, t.title),
    el('td', {}, `${Math.round(t.duration_seconds)} s, ${t.units} units`),
    el('td', {}, `${t.code ?? 'codes not recorded yet'}, ${t.unit_seconds} s units${t.segment_units === 2 ? ', 2 per segment' : ''}`),
    el('td', {}, `${t.width}x${t.height} @ ${t.frame_rate.toFixed(2)}${t.has_audio ? ', audio' : ''}`),
    el('td', { class: 'mono' }, t.id)))));
}

async function refreshJobs() {
  const list = await authed('/api/admin/jobs/');
  $('#jobs').replaceChildren(table(['Title', 'Status', 'Requested'], list.map((j) => el('tr', {},
    el('td', {}, j.title || '—'),
    el('td', {}, badge(j.status === 'succeeded' ? 'done' : j.status, j.status === 'succeeded' ? 'done' : j.status),
      j.status === 'running' ? ` ${Math.round(j.progress * 100)}%` : '',
      j.error ? el('div', { class: 'muted' }, j.error) : ''),
    el('td', {}, formatTime(j.created_at))))));
}

function followJob(jobId) {
  const bar = $('#pkg-job');
  const text = $('#pkg-text');
  const stop = every(1000, async () => {
    const j = await authed(`/api/admin/jobs/${encodeURIComponent(jobId)}/`).catch((e) => { showError(e); stop(); });
    if (!j) return;
    bar.value = j.progress;
    if (j.status === 'succeeded') {
      stop();
      bar.value = 1;
      text.textContent = `Packaged: “${j.title}” is title ${j.video_id}.`;
      showNotice(`“${j.title}” is packaged and can be watched.`);
      refreshTitles().catch(showError);
      refreshJobs().catch(showError);
    } else if (j.status === 'failed') {
      stop();
      text.textContent = `Packaging failed: ${j.error}`;
      showError(`Packaging “${j.title}” failed: ${j.error}`);
      refreshJobs().catch(showError);
    } else {
      text.textContent = j.status === 'queued'
        ? (j.attempts ? `Waiting to retry (attempt ${j.attempts} of ${j.max_attempts}): ${j.error || ''}` : 'Queued…')
        : `Packaging… ${Math.round(j.progress * 100)}%`;
    }
  });
}

async function packageTitle(ev) {
  ev.preventDefault();
  showError(null);
  showNotice('');
  const title = $('#pkg-title').value.trim();
  const file = $('#pkg-file').files[0];
  const path = $('#pkg-path').value.trim();
  if (!title) return showError('Give the title a name.');
  if (!!file === !!path) return showError('Choose a source file or give an inbox path (one of the two).');
  const options = {
    unit_seconds: $('#pkg-unit').value, segment_units: $('#pkg-segment-units').value,
    code: $('#pkg-code').value, crf: $('#pkg-crf').value,
    preset: $('#pkg-preset').value.trim(), strength: $('#pkg-strength').value,
  };
  const button = $('#package');
  button.disabled = true;
  $('#package-state').hidden = false;
  $('#pkg-upload').value = 0;
  $('#pkg-job').value = 0;
  const text = $('#pkg-text');
  try {
    let r;
    if (file) {
      const form = new FormData();
      form.append('title', title);
      for (const [k, v] of Object.entries(options)) if (v) form.append(k, v);
      form.append('file', file, file.name);
      r = await upload('/api/admin/titles/', form, (f) => { $('#pkg-upload').value = f; text.textContent = `Uploading… ${Math.round(f * 100)}%`; });
    } else {
      const json = { source_path: path, title };
      for (const [k, v] of Object.entries(options)) if (v) json[k] = k === 'preset' || k === 'code' ? v : Number(v);
      r = await authed('/api/admin/titles/', { method: 'POST', json });
    }
    $('#pkg-upload').value = 1;
    text.textContent = 'Queued…';
    $('#package-form').reset();
    followJob(r.job_id);
    refreshJobs().catch(showError);
  } catch (e) {
    text.textContent = '';
    showError(`The title could not be packaged: ${describeError(e)}`);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Users and keys

async function refreshUsers() {
  const list = await authed('/api/admin/users/');
  $('#users').replaceChildren(table(['Name', 'Role', 'Status', ''], list.map((u) => el('tr', { testid: 'user-row' },
    el('td', {}, u.username), el('td', {}, u.role),
    el('td', {}, badge(u.disabled ? 'disabled' : 'active', u.disabled ? 'failed' : 'ok')),
    el('td', {}, el('button', {
      type: 'button',
      onclick: () => act(`/api/admin/users/${encodeURIComponent(u.username)}/${u.disabled ? 'enable' : 'disable'}/`,
        `${u.username} ${u.disabled ? 'enabled' : 'disabled'}.`, refreshUsers),
    }, u.disabled ? 'Enable' : 'Disable'), ' ',
    u.role === 'viewer' || u.role === 'admin'
      ? el('button', { type: 'button', testid: 'show-devices', onclick: () => showDevices(u.username).catch(showError) }, 'Devices')
      : '')))));
}

/** A user's devices, each revocable (its tokens refused at once, its open sessions revoked). */
async function showDevices(username) {
  const list = await authed(`/api/admin/users/${encodeURIComponent(username)}/devices/`);
  const again = () => showDevices(username);
  $('#devices').replaceChildren(
    el('h3', {}, `Devices of ${username}`),
    list.length
      ? table(['Device', 'Fingerprint', 'Last seen', ''], list.map((d) => el('tr', { testid: 'device-row' },
        el('td', { class: 'mono' }, d.id),
        el('td', { class: 'mono', title: d.fingerprint }, `${d.fingerprint.slice(0, 16)}…`),
        el('td', {}, formatTime(d.last_seen_at)),
        el('td', {}, d.revoked_at ? badge('revoked', 'failed') : el('button', {
          type: 'button',
          testid: 'revoke-device',
          onclick: () => act(`/api/admin/devices/${encodeURIComponent(d.id)}/revoke/`, `Device ${d.id} revoked.`, again),
        }, 'Revoke')))))
      : el('p', { class: 'muted' }, 'No devices registered.'));
}

async function refreshKeys() {
  const list = await authed('/api/admin/api-keys/');
  $('#keys').replaceChildren(table(['Name', 'Prefix', 'Last used', ''], list.map((k) => el('tr', {},
    el('td', {}, k.name), el('td', { class: 'mono' }, k.prefix),
    el('td', {}, k.revoked_at ? badge('revoked', 'failed') : formatTime(k.last_used_at) || 'never'),
    el('td', {}, k.revoked_at ? '' : el('button', {
      type: 'button',
      onclick: () => act(`/api/admin/api-keys/${encodeURIComponent(k.name)}/revoke/`, `Key ${k.name} revoked.`, refreshKeys),
    }, 'Revoke'))))));
}

async function act(path, done, refresh) {
  showError(null);
  try {
    await authed(path, { method: 'POST', json: {} });
    showNotice(done);
    await refresh();
    refreshAudit().catch(showError);
  } catch (e) {
    showError(e);
  }
}

async function addUser(ev) {
  ev.preventDefault();
  showError(null);
  try {
    const u = await authed('/api/admin/users/', {
      method: 'POST',
      json: { username: $('#user-name').value.trim(), role: $('#user-role').value, password: $('#user-password').value },
    });
    $('#user-form').reset();
    showNotice(`User ${u.username} (${u.role}) added.`);
    await refreshUsers();
    refreshAudit().catch(showError);
  } catch (e) {
    showError(`The user could not be added: ${describeError(e)}`);
  }
}

async function createKey(ev) {
  ev.preventDefault();
  showError(null);
  try {
    const k = await authed('/api/admin/api-keys/', { method: 'POST', json: { name: $('#key-name').value.trim() } });
    $('#key-form').reset();
    $('#new-key').replaceChildren(el('div', { class: 'notice' },
      el('p', {}, `Key “${k.name}” created. Copy it now: it is shown only this once.`),
      el('p', { class: 'mono', testid: 'new-api-key' }, k.key)));
    await refreshKeys();
    refreshAudit().catch(showError);
  } catch (e) {
    showError(`The key could not be created: ${describeError(e)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Audit trail

async function refreshAudit() {
  const r = await authed('/api/admin/audit/?limit=100');
  const c = r.chain;
  $('#audit-chain').replaceChildren(c.intact
    ? badge(`chain intact, ${c.entries} entries`, 'ok')
    : badge(`chain broken at entry ${c.broken_at}: ${c.reason}`, 'failed'));
  $('#audit').replaceChildren(table(['#', 'Time', 'Actor', 'Action', 'Detail'], r.entries.map((e) => el('tr', {},
    el('td', {}, String(e.seq)), el('td', {}, formatTime(e.created_at)), el('td', {}, e.actor_name || e.actor),
    el('td', {}, e.action, e.case_id ? el('div', { class: 'muted mono' }, `case ${e.case_id}`) : ''),
    el('td', { class: 'mono' }, typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail))))));
}

// ---------------------------------------------------------------------------------------
// Security events

// `rows`: the newest events, at most 1000; `seen`: their ids (the `since` query includes the
// newest event's instant, so the last page comes back and is recognised by id).
const events = { seen: new Set(), newest: null, rows: [] };
const RANK = { info: 0, warning: 1, critical: 2 };

function eventVisible(e) {
  const f = $('#events-filter').value;
  return !f || RANK[e.severity] >= RANK[f];
}

function renderEvents() {
  $('#events').replaceChildren(...events.rows.filter(eventVisible).slice(0, 300).map((e) => el('tr', { testid: 'security-event', 'data-kind': e.kind },
    el('td', {}, formatTime(e.created_at)),
    el('td', {}, badge(e.severity)),
    el('td', {}, e.kind),
    el('td', {}, e.user || '—', e.address ? el('div', { class: 'muted' }, e.address) : ''),
    el('td', {}, e.detail),
    el('td', {}, e.session_id && e.kind !== 'session_revoked' ? el('button', {
      type: 'button', title: `Revoke session ${e.session_id}`,
      onclick: () => act(`/api/admin/sessions/${encodeURIComponent(e.session_id)}/revoke/`, `Session ${e.session_id} revoked.`, pollEvents),
    }, 'Revoke session') : ''))));
}

async function pollEvents() {
  const q = events.newest ? `?since=${encodeURIComponent(events.newest)}&limit=500` : '?limit=200';
  try {
    const list = await authed(`/api/admin/security-events/${q}`);
    const fresh = list.filter((e) => !events.seen.has(e.id));
    if (list.length) events.newest = list[0].created_at;
    if (fresh.length || !events.rows.length) {
      events.rows = fresh.concat(events.rows).slice(0, 1000);
      events.seen = new Set(events.rows.map((e) => e.id));
      renderEvents();
    }
    $('#events-live').textContent = 'live';
    $('#events-live').className = 'badge ok';
  } catch (e) {
    $('#events-live').textContent = 'disconnected';
    $('#events-live').className = 'badge failed';
  }
}

startPage(['admin'], async () => {
  $('#package-form').addEventListener('submit', packageTitle);
  $('#user-form').addEventListener('submit', addUser);
  $('#key-form').addEventListener('submit', createKey);
  $('#events-filter').addEventListener('change', renderEvents);
  await Promise.all([refreshTitles(), refreshJobs(), refreshUsers(), refreshKeys(), refreshAudit()]);
  every(EVENTS_POLL_MS, pollEvents);
});

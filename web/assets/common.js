// What every leaktrace page shares: the API client and its errors, the signed-in user, the
// page header and the sign-in form. No framework: small DOM helpers only.

const USER_KEY = 'leaktrace.user';

/** An error answer of the API, in the protocol's shape, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Human text for an error, with the stable code for support requests. */
export function describeError(err) {
  if (err instanceof ApiError) {
    if (err.status === 0) return `The server cannot be reached (${err.message}).`;
    const hints = {
      401: ' Please sign in again.',
      429: ' Please wait a moment and try again.',
      503: ' The service is degraded; try again shortly.',
    };
    return `${err.message} (${err.code}, HTTP ${err.status}).${hints[err.status] || ''}`;
  }
  return String(err && err.message ? err.message : err);
}

/** Reads an error body of the protocol's shape from a failed response. */
export async function errorFrom(response) {
  let code = 'http_' + response.status;
  let message = response.statusText || 'request failed';
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (_) { /* not JSON: keep the status text */ }
  const err = new ApiError(response.status, code, message);
  err.retryAfter = response.headers.get('Retry-After');
  return err;
}

/**
 * Calls the API. `json` is sent as a JSON body; `raw` (a Blob, FormData...) as it is. Answers
 * the parsed JSON (or the Response with `as: 'response'`); throws ApiError on failure.
 */
export async function api(path, { method = 'GET', token, json, raw, headers = {}, as = 'json' } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = 'Bearer ' + token;
  let body;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (raw !== undefined) {
    body = raw;
  }
  let response;
  try {
    response = await fetch(path, { method, headers: h, body, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network_error', String(e.message || e));
  }
  if (!response.ok) throw await errorFrom(response);
  if (as === 'response') return response;
  return response.json();
}

/** The signed-in user of this tab: {username, token, role, expiresAt} or null. */
export function currentUser() {
  try {
    const u = JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
    if (u && u.expiresAt > Date.now()) return u;
  } catch (_) { /* unreadable: signed out */ }
  sessionStorage.removeItem(USER_KEY);
  return null;
}

export function signOut() {
  sessionStorage.removeItem(USER_KEY);
}

/** What a page ends on the server when its user signs out (the viewer: its device). */
const signOutHooks = [];
export function onSignOut(hook) {
  signOutHooks.push(hook);
}

/**
 * The sign-out button: the page's own hooks, then the user token is revoked on the server
 * (refused from then on, wherever a copy of it is) and forgotten here.
 */
export async function logout() {
  const user = currentUser();
  await Promise.allSettled(signOutHooks.map((hook) => hook()));
  if (user) await api('/api/auth/logout/', { method: 'POST', token: user.token }).catch(() => {});
  signOut();
}

/** Signs in; answers the stored user. */
export async function signIn(username, password) {
  const r = await api('/api/auth/login/', { method: 'POST', json: { username, password } });
  const user = { username, token: r.user_token, role: r.role, expiresAt: Date.now() + r.expires_in * 1000 };
  sessionStorage.setItem(USER_KEY, JSON.stringify(user));
  return user;
}

/** Creates an element: el('button', {class: 'x', onclick: f}, 'text', child...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'testid') node.dataset.testid = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) node.append(c);
  }
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Shows `err` (or a string) in the page's alert region, or clears it with null. */
export function showError(err, region = $('#alert')) {
  if (!region) return;
  region.textContent = err ? (typeof err === 'string' ? err : describeError(err)) : '';
}

export function showNotice(text, region = $('#notice')) {
  if (region) region.textContent = text || '';
}

const PAGES = [
  ['/', 'Home', null],
  ['/watch/', 'Watch', ['viewer', 'admin']],
  ['/analyst/', 'Analyst', ['analyst', 'admin']],
  ['/legal/', 'Legal', ['legal', 'analyst', 'admin']],
  ['/admin/', 'Admin', ['admin']],
  ['/api/docs/', 'API', null],
];

/** The page for a role after signing in. */
export function homeFor(role) {
  return { viewer: '/watch/', analyst: '/analyst/', legal: '/legal/', admin: '/admin/' }[role] || '/';
}

/** Fills the page header: the name, the pages, who is signed in with a sign-out button. */
export function renderHeader() {
  const user = currentUser();
  const here = location.pathname;
  const nav = el('nav', { 'aria-label': 'Pages' },
    PAGES.filter(([, , roles]) => !roles || !user || roles.includes(user.role))
      .map(([href, label]) => el('a', { href, 'aria-current': href === here ? 'page' : null }, label)));
  const who = el('div', { class: 'who' });
  if (user) {
    who.append(`${user.username} (${user.role}) `,
      el('button', { type: 'button', testid: 'sign-out', onclick: async () => { await logout(); location.href = '/'; } }, 'Sign out'));
  }
  const header = $('header.top');
  header.replaceChildren(el('div', { class: 'inner' },
    el('h1', {}, el('a', { href: '/' }, 'leak', el('span', {}, 'trace'))), nav, who));
}

/**
 * A sign-in form (data-testid username, password, login). `onSignedIn(user)` runs after a
 * successful sign-in; errors show inside the form.
 */
export function signInForm({ onSignedIn, title = 'Sign in', note } = {}) {
  const error = el('div', { class: 'alert', role: 'alert' });
  const username = el('input', { name: 'username', autocomplete: 'username', required: true, testid: 'username' });
  const password = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, testid: 'password' });
  const button = el('button', { type: 'submit', class: 'primary', testid: 'login' }, 'Sign in');
  const form = el('form', { class: 'stack', 'aria-label': title },
    el('h2', {}, title),
    note ? el('p', {}, note) : null,
    el('label', {}, 'User name', username),
    el('label', {}, 'Password', password),
    error, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    button.disabled = true;
    try {
      const user = await signIn(username.value.trim(), password.value);
      password.value = '';
      renderHeader();
      await onSignedIn(user);
    } catch (e) {
      error.textContent = describeError(e);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/**
 * The usual start of a console page: the header, then either the page (`start(user)`) when a
 * user of one of `roles` is signed in, or the sign-in form.
 */
export function startPage(roles, start) {
  renderHeader();
  const gate = $('#signin');
  const app = $('#app');
  const open = async (user) => {
    if (!roles.includes(user.role)) {
      gate.hidden = false;
      gate.replaceChildren(el('p', { class: 'alert', role: 'alert' },
        `This page is for ${roles.join(' or ')} accounts; you are signed in as ${user.role}. `,
        el('a', { href: homeFor(user.role) }, 'Go to your page')));
      return;
    }
    gate.hidden = true;
    app.hidden = false;
    try {
      await start(user);
    } catch (e) {
      showError(e);
    }
  };
  const user = currentUser();
  if (user) {
    open(user);
  } else {
    app.hidden = true;
    gate.hidden = false;
    gate.replaceChildren(signInForm({ onSignedIn: open }));
  }
}

/** Fetches with the user's token; on 401 the page returns to its sign-in form. */
export async function authed(path, opts = {}) {
  const user = currentUser();
  if (!user) {
    location.reload();
    throw new ApiError(401, 'missing_token', 'you are signed out');
  }
  try {
    return await api(path, { ...opts, token: user.token });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      showError(e);
      setTimeout(() => location.reload(), 1500);
    }
    throw e;
  }
}

/**
 * Uploads `form` with progress (fetch has no upload progress): answers the JSON reply;
 * throws ApiError like `api`.
 */
export function upload(path, form, onProgress) {
  const user = currentUser();
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    if (user) xhr.setRequestHeader('Authorization', 'Bearer ' + user.token);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onerror = () => reject(new ApiError(0, 'network_error', 'the upload was interrupted'));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const e = body && body.error;
      reject(new ApiError(xhr.status, e ? e.code : 'http_' + xhr.status, e ? e.message : xhr.statusText));
    };
    xhr.send(form);
  });
}

/** Saves `blob` as a download named `name`. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function formatBytes(n) {
  if (n == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

export function hex(bytes, max = Infinity) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const n = Math.min(b.length, max);
  let s = '';
  for (let i = 0; i < n; i++) s += b[i].toString(16).padStart(2, '0');
  return s;
}

export function badge(text, kind = text) {
  return el('span', { class: 'badge ' + (kind || '') }, text || '—');
}

/** Polls `fn` every `ms` until the returned stopper is called. */
export function every(ms, fn) {
  let stopped = false;
  let timer;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (_) { /* the callee shows its own errors */ }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

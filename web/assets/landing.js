// The landing page: service health, and a sign-in that leads to the page for the account's role.

import { $, currentUser, el, homeFor, renderHeader, signInForm } from './common.js';

renderHeader();

const user = currentUser();
$('#signin').replaceChildren(user
  ? el('p', {}, `Signed in as ${user.username}. `, el('a', { href: homeFor(user.role) }, 'Continue to your page'))
  : signInForm({ onSignedIn: (u) => { location.href = homeFor(u.role); } }));

fetch('/readyz').then((r) => r.json().then((b) => [r.ok, b])).then(([ok, b]) => {
  const h = $('#health');
  h.textContent = ok ? `operational (database: ${b.database.backend})` : 'degraded';
  h.className = ok ? 'badge ok' : 'badge failed';
}).catch(() => {
  const h = $('#health');
  h.textContent = 'unreachable';
  h.className = 'badge failed';
});

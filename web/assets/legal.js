// The legal console: cases and their signed reports (download), and verification of a report
// someone hands back.

import { $, badge, describeError, el, every, showError, startPage, upload } from './common.js';
import { followCase, refreshCases } from './cases.js';

let stopFollow = null;

function open(caseId) {
  if (stopFollow) stopFollow();
  stopFollow = followCase(caseId, $('#case'));
}

function yesNo(v) {
  return badge(v ? 'yes' : 'no', v ? 'ok' : 'failed');
}

async function verify(ev) {
  ev.preventDefault();
  const file = $('#verify-file').files[0];
  const out = $('#verify-result');
  if (!file) return;
  out.replaceChildren(el('p', { class: 'muted' }, 'Verifying…'));
  const form = new FormData();
  form.append('file', file, file.name);
  try {
    const r = await upload('/api/reports/verify/', form, () => {});
    const good = r.signed && r.signature_valid && r.whole_document_signed && r.issued_by_this_deployment;
    out.replaceChildren(
      el('p', { class: good ? 'notice' : 'alert', testid: 'verify-verdict' }, good
        ? `Authentic: ${file.name} is ${r.matches_stored_report ? 'identical to the stored report of case ' + r.case_id : 'validly signed by this deployment'}.`
        : `Not verified: ${r.reason || 'see the checks below'}.`),
      el('dl', { class: 'facts' },
        el('dt', {}, 'Signed'), el('dd', {}, yesNo(r.signed)),
        el('dt', {}, 'Signature valid'), el('dd', {}, yesNo(r.signature_valid)),
        el('dt', {}, 'Whole document signed'), el('dd', {}, yesNo(r.whole_document_signed)),
        el('dt', {}, 'Issued by this deployment'), el('dd', {}, yesNo(r.issued_by_this_deployment)),
        el('dt', {}, 'Same as a stored report'), el('dd', {}, yesNo(r.matches_stored_report)),
        el('dt', {}, 'Signer'), el('dd', {}, r.signer || '—'),
        el('dt', {}, 'SHA-256'), el('dd', { class: 'mono' }, r.sha256 || '—')));
  } catch (e) {
    out.replaceChildren(el('p', { class: 'alert', role: 'alert' }, `The file could not be verified: ${describeError(e)}`));
  }
}

startPage(['legal', 'analyst', 'admin'], async () => {
  $('#verify-form').addEventListener('submit', verify);
  every(10000, () => refreshCases($('#cases'), open).catch(showError));
});

// The analyst console: upload a suspect copy (upload progress, then the analysis job's
// progress), the case list, a case's result with its per-unit chart, candidates, verdict and
// signed report, and a title's leak history.

import { $, describeError, formatBytes, every, showError, showNotice, startPage, upload } from './common.js';
import { followCase, refreshCases } from './cases.js';
import { showHistory } from './history.js';

let stopFollow = null;

function open(caseId) {
  if (stopFollow) stopFollow();
  history.replaceState(null, '', `#case=${encodeURIComponent(caseId)}`);
  stopFollow = followCase(caseId, $('#case'), (c) => {
    if (c.status === 'done' || c.status === 'failed') refreshCases($('#cases'), open).catch(showError);
    if (c.video_id && !$('#history-video').value) $('#history-video').value = c.video_id;
  });
}

async function submit(ev) {
  ev.preventDefault();
  showError(null);
  showNotice('');
  const file = $('#file').files[0];
  if (!file) return showError('Choose a video file first.');
  const hash = $('#expected-hash').value.trim();
  if (hash && !/^[0-9a-fA-F]{64}$/.test(hash)) return showError('The expected watermark hash must be 64 hexadecimal characters.');
  const form = new FormData();
  const videoId = $('#video-id').value.trim();
  if (videoId) form.append('video_id', videoId);
  if (hash) form.append('expected_watermark_hash', hash);
  form.append('file', file, file.name);
  const button = $('#submit');
  button.disabled = true;
  $('#upload-state').hidden = false;
  const bar = $('#upload-progress');
  const text = $('#upload-text');
  try {
    const r = await upload('/api/verify-watermark/', form, (f) => {
      bar.value = f;
      text.textContent = `${formatBytes(f * file.size)} of ${formatBytes(file.size)}`;
    });
    bar.value = 1;
    text.textContent = 'Uploaded; the analysis is queued.';
    showNotice(`Case ${r.case_id} opened for ${file.name}.`);
    $('#submit-form').reset();
    open(r.case_id);
    refreshCases($('#cases'), open).catch(showError);
  } catch (e) {
    text.textContent = '';
    showError(`The upload was refused: ${describeError(e)}`);
  } finally {
    button.disabled = false;
  }
}

startPage(['analyst', 'admin'], async () => {
  $('#submit-form').addEventListener('submit', submit);
  $('#history-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    showError(null);
    showHistory($('#history-video').value.trim(), $('#history-view'))
      .catch((e) => showError(`The history cannot be shown: ${describeError(e)}`));
  });
  every(5000, () => refreshCases($('#cases'), open).catch(showError));
  const m = /^#case=(.+)$/.exec(location.hash);
  if (m) open(decodeURIComponent(m[1]));
});

// Case views shared by the analyst and legal consoles: the case list, a case's result (verdict,
// candidates, alignment, the per-unit chart) and the signed report's download.

import { authed, badge, describeError, el, formatBytes, formatTime, saveBlob, showError } from './common.js';

/** A table of cases; `onOpen(case_id)` opens one. */
export function caseTable(cases, onOpen) {
  if (!cases.length) return el('p', { class: 'muted' }, 'No cases yet.');
  return el('div', { class: 'table-wrap' }, el('table', {},
    el('thead', {}, el('tr', {}, ['Received', 'File', 'Status', 'Verdict', ''].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, cases.map((c) => el('tr', { testid: 'case-row', 'data-case-id': c.case_id },
      el('td', {}, formatTime(c.created_at)),
      el('td', {}, c.file_name, el('br'), el('span', { class: 'muted' }, formatBytes(c.file_size))),
      el('td', {}, badge(c.status), c.status === 'running' ? ` ${Math.round(c.progress * 100)}%` : ''),
      el('td', {}, c.verdict ? badge(c.verdict.replace('_', ' '), c.verdict) : '—'),
      el('td', {}, el('button', { type: 'button', onclick: () => onOpen(c.case_id) }, 'Open')))))));
}

/** Downloads the case's signed report (`report.pdf`) or evidence bundle (`bundle.zip`). */
export async function downloadEvidence(caseId, file) {
  const response = await authed(`/api/cases/${encodeURIComponent(caseId)}/${file}`, { as: 'response' });
  saveBlob(await response.blob(), `leaktrace-case-${caseId}.${file.split('.').pop()}`);
}

function probability(p) {
  if (p == null) return '—';
  return p < 1e-3 ? p.toExponential(1) : p.toPrecision(2);
}

/**
 * The per-unit chart: one bar per unit of the title, up for "looks like B", down for "looks
 * like A", grey where the copy did not cover the unit. Bars agreeing with the best match's
 * code would stand on the same side as its variant.
 */
export function unitChart(values) {
  const n = values.length;
  const w = 720;
  const h = 200;
  const mid = h / 2;
  const max = Math.max(1e-9, ...values.filter((v) => v != null).map((v) => Math.abs(v)));
  const bw = w / Math.max(1, n);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h + 20}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const observed = values.filter((v) => v != null).length;
  svg.setAttribute('aria-label', `Per-unit watermark values: ${observed} of ${n} units observed`);
  const add = (tag, attrs) => {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    svg.append(node);
    return node;
  };
  add('line', { x1: 0, x2: w, y1: mid, y2: mid, stroke: 'currentColor', 'stroke-width': 1 });
  values.forEach((v, i) => {
    const x = i * bw + bw * 0.1;
    if (v == null) {
      add('rect', { x, y: mid - 2, width: bw * 0.8, height: 4, fill: '#8886' });
      return;
    }
    const len = (Math.abs(v) / max) * (mid - 6);
    add('rect', { x, y: v > 0 ? mid - len : mid, width: bw * 0.8, height: Math.max(1, len), fill: v > 0 ? '#d68910' : '#2e86c1' })
      .append(Object.assign(document.createElementNS('http://www.w3.org/2000/svg', 'title'), { textContent: `unit ${i + 1}: ${v.toFixed(3)}` }));
  });
  const label = (text, x, y, anchor = 'start') => {
    add('text', { x, y, 'font-size': 12, fill: 'currentColor', 'text-anchor': anchor }).textContent = text;
  };
  label('B', 4, 14);
  label('A', 4, h - 4);
  label('unit 1', 0, h + 16);
  label(`unit ${n}`, w, h + 16, 'end');
  return svg;
}

/** The whole view of one case (the body of `GET /api/cases/{id}/`). */
export function caseView(c) {
  const r = c.result;
  const parts = [
    el('dl', { class: 'facts' },
      el('dt', {}, 'Case'), el('dd', { class: 'mono' }, c.case_id),
      el('dt', {}, 'File'), el('dd', {}, `${c.file_name} (${formatBytes(c.file_size)})`),
      el('dt', {}, 'SHA-256'), el('dd', { class: 'mono' }, c.file_sha256),
      el('dt', {}, 'Status'), el('dd', {}, el('span', { testid: 'case-status' }, c.status),
        c.status === 'running' || c.status === 'queued' ? el('progress', { max: 1, value: c.progress, 'aria-label': 'Analysis progress' }) : null),
      el('dt', {}, 'Verdict'), el('dd', {}, el('span', { testid: 'verdict', class: 'badge ' + (r ? r.verdict : '') }, r ? r.verdict : 'pending'))),
  ];
  if (c.status === 'failed') parts.push(el('p', { class: 'alert', role: 'alert' }, `The analysis failed: ${c.error || 'unknown error'}`));
  if (r) {
    const best = r.matches && r.matches[0];
    const accused = (r.matches || []).filter((m) => m.accused);
    if (accused.length > 1) {
      parts.push(el('p', { class: 'notice' }, `Identified: a copy mixed from ${accused.length} sessions, each named on its own evidence: `,
        ...accused.flatMap((m, i) => [i ? '; ' : '', el('code', {}, m.session_id), ` of ${m.user} (${probability(m.false_positive_probability)})`]), '.'));
    } else if (best && r.verdict === 'identified') {
      parts.push(el('p', { class: 'notice' }, `Identified: session `, el('code', {}, best.session_id),
        ` of ${best.user} on device `, el('code', {}, best.device_id),
        `, false-positive probability ${probability(best.false_positive_probability)}.`));
    }
    parts.push(el('h3', {}, `Per-unit watermark values (${r.units_observed} units observed)`));
    if (r.unit_values && r.unit_values.length) parts.push(unitChart(r.unit_values));
    parts.push(el('h3', {}, 'Candidates'),
      r.matches && r.matches.length
        ? el('div', { class: 'table-wrap' }, el('table', {},
          el('thead', {}, el('tr', {}, ['#', 'Session', 'User', 'Device', 'Score (z)', 'False-positive probability', 'Named'].map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, r.matches.map((m, i) => el('tr', { testid: 'candidate' },
            el('td', {}, String(i + 1)), el('td', { class: 'mono' }, m.session_id), el('td', {}, m.user),
            el('td', { class: 'mono' }, m.device_id), el('td', {}, m.score.toFixed(2)),
            el('td', {}, probability(m.false_positive_probability)),
            el('td', {}, m.accused ? (m.pass > 1 ? `yes (pass ${m.pass})` : 'yes') : ''))))))
        : el('p', { class: 'muted' }, 'No candidate sessions.'));
    if (r.alignment) {
      const a = r.alignment;
      parts.push(el('h3', {}, 'Alignment'), el('dl', { class: 'facts' },
        el('dt', {}, 'Units covered'), el('dd', {}, `${a.first_unit}–${a.last_unit}`),
        el('dt', {}, 'Time offset'), el('dd', {}, `${a.offset_seconds.toFixed(2)} s (match ${a.time_score.toFixed(3)})`),
        el('dt', {}, 'Speed'), el('dd', {}, `${(a.speed ?? 1).toFixed(4)}x${(a.time_map ?? []).length > 1 ? `, ${a.time_map.length} pieces (cuts or inserted material)` : ''}`),
        el('dt', {}, 'Suspect'), el('dd', {}, `${a.suspect_size[0]}x${a.suspect_size[1]}, ${a.suspect_fps.toFixed(2)} fps, ${a.suspect_frames} frames`)));
    }
    const m = r.metadata_layer;
    parts.push(el('h3', {}, 'Metadata layer'), el('p', {}, m
      ? (m.valid ? `Signed session marker found: session ${m.session_id}.` : `Marker present but not valid: ${m.reason || 'bad signature'}.`)
      : 'No session marker (stripped or re-muxed): the watermark alone decides.'));
  }
  if (c.status === 'done') {
    const err = el('span', { class: 'alert', role: 'alert' });
    const link = (file, testid, what, label) => el('a', {
      href: '#', testid, role: 'button',
      onclick: (ev) => {
        ev.preventDefault();
        err.textContent = '';
        downloadEvidence(c.case_id, file).catch((e) => { err.textContent = `The ${what} could not be downloaded: ${describeError(e)}`; });
      },
    }, label);
    parts.push(el('p', {},
      link('report.pdf', 'report-link', 'report', 'Download the signed evidence report (PDF)'), ' · ',
      link('bundle.zip', 'bundle-link', 'evidence bundle', 'Download the evidence bundle (zip, checkable offline)'), ' ', err));
  }
  return parts;
}

/** Opens a case into `target`, following its progress until it is done or failed. */
export function followCase(caseId, target, onChange) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      const c = await authed(`/api/cases/${encodeURIComponent(caseId)}/`);
      if (stopped) return;
      target.replaceChildren(...caseView(c));
      if (onChange) onChange(c);
      if (c.status === 'queued' || c.status === 'running') timer = setTimeout(tick, 1000);
    } catch (e) {
      showError(e);
    }
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/** Keeps `target` filled with the newest cases. */
export async function refreshCases(target, onOpen) {
  const list = await authed('/api/cases/?limit=100');
  target.replaceChildren(caseTable(list, onOpen));
  return list;
}

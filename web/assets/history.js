// A title's leak history in the analyst console (the body of `GET /api/titles/{id}/leaks/`):
// the cases per day as a bar plot (identified cases drawn over all cases), the accounts its
// cases accused, repeat leakers and mixed copies, and the CSV export.

import { authed, badge, el, formatTime, saveBlob } from './common.js';

const SVG = 'http://www.w3.org/2000/svg';

/** Bars per day: all cases (grey) with the identified ones over them (orange). */
export function historyChart(days) {
  const w = 720;
  const h = 180;
  const top = 16;
  const base = h - 24;
  const max = Math.max(1, ...days.map((d) => d.cases));
  // A few days stay narrow bars, many days share the width.
  const bw = Math.min(48, w / Math.max(1, days.length));
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'chart history-chart');
  svg.setAttribute('role', 'img');
  const total = days.reduce((n, d) => n + d.cases, 0);
  const named = days.reduce((n, d) => n + d.identified, 0);
  svg.setAttribute('aria-label', `Cases per day: ${total} cases over ${days.length} days, ${named} identified`);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    svg.append(node);
    return node;
  };
  add('line', { x1: 0, x2: w, y1: base, y2: base, stroke: 'currentColor', 'stroke-width': 1 });
  days.forEach((d, i) => {
    const x = i * bw + bw * 0.15;
    const width = bw * 0.7;
    const height = (v) => (v / max) * (base - top);
    const all = add('rect', { x, y: base - height(d.cases), width, height: Math.max(1, height(d.cases)), fill: '#8888' });
    all.append(Object.assign(document.createElementNS(SVG, 'title'), { textContent: `${d.day}: ${d.cases} cases, ${d.identified} identified` }));
    if (d.identified > 0) {
      add('rect', { x, y: base - height(d.identified), width, height: height(d.identified), fill: '#d68910', 'data-testid': 'history-identified' });
    }
  });
  add('text', { x: 0, y: h - 6, 'font-size': 12, fill: 'currentColor' }, days.length ? days[0].day : '');
  if (days.length > 1) add('text', { x: days.length * bw, y: h - 6, 'font-size': 12, fill: 'currentColor', 'text-anchor': 'end' }, days[days.length - 1].day);
  add('text', { x: 0, y: 12, 'font-size': 12, fill: 'currentColor' }, `${max} case${max === 1 ? '' : 's'}`);
  return svg;
}

/** The whole history view. */
export function historyView(hist) {
  const c = hist.cases;
  const repeat = new Set(hist.repeat_leakers);
  return el('div', { testid: 'history' },
    el('p', {}, `${hist.title}: ${c.total} case${c.total === 1 ? '' : 's'}, ${c.identified} identified, `
      + `${c.inconclusive} inconclusive, ${c.no_watermark} without a watermark, ${c.failed} failed, ${c.open} open.`),
    historyChart(hist.by_day),
    el('p', { class: 'muted' }, 'Grey: cases received that day; orange: those that named a session.'),
    hist.leakers.length
      ? el('div', { class: 'table-wrap' }, el('table', {},
        el('thead', {}, el('tr', {}, ['Account', 'Cases', 'Sessions', 'Devices', 'First', 'Last', ''].map((t) => el('th', { scope: 'col' }, t)))),
        el('tbody', {}, hist.leakers.map((l) => el('tr', { testid: 'leaker' },
          el('td', {}, l.user),
          el('td', {}, String(l.case_ids.length)),
          el('td', {}, String(l.sessions.length)),
          el('td', {}, String(l.devices.length)),
          el('td', {}, formatTime(l.first_case_at)),
          el('td', {}, formatTime(l.last_case_at)),
          el('td', {}, repeat.has(l.user) ? badge('repeat leaker', 'failed') : '', l.colluded ? badge('colluded', 'inconclusive') : ''))))))
      : el('p', { class: 'muted' }, 'No case has named anyone yet.'),
    hist.collusion.length
      ? el('p', {}, `Mixed copies: ${hist.collusion.map((m) => m.users.join(' + ')).join('; ')}.`)
      : '',
    hist.truncated ? el('p', { class: 'muted' }, 'Only the oldest 20,000 cases were read.') : '');
}

/** Downloads the history as CSV (one row per accusation). */
export async function downloadHistoryCsv(videoId) {
  const response = await authed(`/api/titles/${encodeURIComponent(videoId)}/leaks/?format=csv`, { as: 'response' });
  saveBlob(await response.blob(), `leaktrace-leaks-${videoId}.csv`);
}

/** Loads and shows title `videoId`'s history in `target`. */
export async function showHistory(videoId, target) {
  const hist = await authed(`/api/titles/${encodeURIComponent(videoId)}/leaks/`);
  target.replaceChildren(historyView(hist),
    el('button', { type: 'button', testid: 'history-csv', onclick: () => downloadHistoryCsv(videoId) }, 'Download CSV'));
}

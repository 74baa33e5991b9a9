// Small helpers shared by the staff pages: API calls with readable errors, tables, labelled fields.
import { el } from '../agent/dom.js';
import { language, t } from '../agent/texts.js';

export { el };

export class ApiError extends Error {
  constructor(message, status, data) { super(message); this.status = status; this.data = data; }
}

function detailText(data) {
  if (data && typeof data.message === 'string' && data.message) return data.message; // in the page's language
  if (!data || !data.detail) return '';
  if (typeof data.detail === 'string') return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((p) => (p.field ? `${p.field}: ` : '') + (p.message || p.msg)).join('; ');
  return data.detail.message || JSON.stringify(data.detail);
}

export async function api(method, path, body) {
  // The server's error texts come in the page's language (the `message` of the error shape).
  const options = { method, credentials: 'same-origin', headers: { 'accept-language': language() } };
  if (body !== undefined) { options.body = JSON.stringify(body); options.headers['content-type'] = 'application/json'; }
  const response = await fetch(`/api/v1${path}`, options);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401) window.dispatchEvent(new CustomEvent('staff-logged-out'));
  if (!response.ok) throw new ApiError(detailText(data) || `HTTP ${response.status}`, response.status, data);
  return data;
}

// Only the newest of overlapping loads may fill a page: an older answer arriving late (the first listing
// after a search, the last municipality after a change) would show results nobody asked for any more.
export function newest() {
  let latest = 0;
  return () => { const mine = ++latest; return () => mine === latest; };
}

export function query(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== '' && v !== null && v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

export function toast(text) {
  const node = document.getElementById('toast');
  node.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.textContent = ''; }, 6000);
}

/** A table with a caption and column headers; cells are nodes or text. `numeric`: columns aligned right. */
export function table(caption, headers, rows, numeric = []) {
  const cell = (tag, content, i, extra = {}) => el(tag, { class: numeric.includes(i) ? 'num' : null, ...extra },
    content instanceof Node ? content : String(content ?? '–'));
  return el('div', { class: 'table-wrap' }, el('table', {},
    el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, headers.map((h, i) => cell('th', h, i, { scope: 'col' })))),
    el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c, i) => cell('td', c, i)))))));
}

let fieldCount = 0;
/** A labelled input (the label's `for` points at it). */
export function field(label, input, help) {
  input.id = input.id || `f-${++fieldCount}`;
  const helpNode = help ? el('p', { class: 'muted', id: `${input.id}-help`, text: help }) : null;
  if (helpNode) input.setAttribute('aria-describedby', helpNode.id);
  return el('div', {}, el('label', { for: input.id, text: label }), input, helpNode);
}

export function page(view, title, ...children) {
  view.replaceChildren(el('h1', { id: 'page-title', tabindex: '-1', text: title }), ...children.flat().filter(Boolean));
  document.title = `${title} – Kommunchatt`;
  document.getElementById('page-title').focus();
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString(language() === 'sv' ? 'sv-SE' : 'en-GB',
    { dateStyle: 'short', timeStyle: 'short' }) : '–';
}

export function seconds(value) {
  if (value === null || value === undefined) return '–';
  const s = Math.max(0, Math.round(value));
  if (s < 60) return t('staff_seconds', { n: s });
  const m = Math.floor(s / 60);
  return m < 60 ? t('staff_minutes_seconds', { m, s: String(s % 60).padStart(2, '0') })
    : t('staff_hours_minutes', { h: Math.floor(m / 60), m: m % 60 });
}

export function problemsList(err) {
  const items = err.data && Array.isArray(err.data.errors) && err.data.errors.length ? err.data.errors : [{ message: err.message }];
  return el('ul', {}, items.map((p) => el('li', { text: (p.field ? `${p.field}: ` : '') + (p.text || p.message || p.msg) })));
}

/** A language's name in the staff member's language, capitalised as a label ("Arabiska", "Arabic"). */
export const languageName = (code) => {
  let name = code;
  try { name = new Intl.DisplayNames([language()], { type: 'language' }).of(code) || code; } catch { /* an unknown code */ }
  return name.charAt(0).toLocaleUpperCase(language()) + name.slice(1);
};

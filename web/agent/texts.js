// The staff pages' words, in Swedish or English, from the server's one string table (the `staff_*` keys of
// core/service_texts.yml). Loaded once before a page renders; `t(key, {name})` fills in {name}.

const STORAGE_KEY = 'kommunchatt.staff.language';
export const STAFF_LANGUAGES = { sv: 'Svenska', en: 'English' };
let table = {};
let current = 'sv';

/** The staff member's language: their own choice, else the browser's if it is one we have, else Swedish. */
export function staffLanguage() {
  const chosen = localStorage.getItem(STORAGE_KEY);
  if (chosen && STAFF_LANGUAGES[chosen]) return chosen;
  const browser = (navigator.language || 'sv').slice(0, 2);
  return STAFF_LANGUAGES[browser] ? browser : 'sv';
}

export function chooseLanguage(language) {
  localStorage.setItem(STORAGE_KEY, language);
}

/** `prefix`: whose keys (`staff_` for the staff pages and the console, `workshop_` for the workshop). */
export async function loadTexts(language = staffLanguage(), prefix = 'staff_') {
  const response = await fetch(`/api/v1/i18n/${encodeURIComponent(language)}?prefix=${encodeURIComponent(prefix)}`,
    { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`the staff texts did not load (HTTP ${response.status})`);
  const body = await response.json();
  table = body.strings || body.texts || body;
  current = language;
  document.documentElement.lang = language;
  return table;
}

export function language() { return current; }

/** A text for a code from the server (a reason, an outcome): the table's words, else the code made readable. */
export function label(prefix, code) {
  if (!code) return '';
  return table[prefix + code] !== undefined ? t(prefix + code) : String(code).replace(/_/g, ' ');
}

export function t(key, values = {}) {
  const text = table[key];
  if (text === undefined) return key; // visible in the page and caught by the tests, never silently empty
  return text.replace(/\{(\w+)\}/g, (_, name) => (values[name] === undefined ? '' : String(values[name])));
}

/** Fill the static page: data-t (text), data-t-label (aria-label), data-t-placeholder, data-t-title. */
export function translatePage(root = document) {
  for (const node of root.querySelectorAll('[data-t]')) node.textContent = t(node.dataset.t);
  for (const node of root.querySelectorAll('[data-t-label]')) node.setAttribute('aria-label', t(node.dataset.tLabel));
  for (const node of root.querySelectorAll('[data-t-placeholder]')) node.placeholder = t(node.dataset.tPlaceholder);
  for (const node of root.querySelectorAll('[data-t-title]')) node.title = t(node.dataset.tTitle);
}

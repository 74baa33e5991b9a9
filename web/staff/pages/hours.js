// Opening hours per municipality: when people answer (a chat outside them offers a call-back instead).
// One line per weekday, "08:00-12:00, 13:00-16:30" (empty: closed), and holidays, one date per line.
import { t } from '../../agent/texts.js';
import { api, el, field, newest, page, problemsList, toast } from '../ui.js';
import { municipalityChoices } from './canned.js';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

const spansText = (spans) => (spans || []).map((s) => s.join('-')).join(', ');

/** "08:00-12:00, 13:00-16:30" -> [["08:00","12:00"], ["13:00","16:30"]]; the server checks the times. */
function parseSpans(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((s) => s.split(/\s*[-–]\s*/));
}

export function hoursPage(view, { user }) {
  const municipality = el('select', {});
  const form = el('form', { class: 'card', id: 'hours-form' });
  const status = el('p', { role: 'status' });
  page(view, t('staff_nav_hours'), el('div', { class: 'toolbar' }, field(t('staff_municipality'), municipality)), status, form);

  const begin = newest();
  async function load() {
    const current = begin(); // a late answer for the municipality chosen before would fill this one's form
    const data = await api('GET', `/admin/municipalities/${encodeURIComponent(municipality.value)}/opening-hours`);
    if (!current()) return;
    const hours = data.opening_hours || { timezone: 'Europe/Stockholm', weekly: {}, holidays: [] };
    status.textContent = data.open ? t('staff_hours_open_now') : t('staff_hours_closed_now');
    const zone = el('input', { value: hours.timezone || 'Europe/Stockholm' });
    const days = DAYS.map((d) => field(t(`staff_day_${d}`), el('input', { 'data-day': d, value: spansText((hours.weekly || {})[d]),
      placeholder: '08:00-16:30' })));
    const holidays = el('textarea', { rows: '4' });
    holidays.value = (hours.holidays || []).join('\n');
    const problems = el('div', { role: 'alert', class: 'error' });
    form.replaceChildren(el('p', { class: 'muted', text: t('staff_hours_help') }), field(t('staff_timezone'), zone),
      el('div', { class: 'hours-grid' }, days), field(t('staff_holidays'), holidays, t('staff_holidays_help')), problems,
      el('button', { type: 'submit', text: t('staff_save') }));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const weekly = {};
      for (const input of form.querySelectorAll('input[data-day]')) weekly[input.dataset.day] = parseSpans(input.value);
      const body = { timezone: zone.value.trim(), weekly, holidays: holidays.value.split(/\s+/).filter(Boolean) };
      try {
        await api('PUT', `/admin/municipalities/${encodeURIComponent(municipality.value)}/opening-hours`, body);
        problems.textContent = '';
        toast(t('staff_saved'));
        load();
      } catch (err) {
        problems.replaceChildren(problemsList(err));
      }
    };
  }

  municipalityChoices(user).then((munis) => {
    municipality.replaceChildren(...munis.map((m) => el('option', { value: m.id, text: m.name })));
    municipality.addEventListener('change', load);
    load();
  });
  return null;
}

// Reports as a page: waiting, first response and handling times, outcomes and satisfaction per day,
// language or municipality, and per agent (the same figures as /api/v1/reports/*).
// Days are the municipality's (its time zone, Europe/Stockholm by default), never the browser's: the
// first load sends no dates, and the server's default period (the last 7 days up to the municipality's
// today) fills the date fields, so a chat at 00:30 Swedish time is on the day a Swede expects.
import { label, t } from '../../agent/texts.js';
import { api, el, field, languageName, newest, page, query, seconds, table } from '../ui.js';

export function reportsPage(view) {
  const from = el('input', { type: 'date' });
  const to = el('input', { type: 'date' });
  const group = el('select', {}, ['day', 'language', 'municipality'].map((g) => el('option', { value: g, text: t(`staff_group_${g}`) })));
  const summary = el('section', { 'aria-live': 'polite' });
  const agents = el('section', {});
  const form = el('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); load(); } },
    field(t('staff_date_from'), from), field(t('staff_date_to'), to), field(t('staff_group_by'), group),
    el('div', {}, el('button', { type: 'submit', text: t('staff_show') })));
  page(view, t('staff_nav_reports'), form, summary, agents);

  const groupLabel = (key) => (group.value === 'language' ? languageName(key) : key);
  const outcomes = (o) => Object.entries(o).map(([k, n]) => `${label('staff_outcome_', k)}: ${n}`).join(', ') || '–';
  const stat = (s) => (s.count ? `${seconds(s.median)} / ${seconds(s.p90)}` : '–');
  const satisfaction = (s) => (s.count ? `${s.mean.toFixed(1)} (${s.count})` : '–');

  const begin = newest();
  async function load() {
    const current = begin();
    const asked = [from.value, to.value];
    try {
      const sum = await api('GET', `/reports/summary${query({ date_from: asked[0], date_to: asked[1], group_by: group.value })}`);
      if (!current()) return;
      if (from.value === asked[0]) from.value = sum.from; // an empty field: the server's default period
      if (to.value === asked[1]) to.value = sum.to; // (not over what the user typed meanwhile)
      const per = await api('GET', `/reports/agents${query({ date_from: sum.from, date_to: sum.to, tz: sum.timezone })}`);
      if (!current()) return;
      summary.replaceChildren(el('h2', { text: t('staff_reports_summary') }),
        table(t('staff_reports_summary'), [t(`staff_group_${group.value}`), t('staff_reports_conversations'),
          t('staff_reports_answered'), t('staff_reports_wait'), t('staff_reports_first_response'),
          t('staff_reports_handling'), t('staff_reports_outcomes'), t('staff_rating')],
        sum.rows.map((r) => [groupLabel(r[group.value]), String(r.conversations), String(r.answered), stat(r.waiting_seconds),
          stat(r.first_response_seconds), stat(r.handling_seconds), outcomes(r.outcomes), satisfaction(r.satisfaction)]),
        [1, 2]),
        el('p', { class: 'muted', text: t('staff_reports_median_p90') }),
        el('p', { class: 'muted', id: 'report-zone', text: t('staff_reports_days_in_zone', { zone: sum.timezone }) }));
      agents.replaceChildren(el('h2', { text: t('staff_reports_agents') }),
        table(t('staff_reports_agents'), [t('staff_name'), t('staff_reports_chats'), t('staff_reports_closed'),
          t('staff_reports_first_response'), t('staff_reports_handling'), t('staff_reports_concurrent'), t('staff_rating')],
        per.agents.map((a) => [a.name || String(a.user_id), String(a.chats), String(a.closed), stat(a.first_response_seconds),
          stat(a.handling_seconds), `${a.max_concurrent} / ${a.mean_concurrent}`, satisfaction(a.satisfaction)]), [1, 2]));
    } catch (err) {
      summary.replaceChildren(el('p', { class: 'error', text: err.message }));
    }
  }
  load();
  return null;
}

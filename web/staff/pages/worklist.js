// The owners' work list (learning/api.py): negative feedback, low ratings, unanswered questions, overdue
// and coming reviews and broken links, each on one department's list with a status. Agents see what happened
// to a citizen's feedback, and when and by whom (each item's history); webmasters and admins change the
// status. Below: this week's digest and its CSV.
import { t } from '../../agent/texts.js';
import { municipalityChoices } from './canned.js';
import { api, el, field, page, query, table, toast, when } from '../ui.js';

const KINDS = ['negative_feedback', 'low_rating', 'unanswered', 'overdue_review', 'review_due', 'broken_link'];
const STATUSES = ['new', 'in_progress', 'done', 'wont_do'];

function options(select, values, label, all = true) {
  select.replaceChildren(...(all ? [el('option', { value: '', text: t('staff_all') })] : []),
    ...values.map((v) => el('option', { value: v.id ?? v, text: label(v) })));
}

function concerns(item) {
  if (item.entry_id) return t('staff_worklist_entry', { id: item.entry_id });
  return item.conversation_id ? `${t('staff_worklist_conversation')} ${item.conversation_id.slice(0, 8)}` : '–';
}

/** Who did what to the item and when, oldest first: it came in, then each change of status or department. */
function historyList(item) {
  const changes = item.history || [];
  const lines = [el('li', { text: `${when(item.created_at)} · ${t('staff_worklist_history_received')}` })];
  for (const c of changes) {
    const moved = c.department_id ? ` · ${t('staff_worklist_history_moved', { department: c.department || '–' })}` : '';
    const status = c.status !== c.previous_status
      ? ` · ${t(`staff_item_${c.previous_status}`)} → ${t(`staff_item_${c.status}`)}` : '';
    lines.push(el('li', { text: `${when(c.changed_at)}${status}${moved} · ${c.changed_by}` }));
  }
  return el('details', {}, el('summary', { text: t('staff_worklist_history_count', { count: changes.length }) }),
    el('ol', { class: 'history' }, lines));
}

export function worklistPage(view, { user }) {
  const editor = user.role === 'webmaster' || user.role === 'admin';
  const municipality = el('select', {});
  const department = el('select', {});
  const status = el('select', {});
  const kind = el('select', {});
  const list = el('div', {});
  const digest = el('section', { 'aria-labelledby': 'digest-title' });
  options(status, STATUSES, (s) => t(`staff_item_${s}`));
  options(kind, KINDS, (k) => t(`staff_kind_${k}`));
  page(view, t('staff_nav_worklist'), el('p', { class: 'muted', text: t('staff_worklist_intro') }),
    el('form', { class: 'toolbar', id: 'worklist-filters', onsubmit: (e) => { e.preventDefault(); load(); } },
      field(t('staff_municipality'), municipality), field(t('staff_worklist_department'), department),
      field(t('staff_status'), status), field(t('staff_worklist_kind'), kind),
      el('button', { type: 'submit', text: t('staff_show') })),
    list, digest);

  function statusCell(item, changedBy, history) {
    if (!editor) return t(`staff_item_${item.status}`);
    const select = el('select', { 'aria-label': t('staff_worklist_status_of', { id: item.id }) });
    options(select, STATUSES, (s) => t(`staff_item_${s}`), false);
    select.value = item.status;
    select.addEventListener('change', async () => {
      try {
        const saved = await api('PATCH', `/worklist/${item.id}${query({ municipality: municipality.value })}`, { status: select.value });
        const open = history.firstChild?.open;
        Object.assign(item, saved);
        changedBy.textContent = saved.changed_by || '–';
        history.replaceChildren(historyList(item));
        history.firstChild.open = Boolean(open);
        toast(t('staff_worklist_status_saved'));
        if (answered !== asked) load(); // a list asked for before this save would show the old status: ask again
        loadDigest();
      } catch (err) {
        select.value = item.status;
        toast(err.message);
      }
    });
    return select;
  }

  let asked = 0; // the latest list asked for: an older answer arriving late is dropped
  let answered = 0; // the latest list whose answer came
  async function load() {
    const mine = ++asked;
    const items = await api('GET', `/worklist${query({ municipality: municipality.value, department_id: department.value,
      status: status.value, kind: kind.value, history: true })}`);
    answered = Math.max(answered, mine);
    if (mine !== asked) return;
    list.replaceChildren(table(t('staff_worklist_count', { count: items.length }),
      [t('staff_worklist_received'), t('staff_worklist_kind'), t('staff_worklist_department'), t('staff_worklist_text'),
        t('staff_worklist_concerns'), t('staff_status'), t('staff_worklist_changed_by'), t('staff_worklist_history')],
      items.map((item) => {
        const changedBy = el('span', { text: item.changed_by || '–' });
        const history = el('div', {}, historyList(item));
        return [when(item.created_at), t(`staff_kind_${item.kind}`), item.department,
          el('span', { dir: 'auto', text: item.text || '–' }), concerns(item), statusCell(item, changedBy, history),
          changedBy, history];
      })));
  }

  async function loadDigest() {
    const report = await api('GET', `/worklist/digest${query({ municipality: municipality.value })}`);
    const csv = `/api/v1/worklist/digest.csv${query({ municipality: municipality.value, week: report.week })}`;
    digest.replaceChildren(el('h2', { id: 'digest-title', text: t('staff_worklist_digest', { week: report.week }) }),
      table(t('staff_worklist_by_department'),
        [t('staff_worklist_department'), ...KINDS.map((k) => t(`staff_kind_${k}`)), t('staff_worklist_total'),
          t('staff_worklist_open_before')],
        report.departments.map((d) => [d.department,
          ...KINDS.map((k) => Object.values(d.counts[k]).reduce((a, b) => a + b, 0)), d.total, d.open_before]),
        Array.from({ length: KINDS.length + 2 }, (_, i) => i + 1)),
      el('p', {}, el('a', { href: csv, download: '', text: t('staff_worklist_csv') })));
  }

  async function choose() {
    const departments = await api('GET', `/admin/departments${query({ municipality: municipality.value })}`);
    options(department, departments, (d) => d.name);
    await Promise.all([load(), loadDigest()]);
  }

  for (const filter of [department, status, kind]) filter.addEventListener('change', load);
  municipalityChoices(user).then((munis) => {
    municipality.replaceChildren(...munis.map((m) => el('option', { value: m.id, text: m.name })));
    municipality.addEventListener('change', choose);
    choose();
  });
  return null;
}

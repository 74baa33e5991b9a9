// Owners (learning/api.py): the municipality's departments with their contacts, and who owns what. An
// answer's own owner wins, else its topic's (a tag), else the default department; the work list and the
// weekly digest follow these choices.
import { t } from '../../agent/texts.js';
import { municipalityChoices } from './canned.js';
import { api, el, field, newest, page, problemsList, query, table, toast } from '../ui.js';

/** "Ada Berg, ada@kommun.se" lines as contacts, and back. */
function parseContacts(text) {
  return text.split('\n').map((line) => line.trim()).filter(Boolean).map((line) => {
    const parts = line.split(',').map((p) => p.trim());
    const email = parts.find((p) => p.includes('@')) || null;
    return { name: parts.filter((p) => p !== email).join(', '), email };
  });
}
const contactsText = (contacts) => contacts.map((c) => [c.name, c.email].filter(Boolean).join(', ')).join('\n');

export function ownersPage(view, { user }) {
  const municipality = el('select', {});
  const form = el('form', { class: 'card', id: 'department-form' });
  const departmentsBox = el('section', { 'aria-labelledby': 'departments-title' });
  const topicsBox = el('section', { 'aria-labelledby': 'topics-title' });
  const entriesBox = el('section', { 'aria-labelledby': 'entries-title' });
  page(view, t('staff_nav_owners'), el('p', { class: 'muted', text: t('staff_owners_intro') }),
    el('div', { class: 'toolbar' }, field(t('staff_municipality'), municipality)),
    departmentsBox, form, topicsBox, entriesBox);
  let departments = [];
  const m = () => query({ municipality: municipality.value });

  function choices(select, withFallback) {
    select.replaceChildren(...(withFallback ? [el('option', { value: '', text: t('staff_owners_fallback') })] : []),
      ...departments.map((d) => el('option', { value: String(d.id), text: d.name })));
    return select;
  }

  async function owned(promise) {
    try {
      const result = await promise;
      toast(result && result.moved_items ? t('staff_owners_saved_moved', { count: result.moved_items }) : t('staff_saved'));
      load();
    } catch (err) {
      toast(err.message);
    }
  }

  function edit(department) {
    const name = el('input', { value: department ? department.name : '', required: true, maxlength: '200' });
    const contacts = el('textarea', { rows: '3' });
    contacts.value = department ? contactsText(department.contacts) : '';
    const problems = el('div', { role: 'alert', class: 'error' });
    form.replaceChildren(el('h2', { text: department ? t('staff_owners_edit_department', { name: department.name }) : t('staff_owners_new_department') }),
      el('div', { class: 'grid2' }, field(t('staff_owners_name'), name), field(t('staff_owners_contacts'), contacts, t('staff_owners_contacts_help'))),
      problems, el('div', { class: 'toolbar' }, el('button', { type: 'submit', text: t('staff_save') }),
        department ? el('button', { type: 'button', class: 'secondary', text: t('staff_cancel'), onclick: () => edit(null) }) : null));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const body = { name: name.value.trim(), contacts: parseContacts(contacts.value) };
      try {
        await (department ? api('PATCH', `/admin/departments/${department.id}${m()}`, body) : api('POST', `/admin/departments${m()}`, body));
        toast(t('staff_saved'));
        edit(null);
        load();
      } catch (err) {
        problems.replaceChildren(problemsList(err));
      }
    };
  }

  function showDepartments(ownership) {
    const fallback = choices(el('select', {}), false);
    fallback.value = String(ownership.default_department_id);
    fallback.addEventListener('change', () => owned(api('PUT', `/admin/owners/default${m()}`, { department_id: Number(fallback.value) })));
    departmentsBox.replaceChildren(el('h2', { id: 'departments-title', text: t('staff_owners_departments') }),
      table(t('staff_owners_departments'), [t('staff_owners_name'), t('staff_owners_contacts'), ''],
        departments.map((d) => [d.is_default ? `${d.name} (${t('staff_owners_is_default')})` : d.name,
          d.contacts.map((c) => c.email || c.name).join(', ') || '–',
          el('span', {}, el('button', { type: 'button', class: 'secondary', text: t('staff_edit'), 'aria-label': t('staff_edit_named', { name: d.name }),
            onclick: () => { edit(d); form.querySelector('input').focus(); } }), ' ',
          d.is_default ? null : el('button', { type: 'button', class: 'danger', text: t('staff_delete'), 'aria-label': t('staff_delete_named', { name: d.name }),
            onclick: async () => {
              if (!window.confirm(t('staff_confirm_delete', { name: d.name }))) return;
              await owned(api('DELETE', `/admin/departments/${d.id}${m()}`));
            } }))])),
      field(t('staff_owners_default'), fallback, t('staff_owners_default_help')));
  }

  function showTopics(ownership) {
    const topics = [...ownership.topics.map((o) => o.key), ...ownership.topics_without_owner].sort();
    const owner = Object.fromEntries(ownership.topics.map((o) => [o.key, String(o.department_id)]));
    topicsBox.replaceChildren(el('h2', { id: 'topics-title', text: t('staff_owners_topics') }),
      table(t('staff_owners_topics'), [t('staff_owners_topic'), t('staff_worklist_department')], topics.map((topic) => {
        const select = choices(el('select', { 'aria-label': t('staff_owners_owner_of', { topic }) }), true);
        select.value = owner[topic] || '';
        select.addEventListener('change', () => owned(select.value
          ? api('PUT', `/admin/owners/topics/${encodeURIComponent(topic)}${m()}`, { department_id: Number(select.value) })
          : api('DELETE', `/admin/owners/topics/${encodeURIComponent(topic)}${m()}`)));
        return [topic, select];
      })));
  }

  function showEntries(ownership) {
    const entry = el('input', { required: true, maxlength: '128' });
    const department = choices(el('select', {}), false);
    const add = el('form', { class: 'toolbar', onsubmit: (e) => {
      e.preventDefault();
      owned(api('PUT', `/admin/owners/entries/${encodeURIComponent(entry.value.trim())}${m()}`, { department_id: Number(department.value) }));
    } }, field(t('staff_owners_entry'), entry), field(t('staff_worklist_department'), department),
    el('button', { type: 'submit', text: t('staff_owners_set') }));
    entriesBox.replaceChildren(el('h2', { id: 'entries-title', text: t('staff_owners_entries') }),
      table(t('staff_owners_entries'), [t('staff_owners_entry'), t('staff_worklist_department'), ''], ownership.entries.map((o) => [
        o.key, o.department, el('button', { type: 'button', class: 'secondary', text: t('staff_delete'),
          'aria-label': t('staff_delete_named', { name: o.key }),
          onclick: () => owned(api('DELETE', `/admin/owners/entries/${encodeURIComponent(o.key)}${m()}`)) })])), add);
  }

  const begin = newest();
  async function load() {
    const current = begin();
    const [list, ownership] = await Promise.all([api('GET', `/admin/departments${m()}`), api('GET', `/admin/owners${m()}`)]);
    if (!current()) return;
    departments = list;
    showDepartments(ownership);
    showTopics(ownership);
    showEntries(ownership);
  }

  municipalityChoices(user).then((munis) => {
    municipality.replaceChildren(...munis.map((x) => el('option', { value: x.id, text: x.name })));
    municipality.addEventListener('change', load);
    edit(null);
    load();
  });
  return null;
}

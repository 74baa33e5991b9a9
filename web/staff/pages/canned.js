// Canned responses: what agents insert with /shortcut, per municipality, with a text per language.
import { t } from '../../agent/texts.js';
import { api, el, field, languageName, newest, page, problemsList, query, table, toast } from '../ui.js';

export async function municipalityChoices(user) {
  if (user.role !== 'admin') return (user.municipalities || []).map((id) => ({ id, name: id }));
  return api('GET', '/admin/municipalities').catch(() => [{ id: 'default', name: 'default' }]);
}

export async function offeredLanguages() {
  const data = await api('GET', '/admin/languages').catch(() => null);
  return data ? data.languages.map((l) => l.code) : ['sv', 'en'];
}

export function cannedPage(view, { user }) {
  const municipality = el('select', {});
  const list = el('div', {});
  const form = el('form', { class: 'card', id: 'canned-form' });
  page(view, t('staff_nav_canned'), el('div', { class: 'toolbar' }, field(t('staff_municipality'), municipality)), form, list);
  let languages = ['sv', 'en'];

  function edit(item) {
    const current = item || { shortcut: '', title: '', texts: {} };
    const shortcut = el('input', { value: current.shortcut, required: true, pattern: '[a-z0-9_\\-]+', maxlength: '64' });
    const title = el('input', { value: current.title, required: true, maxlength: '200' });
    const texts = languages.map((code) => {
      const area = el('textarea', { rows: '3', lang: code, dir: 'auto', 'data-lang': code });
      area.value = current.texts[code] || '';
      return field(`${languageName(code)} (${code})`, area);
    });
    const problems = el('div', { role: 'alert', class: 'error' });
    form.replaceChildren(el('h2', { text: item ? t('staff_canned_edit', { shortcut: item.shortcut }) : t('staff_canned_new') }),
      el('div', { class: 'grid2' }, field(t('staff_canned_shortcut'), shortcut, t('staff_canned_shortcut_help')), field(t('staff_title'), title)),
      el('div', { class: 'grid2' }, texts), problems,
      el('div', { class: 'toolbar' }, el('button', { type: 'submit', text: t('staff_save') }),
        item ? el('button', { type: 'button', class: 'secondary', text: t('staff_cancel'), onclick: () => edit(null) }) : null));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const body = { municipality: municipality.value, shortcut: shortcut.value.trim(), title: title.value.trim(), texts: {} };
      for (const area of form.querySelectorAll('textarea[data-lang]')) if (area.value.trim()) body.texts[area.dataset.lang] = area.value.trim();
      try {
        await (item ? api('PUT', `/handoff/canned/${item.id}`, body) : api('POST', '/handoff/canned', body));
        toast(t('staff_saved'));
        edit(null);
        load();
      } catch (err) {
        problems.replaceChildren(problemsList(err));
      }
    };
  }

  const begin = newest();
  async function load() {
    const current = begin();
    const items = await api('GET', `/handoff/canned${query({ municipality: municipality.value })}`);
    if (!current()) return;
    list.replaceChildren(table(t('staff_canned_count', { count: items.length }),
      [t('staff_canned_shortcut'), t('staff_title'), t('staff_languages'), ''],
      items.map((item) => [`/${item.shortcut}`, item.title, Object.keys(item.texts).join(', '),
        el('span', {}, el('button', { type: 'button', class: 'secondary', text: t('staff_edit'),
          'aria-label': t('staff_edit_named', { name: item.title }), onclick: () => { edit(item); form.querySelector('input').focus(); } }), ' ',
        el('button', { type: 'button', class: 'danger', text: t('staff_delete'), 'aria-label': t('staff_delete_named', { name: item.title }),
          onclick: async () => {
            if (!window.confirm(t('staff_confirm_delete', { name: item.title }))) return;
            await api('DELETE', `/handoff/canned/${item.id}`);
            toast(t('staff_deleted'));
            load();
          } }))])));
  }

  Promise.all([municipalityChoices(user), offeredLanguages()]).then(([munis, langs]) => {
    languages = langs;
    municipality.replaceChildren(...munis.map((m) => el('option', { value: m.id, text: m.name })));
    municipality.addEventListener('change', load);
    edit(null);
    load();
  });
  return null;
}

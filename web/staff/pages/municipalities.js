// Municipalities: the name citizens see, the languages offered, the dashboard's currency and costs.
import { t } from '../../agent/texts.js';
import { api, el, field, languageName, newest, page, problemsList, table, toast } from '../ui.js';
import { offeredLanguages } from './canned.js';

export function municipalitiesPage(view) {
  const form = el('form', { class: 'card', id: 'municipality-form' });
  const list = el('div', {});
  page(view, t('staff_nav_municipalities'), form, list);
  let languages = ['sv', 'en'];

  function edit(m) {
    const s = (m && m.settings) || {};
    const id = el('input', { value: m ? m.id : '', required: true, readonly: Boolean(m), pattern: '[a-z0-9][a-z0-9\\-]*', maxlength: '64' });
    const name = el('input', { value: m ? m.name : '', required: true, maxlength: '200' });
    const currency = el('input', { value: s.currency || 'SEK', maxlength: '8' });
    const offered = s.languages || languages;
    const langs = el('fieldset', { class: 'inline-set' }, el('legend', { text: t('staff_languages_offered') }),
      languages.map((code) => el('label', {}, el('input', { type: 'checkbox', name: 'languages', value: code, checked: offered.includes(code) }), languageName(code))));
    const problems = el('div', { role: 'alert', class: 'error' });
    form.replaceChildren(el('h2', { text: m ? t('staff_municipality_edit', { name: m.name }) : t('staff_municipality_new') }),
      el('div', { class: 'grid2' }, field(t('staff_municipality_id'), id, t('staff_municipality_id_help')), field(t('staff_name'), name),
        field(t('staff_currency'), currency)),
      langs, problems,
      el('div', { class: 'toolbar' }, el('button', { type: 'submit', text: t('staff_save') }),
        m ? el('button', { type: 'button', class: 'secondary', text: t('staff_cancel'), onclick: () => edit(null) }) : null));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const body = { name: name.value.trim(), settings: { currency: currency.value.trim() || 'SEK',
        languages: [...form.querySelectorAll('input[name=languages]:checked')].map((i) => i.value) } };
      try {
        if (m) await api('PATCH', `/admin/municipalities/${encodeURIComponent(m.id)}`, body);
        else await api('POST', '/admin/municipalities', { ...body, id: id.value.trim() });
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
    const rows = await api('GET', '/admin/municipalities');
    if (!current()) return;
    list.replaceChildren(table(t('staff_municipalities_count', { count: rows.length }),
      [t('staff_municipality_id'), t('staff_name'), t('staff_languages_offered'), t('staff_currency'), ''],
      rows.map((m) => [m.id, m.name, (m.settings.languages || []).map(languageName).join(', ') || t('staff_all'), m.settings.currency || 'SEK',
        el('button', { type: 'button', class: 'secondary', text: t('staff_edit'), 'aria-label': t('staff_edit_named', { name: m.name }),
          onclick: () => { edit(m); form.querySelector('input:not([readonly])').focus(); } })])));
  }

  offeredLanguages().then((langs) => { languages = langs; edit(null); load(); });
  return null;
}

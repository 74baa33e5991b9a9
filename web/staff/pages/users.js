// Staff users: who may log in, with which role, languages, municipalities and how many chats at once.
import { t } from '../../agent/texts.js';
import { api, el, field, languageName, newest, page, problemsList, table, toast } from '../ui.js';
import { municipalityChoices, offeredLanguages } from './canned.js';

const ROLES = ['agent', 'webmaster', 'admin'];

function checkboxes(legend, name, options, chosen) {
  return el('fieldset', { class: 'inline-set' }, el('legend', { text: legend }),
    options.map(([value, label]) => el('label', {}, el('input', { type: 'checkbox', name, value, checked: chosen.includes(value) }), label)));
}

const checked = (form, name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);

export function usersPage(view, { user: me }) {
  const form = el('form', { class: 'card', id: 'user-form' });
  const list = el('div', {});
  page(view, t('staff_nav_users'), form, list);
  let languages = ['sv', 'en'];
  let munis = [];

  function edit(user) {
    const u = user || { username: '', display_name: '', role: 'agent', languages: ['sv'], municipalities: ['default'], max_chats: 3, active: true };
    const username = el('input', { value: u.username, required: true, readonly: Boolean(user), autocomplete: 'off' });
    const display = el('input', { value: u.display_name || '' });
    const password = el('input', { type: 'password', autocomplete: 'new-password', minlength: '8', required: !user });
    const role = el('select', {}, ROLES.map((r) => el('option', { value: r, text: t(`staff_role_${r}`), selected: r === u.role })));
    const maxChats = el('input', { type: 'number', min: '1', max: '50', value: String(u.max_chats) });
    const active = el('input', { type: 'checkbox', checked: u.active !== false });
    const problems = el('div', { role: 'alert', class: 'error' });
    form.replaceChildren(el('h2', { text: user ? t('staff_user_edit', { name: u.username }) : t('staff_user_new') }),
      el('div', { class: 'grid2' }, field(t('staff_username'), username), field(t('staff_display_name'), display),
        field(user ? t('staff_new_password') : t('staff_password'), password, t('staff_password_help')),
        field(t('staff_role'), role), field(t('staff_max_chats'), maxChats)),
      checkboxes(t('staff_languages'), 'languages', languages.map((c) => [c, languageName(c)]), u.languages),
      checkboxes(t('staff_municipalities'), 'municipalities', munis.map((m) => [m.id, m.name]), u.municipalities),
      el('p', { hidden: !user }, el('label', {}, active, ` ${t('staff_user_active')}`)),
      problems,
      el('div', { class: 'toolbar' }, el('button', { type: 'submit', text: t('staff_save') }),
        user ? el('button', { type: 'button', class: 'secondary', text: t('staff_cancel'), onclick: () => edit(null) }) : null));
    form.onsubmit = async (e) => {
      e.preventDefault();
      const body = { display_name: display.value.trim() || null, role: role.value, max_chats: Number(maxChats.value),
        languages: checked(form, 'languages'), municipalities: checked(form, 'municipalities') };
      if (password.value) body.password = password.value;
      try {
        if (user) await api('PATCH', `/admin/users/${user.id}`, { ...body, active: active.checked });
        else await api('POST', '/admin/users', { ...body, username: username.value.trim() });
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
    const users = await api('GET', '/admin/users');
    if (!current()) return;
    list.replaceChildren(table(t('staff_users_count', { count: users.length }),
      [t('staff_username'), t('staff_display_name'), t('staff_role'), t('staff_languages'), t('staff_municipalities'),
        t('staff_max_chats'), t('staff_user_active'), ''],
      users.map((u) => [u.username, u.display_name || '–', t(`staff_role_${u.role}`), u.languages.join(', '),
        u.municipalities.join(', '), String(u.max_chats), u.active === false ? t('staff_no') : t('staff_yes'),
        u.id === me.id ? '' : el('button', { type: 'button', class: 'secondary', text: t('staff_edit'),
          'aria-label': t('staff_edit_named', { name: u.username }), onclick: () => { edit(u); form.querySelector('input:not([readonly])').focus(); } })]),
      [5]));
  }

  Promise.all([offeredLanguages(), municipalityChoices(me)]).then(([langs, m]) => {
    languages = langs;
    munis = m;
    edit(null);
    load();
  });
  return null;
}

// The staff pages (no build step): history and search, the supervisor's live view, reports, canned
// responses, users, opening hours and municipalities. The URL hash chooses the page; each page says
// which roles may see it, and the navigation shows only those.
import { $, clear } from '../agent/dom.js';
import { STAFF_LANGUAGES, chooseLanguage, language, loadTexts, t, translatePage } from '../agent/texts.js';
import { cannedPage } from './pages/canned.js';
import { historyPage } from './pages/history.js';
import { hoursPage } from './pages/hours.js';
import { municipalitiesPage } from './pages/municipalities.js';
import { ownersPage } from './pages/owners.js';
import { reportsPage } from './pages/reports.js';
import { supervisorPage } from './pages/supervisor.js';
import { usersPage } from './pages/users.js';
import { worklistPage } from './pages/worklist.js';
import { api, el } from './ui.js';

const PAGES = [
  { id: 'history', title: 'staff_nav_history', roles: ['agent', 'admin'], render: historyPage },
  { id: 'supervisor', title: 'staff_nav_supervisor', roles: ['admin'], render: supervisorPage },
  { id: 'reports', title: 'staff_nav_reports', roles: ['admin'], render: reportsPage },
  { id: 'canned', title: 'staff_nav_canned', roles: ['webmaster', 'admin'], render: cannedPage },
  { id: 'worklist', title: 'staff_nav_worklist', roles: ['agent', 'webmaster', 'admin'], render: worklistPage },
  { id: 'owners', title: 'staff_nav_owners', roles: ['webmaster', 'admin'], render: ownersPage },
  { id: 'users', title: 'staff_nav_users', roles: ['admin'], render: usersPage },
  { id: 'hours', title: 'staff_nav_hours', roles: ['admin'], render: hoursPage },
  { id: 'municipalities', title: 'staff_nav_municipalities', roles: ['admin'], render: municipalitiesPage },
];
let me = null;
let leave = null; // the current page's clean-up (a live page stops polling)

function showLogin(message = '') {
  me = null;
  $('login-view').hidden = false;
  $('view').hidden = true;
  $('nav').hidden = true;
  $('who').hidden = true;
  $('login-error').textContent = message;
}

async function start() {
  await loadTexts();
  translatePage();
  const select = clear($('staff-lang'));
  for (const [code, name] of Object.entries(STAFF_LANGUAGES)) select.append(el('option', { value: code, text: name, selected: code === language() }));
  select.addEventListener('change', () => { chooseLanguage(select.value); location.reload(); });
  const response = await fetch('/api/v1/auth/me', { credentials: 'same-origin' });
  if (response.ok) enter(await response.json()); else showLogin();
}

function enter(user) {
  me = user;
  const allowed = PAGES.filter((p) => p.roles.includes(user.role));
  if (!allowed.length) { showLogin(t('staff_no_pages_for_role', { role: user.role })); return; }
  $('login-view').hidden = true;
  $('view').hidden = false;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('username').textContent = user.display_name || user.username;
  clear($('nav-list')).append(...allowed.map((p) => el('li', {}, el('a', { href: `#${p.id}`, text: t(p.title) }))));
  route();
}

function route() {
  if (!me) return;
  const [name, ...rest] = (location.hash || '').slice(1).split('/');
  const allowed = PAGES.filter((p) => p.roles.includes(me.role));
  const chosen = allowed.find((p) => p.id === name) || allowed[0];
  for (const a of document.querySelectorAll('#nav-list a')) {
    if (a.getAttribute('href') === `#${chosen.id}`) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (leave) leave();
  leave = chosen.render($('view'), { user: me, arg: decodeURIComponent(rest.join('/')) }) || null;
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const result = await api('POST', '/auth/login', { username: $('login-username').value, password: $('login-password').value });
    enter(result.user);
  } catch (err) {
    $('login-error').textContent = err.status === 401 ? t('staff_wrong_login') : err.message;
  }
});
$('logout').addEventListener('click', async () => {
  await api('POST', '/auth/logout').catch(() => null);
  if (leave) leave();
  showLogin();
});
window.addEventListener('hashchange', route);
window.addEventListener('staff-logged-out', () => showLogin(t('staff_session_expired')));

start();

// The supervisor's live view: who is online and what they have, who waits and for how long.
// Live: the server's staff event stream (/api/v1/supervisor/ws, the consoles' session and events) says
// when something changed, and the page fetches the view again (a burst of events: one fetch). A slow
// poll covers a socket that is down; waiting times tick every second in between.
import { ConsoleSocket } from '../../agent/socket.js';
import { label, t } from '../../agent/texts.js';
import { api, el, languageName, page, seconds, table } from '../ui.js';

const FALLBACK_MS = 30000; // only matters while the socket is down: it says every change at once
const SETTLE_MS = 150; // a chat taken sends several events: fetch once, after they have come
const LONG_WAIT_S = 300;

export function supervisorPage(view) {
  const kpis = el('div', { class: 'kpis' });
  const waiting = el('section', { 'aria-labelledby': 'waiting-title' });
  const agents = el('section', { 'aria-labelledby': 'agents-title' });
  const updated = el('p', { class: 'muted', role: 'status' });
  page(view, t('staff_nav_supervisor'), updated, kpis, agents, waiting);
  let snapshot = null;
  let offset = 0; // server clock minus ours
  const now = () => Date.now() / 1000 + offset;

  function kpi(label, value, id, long = false) {
    return el('div', { class: 'kpi' }, el('span', { class: `value${long ? ' long' : ''}`, id, text: String(value) }),
      el('span', { text: label }));
  }

  function render() {
    const s = snapshot;
    const longest = s.waiting.length ? now() - Math.min(...s.waiting.map((w) => w.queued_at)) : null;
    kpis.replaceChildren(
      kpi(t('staff_sup_waiting'), s.waiting.length, 'sup-waiting'),
      kpi(t('staff_sup_longest_wait'), longest === null ? '–' : seconds(longest), 'sup-longest', longest > LONG_WAIT_S),
      kpi(t('staff_sup_online'), s.agents.filter((a) => a.online).length, 'sup-online'),
      kpi(t('staff_sup_ongoing'), s.agents.reduce((n, a) => n + a.chats.length, 0), 'sup-ongoing'));
    agents.replaceChildren(el('h2', { id: 'agents-title', text: t('staff_sup_agents') }),
      table(t('staff_sup_agents'), [t('staff_name'), t('staff_status'), t('staff_languages'), t('staff_sup_load'), t('staff_sup_their_chats')],
        s.agents.map((a) => [
          a.name,
          el('span', { class: a.online ? 'online' : 'offline',
            text: a.online ? t(`staff_agent_status_${a.status}`) : t('staff_agent_status_offline') }),
          a.languages.map(languageName).join(', '),
          `${a.chats.length} / ${a.max_chats}`,
          a.chats.length ? el('ul', {}, a.chats.map((c) => el('li', {},
            el('a', { href: `#history/${encodeURIComponent(c.id)}`, dir: 'auto', text: c.title || t('staff_chat') }),
            ` · ${languageName(c.language)} · ${seconds(now() - (c.assigned_at || now()))}`))) : '–',
        ]), [3]));
    waiting.replaceChildren(el('h2', { id: 'waiting-title', text: t('staff_sup_waiting_citizens') }),
      s.waiting.length ? table(t('staff_sup_waiting_citizens'),
        ['#', t('staff_question'), t('staff_language'), t('staff_municipality'), t('staff_reason'), t('staff_sup_waited')],
        s.waiting.map((w) => [String(w.position),
          el('a', { href: `#history/${encodeURIComponent(w.id)}`, dir: 'auto', text: w.title || w.preview || t('staff_chat') }),
          languageName(w.language), w.municipality, w.reason ? label('staff_reason_', w.reason) : '–',
          el('span', { class: `wait${now() - w.queued_at > LONG_WAIT_S ? ' long' : ''}`, 'data-since': String(w.queued_at),
            text: seconds(now() - w.queued_at) })]), [0, 5])
        : el('p', { text: t('staff_queue_empty') }));
  }

  let connected = null; // unknown until the socket opens or fails: no warning meanwhile
  function status() {
    if (!snapshot) return;
    const time = new Date(snapshot.now * 1000).toLocaleTimeString();
    updated.replaceChildren(...(connected === false
      ? [t('staff_sup_not_live', { time, seconds: FALLBACK_MS / 1000 })]
      : [el('span', { class: 'live', 'aria-hidden': 'true' }), t('staff_sup_updated', { time })]));
  }
  let latest = 0; // only the newest fetch fills the page
  async function refresh() {
    const mine = ++latest;
    try {
      const fresh = await api('GET', '/supervisor/live');
      if (mine !== latest) return;
      snapshot = fresh;
      offset = snapshot.now - Date.now() / 1000;
      status();
      render();
    } catch (err) {
      if (mine === latest) updated.textContent = t('staff_failed', { message: err.message });
    }
  }
  let settle = null;
  let left = false;
  function soon() {
    if (settle === null && !left) settle = setTimeout(() => { settle = null; refresh(); }, SETTLE_MS);
  }
  const socket = new ConsoleSocket((event) => {
    if (event.type === 'changed') soon();
    else if (event.type === 'logged_out') window.dispatchEvent(new CustomEvent('staff-logged-out'));
  }, (up) => {
    connected = up;
    if (up) soon(); else status(); // (re)connected: catch up on what was missed
  }, '/api/v1/supervisor/ws');
  socket.connect();
  const tick = setInterval(() => {
    for (const node of view.querySelectorAll('.wait[data-since]')) {
      const waited = now() - Number(node.dataset.since);
      node.textContent = seconds(waited);
      node.classList.toggle('long', waited > LONG_WAIT_S);
    }
    if (snapshot && snapshot.waiting.length) {
      const longest = now() - Math.min(...snapshot.waiting.map((w) => w.queued_at));
      const node = view.querySelector('#sup-longest');
      if (node) node.textContent = seconds(longest);
    }
  }, 1000);
  const poll = setInterval(refresh, FALLBACK_MS);
  refresh();
  return () => { left = true; clearInterval(tick); clearInterval(poll); clearTimeout(settle); socket.stop(); };
}

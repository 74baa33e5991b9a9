// The agent console: queue, conversations as tabs, suggestions and canned responses, live over one WebSocket.
import { $, clear, clock, duration, el } from './dom.js';
import { notify, setupNotifications } from './notify.js';
import { ConsoleSocket } from './socket.js';
import { beep, unlockAudio } from './sound.js';
import { STAFF_LANGUAGES, chooseLanguage, label, language, loadTexts, t, translatePage } from './texts.js';
import { chatTitle, citizenLeft, present } from './transcript.js';

const reasonText = (reason) => label('staff_reason_', reason);
const outcomeText = (outcome) => label('staff_outcome_', outcome);
const languageName = (code) => {
  try { return new Intl.DisplayNames([language()], { type: 'language' }).of(code) || code; } catch { return code; }
};

const state = {
  user: null, offset: 0, queue: [], known: null, chats: new Map(), order: [], active: null, peek: null,
  tickets: [], agents: [], outcomes: [], canned: new Map(), typingTimers: new Map(),
};
let socket = null;
const TYPING_SHOWN_MS = 5000; // a citizen who stops typing without sending sends no 'stopped'
const serverNow = () => Date.now() / 1000 + state.offset;

// --- logging in -----------------------------------------------------------------------------------------

async function start() {
  await loadTexts();
  translatePage();
  const langs = clear($('staff-lang'));
  for (const [code, name] of Object.entries(STAFF_LANGUAGES)) {
    langs.append(el('option', { value: code, text: name, selected: code === language() }));
  }
  setupNotifications($('notify'));
  const response = await fetch('/api/v1/auth/me', { credentials: 'same-origin' });
  if (response.ok) openConsole(await response.json());
  else showLogin();
}

function showLogin(message = '') {
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  unlockAudio();
  const form = new FormData(e.target);
  const response = await fetch('/api/v1/auth/login', {
    method: 'POST', headers: { 'content-type': 'application/json' }, credentials: 'same-origin',
    body: JSON.stringify({ username: form.get('username'), password: form.get('password') }),
  });
  if (!response.ok) { $('login-error').textContent = t('staff_wrong_login'); return; }
  openConsole((await response.json()).user);
});

$('logout').addEventListener('click', async () => {
  if (socket) socket.stop();
  await fetch('/api/v1/auth/logout', { method: 'POST', credentials: 'same-origin' });
  location.reload();
});

function openConsole(user) {
  state.user = user;
  $('login').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = user.display_name || user.username;
  document.addEventListener('click', unlockAudio, { once: true });
  socket = new ConsoleSocket(onEvent, (up) => {
    $('connection').classList.toggle('up', up);
    $('connection').textContent = t(up ? 'staff_connected' : 'staff_disconnected');
  });
  socket.connect();
}

// --- events from the server ---------------------------------------------------------------------------

function onEvent(ev) {
  switch (ev.type) {
    case 'hello':
      state.offset = ev.now - Date.now() / 1000;
      state.user = ev.user;
      $('status').value = ev.user.status;
      state.outcomes = ev.outcomes;
      state.tickets = ev.tickets;
      state.agents = ev.agents;
      renderTickets();
      renderAgents();
      break;
    case 'queue': onQueue(ev); break;
    case 'chat': onChat(ev); break;
    case 'chat_closed': onChatClosed(ev); break;
    case 'message': onMessage(ev); break;
    case 'state': {
      const chat = state.chats.get(ev.conversation_id);
      if (chat) chat.conv.state = ev.state;
      break;
    }
    case 'typing': onTyping(ev); break;
    case 'suggestions': renderSuggestions(ev); break;
    case 'tickets':
      state.tickets = ev.items;
      renderTickets();
      if (ev.new) alertUser(t('staff_new_ticket'));
      break;
    case 'agents': state.agents = ev.items; renderAgents(); break;
    case 'ack': if (ev.message) addMessage(ev.conversation_id, ev.message); break;
    case 'error': showBanner(t('staff_failed', { message: ev.message })); break;
    case 'logged_out': showLogin(t('staff_session_expired')); break;
    default: break;
  }
}

function onQueue(ev) {
  state.offset = ev.now - Date.now() / 1000;
  const ids = new Set(ev.items.map((i) => i.id));
  const fresh = state.known ? ev.items.filter((i) => !state.known.has(i.id)) : [];
  state.known = ids;
  state.queue = ev.items;
  renderQueue(new Set(fresh.map((i) => i.id)));
  if (fresh.length) {
    alertUser(fresh.length === 1 ? t('staff_new_in_queue') : t('staff_new_in_queue_many', { count: fresh.length }));
    notify(t('staff_notify_new_chat'), fresh[0].preview || reasonText(fresh[0].reason), `queue-${fresh[0].id}`);
  }
  if (state.peek && !ids.has(state.peek.id)) { state.peek = null; render(); }
}

function onChat(ev) {
  const conv = ev.conversation;
  const existing = state.chats.get(conv.id);
  const chat = existing || { conv, messages: new Map(), unread: 0, typing: false, draft: '' };
  chat.conv = conv;
  for (const m of conv.messages) chat.messages.set(m.id, m);
  chat.left = citizenLeft(conv.messages);
  state.chats.set(conv.id, chat);
  if (!state.order.includes(conv.id)) state.order.push(conv.id);
  if (state.peek && state.peek.id === conv.id) state.peek = null;
  if (ev.new) {
    alertUser(t('staff_new_assigned'));
    notify(t('staff_notify_assigned'), chatTitle(conv.messages), `chat-${conv.id}`);
  }
  if (!state.active || ev.new) activate(conv.id);
  else render();
}

function onChatClosed(ev) {
  const chat = state.chats.get(ev.conversation_id);
  if (chat && ev.reason === 'citizen_ended') {
    // The citizen left: the agent keeps the transcript to read, marked, until they close the tab.
    chat.left = true;
    chat.ended = true;
    chat.typing = false;
    showBanner(t('staff_chat_closed_citizen_ended'));
    render();
    return;
  }
  forget(ev.conversation_id);
  const known = ['closed', 'handback', 'transferred', 'dropped'];
  showBanner(t(`staff_chat_closed_${known.includes(ev.reason) ? ev.reason : 'other'}`));
  render();
}

function forget(id) {
  state.chats.delete(id);
  state.order = state.order.filter((other) => other !== id);
  if (state.active === id) state.active = state.order[0] || null;
}

function onMessage(ev) {
  const chat = state.chats.get(ev.conversation_id);
  if (!chat || chat.messages.has(ev.id)) return;
  addMessage(ev.conversation_id, ev);
  if (ev.sender === 'citizen') {
    chat.typing = false;
    clearTimeout(state.typingTimers.get(ev.conversation_id));
    renderTyping();
    if (state.active !== ev.conversation_id || document.hidden) {
      chat.unread += 1;
      beep();
      notify(t('staff_notify_message'), ev.text, `message-${ev.conversation_id}`);
    }
    if (state.active === ev.conversation_id) requestSuggestions();
  }
  if (citizenLeft([...chat.messages.values()]) && !chat.left) {
    chat.left = true;
    showBanner(t('staff_citizen_left_banner'));
    chat.typing = false;
    renderTyping();
  }
  renderTabs();
  renderMine();
}

function addMessage(conversationId, message) {
  const chat = state.chats.get(conversationId);
  if (!chat) return;
  chat.messages.set(message.id, message);
  if (state.active === conversationId) renderTranscript();
}

function onTyping(ev) {
  const chat = state.chats.get(ev.conversation_id);
  if (!chat || ev.sender !== 'citizen') return;
  chat.typing = ev.typing;
  clearTimeout(state.typingTimers.get(ev.conversation_id));
  if (ev.typing) {
    state.typingTimers.set(ev.conversation_id, setTimeout(() => { chat.typing = false; renderTyping(); }, TYPING_SHOWN_MS));
  }
  renderTyping();
}

// --- alerts ---------------------------------------------------------------------------------------------

let titleTimer = null;
function alertUser(text) {
  showBanner(text);
  beep();
  const original = t('staff_console_title');
  clearInterval(titleTimer);
  let flip = false;
  titleTimer = setInterval(() => { document.title = (flip = !flip) ? `🔔 ${text}` : original; }, 1000);
  setTimeout(() => { clearInterval(titleTimer); document.title = original; }, 10000);
}

let bannerTimer = null;
function showBanner(text) {
  const banner = $('banner');
  banner.textContent = text;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { banner.hidden = true; }, 8000);
}

// --- rendering ------------------------------------------------------------------------------------------

function render() {
  renderQueue();
  renderMine();
  renderTabs();
  renderConversation();
}

function waitText(since) {
  return since ? duration(serverNow() - since) : '';
}

function renderQueue(fresh = new Set()) {
  const list = clear($('queue'));
  $('queue-count').textContent = String(state.queue.length);
  $('queue-empty').hidden = state.queue.length > 0;
  for (const item of state.queue) {
    const mine = (state.user.municipalities || []).includes(item.municipality);
    const speaks = (state.user.languages || []).includes(item.language);
    list.append(el('li', { class: fresh.has(item.id) ? 'fresh' : '', dataset: { id: item.id },
      onclick: () => peek(item.id) },
      el('div', { class: 'row' },
        el('span', {}, el('span', { class: 'pill lang', text: item.language, title: speaks ? t('staff_you_speak') : null }),
          ' ', el('span', { class: 'pill', text: item.municipality + (mine ? '' : ` ${t('staff_other_municipality')}`) })),
        el('span', { class: 'wait', dataset: { since: item.queued_at }, text: waitText(item.queued_at) })),
      // the preview opens the chat to read (a button: reachable with the keyboard, as the whole card is by mouse)
      el('button', { type: 'button', class: 'preview peek', dir: 'auto', text: item.preview || '–',
        onclick: (e) => { e.stopPropagation(); peek(item.id); } }),
      el('div', { class: 'row' },
        el('span', { class: 'muted small', text: [reasonText(item.reason), item.topic].filter(Boolean).join(' · ') }),
        el('button', { class: 'primary take', text: t('staff_take'), onclick: (e) => { e.stopPropagation(); claim(item.id); } }))));
  }
}

function renderMine() {
  const list = clear($('mine'));
  for (const id of state.order) {
    const chat = state.chats.get(id);
    const all = [...chat.messages.values()].sort((a, b) => a.id - b.id);
    const last = all.filter((m) => m.sender === 'citizen').at(-1);
    const shown = last ? present(last, all.filter((m) => m.id < last.id)) : null;
    list.append(el('li', { onclick: () => activate(id), dataset: { id } },
      el('div', { class: 'row' },
        el('span', { class: 'pill lang', text: chat.conv.language }),
        chat.left ? el('span', { class: 'pill left', text: t('staff_left_marker') }) : null,
        chat.unread ? el('span', { class: 'badge', text: chat.unread }) : null),
      el('button', { type: 'button', class: 'preview peek', dir: 'auto', text: shown ? shown.text : '–',
        onclick: (e) => { e.stopPropagation(); activate(id); } })));
  }
}

function renderTabs() {
  const tabs = clear($('tabs'));
  for (const id of state.order) {
    const chat = state.chats.get(id);
    const label = chatTitle([...chat.messages.values()]);
    const active = state.active === id && !state.peek;
    tabs.append(el('button', { class: `tab${active ? ' active' : ''}${chat.left ? ' left' : ''}`, role: 'tab',
      'aria-selected': active ? 'true' : 'false', dataset: { id }, onclick: () => activate(id) },
      el('span', { class: 'pill lang', text: chat.conv.language }), ' ', el('span', { class: 'label', dir: 'auto', text: label }),
      chat.unread ? el('span', { class: 'badge unread', text: chat.unread }) : null));
  }
}

function current() {
  if (state.peek) return { conv: state.peek, messages: new Map(state.peek.messages.map((m) => [m.id, m])), peek: true };
  return state.active ? state.chats.get(state.active) : null;
}

function renderConversation() {
  const chat = current();
  $('conversation').hidden = !chat;
  $('empty').hidden = Boolean(chat);
  if (!chat) { clear($('suggestions')); $('suggest-query').textContent = ''; return; }
  const conv = chat.conv;
  $('conv-lang').textContent = `${conv.language} · ${languageName(conv.language)}`
    + (conv.language_warning ? ` – ${t('staff_language_warning')}` : '');
  $('conv-lang').classList.toggle('warning', Boolean(conv.language_warning));
  $('conv-muni').textContent = conv.municipality;
  $('conv-reason').textContent = reasonText(conv.reason);
  const topic = chat.topic || conv.topic;
  $('conv-topic').textContent = topic ? `${t('staff_topic')}: ${topic}` : '';
  $('conv-topic').hidden = !topic;
  $('conv-waited').textContent = conv.queued_at && conv.assigned_at && conv.assigned_at >= conv.queued_at
    ? t('staff_waited', { time: duration(conv.assigned_at - conv.queued_at) }) : '';
  $('conv-actions').hidden = Boolean(chat.peek);
  $('peek-actions').hidden = !chat.peek;
  $('ended-actions').hidden = !chat.ended;
  $('composer').hidden = Boolean(chat.peek || chat.ended);
  if (chat.ended) $('conv-actions').hidden = true; // the citizen left: nothing to send, transfer or close
  renderTranscript();
  renderTyping();
  renderCanned();
}

function renderTranscript() {
  const chat = current();
  if (!chat) return;
  const list = clear($('transcript'));
  const sorted = [...chat.messages.values()].sort((a, b) => a.id - b.id);
  sorted.forEach((m, i) => {
    const shown = present(m, sorted.slice(0, i));
    if (!shown) return; // a bot turn that only carries data for the widget
    const who = m.sender === 'agent' ? (m.author || t('staff_agent'))
      : m.sender === 'note' ? `${t('staff_sender_note')} · ${m.author || ''}` : t(`staff_sender_${shown.sender}`);
    const chips = (m.buttons || []).map((b) => el('span', { class: 'chip', dir: 'auto', text: b.title }));
    const kind = shown.event ? `event ${shown.sender}` : shown.sender === 'note' ? 'note' : m.sender;
    list.append(el('li', { class: `msg ${kind}${shown.choice ? ' choice' : ''}`, dataset: { id: m.id, event: shown.event } },
      el('div', { class: 'meta', text: `${who}${shown.choice ? ` ${t('staff_chose')}` : ''} · ${clock(m.created_at)}` }),
      shown.text ? el('div', { class: 'body', dir: 'auto', text: shown.text }) : null,
      chips.length ? el('div', { class: 'chips' }, chips) : null));
  });
  list.scrollTop = list.scrollHeight;
}

function renderTyping() {
  const chat = current();
  $('typing').hidden = !(chat && !chat.peek && chat.typing);
}

function renderTickets() {
  const list = clear($('tickets'));
  $('ticket-count').textContent = String(state.tickets.length);
  for (const ticket of state.tickets) {
    list.append(el('li', {},
      el('div', { class: 'row' }, el('strong', { dir: 'auto', text: ticket.name || t('staff_unknown_name') }),
        el('span', { class: 'muted small', text: new Date(ticket.created_at * 1000).toLocaleString(language()) })),
      el('div', { text: ticket.contact }),
      el('div', { class: 'preview', dir: 'auto', text: ticket.message, title: ticket.message }),
      el('div', { class: 'row' }, el('span', { class: 'pill', text: `${ticket.municipality} · ${ticket.language || ''}` }),
        el('button', { text: t('staff_done'), onclick: () => doneTicket(ticket.id) }))));
  }
}

function renderAgents() {
  const select = clear($('transfer-to'));
  select.append(el('option', { value: 'queue', text: t('staff_back_to_queue') }));
  for (const a of state.agents) {
    if (a.id === state.user.id) continue;
    const flag = a.online ? (a.status === 'available' ? '●' : '◐') : '○';
    select.append(el('option', { value: a.id,
      text: `${flag} ${a.display_name} (${a.languages.join(', ')}) ${a.chats}/${a.max_chats}` }));
  }
  const outcome = clear($('outcome'));
  for (const o of state.outcomes) outcome.append(el('option', { value: o, text: outcomeText(o) }));
}

// --- actions --------------------------------------------------------------------------------------------

function activate(id) {
  const previous = current();
  if (previous && !previous.peek) previous.draft = $('text').value;
  state.peek = null;
  state.active = id;
  const chat = state.chats.get(id);
  if (chat) { chat.unread = 0; $('text').value = chat.draft || ''; }
  render();
  requestSuggestions();
}

async function peek(id) {
  if (state.chats.has(id)) { activate(id); return; }
  const response = await fetch(`/api/v1/handoff/conversations/${encodeURIComponent(id)}`, { credentials: 'same-origin' });
  if (!response.ok) return;
  state.peek = await response.json();
  render();
  requestSuggestions();
}

function claim(id) { socket.send({ type: 'claim', conversation_id: id }); }

$('close-tab').addEventListener('click', () => { if (state.active) { forget(state.active); render(); } });
$('peek-take').addEventListener('click', () => { if (state.peek) claim(state.peek.id); });
$('handback').addEventListener('click', () => {
  if (state.active) socket.send({ type: 'handback', conversation_id: state.active });
});
$('close').addEventListener('click', () => {
  if (state.active) socket.send({ type: 'close', conversation_id: state.active, outcome: $('outcome').value });
});
$('transfer').addEventListener('click', () => {
  const to = $('transfer-to').value;
  if (state.active) socket.send({ type: 'transfer', conversation_id: state.active, to_user_id: to === 'queue' ? null : Number(to) });
});
$('staff-lang').addEventListener('change', (e) => { chooseLanguage(e.target.value); location.reload(); });
$('status').addEventListener('change', (e) => socket.send({ type: 'status', status: e.target.value }));

async function doneTicket(id) {
  await fetch(`/api/v1/handoff/tickets/${id}`, { method: 'PATCH', credentials: 'same-origin',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'done' }) });
}

// composer: replies, notes, typing, /shortcuts
const composer = $('composer');
const textarea = $('text');
let typingSent = 0;
let typingStop = null;

function mode() { return composer.querySelector('input[name=mode]:checked').value; }
composer.querySelectorAll('input[name=mode]').forEach((r) => r.addEventListener('change', () => {
  composer.classList.toggle('note', mode() === 'note');
}));

function sendTyping(typing) {
  if (!state.active || mode() === 'note') return;
  socket.send({ type: 'typing', conversation_id: state.active, typing });
}

textarea.addEventListener('input', () => {
  if (Date.now() - typingSent > 2500) { typingSent = Date.now(); sendTyping(true); }
  clearTimeout(typingStop);
  typingStop = setTimeout(() => { typingSent = 0; sendTyping(false); }, 3000);
  updateShortcuts();
});

textarea.addEventListener('keydown', (e) => {
  const menu = $('shortcuts');
  if (!menu.hidden && (e.key === 'Tab' || e.key === 'Enter')) {
    e.preventDefault();
    const first = menu.querySelector('li');
    if (first) first.click();
    return;
  }
  if (e.key === 'Escape') menu.hidden = true;
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); composer.requestSubmit(); }
});

composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = textarea.value.trim();
  if (!text || !state.active) return;
  socket.send({ type: mode(), conversation_id: state.active, text }, true);
  textarea.value = '';
  clearTimeout(typingStop);
  typingSent = 0;
  sendTyping(false);
  $('shortcuts').hidden = true;
});

function insertText(text) {
  const start = textarea.selectionStart ?? textarea.value.length;
  const end = textarea.selectionEnd ?? start;
  const before = textarea.value.slice(0, start);
  const spacer = before && !before.endsWith('\n') && !before.endsWith(' ') ? ' ' : '';
  textarea.value = before + spacer + text + textarea.value.slice(end);
  textarea.focus();
  const caret = (before + spacer + text).length;
  textarea.setSelectionRange(caret, caret);
}

// --- canned responses -----------------------------------------------------------------------------------

async function cannedFor(municipality) {
  if (!state.canned.has(municipality)) {
    const response = await fetch(`/api/v1/handoff/canned?municipality=${encodeURIComponent(municipality)}`,
      { credentials: 'same-origin' });
    state.canned.set(municipality, response.ok ? await response.json() : []);
  }
  return state.canned.get(municipality);
}

function variant(item, language) {
  for (const lang of [language, 'sv', 'en']) if (item.texts[lang]) return item.texts[lang];
  return Object.values(item.texts)[0] || '';
}

function matches(items, query) {
  const q = query.toLowerCase();
  if (!q) return items;
  return items.filter((i) => i.shortcut.startsWith(q) || i.title.toLowerCase().includes(q)
    || Object.values(i.texts).some((t) => t.toLowerCase().includes(q)));
}

async function renderCanned() {
  const chat = current();
  const list = clear($('canned'));
  if (!chat || chat.peek) return;
  const items = matches(await cannedFor(chat.conv.municipality), $('canned-search').value.trim().replace(/^\//, ''));
  clear(list);
  for (const item of items) {
    const text = variant(item, chat.conv.language);
    const has = Boolean(item.texts[chat.conv.language]);
    list.append(el('li', {},
      el('div', { class: 'row' }, el('span', { class: 'title', text: item.title }),
        el('span', { class: 'muted small', text: `/${item.shortcut}` })),
      el('div', { class: 'text', dir: 'auto', text }),
      el('div', { class: 'row' },
        el('button', { text: t('staff_insert'), onclick: () => insertText(text) }),
        has ? null : el('span', { class: 'muted small', text: t('staff_not_in_citizen_language') }))));
  }
}
$('canned-search').addEventListener('input', renderCanned);

async function updateShortcuts() {
  const menu = $('shortcuts');
  const chat = current();
  const caret = textarea.selectionStart ?? textarea.value.length;
  const word = /(^|\s)\/([\w-]*)$/.exec(textarea.value.slice(0, caret));
  if (!chat || !word) { menu.hidden = true; return; }
  const items = (await cannedFor(chat.conv.municipality)).filter((i) => i.shortcut.startsWith(word[2].toLowerCase()));
  clear(menu);
  menu.hidden = items.length === 0;
  for (const item of items.slice(0, 8)) {
    menu.append(el('li', { onclick: () => {
      const start = caret - word[2].length - 1;
      textarea.value = textarea.value.slice(0, start) + variant(item, chat.conv.language) + textarea.value.slice(caret);
      menu.hidden = true;
      textarea.focus();
    } }, el('strong', { text: `/${item.shortcut}` }), ' ', el('span', { class: 'muted', text: item.title })));
  }
}

// --- knowledge-base suggestions -------------------------------------------------------------------------

let suggestTimer = null;
function requestSuggestions() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(() => {
    const chat = current();
    if (chat && socket) socket.send({ type: 'suggest', conversation_id: chat.conv.id });
  }, 250);
}

function renderSuggestions(ev) {
  const chat = current();
  if (!chat || chat.conv.id !== ev.conversation_id) return;
  $('suggest-query').textContent = ev.query ? t('staff_suggest_for', { query: ev.query }) : t('staff_suggest_nothing_yet');
  if (!chat.peek && ev.topic && ev.topic !== chat.topic) { chat.topic = ev.topic; renderConversation(); }
  const list = clear($('suggestions'));
  for (const a of ev.answers) {
    const text = a.url ? `${a.text}\n${a.url}` : a.text;
    list.append(el('li', {},
      el('div', { class: 'title', dir: 'auto', text: a.question }),
      el('div', { class: 'text', dir: 'auto', lang: a.language, text: a.text }),
      a.translation ? el('div', { class: 'text translation', dir: 'auto', lang: a.translation.language },
        el('span', { class: 'muted small', text: `${t('staff_translation', { language: languageName(a.translation.language) })}: ` }),
        a.translation.text) : null,
      el('div', { class: 'row' },
        chat.peek ? null : el('button', { class: 'insert', text: t('staff_insert'), onclick: () => insertText(text) }),
        el('span', { class: 'muted small', text: `${Math.round(a.score * 100)} %` }))));
  }
  if (!ev.answers.length && ev.query) list.append(el('li', { class: 'muted', text: t('staff_suggest_none') }));
}

// waiting times tick every second
setInterval(() => {
  for (const node of document.querySelectorAll('.wait[data-since]')) {
    const since = Number(node.dataset.since);
    node.textContent = waitText(since);
    node.classList.toggle('long', serverNow() - since > 300);
  }
}, 1000);

start();

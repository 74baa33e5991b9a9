// The agent console: queue, conversations as tabs, suggestions and canned responses, live over one WebSocket.
import { $, clear, clock, duration, el } from './dom.js';
import { ConsoleSocket } from './socket.js';
import { beep, unlockAudio } from './sound.js';

const REASONS = { requested: 'Bad om en person', low_confidence: 'Osäkert svar', negative_feedback: 'Missnöjd',
  failed_turns: 'Fastnade', service_error: 'Tekniskt fel', abuse: 'Olämpligt' };
const OUTCOMES = { resolved: 'Löst', referred: 'Hänvisad', callback: 'Återkoppling', unresolved: 'Ej löst',
  abandoned: 'Medborgaren lämnade', spam: 'Skräp' };
const SENDERS = { citizen: 'Medborgare', bot: 'Chattbot', system: 'System', note: 'Intern anteckning' };
const LANGS = { sv: 'svenska', en: 'engelska', ar: 'arabiska', fi: 'finska', so: 'somaliska', fa: 'persiska',
  uk: 'ukrainska', ti: 'tigrinja', pl: 'polska', de: 'tyska', es: 'spanska', tr: 'turkiska' };

const state = {
  user: null, offset: 0, queue: [], known: null, chats: new Map(), order: [], active: null, peek: null,
  tickets: [], agents: [], outcomes: Object.keys(OUTCOMES), canned: new Map(), typingTimers: new Map(),
};
let socket = null;
const serverNow = () => Date.now() / 1000 + state.offset;

// --- logging in -----------------------------------------------------------------------------------------

async function start() {
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
  if (!response.ok) { $('login-error').textContent = 'Fel användarnamn eller lösenord.'; return; }
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
  socket = new ConsoleSocket(onEvent, (up) => $('connection').classList.toggle('up', up));
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
      if (ev.new) alertUser('Nytt ärende: en medborgare vill bli kontaktad.');
      break;
    case 'agents': state.agents = ev.items; renderAgents(); break;
    case 'ack': if (ev.message) addMessage(ev.conversation_id, ev.message); break;
    case 'error': showBanner(`Det gick inte: ${ev.message}`); break;
    case 'logged_out': showLogin('Sessionen har gått ut. Logga in igen.'); break;
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
  if (fresh.length) alertUser(fresh.length === 1 ? 'Ny chatt i kön.' : `${fresh.length} nya chattar i kön.`);
  if (state.peek && !ids.has(state.peek.id)) { state.peek = null; render(); }
}

function onChat(ev) {
  const conv = ev.conversation;
  const existing = state.chats.get(conv.id);
  const chat = existing || { conv, messages: new Map(), unread: 0, typing: false, draft: '' };
  chat.conv = conv;
  for (const m of conv.messages) chat.messages.set(m.id, m);
  state.chats.set(conv.id, chat);
  if (!state.order.includes(conv.id)) state.order.push(conv.id);
  if (state.peek && state.peek.id === conv.id) state.peek = null;
  if (ev.new) alertUser('Ny chatt tilldelad dig.');
  if (!state.active || ev.new) activate(conv.id);
  else render();
}

function onChatClosed(ev) {
  state.chats.delete(ev.conversation_id);
  state.order = state.order.filter((id) => id !== ev.conversation_id);
  if (state.active === ev.conversation_id) state.active = state.order[0] || null;
  const why = { closed: 'avslutades', handback: 'lämnades tillbaka till boten', transferred: 'överfördes',
    dropped: 'gick tillbaka till kön' }[ev.reason] || 'stängdes';
  showBanner(`Chatten ${why}.`);
  render();
}

function onMessage(ev) {
  const chat = state.chats.get(ev.conversation_id);
  if (!chat || chat.messages.has(ev.id)) return;
  addMessage(ev.conversation_id, ev);
  if (ev.sender === 'citizen') {
    chat.typing = false;
    if (state.active !== ev.conversation_id || document.hidden) { chat.unread += 1; beep(); }
    if (state.active === ev.conversation_id) requestSuggestions();
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
    state.typingTimers.set(ev.conversation_id, setTimeout(() => { chat.typing = false; renderTyping(); }, 6000));
  }
  renderTyping();
}

// --- alerts ---------------------------------------------------------------------------------------------

let titleTimer = null;
function alertUser(text) {
  showBanner(text);
  beep();
  const original = 'Kontaktcenter – Kommunchatt';
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
        el('span', {}, el('span', { class: 'pill lang', text: item.language, title: speaks ? 'Du talar språket' : '' }),
          ' ', el('span', { class: 'pill', text: item.municipality + (mine ? '' : ' (annan)') })),
        el('span', { class: 'wait', dataset: { since: item.queued_at }, text: waitText(item.queued_at) })),
      el('div', { class: 'preview', text: item.preview || '–' }),
      el('div', { class: 'row' },
        el('span', { class: 'muted small', text: [REASONS[item.reason] || item.reason, item.topic].filter(Boolean).join(' · ') }),
        el('button', { class: 'primary take', text: 'Ta', onclick: (e) => { e.stopPropagation(); claim(item.id); } }))));
  }
}

function renderMine() {
  const list = clear($('mine'));
  for (const id of state.order) {
    const chat = state.chats.get(id);
    const last = [...chat.messages.values()].filter((m) => m.sender === 'citizen').at(-1);
    list.append(el('li', { onclick: () => activate(id), dataset: { id } },
      el('div', { class: 'row' },
        el('span', { class: 'pill lang', text: chat.conv.language }),
        chat.unread ? el('span', { class: 'badge', text: chat.unread }) : null),
      el('div', { class: 'preview', text: last ? last.text : '–' })));
  }
}

function renderTabs() {
  const tabs = clear($('tabs'));
  for (const id of state.order) {
    const chat = state.chats.get(id);
    const last = [...chat.messages.values()].filter((m) => m.sender === 'citizen').at(-1);
    const label = (last ? last.text : 'Chatt').slice(0, 22);
    tabs.append(el('button', { class: `tab${state.active === id && !state.peek ? ' active' : ''}`, role: 'tab',
      dataset: { id }, onclick: () => activate(id) },
      el('span', { class: 'pill lang', text: chat.conv.language }), ' ', label,
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
  $('conv-lang').textContent = `${conv.language} · ${LANGS[conv.language] || conv.language}`;
  $('conv-muni').textContent = conv.municipality;
  $('conv-reason').textContent = REASONS[conv.reason] || conv.reason || '';
  $('conv-topic').textContent = conv.topic || '';
  $('conv-topic').hidden = !conv.topic;
  $('conv-waited').textContent = conv.queued_at && conv.assigned_at
    ? `väntade ${duration(conv.assigned_at - conv.queued_at)}` : '';
  $('conv-actions').hidden = Boolean(chat.peek);
  $('peek-actions').hidden = !chat.peek;
  $('composer').hidden = Boolean(chat.peek);
  renderTranscript();
  renderTyping();
  renderCanned();
}

function renderTranscript() {
  const chat = current();
  if (!chat) return;
  const list = clear($('transcript'));
  const sorted = [...chat.messages.values()].sort((a, b) => a.id - b.id);
  for (const m of sorted) {
    const who = m.sender === 'agent' ? (m.author || 'Handläggare')
      : m.sender === 'note' ? `${SENDERS.note} · ${m.author || ''}` : SENDERS[m.sender] || m.sender;
    const chips = (m.buttons || []).map((b) => el('span', { class: 'chip', text: b.title }));
    list.append(el('li', { class: `msg ${m.sender}`, dataset: { id: m.id } },
      el('div', { class: 'meta', text: `${who} · ${clock(m.created_at)}` }),
      el('div', { class: 'body', text: m.text }),
      chips.length ? el('div', { class: 'chips' }, chips) : null));
  }
  list.scrollTop = list.scrollHeight;
}

function renderTyping() {
  const chat = current();
  $('typing').hidden = !(chat && !chat.peek && chat.typing);
}

function renderTickets() {
  const list = clear($('tickets'));
  $('ticket-count').textContent = String(state.tickets.length);
  for (const t of state.tickets) {
    list.append(el('li', {},
      el('div', { class: 'row' }, el('strong', { text: t.name || 'Okänd' }),
        el('span', { class: 'muted small', text: new Date(t.created_at * 1000).toLocaleString('sv-SE') })),
      el('div', { text: t.contact }),
      el('div', { class: 'preview', text: t.message, title: t.message }),
      el('div', { class: 'row' }, el('span', { class: 'pill', text: `${t.municipality} · ${t.language || ''}` }),
        el('button', { text: 'Klar', onclick: () => doneTicket(t.id) }))));
  }
}

function renderAgents() {
  const select = clear($('transfer-to'));
  select.append(el('option', { value: 'queue', text: 'Tillbaka till kön' }));
  for (const a of state.agents) {
    if (a.id === state.user.id) continue;
    const flag = a.online ? (a.status === 'available' ? '●' : '◐') : '○';
    select.append(el('option', { value: a.id,
      text: `${flag} ${a.display_name} (${a.languages.join(', ')}) ${a.chats}/${a.max_chats}` }));
  }
  const outcome = clear($('outcome'));
  for (const o of state.outcomes) outcome.append(el('option', { value: o, text: OUTCOMES[o] || o }));
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
      el('div', { class: 'text', text }),
      el('div', { class: 'row' },
        el('button', { text: 'Infoga', onclick: () => insertText(text) }),
        has ? null : el('span', { class: 'muted small', text: 'finns inte på medborgarens språk' }))));
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
  $('suggest-query').textContent = ev.query ? `För: ”${ev.query}”` : 'Medborgaren har inte skrivit något ännu.';
  const list = clear($('suggestions'));
  for (const a of ev.answers) {
    const text = a.url ? `${a.text}\n${a.url}` : a.text;
    list.append(el('li', {},
      el('div', { class: 'title', text: a.question }),
      el('div', { class: 'text', text: a.text }),
      el('div', { class: 'row' },
        chat.peek ? null : el('button', { class: 'insert', text: 'Infoga', onclick: () => insertText(text) }),
        el('span', { class: 'muted small', text: `${Math.round(a.score * 100)} %` }))));
  }
  if (!ev.answers.length && ev.query) list.append(el('li', { class: 'muted', text: 'Inget passande svar i kunskapsbanken.' }));
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

// Past conversations: search by words, municipality, language, state, date, session id or contact;
// one conversation's whole transcript, as the console shows it, and the citizen's other chats.
import { present } from '../../agent/transcript.js';
import { label, t } from '../../agent/texts.js';
import { api, el, field, languageName, newest, page, query, table, when } from '../ui.js';

const STATES = ['', 'bot', 'queued', 'agent', 'closed'];

export function historyPage(view, { user, arg }) {
  if (arg) { conversationView(view, arg); return null; }
  const q = el('input', { type: 'search', name: 'q' });
  const contact = el('input', { type: 'search', name: 'contact' });
  const municipality = el('select', { name: 'municipality' }, el('option', { value: '', text: t('staff_all') }),
    (user.role === 'admin' ? [] : user.municipalities || []).map((m) => el('option', { value: m, text: m })));
  const state = el('select', { name: 'state' }, STATES.map((s) => el('option', { value: s, text: s ? label('staff_state_', s) : t('staff_all') })));
  const from = el('input', { type: 'date', name: 'date_from' });
  const to = el('input', { type: 'date', name: 'date_to' });
  const results = el('div', { id: 'history-results', 'aria-live': 'polite' });
  const form = el('form', { class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); load(); } },
    field(t('staff_history_words'), q), field(t('staff_history_contact'), contact, t('staff_history_contact_help')),
    field(t('staff_municipality'), municipality), field(t('staff_state'), state),
    field(t('staff_date_from'), from), field(t('staff_date_to'), to),
    el('div', {}, el('button', { type: 'submit', text: t('staff_search') })));
  page(view, t('staff_nav_history'), el('p', { class: 'muted', text: t('staff_history_intro') }), form, results);
  if (user.role === 'admin') api('GET', '/admin/municipalities').then((rows) => municipality.append(
    ...rows.map((m) => el('option', { value: m.id, text: m.name })))).catch(() => null);

  const begin = newest();
  async function load() {
    const current = begin();
    const params = { q: q.value.trim(), contact: contact.value.trim(), municipality: municipality.value,
      state: state.value, date_from: from.value, date_to: to.value, limit: 100 };
    try {
      const data = await api('GET', `/handoff/history${query(params)}`);
      if (current()) results.replaceChildren(resultsTable(data));
    } catch (err) {
      if (current()) results.replaceChildren(el('p', { class: 'error', text: err.message }));
    }
  }
  load();
  return null;
}

function resultsTable(data) {
  return table(t('staff_history_found', { count: data.total }),
    [t('staff_started'), t('staff_question'), t('staff_municipality'), t('staff_language'), t('staff_state'),
      t('staff_agent'), t('staff_messages')],
    data.items.map((c) => [
      when(c.created_at),
      el('a', { href: `#history/${encodeURIComponent(c.id)}`, dir: 'auto', text: c.title || t('staff_chat') }),
      c.municipality, languageName(c.language),
      c.outcome ? label('staff_outcome_', c.outcome) : label('staff_state_', c.state),
      c.agent || '–', String(c.messages),
    ]), [6]);
}

async function conversationView(view, id) {
  let data;
  try {
    data = await api('GET', `/handoff/history/${encodeURIComponent(id)}`);
  } catch (err) {
    page(view, t('staff_nav_history'), el('p', { class: 'error', text: err.message }));
    return;
  }
  const c = data.conversation;
  const facts = el('dl', { class: 'card facts' },
    [[t('staff_started'), when(c.created_at)], [t('staff_municipality'), c.municipality],
      [t('staff_language'), languageName(c.language)], [t('staff_state'), label('staff_state_', c.state)],
      [t('staff_reason'), c.reason ? label('staff_reason_', c.reason) : '–'],
      [t('staff_outcome'), c.outcome ? label('staff_outcome_', c.outcome) : '–'],
      [t('staff_agents'), (c.agents || []).join(', ') || '–'],
      [t('staff_rating'), c.csat_score ? `${c.csat_score} / 5${c.csat_comment ? ` – ${c.csat_comment}` : ''}` : '–'],
      [t('staff_session_id'), c.id]].flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { dir: 'auto', text: v })]));
  const messages = data.messages;
  const lines = [];
  messages.forEach((m, i) => {
    const shown = present(m, messages.slice(0, i));
    if (!shown) return;
    const who = m.sender === 'agent' ? (m.author || t('staff_agent'))
      : m.sender === 'note' ? `${t('staff_sender_note')} · ${m.author || ''}` : t(`staff_sender_${shown.sender}`);
    lines.push(el('li', { class: shown.event ? 'event' : m.sender },
      el('div', { class: 'meta', text: `${who}${shown.choice ? ` ${t('staff_chose')}` : ''} · ${when(m.created_at)}` }),
      shown.text ? el('div', { class: 'body', dir: 'auto', text: shown.text }) : null));
  });
  const related = data.related.length
    ? table(t('staff_history_related'), [t('staff_started'), t('staff_question'), t('staff_state')],
      data.related.map((r) => [when(r.created_at), el('a', { href: `#history/${encodeURIComponent(r.id)}`, dir: 'auto',
        text: r.title || t('staff_chat') }), label('staff_state_', r.state)]))
    : el('p', { class: 'muted', text: t('staff_history_no_related') });
  page(view, c.title || t('staff_chat'),
    el('p', {}, el('a', { href: '#history', text: t('staff_back_to_search') })),
    facts, el('h2', { text: t('staff_transcript') }), el('ol', { class: 'transcript' }, lines),
    el('h2', { text: t('staff_history_related') }), related);
}

// How the console shows a stored message to staff. The store keeps what happened (a button's payload,
// a feedback event, a bot turn that only carries data); an agent needs to read what the citizen did:
// the title of the button they chose, "👍 helpful", and no empty bubbles.
import { t } from './texts.js';

// Payloads of the dialogue's own buttons, when no earlier message names the button.
const PAYLOAD_TEXTS = {
  affirm: 'staff_payload_affirm', deny: 'staff_payload_deny', request_human: 'staff_payload_request_human',
  none_of_these: 'staff_payload_none_of_these', choose_entry: 'staff_payload_choose_entry',
  greet: 'staff_payload_greet', goodbye: 'staff_payload_goodbye', leave_queue: 'staff_payload_leave_queue',
};
// Events the citizen causes (shown as the citizen's) and events of the chat itself.
const CITIZEN_EVENTS = new Set(['feedback', 'citizen_left', 'left_queue', 'citizen_ended', 'rating']);
// Bot turns that carry only data, worth a line of their own (the rest are left out).
const BOT_EVENTS = new Set(['handoff', 'callback']);

/** The intent name of a payload ("/choose_entry{...}" -> "choose_entry"), or null for typed text. */
export function payloadIntent(text) {
  const match = /^\/([A-Za-z_][\w-]*)/.exec(text || '');
  return match ? match[1] : null;
}

/** The title of the button whose payload the citizen sent, from the bot messages before it. */
function buttonTitle(message, earlier) {
  for (let i = earlier.length - 1; i >= 0; i -= 1) {
    const button = (earlier[i].buttons || []).find((b) => b.payload === message.text);
    if (button) return button.title;
  }
  return null;
}

/** A citizen's or the chat's event as a readable line. */
function eventText(custom, message) {
  switch (custom.kind) {
    case 'feedback': return custom.helpful ? t('staff_event_helpful') : t('staff_event_not_helpful');
    case 'citizen_left': case 'citizen_ended': return t('staff_event_citizen_left');
    case 'left_queue': return t('staff_event_left_queue');
    case 'rating': return t('staff_event_rating', { score: custom.score ?? '' });
    case 'agent_joined': return t('staff_event_agent_joined', { name: custom.agent || '' });
    case 'handback': return t('staff_event_handback');
    case 'rating_request': return t('staff_event_rating_request');
    case 'handoff': return t(`staff_event_handoff_${custom.state || 'queued'}`, { position: custom.position ?? '' });
    case 'callback': return t('staff_event_callback');
    default: return message.text && message.text !== custom.kind ? message.text : t('staff_event_other', { kind: custom.kind });
  }
}

/**
 * What the console shows for `message` (earlier: the messages before it, oldest first):
 * {sender, text, event, choice} or null when there is nothing a person would read.
 */
export function present(message, earlier) {
  const custom = message.custom || {};
  if (message.sender === 'citizen') {
    const intent = payloadIntent(message.text);
    if (!intent) return { sender: 'citizen', text: message.text };
    const title = buttonTitle(message, earlier) || t(PAYLOAD_TEXTS[intent] || 'staff_payload_other');
    return { sender: 'citizen', text: title, choice: true };
  }
  if (message.sender === 'system' && custom.kind) {
    return { sender: CITIZEN_EVENTS.has(custom.kind) ? 'citizen' : 'system', text: eventText(custom, message),
      event: custom.kind };
  }
  if (message.sender === 'bot' && !(message.text || '').trim()) {
    if ((message.buttons || []).length) return { sender: 'bot', text: '' };
    // A call-back's start is only the service's marker (conversations/direct.py); its end says what happened.
    if (custom.kind === 'callback' && custom.state === 'started') return null;
    return BOT_EVENTS.has(custom.kind) ? { sender: 'system', text: eventText(custom, message), event: custom.kind } : null;
  }
  return { sender: message.sender, text: message.text };
}

/** Whether the citizen left (so the agent stops waiting for an answer). */
export function citizenLeft(messages) {
  const last = [...messages].reverse().find((m) => m.custom && ['citizen_left', 'citizen_ended', 'left_queue']
    .includes(m.custom.kind));
  return Boolean(last) && !messages.some((m) => m.id > last.id && m.sender === 'citizen');
}

/** Whether the bot's replies to a typed message show it was a question (see `questions`). */
function isQuestion(replies) {
  if (!replies.length) return true; // a person had the chat, or the bot has not answered yet
  const kinds = replies.map((r) => (r.custom || {}).kind).filter(Boolean);
  if (kinds.some((k) => ['answer', 'clarify', 'decision', 'error'].includes(k))) return true;
  if (kinds.length) return false; // a handoff asked for, a call-back, a language change
  // Only rule texts: a greeting or thanks, unless it is the apology that offers a person (no answer came).
  return replies.some((r) => (r.buttons || []).some((b) => b.payload === '/request_human'));
}

/**
 * The citizen's questions: typed text that the knowledge base was asked about, or that came while a
 * person had the chat. Button payloads and turns the dialogue answered by itself ("hej", "I want a
 * person") are not questions.
 */
export function questions(messages) {
  const sorted = [...messages].sort((a, b) => a.id - b.id);
  const out = [];
  sorted.forEach((m, i) => {
    if (m.sender !== 'citizen' || payloadIntent(m.text) || !(m.text || '').trim()) return;
    const replies = [];
    for (const next of sorted.slice(i + 1)) {
      if (next.sender === 'citizen') break;
      if (next.sender === 'bot') replies.push(next);
    }
    if (isQuestion(replies)) out.push(m);
  });
  return out;
}

/** A tab's title: the citizen's first question, else their first words, else a plain label. */
export function chatTitle(messages, max = 28) {
  const first = questions(messages)[0]
    || [...messages].sort((a, b) => a.id - b.id).find((m) => m.sender === 'citizen' && !payloadIntent(m.text));
  const text = first ? first.text.trim() : t('staff_chat');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

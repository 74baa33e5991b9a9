// Desktop notifications (the Notification API), only after the agent turns them on with the button:
// a browser asks for permission once, and a page must not ask unprompted.
import { t } from './texts.js';

const STORAGE_KEY = 'kommunchatt.staff.notifications';
let button = null;

const supported = () => typeof window.Notification === 'function';
const enabled = () => supported() && Notification.permission === 'granted' && localStorage.getItem(STORAGE_KEY) === 'on';

function render() {
  if (!button) return;
  button.hidden = !supported();
  const blocked = supported() && Notification.permission === 'denied';
  button.textContent = t(enabled() ? 'staff_notifications_on' : blocked ? 'staff_notifications_blocked' : 'staff_notifications_off');
  button.setAttribute('aria-pressed', enabled() ? 'true' : 'false');
  button.disabled = blocked;
}

export function setupNotifications(node) {
  button = node;
  button.addEventListener('click', async () => {
    if (enabled()) {
      localStorage.setItem(STORAGE_KEY, 'off');
    } else if ((await Notification.requestPermission()) === 'granted') {
      localStorage.setItem(STORAGE_KEY, 'on');
    }
    render();
  });
  render();
}

/** Show a desktop notification unless the agent is looking at the console; `tag` replaces an older one. */
export function notify(title, body, tag) {
  if (!enabled() || (document.visibilityState === 'visible' && document.hasFocus())) return null;
  const note = new Notification(title, { body: String(body || '').slice(0, 160), tag });
  note.onclick = () => { window.focus(); note.close(); };
  window.__notifications = (window.__notifications || 0) + 1; // for the browser tests, as sound.js counts beeps
  return note;
}

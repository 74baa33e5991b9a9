// The console's WebSocket: reconnects by itself and resends replies that were not acknowledged
// (same `ref`, so the server never stores one twice). The supervisor page uses it for its own socket
// (`path`), which only listens. `?lang=` is the staff language, so the server's error frames speak it
// (a browser cannot set Accept-Language on a WebSocket).

import { language } from './texts.js';

export class ConsoleSocket {
  constructor(onEvent, onState, path = '/api/v1/agent/ws') {
    this.onEvent = onEvent;
    this.onState = onState;
    this.path = path;
    this.pending = new Map(); // ref -> frame waiting for its ack
    this.seq = 0;
    this.delay = 500;
    this.stopped = false;
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}${this.path}?lang=${encodeURIComponent(language())}`);
    this.ws = ws;
    ws.onopen = () => { this.delay = 500; this.onState(true); };
    ws.onmessage = (e) => {
      const event = JSON.parse(e.data);
      if (event.type === 'hello') for (const frame of this.pending.values()) ws.send(JSON.stringify(frame));
      if ((event.type === 'ack' || event.type === 'error') && event.ref) this.pending.delete(event.ref);
      this.onEvent(event);
    };
    ws.onclose = (e) => {
      this.onState(false);
      if (this.stopped) return;
      if (e.code === 4401) { this.onEvent({ type: 'logged_out' }); return; }
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  ref() {
    return `${Date.now().toString(36)}-${(this.seq++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  }

  /** Send a frame; `keep` frames (replies, notes) are resent after a reconnect until acknowledged. */
  send(frame, keep = false) {
    if (keep || frame.ref === undefined) frame.ref = frame.ref ?? this.ref();
    if (keep) this.pending.set(frame.ref, frame);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
    return frame.ref;
  }

  stop() { this.stopped = true; if (this.ws) this.ws.close(); }
}

// The audible alert: a short two-tone beep made with WebAudio (no sound file).

let context = null;

export function unlockAudio() {
  if (!context) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx) context = new Ctx();
  }
  if (context && context.state === 'suspended') context.resume();
}

export function beep() {
  if (!context) return false;
  const now = context.currentTime;
  for (const [offset, freq] of [[0, 880], [0.18, 1175]]) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.15);
    osc.connect(gain).connect(context.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.16);
  }
  window.__beeps = (window.__beeps || 0) + 1; // for the browser tests
  return true;
}

// Audible alerts with WebAudio (no sound files): FLASH and escalations must be heard, not only seen.
//
// Browsers start audio only after a person has interacted with the page, so the AudioContext is made on
// the first click or key press; an alert before that is shown but cannot be heard (the page says so).

/** @type {AudioContext | null} */
let context = null;
let enabled = readPreference();

function readPreference() {
  try {
    return localStorage.getItem("hotline.sound") !== "off";
  } catch {
    return true;
  }
}

function unlock() {
  if (context) return;
  try {
    context = new AudioContext();
  } catch {
    context = null;
  }
}

export function installSoundUnlock() {
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, unlock, { once: true, capture: true });
}

export function soundEnabled() {
  return enabled;
}

/** @param {boolean} on */
export function setSound(on) {
  enabled = on;
  try {
    localStorage.setItem("hotline.sound", on ? "on" : "off");
  } catch {
    // a browser that keeps no preferences still beeps for this page
  }
  if (on) unlock();
}

/** True when an alert can actually be heard now. */
export function soundReady() {
  return enabled && context !== null && context.state !== "closed";
}

/**
 * Beep `count` times.
 * @param {{count?: number, frequency?: number, lengthMs?: number}} [pattern]
 */
export function beep({ count = 3, frequency = 880, lengthMs = 160 } = {}) {
  if (!enabled || !context) return;
  // Counted on the page (data-alerts-sounded), so tests and curious people can see an alert sounded.
  document.documentElement.dataset.alertsSounded = String(Number(document.documentElement.dataset.alertsSounded ?? 0) + 1);
  if (context.state === "suspended") context.resume();
  const start = context.currentTime + 0.02;
  for (let i = 0; i < count; i++) {
    const at = start + (i * lengthMs * 1.8) / 1000;
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = "square";
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.2, at + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + lengthMs / 1000);
    osc.connect(gain).connect(context.destination);
    osc.start(at);
    osc.stop(at + lengthMs / 1000 + 0.02);
  }
}

export const flashBeep = () => beep({ count: 3, frequency: 880 });
export const escalationBeep = () => beep({ count: 2, frequency: 620, lengthMs: 260 });

// The incoming-call ring: generated locally with WebAudio (no sound files, nothing fetched).
// A soft two-tone chime, repeated every 2.5 s until stopped.

export class Ringer {
  constructor() {
    /** @type {AudioContext | null} */ this.ctx = null;
    /** @type {number | undefined} */ this.timer = undefined;
    this.ringing = false;
  }

  /** Call from a user gesture (e.g. “开始接件”) so that the browser allows audio later. */
  unlock() {
    if (!this.ctx) this.ctx = new AudioContext();
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
  }

  start() {
    if (this.ringing) return;
    this.ringing = true;
    this.unlock();
    const play = () => {
      const ctx = this.ctx;
      if (!ctx || !this.ringing) return;
      const t0 = ctx.currentTime + 0.05;
      [[880, 0], [660, 0.35], [880, 0.9], [660, 1.25]].forEach(([f, dt]) => this.tone(ctx, f, t0 + dt, 0.3));
    };
    play();
    this.timer = window.setInterval(play, 2500);
  }

  /** @param {AudioContext} ctx @param {number} freq @param {number} at @param {number} len */
  tone(ctx, freq, at, len) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.001, at + len);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + len + 0.05);
  }

  stop() {
    this.ringing = false;
    clearInterval(this.timer);
  }
}

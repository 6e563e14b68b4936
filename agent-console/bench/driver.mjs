// Browser side of `bangban-bench call-setup` and `terminal-footprint`: the real console (operator)
// in Chromium, and optionally a Chromium page playing the terminal, driven by playwright-core.
// The Rust bench starts this script, writes one JSON command per line on stdin and reads one
// JSON reply per line on stdout ({ ok: true, ... } or { ok: false, error }). Nothing is fetched
// from the network: pages come from the bench's own signaling-server on 127.0.0.1.
//
// Times are wall-clock milliseconds (performance.timeOrigin + performance.now() in the pages),
// so they compare with the Rust side's SystemTime on the same machine.
//
// Commands:
//   { cmd: 'setup', base, user, password }        launch the operator browser, log in, go available
//   { cmd: 'terminal', token, itemId, width, height, fps }
//                                                  launch (once) the terminal browser, open a fresh
//                                                  terminal page that takes a ticket; replies when issued
//   { cmd: 'accept' }                              wait for the ring, click 接听; reply with the click time
//   { cmd: 'console_times' }                       wait for connected + first remote video frame (console)
//   { cmd: 'terminal_times' }                      the same in the terminal page
//   { cmd: 'terminal_frames', tracks }             wait until that many remote video tracks showed a frame
//   { cmd: 'share' }                               the operator shares a screen (this tab)
//   { cmd: 'hangup' }                              end the call and submit the wrap-up
//   { cmd: 'supervise', user, password }           a supervisor (a second page of the operator browser,
//                                                  signed in once) clicks 监听 on the live call; replies
//                                                  with the click and the first frame of each side
//   { cmd: 'unsupervise' }                         the supervisor clicks 退出监听
//   { cmd: 'pids' }                                browser process ids { operator, terminal }
//   { cmd: 'quit' }
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { terminal } from '../tests/terminal.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT = 30_000;
const ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--auto-accept-this-tab-capture', '--autoplay-policy=no-user-gesture-required',
];

// Installed in every page before its scripts: records when each RTCPeerConnection reached
// `connected` and when the first remote video frame was presented (requestVideoFrameCallback on
// a hidden <video> per remote video track), and when 接听 was clicked.
function instrument() {
  const now = () => performance.timeOrigin + performance.now();
  const M = (window.__bench = { pcs: [], accept: null, connected: null, firstFrame: null, tracks: 0, presented: 0 });
  const Orig = window.RTCPeerConnection;
  function Patched(...args) {
    const pc = new Orig(...args);
    M.pcs.push(pc);
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'connected' && M.connected == null) M.connected = now();
    });
    pc.addEventListener('track', (e) => {
      if (e.track.kind !== 'video') return;
      M.tracks += 1;
      const v = document.createElement('video');
      v.muted = true;
      v.autoplay = true;
      v.playsInline = true;
      v.style.cssText = 'position:fixed;left:0;top:0;width:64px;height:48px;opacity:0.01;pointer-events:none';
      v.srcObject = new MediaStream([e.track]);
      const attach = () => document.body.appendChild(v);
      if (document.body) attach(); else addEventListener('DOMContentLoaded', attach);
      v.requestVideoFrameCallback((_t, meta) => {
        const at = performance.timeOrigin + meta.presentationTime;
        if (M.firstFrame == null || at < M.firstFrame) M.firstFrame = at;
        M.presented += 1;
      });
      v.play().catch(() => {});
    });
    return pc;
  }
  Patched.prototype = Orig.prototype;
  Object.setPrototypeOf(Patched, Orig);
  window.RTCPeerConnection = /** @type {any} */ (Patched);
  document.addEventListener('click', (e) => {
    const t = /** @type {Element} */ (e.target);
    if (t && t.closest && (t.closest('#accept') || t.closest('.monitor-btn')) && M.accept == null) M.accept = performance.timeOrigin + e.timeStamp;
  }, true);
}

/** @type {import('playwright-core').Browser | null} */ let opBrowser = null;
/** @type {import('playwright-core').Browser | null} */ let termBrowser = null;
/** @type {import('playwright-core').Page | null} */ let opPage = null;
/** @type {import('playwright-core').Page | null} */ let termPage = null;
/** @type {import('playwright-core').Page | null} */ let supPage = null;
let base = '';

/** @param {string} role */
async function launch(role) {
  // The role flag is ignored by Chromium; it lets the bench find each browser's process tree.
  return chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, `--bangban-bench-role=${role}`], ignoreDefaultArgs: ['--headless'] });
}

/** @param {import('playwright-core').Browser} browser @param {{ width: number, height: number }} viewport */
async function newPage(browser, viewport) {
  const ctx = await browser.newContext({ viewport, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  await ctx.grantPermissions(['camera', 'microphone'], { origin: base });
  await ctx.addInitScript(instrument);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => process.stderr.write(`pageerror: ${e.message}\n`));
  return page;
}

/** @param {import('playwright-core').Page} page */
async function times(page) {
  await page.waitForFunction(() => {
    const M = /** @type {any} */ (window).__bench;
    return M && M.connected != null && M.firstFrame != null;
  }, null, { timeout: WAIT, polling: 5 });
  return page.evaluate(() => {
    const M = /** @type {any} */ (window).__bench;
    return { connected: M.connected, firstFrame: M.firstFrame, accept: M.accept, tracks: M.tracks };
  });
}

const handlers = {
  async setup(/** @type {any} */ c) {
    base = c.base;
    opBrowser = await launch('operator');
    opPage = await newPage(opBrowser, { width: 1366, height: 768 });
    await opPage.goto(`${base}/`);
    // The workstation's video codec setting (视频编码), as the console keeps it.
    await opPage.evaluate((codec) => localStorage.setItem('bangban.videoCodec', codec), c.codec || 'vp8');
    await opPage.fill('input[name=username]', c.user);
    await opPage.fill('input[name=password]', c.password);
    await opPage.click('button[type=submit]');
    await opPage.waitForSelector('#logout');
    await opPage.waitForSelector('#op-state[data-state=away]');
    await opPage.click('#availability');
    await opPage.waitForSelector('#op-state[data-state=available]');
    return {};
  },
  async terminal(/** @type {any} */ c) {
    if (!termBrowser) termBrowser = await launch('terminal');
    if (termPage) await termPage.context().close();
    termPage = await newPage(termBrowser, { width: 800, height: 600 });
    await termPage.goto(`${base}/healthz`);
    // The same scripted terminal the console tests use, showing the remote tracks as a screen would.
    await termPage.evaluate(terminal, { token: c.token, itemId: c.itemId, width: c.width, height: c.height, fps: c.fps, show: true });
    await termPage.waitForFunction(() => /** @type {any} */ (window).term.ticket != null, null, { timeout: WAIT });
    return {};
  },
  async accept() {
    const page = /** @type {import('playwright-core').Page} */ (opPage);
    // A fresh measurement per call: the console page lives across calls.
    await page.evaluate(() => { const M = /** @type {any} */ (window).__bench; M.accept = null; M.connected = null; M.firstFrame = null; M.tracks = 0; M.presented = 0; });
    await page.waitForSelector('#ringing #accept', { timeout: WAIT });
    await page.click('#accept');
    await page.waitForFunction(() => /** @type {any} */ (window).__bench.accept != null, null, { timeout: WAIT });
    return { accept: await page.evaluate(() => /** @type {any} */ (window).__bench.accept) };
  },
  async console_times() { return times(/** @type {any} */ (opPage)); },
  async terminal_times() { return times(/** @type {any} */ (termPage)); },
  async terminal_frames(/** @type {any} */ c) {
    const page = /** @type {import('playwright-core').Page} */ (termPage);
    await page.waitForFunction((n) => /** @type {any} */ (window).__bench.presented >= n, c.tracks, { timeout: WAIT });
    return {};
  },
  async share() {
    const page = /** @type {import('playwright-core').Page} */ (opPage);
    await page.click('#share');
    await page.waitForSelector('#share[aria-pressed=true]', { timeout: WAIT });
    return {};
  },
  async hangup() {
    const page = /** @type {import('playwright-core').Page} */ (opPage);
    await page.click('#end-call');
    await page.waitForSelector('#wrap-up', { timeout: WAIT });
    await page.check('input[name=outcome][value=completed]');
    await page.click('#wrap-submit');
    await page.waitForSelector('#op-state[data-state=available]', { timeout: WAIT });
    if (termPage) {
      await termPage.waitForFunction(() => /** @type {any} */ (window).term.rated === true, null, { timeout: WAIT });
      await termPage.context().close();
      termPage = null;
    }
    return {};
  },
  async supervise(/** @type {any} */ c) {
    if (!supPage) {
      supPage = await newPage(/** @type {any} */ (opBrowser), { width: 1366, height: 900 });
      await supPage.goto(`${base}/`);
      await supPage.fill('input[name=username]', c.user);
      await supPage.fill('input[name=password]', c.password);
      await supPage.click('button[type=submit]');
      await supPage.waitForSelector('#logout');
    }
    const page = supPage;
    await page.evaluate(() => { const M = /** @type {any} */ (window).__bench; M.accept = null; M.connected = null; M.firstFrame = null; M.tracks = 0; M.presented = 0; M.frames = {}; });
    await page.waitForSelector('#board-operators .monitor-btn', { timeout: WAIT });
    await page.click('#board-operators .monitor-btn');
    // Both sides' video presented (one track from the terminal, one from the operator).
    await page.waitForFunction(() => { const M = /** @type {any} */ (window).__bench; return M.tracks >= 2 && M.presented >= 2 && M.accept != null; }, null, { timeout: WAIT, polling: 5 });
    return page.evaluate(() => { const M = /** @type {any} */ (window).__bench; return { click: M.accept, firstFrame: M.firstFrame, connected: M.connected }; });
  },
  async unsupervise() {
    const page = /** @type {import('playwright-core').Page} */ (supPage);
    await page.click('#monitor-leave');
    await page.waitForSelector('#monitor', { state: 'hidden', timeout: WAIT });
    return {};
  },
  async pids() {
    // playwright-core does not expose the browser's pid: the bench finds the processes by the
    // role flag instead. This reply only confirms which browsers are up.
    return { operator: !!opBrowser, terminal: !!termBrowser };
  },
  async quit() {
    await opBrowser?.close();
    await termBrowser?.close();
    return {};
  },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  let cmd = '';
  try {
    const c = JSON.parse(line);
    cmd = c.cmd;
    const h = /** @type {any} */ (handlers)[cmd];
    if (!h) throw new Error(`unknown command ${cmd}`);
    reply = { ok: true, ...(await h(c)) };
  } catch (e) {
    reply = { ok: false, error: String(/** @type {any} */ (e)?.stack || e) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  if (cmd === 'quit') break;
}
process.exit(0);

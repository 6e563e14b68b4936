// End-to-end with the REAL terminal: the signaling-server (--demo), the Rust endpoint-client
// (screens mode on a private two-screen Xvfb, GStreamer test sources, SANE `test` scanner, the
// CUPS cups-pdf queue) and two
// Chromium pages: the operator's console and the terminal's kiosk page (touch screen).
// Every screen is screenshotted into test-results/screenshots/.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, exited, freePort } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const consoleDir = resolve(here, '..');
const repo = resolve(consoleDir, '..');
const shots = join(consoleDir, 'test-results', 'screenshots');
const PASSWORD = 'bangban-demo';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
const IDLE_SECS = 10;

/** @type {import('node:child_process').ChildProcess} */ let server;
/** @type {import('node:child_process').ChildProcess} */ let endpoint;
/** The kiosk's two monitors: a private Xvfb with two 640×480 screens. @type {import('node:child_process').ChildProcess} */ let xvfb;
let xdisplay = '';
/** @type {import('playwright-core').Browser} */ let browser;
let base = '';
let kiosk = '';
let dir = '';
let log = '';
/** The terminal's own stderr (the last 64 KiB), for the report when it dies. */
let endpointErr = '';
/** How the terminal ended, when it ended before `after` stopped it (`exit code N` / `signal S`). */
let endpointDied = '';
let stopping = false;

/** Why the terminal is gone, with the last lines it wrote: thrown by `until` at once. */
function endpointDeath() {
  const tail = endpointErr.split('\n').slice(-40).join('\n');
  return `the terminal died (${endpointDied})\n--- terminal stderr (last lines) ---\n${tail}`;
}

/** Polls `check` until it returns a truthy value (a condition, not a fixed sleep). */
async function until(what, check, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => null);
    if (v) return v;
    if (endpointDied) throw new Error(`${what}: ${endpointDeath()}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n--- log ---\n${log.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** @param {string} path @param {any} [body] @param {string} [token] */
async function rest(path, body, token) {
  const res = await fetch(base + path, {
    method: body ? 'POST' : 'GET',
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const status = async () => (await fetch(`${kiosk}/api/status`)).json();

/** @param {import('playwright-core').Page} page @param {string} name */
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`) });

/**
 * What the kiosk's monitor `screen` shows: saved as `<name>.png` beside the screenshots and
 * returned as RGB pixels (640×480).
 * @param {number} screen @param {string} name
 */
function grabKioskScreen(screen, name) {
  const src = ['-q', 'ximagesrc', `display-name=${xdisplay}.${screen}`, 'num-buffers=1', 'show-pointer=false', '!', 'videoconvert', '!'];
  const png = spawnSync('gst-launch-1.0', [...src, 'pngenc', '!', 'filesink', `location=${join(shots, `${name}.png`)}`], { encoding: 'utf8' });
  assert.equal(png.status, 0, `ximagesrc: ${png.stderr}`);
  const raw = join(dir, `${name}.rgb`);
  const r = spawnSync('gst-launch-1.0', [...src, 'video/x-raw,format=RGB', '!', 'filesink', `location=${raw}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `ximagesrc: ${r.stderr}`);
  const rgb = readFileSync(raw);
  assert.equal(rgb.length, 640 * 480 * 3);
  return rgb;
}

/** Share of pixels in columns [x0, x1) of a 640×480 RGB frame that are not black. @param {Buffer} rgb @param {number} x0 @param {number} x1 */
function litShare(rgb, x0, x1) {
  let lit = 0;
  for (let y = 0; y < 480; y++) {
    for (let x = x0; x < x1; x++) {
      const i = (y * 640 + x) * 3;
      if (rgb[i] + rgb[i + 1] + rgb[i + 2] > 30) lit++;
    }
  }
  return lit / ((x1 - x0) * 480);
}

/** A one-page PDF form (A4, text), with a correct cross-reference table. */
function pdfForm() {
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    null,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  const stream = 'BT /F1 24 Tf 72 760 Td (Bangban application form - please sign) Tj ET';
  objs[3] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
  let out = '%PDF-1.4\n';
  const offsets = [];
  objs.forEach((o, i) => { offsets.push(out.length); out += `${i + 1} 0 obj\n${o}\nendobj\n`; });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return out;
}

/** @param {{ width: number, height: number }} viewport @param {boolean} [touch] */
async function newPage(viewport, touch = false) {
  const ctx = await browser.newContext({ viewport, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', hasTouch: touch });
  await ctx.grantPermissions(['camera', 'microphone'], { origin: base });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('pageerror:', e.message));
  page.on('dialog', (d) => d.accept());
  return page;
}

/** A demo account (operator1 unless named) signs in on the console's login page. @param {import('playwright-core').Page} page */
async function signIn(page, user = 'operator1') {
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
}

/** A console page signed in as `user`. @param {string} user @param {{ width: number, height: number }} [viewport] */
async function consoleAs(user, viewport = { width: 1366, height: 768 }) {
  const page = await newPage(viewport);
  await page.goto(`${base}/`);
  await signIn(page, user);
  return page;
}

/** The operator, away or available, becomes available. @param {import('playwright-core').Page} op */
async function makeAvailable(op) {
  await op.waitForSelector('#op-state[data-state=away], #op-state[data-state=available]');
  if (await op.locator('#op-state[data-state=away]').count()) await op.click('#availability');
  await op.waitForSelector('#op-state[data-state=available]');
}

/** The operator opens 邀请协办 once their board lists the colleague (operator2, 刘受理员) as signed in. @param {import('playwright-core').Page} op */
async function openInvitation(op) {
  await op.waitForFunction(() => /** @type {any} */ (window).bangban.board()?.operators?.some((/** @type {any} */ o) => o.name === '刘受理员' && o.state === 'away'), null, { timeout: 30_000 });
  await op.click('#invite');
  await op.waitForSelector('dialog select[name=operator_id] option', { state: 'attached' });
}

/** The operator answers the ringing call and decodes the terminal's camera. @param {import('playwright-core').Page} op */
async function answer(op) {
  await op.waitForSelector('#ringing #accept');
  await op.click('#accept');
  await op.waitForSelector('#call-stage');
  await op.waitForFunction(async () => (await /** @type {any} */ (window).bangban.framesDecoded()) > 10, null, { timeout: 30_000 });
}

/** A resident takes a ticket for an item operator1 serves, through the kiosk's API (as its touch screen does). */
async function kioskTicket() {
  const login = await rest('/api/v1/auth/login', { username: 'operator1', password: PASSWORD });
  const items = await (await fetch(`${kiosk}/api/items`)).json();
  const item = items.find((/** @type {any} */ i) => i.active && i.remote_allowed && login.user.skills.includes(i.line_id));
  assert.ok(item, 'an item operator1 serves');
  const res = await fetch(`${kiosk}/api/ticket`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ item_id: item.id }) });
  assert.ok(res.ok, `ticket: ${res.status}`);
}

/** The operator ends the call and wraps up; the resident rates at the kiosk, which goes back to idle. @param {import('playwright-core').Page} op */
async function endAndRate(op) {
  await op.click('#end-call');
  await op.waitForSelector('#wrap-up');
  await op.check('input[name=outcome][value=completed]');
  await op.click('#wrap-submit');
  await until('rating screen', async () => (await status()).phase === 'rating');
  const rated = await fetch(`${kiosk}/api/rate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ level: 'satisfied' }) });
  assert.ok(rated.ok, `rate: ${rated.status}`);
  await until('kiosk idle', async () => (await status()).phase === 'idle');
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  const r = spawnSync('cargo', ['build', '-p', 'signaling-server', '-p', 'endpoint-client'], { cwd: repo, stdio: 'inherit' });
  assert.equal(r.status, 0, 'cargo build failed');
  for (const b of ['signaling-server', 'endpoint-client']) assert.ok(existsSync(join(target, 'debug', b)), `no ${b} binary`);
  dir = mkdtempSync(join(tmpdir(), 'bangban-real-terminal-'));
  // Printer (CUPS + cups-pdf queue) and scanner (SANE test backend) as the terminal's e2e tests use them.
  const cups = spawnSync(join(repo, 'scripts', 'cups-setup.sh'), [], { encoding: 'utf8' });
  assert.equal(cups.status, 0, `cups-setup.sh: ${cups.stderr}`);
  const sane = join(dir, 'sane');
  const sr = spawnSync(join(repo, 'scripts', 'sane-test-setup.sh'), [sane], { encoding: 'utf8' });
  assert.equal(sr.status, 0, `sane-test-setup.sh: ${sr.stderr}`);

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const data = join(dir, 'server');
  mkdirSync(data);
  server = spawn(join(target, 'debug', 'signaling-server'), ['--demo', '--data-dir', data, '--listen', `127.0.0.1:${port}`], {
    cwd: data,
    env: { ...process.env, BANGBAN_CONSOLE_DIR: join(consoleDir, 'dist'), BANGBAN_LOG_FORMAT: 'json', RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (d) => { log += d; });
  server.stderr?.on('data', (d) => { log += d; });
  await until('server ready', async () => (await fetch(`${base}/readyz`)).ok, 60_000);

  // The kiosk's two monitors (two X screens); `-displayfd 1`: Xvfb prints its display number
  // once it is ready.
  xvfb = spawn('Xvfb', ['-displayfd', '1', '-nolisten', 'tcp', '-screen', '0', '640x480x24', '-screen', '1', '640x480x24'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let xout = '';
  xvfb.stdout?.on('data', (d) => { xout += d; });
  xdisplay = await until('Xvfb ready', async () => (/^\d+\n/.test(xout) ? `:${xout.trim()}` : null));

  // The demo terminal of 华山居委会 (the point staff1 belongs to) enrolls and runs.
  const code = readFileSync(join(data, 'demo-enrollment.txt'), 'utf8').trim().split('\n')[0].split(' ')[1];
  const cfg = join(dir, 'endpoint.toml');
  writeFileSync(cfg, [
    `server_url = "${base}"`, `credential_file = "${join(dir, 'credential')}"`, `state_dir = "${join(dir, 'state')}"`,
    '[media]', 'video_source = "test"', 'audio_source = "test"', 'width = 640', 'height = 480', 'fps = 15', 'video_bitrate_kbps = 500',
    // The dual-screen kiosk as installed: the call's first screen (operator, a colleague beside) on
    // the first monitor, the shared screen on the second; no speakers here.
    '[display]', 'mode = "screens"', `camera_sink = "ximagesink display=${xdisplay}.0 sync=false"`, 'camera_width = 640', 'camera_height = 480',
    `screen_sink = "ximagesink display=${xdisplay}.1 sync=false"`, 'audio_sink = "fakesink sync=false"',
    '[webrtc]', 'udp_addrs = ["127.0.0.1:0"]', 'use_server_ice = false',
    // Untouched screens return to welcome after 10 s here (90 s by default).
    '[kiosk]', 'listen = "127.0.0.1:0"', `screen_idle_secs = ${IDLE_SECS}`,
    '[printer]', 'uri = "http://127.0.0.1:631/printers/bangban-pdf"', 'poll_ms = 100',
    '[scanner]', 'device = "test"', 'resolution_dpi = 100',
  ].join('\n'));
  const bin = join(target, 'debug', 'endpoint-client');
  const env = { ...process.env, SANE_CONFIG_DIR: sane, RUST_LOG: 'info,webrtc=warn,rtc=warn' };
  const en = spawnSync(bin, ['--config', cfg, 'enroll', '--code', code], { env, encoding: 'utf8' });
  assert.equal(en.status, 0, `enroll: ${en.stderr}`);
  endpoint = spawn(bin, ['--config', cfg, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  endpoint.stdout?.on('data', (d) => { out += d; });
  // Its whole stderr is also kept beside the screenshots (test-results/real-terminal-endpoint.log).
  const errFile = join(shots, '..', 'real-terminal-endpoint.log');
  writeFileSync(errFile, '');
  endpoint.stderr?.on('data', (d) => {
    log += d;
    endpointErr = (endpointErr + d).slice(-65536);
    appendFileSync(errFile, d);
  });
  // A terminal that dies during the suite says how (exit code or signal) and what it last
  // wrote, in the test log at once — not only as "connection refused" from its kiosk API.
  endpoint.once('exit', (code, signal) => {
    endpointDied = signal ? `signal ${signal}` : `exit code ${code}`;
    if (!stopping) console.error(endpointDeath());
  });
  const addr = await until('endpoint ready', async () => {
    for (const line of out.split('\n')) {
      try { const v = JSON.parse(line); if (v.event === 'ready') return v.kiosk; } catch { /* partial line */ }
    }
    return null;
  });
  kiosk = `http://${addr}`;
  await until('terminal connected', async () => (await status()).connected);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    ignoreDefaultArgs: ['--headless'],
  });
});



after(async () => {
  stopping = true;
  await browser?.close();
  endpoint?.kill('SIGTERM');
  server?.kill('SIGTERM');
  await Promise.all([exited(endpoint), exited(server)]);
  xvfb?.kill('SIGTERM');
  await exited(xvfb);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a call with the real terminal', () => {
  test('staff signs in at the kiosk; the operator takes the call, sees video, shares the screen, asks for a scan, prints, wraps up; the resident rates', async () => {
    const op = await newPage({ width: 1366, height: 768 });
    await op.goto(`${base}/`);
    await signIn(op);
    await op.waitForSelector('#op-state[data-state=away]');
    await op.click('#availability');
    await op.waitForSelector('#op-state[data-state=available]');

    // The kiosk (touch screen, 1920×1080).
    const k = await newPage({ width: 1920, height: 1080 }, true);
    await k.goto(kiosk);
    await k.waitForSelector('#idle.on #start');
    await k.waitForSelector('#net:not(.down)');
    await shot(k, '30-kiosk-idle');
    const startBox = await k.locator('#start').boundingBox();
    assert.ok(startBox && startBox.height >= 150 && startBox.width >= 400, `a big start button: ${JSON.stringify(startBox)}`);

    // Committee staff sign in (a wrong password first: a clear message, nothing else happens).
    await k.click('#staff-in');
    await k.fill('#su', 'staff1');
    await k.fill('#sp', 'wrong-password');
    await k.click('#staff-submit');
    await k.waitForSelector('#staff-error:has-text("用户名或密码不正确")');
    await shot(k, '31-kiosk-staff-login-error');
    await k.fill('#sp', PASSWORD);
    await k.click('#staff-submit');
    await k.waitForSelector('#staffbar:not([hidden]) #staffname:has-text("周社工")');

    // Start → item → agree (the resident's details entered by staff on the privacy screen).
    const login = await rest('/api/v1/auth/login', { username: 'operator1', password: PASSWORD });
    await k.click('#start');
    await k.waitForSelector('#items.on #list button.item');
    await shot(k, '32-kiosk-items');
    const items = await (await fetch(`${kiosk}/api/items`)).json();
    const item = items.find((/** @type {any} */ i) => i.active && login.user.skills.includes(i.line_id)
      && i.materials?.some((/** @type {any} */ m) => m.transfer === 'scan'));
    assert.ok(item, 'an item operator1 serves with a material scanned at the point');
    await k.click(`#list button[data-id="${item.id}"]`);
    await k.waitForSelector('#privacy.on #resident:not([hidden])');
    await k.fill('#rname', '张三');
    await k.fill('#rid', '11010519491231002X');
    await k.click('#p-elderly');
    await shot(k, '33-kiosk-privacy-staff');
    await k.click('#agree');
    await k.waitForSelector('#waiting.on #number:not(:empty)');
    const number = (await k.textContent('#number'))?.trim();
    assert.match(number || '', /^[A-Z]-\d{4}$/);

    // Staff record the resident's phone number for the ticket: the consent text in large type,
    // confirmed on screen before it is saved; the number is stored at the server, shown masked.
    await k.click('#contact-in');
    await k.waitForSelector(`#contact.on #contact-number:has-text("${number}")`);
    await k.fill('#cphone', '1391234');
    await k.click('#contact-save');
    await k.waitForSelector('#contact-error:has-text("请输入正确的手机号码")');
    await k.fill('#cphone', '13912345678');
    await k.click('#contact-save');
    await k.waitForSelector('#contact-error:has-text("同意")');
    await k.click('#consent-yes');
    await shot(k, '34a-kiosk-contact-consent');
    await k.click('#contact-save');
    await k.waitForSelector('#waiting.on');
    await k.waitForSelector('#staffbar #contact-done:not([hidden]):has-text("139****5678")');
    assert.equal(await k.isVisible('#contact-in'), false, 'recorded once per ticket');
    await shot(k, '34b-kiosk-contact-recorded');
    const contactAdmin = await rest('/api/v1/auth/login', { username: 'admin', password: PASSWORD });
    const contactAudit = await rest('/api/v1/audit?action=ticket.contact', undefined, contactAdmin.access_token);
    assert.match(JSON.stringify(contactAudit), /周社工/, 'recorded by the staff member, audited');
    assert.doesNotMatch(JSON.stringify(contactAudit), /13912345678/, 'no number in the audit log');

    // The operator's console rings; one click accepts.
    await op.waitForSelector('#ringing #accept');
    await shot(k, '34-kiosk-waiting');
    await op.click('#accept');
    await op.waitForSelector('#call-stage');
    await k.waitForSelector('#in_call.on');
    // Decoded resident video from the Rust terminal in Chromium, and the operator's camera decoded by the terminal.
    await op.waitForFunction(async () => (await /** @type {any} */ (window).bangban.framesDecoded()) > 0, null, { timeout: 30_000 });
    await until('terminal decodes the operator camera', async () => {
      const s = await status();
      return s.call.remote.some((/** @type {any} */ r) => r.kind === 'camera' && r.decoded > 0);
    });
    // Ticket details: masked ID, who helped, and an audited reveal.
    await op.waitForSelector('#id-number:has-text("1101**********002X")');
    await op.waitForSelector('#assisted-by:has-text("周社工")');
    await op.click('#reveal');
    await op.waitForSelector('#id-number:has-text("11010519491231002X")');
    const admin = await rest('/api/v1/auth/login', { username: 'admin', password: PASSWORD });
    const audit = await rest('/api/v1/audit?limit=50', undefined, admin.access_token);
    const entries = Array.isArray(audit) ? audit : audit.entries || audit.items || [];
    assert.ok(JSON.stringify(entries).includes('reveal'), 'the reveal is in the audit log');

    // Screen share: the terminal receives it as a separate track and decodes it.
    await op.click('#share');
    await op.waitForSelector('#share[aria-pressed=true]');
    await until('terminal decodes the shared screen', async () => {
      const s = await status();
      return s.call.remote.some((/** @type {any} */ r) => r.kind === 'screen' && r.decoded > 0);
    });
    await shot(op, '35-operator-real-terminal-sharing');
    // The resident's controls: mute stops the microphone's packets; the volume goes up and down.
    await k.click('#mute');
    await k.waitForSelector('#mute[aria-pressed=true]');
    // Observed over one second, in which an open microphone sends ~50 Opus frames.
    const sentMuted = (await status()).call.sent_audio_frames;
    const mutedAt = Date.now();
    const during = await until('a one-second window', async () => (Date.now() - mutedAt >= 1000 ? status() : null));
    assert.ok(during.call.mic_muted, 'the kiosk reports the muted microphone');
    assert.ok(during.call.sent_audio_frames - sentMuted <= 2, `no microphone frames while muted: ${during.call.sent_audio_frames - sentMuted}`);
    await k.click('#mute');
    await until('unmuted audio flows', async () => (await status()).call.sent_audio_frames > sentMuted + 10);
    await k.click('#vol-up');
    await k.waitForSelector('#vol:has-text("120%")');
    await k.click('#vol-down');
    await k.click('#vol-down');
    await k.waitForSelector('#vol:has-text("80%")');
    await shot(k, '36-kiosk-in-call');

    // A network blip on the console's socket: it reconnects by itself, resumes, and the call goes on.
    const before = await op.evaluate(async () => /** @type {any} */ (window).bangban.framesDecoded());
    await op.evaluate(() => /** @type {any} */ (window).bangban.dropSocket());
    await op.waitForFunction(() => /** @type {any} */ (window).bangban.socketState() === 'reconnecting' || /** @type {any} */ (window).bangban.socketState() === 'connecting', null, { timeout: 5_000 }).catch(() => {});
    await op.waitForFunction(() => /** @type {any} */ (window).bangban.socketState() === 'open', null, { timeout: 30_000 });
    await op.waitForFunction(async (n) => (await /** @type {any} */ (window).bangban.framesDecoded()) > n + 10, before, { timeout: 20_000 });
    assert.equal((await status()).phase, 'in_call', 'the terminal stayed in the call');

    // Ask for a scan of the item's material: the kiosk shows it in large type; one touch scans.
    const slot = item.materials.find((/** @type {any} */ m) => m.transfer === 'scan');
    await op.click(`.ask-scan[data-slot="${slot.id}"]`);
    await k.waitForSelector(`#scan-request:has-text("${slot.name}")`);
    await shot(k, '37-kiosk-scan-request');
    await k.click('#scan-now');
    const mat = op.locator('#materials li.mat', { hasText: slot.name });
    await mat.waitFor({ timeout: 30_000 });
    await mat.locator('img').waitFor({ timeout: 15_000 });
    await mat.getByRole('button', { name: '通过' }).click();
    await op.waitForSelector('#checklist li.done');
    await shot(op, '38-operator-scan-received');

    // Print a PDF form at the point and watch it complete.
    const pdfPath = join(dir, '申请表.pdf');
    writeFileSync(pdfPath, pdfForm(), 'latin1');
    await op.setInputFiles('#print-file', pdfPath);
    await op.click('#print button.primary');
    await op.waitForSelector('#print .print-list .ps-completed', { timeout: 60_000 });
    await k.waitForSelector('#prints:has-text("已打印")');
    await shot(op, '39-operator-printed');

    // End, wrap up; the kiosk asks for a rating; the operator sees it in today's history.
    await op.click('#end-call');
    await op.waitForSelector('#wrap-up');
    await op.check('input[name=outcome][value=completed]');
    await op.fill('#wrap-notes', '材料齐全，当场办结。');
    await op.click('#wrap-submit');
    await k.waitForSelector('#rating.on button[data-level=satisfied]');
    await shot(k, '40-kiosk-rating');
    await k.fill('#comment', '服务很好');
    await k.click('#rating button[data-level=satisfied]');
    await k.waitForSelector('#idle.on');
    await op.waitForSelector(`#history li:has-text("${number}") .rt-satisfied`, { timeout: 40_000 });
    await shot(op, '41-operator-history-rated');

    // Staff sign out; a resident alone reaches the queue in three touches and cancels.
    await k.click('#staff-out');
    await k.waitForSelector('#staffbar[hidden]', { state: 'attached' });
    let touches = 0;
    const touch = async (/** @type {string} */ sel) => { touches += 1; await k.tap(sel); };
    await touch('#start');
    await k.waitForSelector('#items.on #list button.item');
    await touch(`#list button[data-id="${item.id}"]`);
    await k.waitForSelector('#privacy.on');
    assert.equal(await k.isVisible('#resident'), false, 'no personal-data form without staff');
    assert.equal(await k.isVisible('#contact-in'), false, 'no phone number without staff');
    await touch('#agree');
    await k.waitForSelector('#waiting.on #number:not(:empty)');
    assert.ok(touches <= 3, `idle → waiting in ${touches} touches`);
    // The next resident does not see the last one's notices (the thanks for the rating).
    await until('no notices of the last resident', async () => (await status()).notices.length === 0);
    assert.doesNotMatch(await k.textContent('#notices') || '', /感谢您的评价/);
    // The operator is rung for it; the resident changes their mind and the ring stops.
    await op.waitForSelector('#ringing #accept');
    await k.click('#cancel');
    await k.waitForSelector('#idle.on');
    await op.waitForSelector('#ringing', { state: 'detached' });
    await op.context().close();
    await k.context().close();
  });

  test('a supervisor monitors a call from the board, whispers, barges in and ends it; each side gets only what the mode allows', async () => {
    const op = await consoleAs('operator1');
    await makeAvailable(op);
    await kioskTicket();
    await answer(op);

    // The supervisor finds the call on the board and clicks 监听.
    const sup = await consoleAs('supervisor', { width: 1366, height: 900 });
    await sup.waitForSelector('#board-operators .monitor-btn');
    const clicked = Date.now();
    await sup.click('#board-operators .monitor-btn');
    await sup.waitForSelector('#monitor .mode-monitor[aria-pressed=true]');
    /** @returns {Promise<any>} */
    const seen = () => sup.evaluate(async () => /** @type {any} */ (window).bangban.monitorInbound());
    await until('the supervisor sees and hears both sides', async () => {
      const m = await seen();
      return m.terminal?.frames > 0 && m.operator?.frames > 0 ? m : null;
    });
    console.log(`supervisor click → first decoded frames of both sides: ${Date.now() - clicked} ms`);
    await until('both sides decoded and audible', async () => {
      const m = await seen();
      return m.terminal.frames > 10 && m.operator.frames > 10 && m.terminal.audioSamples > 0 && m.operator.audioSamples > 0;
    });
    // The operator is told; nobody receives anything from the supervisor.
    await op.waitForFunction(() => document.querySelector('#supervisor-badge')?.textContent?.includes('正在监听'));
    /** @returns {Promise<any>} */
    const opHears = () => op.evaluate(async () => /** @type {any} */ (window).bangban.supervisorInbound());
    assert.equal((await opHears()).audioBytes, 0, 'monitoring: the operator receives nothing from the supervisor');
    const fromSup = async () => (await status()).call.remote.filter((/** @type {any} */ r) => r.from_guest);
    assert.ok((await status()).call.extra_peers >= 1, 'the terminal has a connection to the supervisor');
    assert.equal((await fromSup()).reduce((/** @type {number} */ n, /** @type {any} */ r) => n + r.decoded, 0), 0, 'monitoring: the terminal decodes nothing of the supervisor');
    await shot(sup, '44-supervisor-monitor');
    await shot(op, '45-operator-told-of-monitor');

    // Whisper: the operator hears the supervisor, the resident does not.
    await sup.click('#monitor .mode-whisper');
    await until('the operator hears the whisper', async () => (await opHears()).audioSamples > 0);
    await op.waitForFunction(() => document.querySelector('#supervisor-badge')?.textContent?.includes('耳语'));
    assert.equal((await fromSup()).reduce((/** @type {number} */ n, /** @type {any} */ r) => n + r.decoded, 0), 0, 'whisper: the terminal decodes nothing of the supervisor');

    // Barge in: the terminal decodes the supervisor's voice too.
    await sup.click('#monitor .mode-barge');
    await until('the resident hears the supervisor', async () => (await fromSup()).some((/** @type {any} */ r) => r.kind === 'audio' && r.decoded > 0));
    await op.waitForFunction(() => document.querySelector('#supervisor-badge')?.textContent?.includes('插话'));
    await shot(sup, '46-supervisor-barge');

    // The supervisor ends the call: the operator goes to wrap-up, told who ended it.
    await sup.click('#monitor-end');
    await op.waitForSelector('#wrap-up');
    assert.match(await op.textContent('#wrap-up') ?? '', /主管结束通话/);
    await sup.waitForSelector('#monitor', { state: 'hidden' });
    await until('the terminal left the call', async () => (await status()).call.extra_peers === 0 || (await status()).phase !== 'in_call');
    await op.check('input[name=outcome][value=completed]');
    await op.click('#wrap-submit');
    await until('rating screen', async () => (await status()).phase === 'rating');
    const rated = await fetch(`${kiosk}/api/rate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ level: 'satisfied' }) });
    assert.ok(rated.ok, `rate: ${rated.status}`);
    await until('kiosk idle', async () => (await status()).phase === 'idle');
    await sup.context().close();
    await op.context().close();
  });

  test('three-way call: the operator invites a colleague, who joins; the terminal decodes both operators; the colleague leaves', async () => {
    const op = await consoleAs('operator1');
    // The colleague is signed in (away: no calls ring for them).
    const spec = await consoleAs('operator2');
    await spec.waitForSelector('#op-state[data-state=away]');
    await makeAvailable(op);
    await kioskTicket();
    await answer(op);

    await openInvitation(op);
    await op.fill('dialog textarea[name=note]', '请协助核对材料');
    await op.click('dialog button[type=submit]');
    await spec.waitForSelector('dialog #invite-text');
    await shot(spec, '47-specialist-invited');
    await spec.click('dialog button[type=submit]');
    await spec.waitForSelector('#consult');

    // The colleague sees and hears both sides; the operator and the terminal decode the colleague.
    await until('the colleague decodes both sides', async () => {
      const m = await spec.evaluate(async () => /** @type {any} */ (window).bangban.consultInbound());
      return m.terminal?.frames > 10 && m.operator?.frames > 10 && m.terminal.audioSamples > 0 && m.operator.audioSamples > 0;
    });
    await until('the operator decodes the colleague', async () => {
      const m = await op.evaluate(async () => /** @type {any} */ (window).bangban.supervisorInbound());
      return m.frames > 10 && m.audioSamples > 0;
    });
    const s = await until('the terminal decodes both operators', async () => {
      const st = await status();
      const guest = st.call.remote.filter((/** @type {any} */ r) => r.from_guest);
      const main = st.call.remote.filter((/** @type {any} */ r) => !r.from_guest);
      const ok = guest.some((/** @type {any} */ r) => r.kind === 'camera' && r.decoded > 10) && guest.some((/** @type {any} */ r) => r.kind === 'audio' && r.decoded > 0)
        && main.some((/** @type {any} */ r) => r.kind === 'camera' && r.decoded > 10);
      return ok ? st : null;
    });
    assert.equal(s.call.extra_peers, 1);
    // The kiosk's first monitor: the operator on the left half, the colleague beside on the
    // right (Chromium's 16:9 test camera in a 320×480 half: a 320×180 band, 37 % of the half).
    const beside = await until('the colleague appears beside the operator on the first monitor', async () => {
      const rgb = grabKioskScreen(0, '50-kiosk-first-screen-three-way');
      return litShare(rgb, 0, 320) > 0.3 && litShare(rgb, 320, 640) > 0.3 ? rgb : null;
    });
    assert.ok(litShare(beside, 0, 320) < 0.5, 'each picture keeps its aspect ratio (black above and below)');
    await op.waitForFunction(() => document.querySelector('#supervisor-badge')?.textContent?.includes('已加入通话'));
    await op.waitForSelector('#specialist-tile:not([hidden])');
    await shot(op, '48-operator-three-way');
    await shot(spec, '49-specialist-in-call');

    // The colleague leaves; the call goes on between the two parties.
    await spec.click('#consult-leave');
    await spec.waitForSelector('#idle');
    await until('the terminal closed the colleague\'s connection', async () => (await status()).call.extra_peers === 0);
    // The operator has the whole first monitor again (16:9 on 640×480: every column lit).
    await until('the operator fills the first monitor again', async () => {
      const rgb = grabKioskScreen(0, '51-kiosk-first-screen-after-colleague-left');
      return litShare(rgb, 0, 100) > 0.6 && litShare(rgb, 540, 640) > 0.6;
    });
    await op.waitForSelector('#specialist-tile[hidden]', { state: 'attached' });
    assert.equal((await status()).phase, 'in_call');
    await endAndRate(op);
    await spec.context().close();
    await op.context().close();
  });

  test('recording with consent: a refusing resident leaves no recording; an agreeing one\'s call is two parts (one per camera) a supervisor plays side by side, audited', async () => {
    const op = await consoleAs('operator1');
    await makeAvailable(op);
    const login = await rest('/api/v1/auth/login', { username: 'operator1', password: PASSWORD });
    const items = await (await fetch(`${kiosk}/api/items`)).json();
    const item = items.find((/** @type {any} */ i) => i.active && i.remote_allowed && login.user.skills.includes(i.line_id));
    const sup = await rest('/api/v1/auth/login', { username: 'supervisor', password: PASSWORD });
    /** @returns {Promise<any[]>} */
    const recordings = async () => rest('/api/v1/recordings', undefined, sup.access_token);
    const before = (await recordings()).length;

    /** One call of ~3 s with the given answer; returns its session. @param {boolean} consent */
    async function call(consent) {
      const res = await fetch(`${kiosk}/api/ticket`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ item_id: item.id, recording_consent: consent }) });
      assert.ok(res.ok, `ticket: ${res.status}`);
      await answer(op);
      const st = await until('media both ways', async () => {
        const s = await status();
        return s.call.remote.some((/** @type {any} */ r) => r.kind === 'camera' && r.decoded > 30) && s.call.sent_video_frames > 30 ? s : null;
      });
      if (consent) {
        assert.equal(st.call.recording, 'recording', 'the terminal records');
        await op.waitForFunction(() => document.querySelector('#supervisor-badge')?.textContent?.includes('录音录像中'));
      } else {
        assert.equal(st.call.recording, '', 'no recording without consent');
      }
      const session = st.call.session_id;
      await endAndRate(op);
      return session;
    }

    const refused = await call(false);
    const agreed = await call(true);
    const rec = await until('both parts of the recording stored', async () => (await recordings()).find((r) => r.session_id === agreed && r.parts?.length === 2));
    assert.ok(!(await recordings()).some((r) => r.session_id === refused), 'a refusing resident leaves no recording');
    assert.equal((await recordings()).length, before + 1);
    assert.equal(rec.content_type, 'video/webm');
    assert.deepEqual(rec.parts.map((/** @type {any} */ p) => p.part), [1, 2]);
    assert.equal(rec.parts[0].material_id, rec.material_id);
    assert.ok(rec.duration_ms >= 2000 && rec.duration_ms < 120_000, `the terminal's duration: ${rec.duration_ms} ms`);

    // The operator cannot fetch either part; the supervisor's parts decode, one side each, as
    // long as the terminal said.
    for (const part of rec.parts) {
      const denied = await fetch(`${base}/api/v1/materials/${part.material_id}/content`, { headers: { authorization: `Bearer ${login.access_token}` } });
      assert.equal(denied.status, 403);
      const file = await fetch(`${base}/api/v1/materials/${part.material_id}/content`, { headers: { authorization: `Bearer ${sup.access_token}` } });
      assert.equal(file.status, 200);
      const path = join(dir, `recording-${part.part}.webm`);
      writeFileSync(path, Buffer.from(await file.arrayBuffer()));
      const probe = spawnSync(join(target, 'debug', 'endpoint-client'), ['probe-recording', path], { encoding: 'utf8' });
      assert.equal(probe.status, 0, probe.stderr);
      const p = JSON.parse(probe.stdout);
      assert.ok(Math.abs(p.duration_ms - rec.duration_ms) < 1500, `part ${part.part}: ${p.duration_ms} ms, reported ${rec.duration_ms} ms`);
      const kinds = (/** @type {string} */ c) => p.streams.filter((/** @type {any} */ s) => s.caps === c && s.decoded > 10).length;
      assert.equal(kinds('video/x-raw'), 1, `part ${part.part}: one camera: ${probe.stdout}`);
      assert.equal(kinds('audio/x-raw'), 1, `part ${part.part}: one voice: ${probe.stdout}`);
    }

    // Played in the supervisor's console: both cameras side by side under one control bar, and
    // each part's playback is in the audit log.
    const page = await consoleAs('supervisor', { width: 1366, height: 900 });
    await page.waitForSelector(`#recording-list .play-recording[data-material="${rec.material_id}"]`);
    assert.match(await page.textContent(`#recording-list li:has(.play-recording[data-material="${rec.material_id}"]) .recording-meta`) || '', /时长 \d+秒/);
    await page.click(`#recording-list .play-recording[data-material="${rec.material_id}"]`);
    await page.waitForFunction(() => [...document.querySelectorAll('#recording-player video')].length === 2
      && [...document.querySelectorAll('#recording-player video')].every((v) => /** @type {HTMLVideoElement} */ (v).readyState >= 2), null, { timeout: 30_000 });
    await page.click('#recording-toggle');
    const played = await page.waitForFunction(() => {
      const vs = /** @type {HTMLVideoElement[]} */ ([...document.querySelectorAll('#recording-player video')]);
      return vs.every((v) => !v.paused && !v.muted && v.videoWidth > 0 && v.currentTime > 1) && vs.map((v) => ({ w: v.videoWidth, t: v.currentTime }));
    }, null, { timeout: 30_000 });
    const at = /** @type {{ w: number, t: number }[]} */ (await played.jsonValue());
    assert.ok(Math.abs(at[0].t - at[1].t) < 0.5, `both sides play together: ${JSON.stringify(at)}`);
    await shot(page, '54-supervisor-plays-recording');
    // One bar: pausing pauses both; seeking moves both.
    await page.click('#recording-toggle');
    await page.waitForFunction(() => [...document.querySelectorAll('#recording-player video')].every((v) => /** @type {HTMLVideoElement} */ (v).paused));
    await page.$eval('#recording-seek', (/** @type {HTMLInputElement} */ el) => { el.value = '100'; el.dispatchEvent(new Event('input')); });
    const seeked = await page.$$eval('#recording-player video', (vs) => vs.map((v) => /** @type {HTMLVideoElement} */ (v).currentTime));
    assert.ok(Math.abs(seeked[0] - seeked[1]) < 0.05 && seeked[0] < at[0].t, `both seeked to 10 %: ${seeked}`);
    const admin = await rest('/api/v1/auth/login', { username: 'admin', password: PASSWORD });
    const audit = await rest('/api/v1/audit?limit=100&action=recording.play', undefined, admin.access_token);
    for (const part of rec.parts) {
      assert.ok(audit.entries.filter((/** @type {any} */ e) => e.target_id === part.material_id).length >= 2, `part ${part.part}: each playback audited`);
    }
    await page.context().close();
    await op.context().close();
  });

  test('a colleague takes the call over: the terminal is served by them with video both ways, the operator is out', async () => {
    const op = await consoleAs('operator1');
    const spec = await consoleAs('operator2');
    await spec.waitForSelector('#op-state[data-state=away]');
    await makeAvailable(op);
    await kioskTicket();
    await answer(op);
    const first = await until('the first session', async () => (await status()).call.session_id);
    await openInvitation(op);
    await op.click('dialog button[type=submit]');
    await spec.waitForSelector('dialog #invite-text');
    await spec.click('dialog button[type=submit]');
    await spec.waitForSelector('#consult-take-over');
    await spec.click('#consult-take-over');
    // The colleague's console now carries the call; the terminal has a new session with them.
    await spec.waitForSelector('#call-stage');
    await spec.waitForFunction(async () => (await /** @type {any} */ (window).bangban.framesDecoded()) > 10, null, { timeout: 30_000 });
    const s = await until('the terminal served by the colleague', async () => {
      const st = await status();
      return st.phase === 'in_call' && st.call.session_id !== first
        && st.call.remote.some((/** @type {any} */ r) => r.kind === 'camera' && !r.from_guest && r.decoded > 10) ? st : null;
    });
    assert.equal(s.call.extra_peers, 0);
    await spec.waitForSelector('#op-state[data-state=in_call]');
    assert.equal(await spec.locator('.toast.error').count(), 0, 'no error shown to the colleague');
    await op.waitForSelector('#op-state:not([data-state=in_call])');
    assert.equal(await op.locator('#call-stage').count(), 0, 'the operator is out of the call');
    await shot(spec, '55-colleague-took-over');
    await endAndRate(spec);
    await spec.context().close();
    await op.context().close();
  });

  test('an operator workstation set to H.264: the terminal answers in H.264 and both directions decode it', async () => {
    const op = await newPage({ width: 1366, height: 768 });
    await op.goto(`${base}/`);
    await signIn(op);
    // The setting sits on the waiting screen, kept for this workstation.
    await op.waitForSelector('#idle #video-codec');
    assert.equal(await op.inputValue('#video-codec'), 'vp8', 'VP8 unless chosen');
    await op.selectOption('#video-codec', 'h264');
    await shot(op, '42-operator-codec-setting');
    // A reload keeps the tab signed in and the choice; the dropped socket leaves the operator
    // away (never stuck "offline").
    await op.reload();
    await op.waitForSelector('#idle #video-codec');
    assert.equal(await op.inputValue('#video-codec'), 'h264', 'the choice survives a reload');
    await op.waitForSelector('#op-state[data-state=away]');
    await op.click('#availability');
    await op.waitForSelector('#op-state[data-state=available]');

    await kioskTicket();
    await op.waitForSelector('#ringing #accept');
    await op.click('#accept');
    await op.waitForSelector('#call-stage');

    // Chromium decodes the terminal's H.264; the terminal sends and decodes H.264.
    await op.waitForFunction(async () => (await /** @type {any} */ (window).bangban.framesDecoded()) > 10, null, { timeout: 30_000 });
    const s = await until('the terminal decodes the operator camera', async () => {
      const st = await status();
      return st.call.remote.some((/** @type {any} */ r) => r.kind === 'camera' && r.decoded > 10) ? st : null;
    });
    assert.equal(s.call.video_codec, 'h264', 'the terminal sends H.264');
    const cam = s.call.remote.find((/** @type {any} */ r) => r.kind === 'camera');
    assert.equal(cam.codec, 'h264', 'the operator camera arrives in H.264');
    const codecs = await op.evaluate(async () => /** @type {any} */ (window).bangban.videoCodecs());
    assert.deepEqual(codecs, { inbound: ['video/H264'], outbound: ['video/H264'] });
    await shot(op, '43-operator-h264-call');

    // End and wrap up; the kiosk rates; the setting goes back to VP8 for the other tests.
    await endAndRate(op);
    await op.selectOption('#video-codec', 'vp8');
    await op.context().close();
  });

  test('the kiosk page is pushed its status and makes no requests while idle; untouched screens return to welcome', async () => {
    const k = await newPage({ width: 1920, height: 1080 }, true);
    /** @type {string[]} */ const requests = [];
    k.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await k.goto(kiosk);
    await k.waitForSelector('#idle.on #start');
    await k.waitForSelector('#net:not(.down)');
    // One page load: the page, its event stream, nothing polled. Watched over two seconds (four
    // polls of the old page).
    const t0 = Date.now();
    await until('a two-second window', async () => Date.now() - t0 >= 2000);
    assert.deepEqual(requests, ['GET /', 'GET /api/events'], 'an idle kiosk makes no requests');

    // A change reaches the page at once, without a request from it: staff sign in elsewhere
    // (a local tool), the page shows them.
    const login = await fetch(`${kiosk}/api/staff/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'staff1', password: PASSWORD }) });
    assert.ok(login.ok, `staff login: ${login.status}`);
    await k.waitForSelector('#staffbar:not([hidden]) #staffname:has-text("周社工")');
    assert.deepEqual(requests, ['GET /', 'GET /api/events'], 'pushed, not polled');
    const out = await fetch(`${kiosk}/api/staff/logout`, { method: 'POST' });
    assert.ok(out.ok);
    await k.waitForSelector('#staffbar[hidden]', { state: 'attached' });

    // Three kiosk pages, each left on one screen with something entered: each returns to
    // welcome after the bound, its entries cleared.
    const staffForm = k;
    await staffForm.click('#staff-in');
    await staffForm.fill('#su', 'staff1');
    await staffForm.fill('#sp', 'secret-half-typed');
    await shot(staffForm, '50-kiosk-staff-form-left');
    const staffLeft = Date.now();
    const itemsPage = await newPage({ width: 1920, height: 1080 }, true);
    await itemsPage.goto(kiosk);
    await itemsPage.click('#start');
    await itemsPage.waitForSelector('#items.on #list button.item');
    await itemsPage.fill('#q', '养老');
    await shot(itemsPage, '51-kiosk-items-left');
    const itemsLeft = Date.now();
    const privacyPage = await newPage({ width: 1920, height: 1080 }, true);
    await privacyPage.goto(kiosk);
    await privacyPage.click('#start');
    await privacyPage.waitForSelector('#items.on #list button.item');
    await privacyPage.click('#list button.item');
    await privacyPage.waitForSelector('#privacy.on');
    await shot(privacyPage, '52-kiosk-privacy-left');
    // The notice promises only what the system does: a call is recorded only when the resident
    // agrees (the answer defaults to no), encrypted, for supervisors only.
    const notice = await privacyPage.textContent('#privacy .privacy');
    assert.match(notice || '', /只有您在下面选择“同意录音录像”时，本次通话才录音录像/);
    assert.match(notice || '', /不同意的，不录音、不录像/);
    assert.match(notice || '', /加密保存.*只有值班主管可以查看/);
    assert.equal(await privacyPage.getAttribute('#rec-no', 'aria-pressed'), 'true', 'not recorded unless chosen');
    await privacyPage.click('#rec-yes');
    assert.equal(await privacyPage.getAttribute('#rec-yes', 'aria-pressed'), 'true');
    const privacyLeft = Date.now();
    /** @type {[import('playwright-core').Page, string, number][]} */
    const left = [[staffForm, 'staff', staffLeft], [itemsPage, 'items', itemsLeft], [privacyPage, 'privacy', privacyLeft]];
    // Each page stays on its screen until its bound…
    for (const [page, name, since] of left) {
      if (Date.now() - since < (IDLE_SECS - 2) * 1000) assert.ok(await page.isVisible(`#${name}`), `${name}: still shown before the bound`);
    }
    // …and is back on welcome after it.
    for (const [page, name, since] of left) {
      await page.waitForSelector('#idle.on', { timeout: (IDLE_SECS + 20) * 1000 });
      assert.ok(Date.now() - since >= (IDLE_SECS - 1) * 1000, `${name}: not before the bound`);
    }
    await shot(staffForm, '53-kiosk-welcome-after-reset');
    assert.equal(await staffForm.inputValue('#su'), '', 'the staff form is cleared');
    assert.equal(await staffForm.inputValue('#sp'), '', 'the password is cleared');
    assert.equal(await itemsPage.inputValue('#q'), '', 'the search is cleared');
    assert.equal(await privacyPage.textContent('#chosen-name'), '', 'the chosen item is cleared');
    assert.equal(await privacyPage.getAttribute('#rec-no', 'aria-pressed'), 'true', 'the recording answer is cleared');
    await itemsPage.context().close();
    await privacyPage.context().close();

    // The rating screen left untouched: back to welcome, the rating recorded as not given.
    const op = await newPage({ width: 1366, height: 768 });
    await op.goto(`${base}/`);
    await signIn(op);
    await op.waitForSelector('#op-state[data-state=away], #op-state[data-state=available]');
    if (await op.locator('#op-state[data-state=away]').count()) await op.click('#availability');
    await op.waitForSelector('#op-state[data-state=available]');
    await kioskTicket();
    await op.waitForSelector('#ringing #accept');
    await op.click('#accept');
    await k.waitForSelector('#in_call.on');
    const sid = (await until('the call', async () => (await status()).call.session_id));
    await op.click('#end-call');
    await op.waitForSelector('#wrap-up');
    await op.check('input[name=outcome][value=completed]');
    await op.click('#wrap-submit');
    await k.waitForSelector('#rating.on');
    await k.fill('#comment', '上一位的意见');
    const rating = Date.now();
    await shot(k, '54-kiosk-rating-left');
    await k.waitForSelector('#idle.on', { timeout: (IDLE_SECS + 20) * 1000 });
    assert.ok(Date.now() - rating >= (IDLE_SECS - 3) * 1000, 'the rating screen stays for the bound');
    await shot(k, '55-kiosk-welcome-after-rating-reset');
    assert.equal(await k.inputValue('#comment'), '', 'the comment is cleared');
    assert.equal((await k.textContent('#notices'))?.trim(), '', 'nothing of the last resident on screen');
    const s = await status();
    assert.equal(s.phase, 'idle');
    assert.equal(s.notices.length, 0);
    const opLogin = await rest('/api/v1/auth/login', { username: 'operator1', password: PASSWORD });
    const sessions = await rest('/api/v1/sessions', undefined, opLogin.access_token);
    const rec = sessions.find((/** @type {any} */ r) => r.session_id === sid);
    assert.ok(rec, 'the session record');
    assert.equal(rec.rating ?? null, null, 'recorded as not rated');
    await op.context().close();
    await k.context().close();
  });

  test('the operator reloads the console mid-call: still signed in, the call comes back with video both ways', async () => {
    const op = await newPage({ width: 1366, height: 768 });
    await op.goto(`${base}/`);
    await signIn(op);
    await op.waitForSelector('#op-state[data-state=away], #op-state[data-state=available]');
    if (await op.locator('#op-state[data-state=away]').count()) await op.click('#availability');
    await op.waitForSelector('#op-state[data-state=available]');
    await kioskTicket();
    await op.waitForSelector('#ringing #accept');
    const acceptedAt = Date.now();
    await op.click('#accept');
    await op.waitForFunction(async () => (await /** @type {any} */ (window).bangban.framesDecoded()) > 10, null, { timeout: 30_000 });
    const cameraDecoded = (/** @type {any} */ s) => s.call.remote.filter((/** @type {any} */ r) => r.kind === 'camera').reduce((/** @type {number} */ a, /** @type {any} */ r) => a + r.decoded, 0);
    const before = await until('the terminal decodes the operator', async () => {
      const n = cameraDecoded(await status());
      return n > 10 ? n : null;
    });

    // The call has run a few seconds (its clock shows them) when the page is reloaded.
    await op.waitForFunction(() => (document.querySelector('#call-clock')?.textContent || '') >= '00:03', null, { timeout: 15_000 });
    await op.reload();
    // Signed in again without the login page; the server replays the live session.
    await op.waitForSelector('#call-stage', { timeout: 30_000 });
    assert.equal(await op.locator('form.login-card').count(), 0, 'no login page');
    // The call clock goes on from the call's start, not from the reload.
    await op.waitForFunction((t0) => {
      const [m, sec] = (document.querySelector('#call-clock')?.textContent || '0:0').split(':').map(Number);
      const elapsed = Math.floor((Date.now() - t0) / 1000);
      return m * 60 + sec >= Math.max(3, elapsed - 1);
    }, acceptedAt, { timeout: 15_000 });
    await op.waitForFunction(async () => (await /** @type {any} */ (window).bangban.framesDecoded()) > 10, null, { timeout: 30_000 });
    await until('the terminal decodes the operator again', async () => {
      const s = await status();
      return s.phase === 'in_call' && cameraDecoded(s) > before + 10;
    });
    await shot(op, '44-operator-reloaded-mid-call');

    await endAndRate(op);
    // 退出 ends the tab's session: a reload shows the login page.
    await op.click('#logout');
    await op.waitForSelector('form.login-card');
    await op.reload();
    await op.waitForSelector('form.login-card');
    await op.context().close();
  });
});

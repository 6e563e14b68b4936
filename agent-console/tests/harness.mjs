// The console tests' shared setup: builds and starts the real signaling-server (a free port, a
// temporary data directory, --demo) serving dist/, and launches Debian's Chromium through
// playwright-core; stops both and removes the data directory afterwards.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const consoleDir = resolve(here, '..');
export const repo = resolve(consoleDir, '..');
export const shots = join(consoleDir, 'test-results', 'screenshots');
export const PASSWORD = 'bangban-demo';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The flags that work as root in headless Chromium here, with fake camera and microphone. */
export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--auto-accept-this-tab-capture', '--autoplay-policy=no-user-gesture-required',
];

/**
 * Polls `check` (a condition in another process, e.g. a background worker's effect) every 200 ms
 * until it returns a truthy value, which is returned; fails with `what` after `ms`.
 * @template T @param {string} what @param {() => Promise<T>} check @param {number} [ms]
 * @returns {Promise<T>}
 */
export async function until(what, check, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = /** @type {any} */ (s.address()); s.close(() => ok(port)); });
    s.on('error', fail);
  });
}

/** Resolves when a child process has exited (it may still be writing its data directory until then). @param {import('node:child_process').ChildProcess | undefined} p */
export const exited = (p) => (p && p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : Promise.resolve());

/**
 * Builds (a no-op when up to date: a stale binary would test old server code) and starts the
 * server, waits for /readyz, launches Chromium.
 * @returns {Promise<{ server: import('node:child_process').ChildProcess, browser: import('playwright-core').Browser, base: string, dataDir: string, log: () => string }>}
 */
export async function startConsole() {
  mkdirSync(shots, { recursive: true });
  const r = spawnSync('cargo', ['build', '-p', 'signaling-server'], { cwd: repo, stdio: 'inherit' });
  assert.equal(r.status, 0, 'cargo build failed');
  const bin = join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'debug', 'signaling-server');
  assert.ok(existsSync(bin), `no server binary at ${bin}`);
  const dataDir = mkdtempSync(join(tmpdir(), 'bangban-console-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let serverLog = '';
  const server = spawn(bin, ['--demo', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    cwd: dataDir,
    env: {
      ...process.env, BANGBAN_CONSOLE_DIR: join(consoleDir, 'dist'), BANGBAN_LOG_FORMAT: 'json', RUST_LOG: 'warn',
      // A terminal silent for 5 s gets its offline alarm (the supervisor test waits for one).
      BANGBAN_TERMINAL_OFFLINE_AFTER_SECS: '5', BANGBAN_HEALTH_CHECK_INTERVAL_SECS: '1',
      // The cases worker (escalations 提级, call-backs) every second: the cases test waits for one.
      BANGBAN_CASES_INTERVAL_SECS: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (d) => { serverLog += d; });
  server.stderr?.on('data', (d) => { serverLog += d; });
  // Polls the readiness probe; the server answers as soon as the database is migrated.
  const until = Date.now() + 60_000;
  for (;;) {
    if (server.exitCode != null) throw new Error(`server exited:\n${serverLog}`);
    try { if ((await fetch(`${base}/readyz`)).ok) break; } catch { /* not listening yet */ }
    if (Date.now() > until) throw new Error(`server not ready:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // playwright-core launches with a fresh temporary profile (its own --user-data-dir).
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, ignoreDefaultArgs: ['--headless'] });
  return { server, browser, base, dataDir, log: () => serverLog };
}

/** Closes the browser, stops the server, waits for it to exit, removes its data. @param {Awaited<ReturnType<typeof startConsole>> | undefined} c */
export async function stopConsole(c) {
  await c?.browser.close();
  c?.server.kill('SIGTERM');
  await exited(c?.server);
  if (c?.dataDir) rmSync(c.dataDir, { recursive: true, force: true });
}

/**
 * A page in a fresh context as an operator's browser has it (Chinese locale, China time,
 * camera and microphone granted); page errors go to the test log.
 * @param {import('playwright-core').Browser} browser @param {string} base
 * @param {{ width: number, height: number }} [viewport]
 */
export async function openPage(browser, base, viewport = { width: 1366, height: 768 }) {
  const ctx = await browser.newContext({ viewport, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  await ctx.grantPermissions(['camera', 'microphone'], { origin: base });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('pageerror:', e.message));
  return page;
}

/** Signs `user` in with the demo password. @param {import('playwright-core').Page} page @param {string} base @param {string} user */
export async function signIn(page, base, user) {
  await page.goto(`${base}/`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('#logout');
}

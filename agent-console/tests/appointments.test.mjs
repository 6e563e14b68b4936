// 预约 in the console: appointments booked at a kiosk (REST, as the terminal does with staff
// signed in) appear on the supervisor's 预约 list for their day, per point, with the resident's
// name and phone masked; a booked one is cancelled from the list. Real server, Chromium;
// screenshots in test-results/screenshots/.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PASSWORD, openPage, shots, signIn, startConsole, stopConsole } from './harness.mjs';

/** @type {Awaited<ReturnType<typeof startConsole>>} */ let run;
let base = '';
/** @type {import('playwright-core').Browser} */ let browser;

/** @param {string} method @param {string} path @param {any} [body] @param {string} [token] */
async function rest(method, path, body, token) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

before(async () => {
  run = await startConsole();
  ({ base, browser } = run);
});

after(() => stopConsole(run));

describe('appointments', () => {
  test('the supervisor sees a day\'s appointments masked and cancels one', async () => {
    const login = async (/** @type {string} */ u) => (await rest('POST', '/api/v1/auth/login', { username: u, password: PASSWORD })).access_token;
    const [admin, staff] = [await login('admin'), await login('staff1')];
    // The first demo terminal (staff1's point) enrols with its code from the data directory.
    const code = readFileSync(join(run.dataDir, 'demo-enrollment.txt'), 'utf8').split('\n')[0].split(' ')[1];
    const { credential } = await rest('POST', '/api/v1/terminals/enroll', { code });
    const device = (await rest('POST', '/api/v1/terminals/token', { credential })).access_token;
    const item = (await rest('GET', '/api/v1/items', undefined, device)).find((/** @type {any} */ i) => i.code === 'SB-001');
    await rest('PUT', `/api/v1/lines/${item.line_id}/roster`,
      { weekly: [{ weekdays: [1, 2, 3, 4, 5, 6, 7], open: '00:00', close: '24:00' }], holiday_rule: 'ignore_calendar' }, admin);
    const [slot] = await rest('GET', `/api/v1/terminals/me/appointment-slots?item_id=${item.id}&days=2`, undefined, device);
    const book = (/** @type {string} */ name, /** @type {string} */ phone) => rest('POST', '/api/v1/terminals/me/appointments', {
      item_id: item.id, slot_start: slot.start, name, phone, consent: true, staff_token: staff,
      consent_text: '居民同意帮办保存本人姓名和联系电话，用于本次预约的提醒和签到核对，预约结束后按规定期限删除。',
    }, device);
    const first = await book('王秀英', '13912345678');
    await book('李建国', '13800001111');

    const page = await openPage(browser, base, { width: 1440, height: 900 });
    await signIn(page, base, 'supervisor');
    await page.click('a.nav-link[href="/appointments"]');
    await page.fill('#appt-date', slot.date);
    await page.dispatchEvent('#appt-date', 'change');
    await page.waitForSelector('#appointments table');
    const rows = page.locator('#appointments tbody tr');
    assert.equal(await rows.count(), 2);
    const text = await page.locator('#appointments').innerText();
    assert.match(text, /王\*\*/);
    assert.match(text, /139\*\*\*\*5678/);
    assert.doesNotMatch(text, /13912345678|王秀英|李建国/, 'only masked personal data on screen');
    assert.match(text, /灵活就业人员参保登记/);
    assert.match(text, /已预约/);
    await page.screenshot({ path: join(shots, '67-console-appointments.png'), fullPage: true });

    await page.locator(`#appointments tr[data-id="${first.id}"] .appt-cancel`).click();
    await page.click('dialog button[type=submit]');
    await page.waitForSelector(`#appointments tr[data-id="${first.id}"][data-state="cancelled"]`);
    assert.equal(await page.locator(`#appointments tr[data-id="${first.id}"] .appt-cancel`).count(), 0);
    assert.match(await page.locator(`#appointments tr[data-id="${first.id}"]`).innerText(), /已取消/);
  });
});

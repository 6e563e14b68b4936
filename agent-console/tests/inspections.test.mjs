// 巡检 in the console: a point's inspection is overdue on the supervisor's list (highlighted),
// the point's staff see the overdue flag on 本服务点 and record the inspection with the
// checklist and a photo, and the supervisor's list then shows it done. Real server, Chromium;
// screenshots in test-results/screenshots/.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PASSWORD, openPage, shots, signIn, startConsole, stopConsole, until } from './harness.mjs';

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

/** @param {import('playwright-core').Page} page @param {string} name */
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

/** `YYYY-MM-DD` (China time) and ISO weekday of `days` days from today. @param {number} days */
function chinaDay(days) {
  const d = new Date(Date.now() + 8 * 3600_000 + days * 86_400_000);
  return { date: d.toISOString().slice(0, 10), weekday: ((d.getUTCDay() + 6) % 7) + 1 };
}

before(async () => {
  run = await startConsole();
  ({ base, browser } = run);
});

after(() => stopConsole(run));

describe('inspections', () => {
  test('an overdue inspection is flagged, recorded by the point staff with a photo, and done', async () => {
    const sup = await rest('POST', '/api/v1/auth/login', { username: 'supervisor', password: PASSWORD });
    const staff = await rest('POST', '/api/v1/auth/login', { username: 'staff1', password: PASSWORD });
    const point = staff.user.point_id;
    // Weekly since three weeks ago, no grace, staff1 named as the inspector's account.
    const { date, weekday } = chinaDay(-21);
    const sched = await rest('PUT', `/api/v1/points/${point}/inspection-schedule`,
      { frequency: 'weekly', weekday, starts_on: date, grace_working_days: 0, inspector_account_id: staff.user.id }, sup.access_token);
    assert.equal(sched.state, 'overdue');

    // The supervisor's list: overdue first, highlighted.
    const sp = await openPage(browser, base, { width: 1440, height: 900 });
    await signIn(sp, base, 'supervisor');
    await sp.click('a.nav-link[href="/inspections"]');
    await sp.waitForSelector('#inspection-list');
    const first = sp.locator('#inspection-list tbody tr').first();
    assert.equal(await first.getAttribute('data-point'), point);
    assert.match(await first.getAttribute('class') || '', /overdue/);
    assert.equal(await first.locator('.insp-state').innerText(), '已超期');
    await shot(sp, 'inspections-supervisor-overdue');

    // The cases worker (every second here) flags it to the inspector's account: a task.
    await until('the overdue inspection to reach the inspector', async () => {
      const tasks = await rest('GET', '/api/v1/tasks', undefined, staff.access_token);
      return tasks.some((/** @type {any} */ x) => x.topic === 'inspection_overdue');
    }, 15_000);

    // Staff: the overdue flag on 本服务点, then the checklist with a failed camera and a photo.
    const page = await openPage(browser, base, { width: 1366, height: 1000 });
    await signIn(page, base, 'staff1');
    await page.waitForURL(/\/staff$/);
    await page.waitForSelector('#inspection-form');
    assert.equal(await page.locator('#point-inspection .insp-state').first().innerText(), '已超期');
    assert.match(await page.locator('#inspection-standing').getAttribute('class') || '', /overdue/);
    await shot(page, 'inspections-staff-overdue');
    await page.check('#inspection-form tr[data-item=camera] input[value=no]');
    await page.fill('#inspection-form input[name=note-camera]', '镜头有污渍');
    await page.fill('#inspection-form input[name=note]', '例行巡检');
    const photo = await sp.screenshot({ type: 'png', clip: { x: 0, y: 0, width: 320, height: 200 } });
    await page.setInputFiles('#inspection-photos', { name: '现场.png', mimeType: 'image/png', buffer: photo });
    await page.click('#inspection-submit');
    // Recorded: done for this period, the record listed with its failed item and its photo.
    await page.waitForSelector('#point-inspection .insp-state[data-state=done]');
    const rec = page.locator('#point-inspection .insp-records li').first();
    assert.match(await rec.innerText(), /1 项不合格/);
    assert.match(await rec.innerText(), /摄像头（镜头有污渍）/);
    await page.waitForFunction(() => {
      const img = /** @type {HTMLImageElement | null} */ (document.querySelector('#point-inspection img.insp-photo'));
      return !!img && img.complete && img.naturalWidth === 320;
    });
    // The page's tile follows.
    await page.waitForFunction(() => /本期已巡检/.test(document.querySelector('#staff-tiles')?.textContent || ''));
    await shot(page, 'inspections-staff-recorded');

    const mine = await rest('GET', `/api/v1/points/${point}/inspections`, undefined, staff.access_token);
    assert.equal(mine.records[0].photos.length, 1);
    assert.equal(mine.records[0].problem_ids.length, 1);

    // Staff see only their point: the district list is not theirs.
    const other = await fetch(`${base}/api/v1/inspections`, { headers: { authorization: `Bearer ${staff.access_token}` } });
    assert.equal(other.status, 403);

    // The supervisor's list shows it done.
    await sp.click('.page-head button[data-tab=all]');
    await sp.waitForFunction((p) => document.querySelector(`#inspection-list tr[data-point="${p}"] .insp-state`)?.getAttribute('data-state') === 'done', point);
    await shot(sp, 'inspections-supervisor-done');
    await sp.context().close();
    await page.context().close();
  });
});

// Acceptance centers in the console (#16 item 6): the admin's 受理中心 page lists the centers
// with their streets and adds one, an operator's center is set from 账户, and a supervisor's
// lists and board show their own center by default with 全区 a choice away. Real server,
// Chromium; screenshots in test-results/screenshots/ (50-…).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openPage, shots, signIn, startConsole, stopConsole } from './harness.mjs';

/** @type {Awaited<ReturnType<typeof startConsole>>} */ let run;
let base = '';
/** @type {import('playwright-core').Browser} */ let browser;

/** @param {import('playwright-core').Page} page @param {string} name */
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

before(async () => {
  process.env.BANGBAN_DEMO_POINTS = '40';
  run = await startConsole();
  ({ base, browser } = run);
});

after(() => stopConsole(run));

describe('acceptance centers', () => {
  test('the admin manages centers and sets an operator\'s center', async () => {
    const page = await openPage(browser, base);
    await signIn(page, base, 'admin');
    await page.goto(`${base}/admin/centers`);
    const rows = page.locator('#centers tbody tr');
    await rows.first().waitFor();
    assert.deepEqual(await page.locator('#centers tbody tr td:first-child').allTextContents(), ['静安北部受理中心', '静安南部受理中心']);
    assert.match(await page.locator('tr[data-center="静安南部受理中心"] .center-streets').innerText(), /静安寺街道/);

    await page.click('#add-center');
    await page.locator('dialog[open] input[name=name]').fill('临汾受理分中心');
    // The streets of other centers are shown but cannot be taken.
    assert.equal(await page.locator('dialog[open] input[name=streets][value="静安寺街道"]').isDisabled(), true);
    await page.locator('dialog[open] textarea[name=more]').fill('测试新街道');
    await page.locator('dialog[open] button[type=submit]').click();
    await page.waitForSelector('tr[data-center="临汾受理分中心"]');
    assert.match(await page.locator('tr[data-center="临汾受理分中心"] .center-streets').innerText(), /测试新街道/);
    await shot(page, '50-admin-centers');

    await page.goto(`${base}/admin/accounts`);
    const op2 = page.locator('#accounts tbody tr', { hasText: 'operator2' });
    await op2.locator('.set-center').click();
    await page.locator('dialog[open] select[name=center_id]').selectOption({ label: '临汾受理分中心' });
    await page.locator('dialog[open] button[type=submit]').click();
    await page.waitForFunction(() => [...document.querySelectorAll('#accounts tbody tr')]
      .some((tr) => /operator2/.test(tr.textContent || '') && /临汾受理分中心/.test(tr.querySelector('.user-center')?.textContent || '')));
    await page.context().close();
  });

  test('a supervisor sees their own center by default, the district on request', async () => {
    const page = await openPage(browser, base);
    await signIn(page, base, 'supervisor');
    await page.goto(`${base}/supervisor`);
    const filter = page.locator('#terminal-health-list select[name=center]');
    await filter.waitFor();
    await page.waitForFunction(() => /静安南部/.test(document.querySelector('#terminal-health-list select[name=center] option:checked')?.textContent || ''));
    // The demo district's 40 points: the southern center's terminals only, then all of them.
    const total = () => page.evaluate(() => Number(document.getElementById('terminal-health-list')?.dataset.total ?? NaN));
    await page.waitForFunction(() => document.getElementById('terminal-health-list')?.dataset.total !== undefined);
    const own = await total();
    await filter.selectOption('');
    await page.waitForFunction((n) => Number(document.getElementById('terminal-health-list')?.dataset.total) > n, own);
    assert.ok(own > 0 && own < await total(), `own center ${own} of ${await total()}`);
    assert.match(await page.locator('#board-center option:checked').innerText(), /静安南部/);
    await page.context().close();
  });
});

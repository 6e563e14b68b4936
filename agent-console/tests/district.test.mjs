// District scale in the console (#16 items 7 and 8): with the demo district filled to 270
// points (--demo-points, Jing'an's order of size) the admin's and supervisor's lists search,
// filter, sort and page on the server, terminal health leads with the alarms, and the 地图
// plots all 270 points to scale coloured by state. Real server, Chromium; screenshots in
// test-results/screenshots/ (40-…).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openPage, shots, signIn, startConsole, stopConsole } from './harness.mjs';

/** @type {Awaited<ReturnType<typeof startConsole>>} */ let run;
let base = '';
/** @type {import('playwright-core').Browser} */ let browser;

/** @param {import('playwright-core').Page} page @param {string} name */
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });


/**
 * Waits until the list's total is within [min, max].
 * @param {import('playwright-core').Page} page @param {string} id @param {number} min @param {number} [max]
 */
const totalIs = (page, id, min, max = min) => page.waitForFunction(([id, min, max]) => {
  const n = Number(/** @type {HTMLElement | null} */ (document.getElementById(`${id}-list`))?.dataset.total ?? NaN);
  return n >= min && n <= max;
}, /** @type {[string, number, number]} */ ([id, min, max]));

before(async () => {
  process.env.BANGBAN_DEMO_POINTS = '270';
  run = await startConsole();
  ({ base, browser } = run);
});

after(() => stopConsole(run));

describe('district scale', () => {
  test('the admin lists search, filter, sort and page 270 points', async () => {
    const page = await openPage(browser, base, { width: 1440, height: 900 });
    await signIn(page, base, 'admin');
    await page.goto(`${base}/admin/points`);
    await totalIs(page, 'points', 270);
    assert.equal(await page.locator('#points tbody tr').count(), 20, 'one page of 20');
    assert.match(await page.textContent('#points-list .pager'), /第 1 \/ 14 页.*共 270 条/s);
    await shot(page, '40-points-page-1');

    // Paging.
    const first = await page.locator('#points tbody tr').first().getAttribute('data-code');
    await page.click('#points-list .page-next');
    await page.waitForFunction(() => /第 2 \//.test(document.querySelector('#points-list .page-info')?.textContent || ''));
    await page.waitForFunction((c) => document.querySelector('#points tbody tr')?.getAttribute('data-code') !== c, first);
    assert.equal(await page.locator('#points tbody tr').first().getAttribute('data-code'), 'JA-D021');

    // Sorting by a column header: code descending.
    await page.click('#points th button[data-sort=code]');
    await page.waitForFunction(() => document.querySelector('#points th[aria-sort=descending] button[data-sort=code]'));
    await page.waitForFunction(() => document.querySelector('#points tbody tr')?.getAttribute('data-code') === 'JA-JN01');

    // A street filter, then search within it.
    await page.selectOption('#points-list select[name=street]', '北站街道');
    await totalIs(page, 'points', 6, 39);
    const streets = await page.locator('#points tbody tr td:nth-child(3)').allTextContents();
    assert.ok(streets.every((s) => s === '北站街道'), streets.join());
    await page.fill('#points-list input[type=search]', 'JA-D00');
    await page.press('#points-list input[type=search]', 'Enter');
    await totalIs(page, 'points', 1);
    assert.equal(await page.locator('#points tbody tr').first().getAttribute('data-code'), 'JA-D006');
    await shot(page, '41-points-filtered');

    // Search alone narrows the whole district.
    await page.selectOption('#points-list select[name=street]', '');
    await page.fill('#points-list input[type=search]', '彭浦');
    await page.press('#points-list input[type=search]', 'Enter');
    await totalIs(page, 'points', 21, 269);
    const names = await page.locator('#points tbody tr td:nth-child(2)').allTextContents();
    assert.ok(names.every((s) => s.includes('彭浦')), names.join());

    // Terminals: the alarm filter (the monitor raises the silent terminals' offline alarms).
    await page.goto(`${base}/admin/terminals`);
    await totalIs(page, 'terminals', 270);
    await page.selectOption('#terminals-list select[name=alarm]', 'yes');
    await totalIs(page, 'terminals', 1, 59);
    assert.ok((await page.locator('#terminals tbody tr.alarm').count()) > 0);
    await shot(page, '42-terminals-alarms');

    // Accounts: a role filter.
    await page.goto(`${base}/admin/accounts`);
    await page.waitForSelector('#accounts tbody tr');
    await page.selectOption('#accounts-list select[name=role]', 'operator');
    await totalIs(page, 'accounts', 2);
    await page.context().close();
  });

  test('the supervisor sees what needs action first, and the map of 270 points', async () => {
    const page = await openPage(browser, base, { width: 1440, height: 1000 });
    await signIn(page, base, 'supervisor');
    await page.waitForSelector('#terminal-health tbody tr[data-terminal]');
    // Their own acceptance center's terminals first (静安南部: 7 of the 14 streets), then 全区.
    await totalIs(page, 'terminal-health', 100, 200);
    await page.selectOption('#terminal-health-list select[name=center]', '');
    // The offline alarms come within a second or two (BANGBAN_HEALTH_CHECK_INTERVAL_SECS=1).
    await page.waitForFunction(() => document.querySelector('#terminal-health tbody tr')?.classList.contains('alarm'));
    await totalIs(page, 'terminal-health', 270);
    assert.equal(await page.locator('#terminal-health tbody tr').count(), 15);
    assert.ok((await page.locator('#terminal-health tbody tr.alarm').count()) === 15, 'a full first page of alarms');
    await page.fill('#terminal-health-list input[type=search]', '临汾路');
    await page.press('#terminal-health-list input[type=search]', 'Enter');
    await totalIs(page, 'terminal-health', 6, 39);
    await page.locator('#terminals').screenshot({ path: join(shots, '43-terminal-health.png') });

    await page.click('nav a:has-text("地图")');
    await page.waitForSelector('.map-svg .map-point');
    await page.waitForFunction(() => document.querySelectorAll('.map-svg .map-point').length === 270);
    const states = await page.$$eval('.map-svg .map-point', (els) => els.map((e) => e.getAttribute('data-state')));
    const count = (/** @type {string} */ s) => states.filter((x) => x === s).length;
    assert.ok(count('alarm') > 0, 'alarm');
    assert.ok(count('overdue') > 20, `overdue ${count('overdue')}`);
    assert.ok(count('closed') > 10, `closed ${count('closed')}`);
    assert.ok(count('open') > 100, `open ${count('open')}`);
    // Colours by state, as the legend says.
    const fills = await page.$$eval('.map-svg .map-point', (els) => [...new Set(els.map((e) => `${e.getAttribute('data-state')}=${e.getAttribute('fill')}`))].sort());
    assert.deepEqual(fills, ['alarm=#cf222e', 'closed=#8c959f', 'open=#1a7f37', 'overdue=#d4730b']);
    const legend = await page.textContent('.map-legend');
    assert.match(legend, /设备告警.*巡检超期.*当前闭馆.*开放中.*共 270 个服务点/s);
    assert.ok(await page.$('.map-scale text') && await page.$('.map-north'), 'scale bar and north arrow');
    // Every point within the plot.
    const inside = await page.$$eval('.map-svg .map-point', (els) => els.every((e) => {
      const x = Number(e.getAttribute('cx')); const y = Number(e.getAttribute('cy'));
      return x > 0 && x < 1000 && y > 0 && y < 760;
    }));
    assert.ok(inside);
    // Hover and click show the point.
    await page.locator('.map-svg .map-point[data-code="JA-HS01"]').dispatchEvent('mouseenter');
    await page.waitForSelector('.map-point-info[data-code="JA-HS01"]');
    assert.match(await page.textContent('.map-info'), /华山居委会静邻帮办点.*华山路/s);
    const alarmed = page.locator('.map-svg .map-point[data-state=alarm]').first();
    await alarmed.dispatchEvent('click');
    await page.waitForFunction(() => /设备告警/.test(document.querySelector('.map-info')?.textContent || ''));
    await shot(page, '44-map');
    // A street narrows the map.
    await page.selectOption('.map-page select[name=street]', '静安寺街道');
    await page.waitForFunction(() => document.querySelectorAll('.map-svg .map-point').length < 40);
    await shot(page, '45-map-street');
    await page.context().close();
  });
});

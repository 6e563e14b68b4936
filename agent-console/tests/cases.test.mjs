// Cases in the console (issue 14): the real signaling-server (built by cargo, started here on a
// free port with a temporary data directory and --demo) serving dist/, driven by Chromium through
// playwright-core. A call wrapped up as 需补材料 becomes a work order from the operator's desk;
// the order goes through its steps and its call-back is recorded; staff open an order and a
// home-visit request at their point; the supervisor approves the visit, sees the overdue board
// and keeps the two lists. Screenshots go to test-results/screenshots/cases-*.png.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PASSWORD, openPage, shots, signIn, startConsole, stopConsole } from './harness.mjs';
import { terminal } from './terminal.js';

/** @type {Awaited<ReturnType<typeof startConsole>>} */ let run;
let base = '';
let dataDir = '';
/** @type {import('playwright-core').Browser} */ let browser;

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

/** @param {string} path @param {any} body @param {string} token */
async function put(path, body, token) {
  const res = await fetch(base + path, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Today in China time, `YYYY-MM-DD`, and whether it is past 09:00 there (escalations wait for it). */
function chinaNow() {
  const d = new Date(Date.now() + 8 * 3600e3);
  return { date: d.toISOString().slice(0, 10), weekend: d.getUTCDay() === 0 || d.getUTCDay() === 6, afterNine: d.getUTCHours() >= 9 };
}

/** @param {import('playwright-core').Page} page @param {string} name */
const shot = (page, name) => page.screenshot({ path: join(shots, `cases-${name}.png`), fullPage: true });

/** @param {{ width: number, height: number }} [viewport] */
const newPage = (viewport) => openPage(browser, base, viewport);
/** @param {import('playwright-core').Page} page @param {string} user */
const login = (page, user) => signIn(page, base, user);

before(async () => {
  run = await startConsole();
  ({ base, dataDir, browser } = run);
});

after(() => stopConsole(run));

/** The staff member's point and a terminal enrolled there with a device token. */
async function staffTerminal() {
  const staff = await rest('/api/v1/auth/login', { username: 'staff1', password: PASSWORD });
  const sup = await rest('/api/v1/auth/login', { username: 'supervisor', password: PASSWORD });
  const points = await rest('/api/v1/points', undefined, sup.access_token);
  const point = points.find((/** @type {any} */ p) => p.id === staff.user.point_id);
  assert.ok(point, 'staff1 has a point');
  const codes = readFileSync(join(dataDir, 'demo-enrollment.txt'), 'utf8').trim().split('\n').map((l) => l.split(' '));
  const code = codes.find(([pc]) => pc === point.code);
  assert.ok(code, `a demo terminal at ${point.code}`);
  const enrolled = await rest('/api/v1/terminals/enroll', { code: code[1] });
  const device = await rest('/api/v1/terminals/token', { credential: enrolled.credential });
  return { point, device, staff };
}

/** @type {string} */ let orderNumber = '';
/** @type {any} */ let place;

describe('operator', () => {
  test('a call wrapped up as 需补材料 becomes a work order; the order goes 分类 → 转办 → 办结 and its call-back is recorded', async () => {
    place = await staffTerminal();
    const page = await newPage();
    await login(page, 'operator1');
    await page.waitForSelector('#op-state[data-state=away]');
    await page.click('#availability');
    await page.waitForSelector('#op-state[data-state=available]');
    const op = await rest('/api/v1/auth/login', { username: 'operator1', password: PASSWORD });
    const items = await rest('/api/v1/items', undefined, place.device.access_token);
    const item = items.find((/** @type {any} */ i) => i.remote_allowed && i.active && op.user.skills.includes(i.line_id) && i.materials.some((/** @type {any} */ m) => m.required));
    assert.ok(item, 'an item operator1 serves, with required materials');
    const termPage = await newPage({ width: 800, height: 600 });
    await termPage.goto(`${base}/healthz`);
    await termPage.evaluate(terminal, { token: place.device.access_token, itemId: item.id, resident: { name: '王五', id_number: '11010519491231002X' }, staffToken: place.staff.access_token });

    await page.waitForSelector('#ringing #accept');
    await page.click('#accept');
    await page.waitForSelector('#call-stage');
    await page.click('#end-call');
    await page.waitForSelector('#wrap-up');
    await page.check('input[name=outcome][value=needs_materials]');
    await page.fill('#wrap-notes', '缺户口簿原件，居民下周补交。');
    await page.click('#wrap-submit');

    // The desk offers the work order, with the item's required materials ticked.
    const dlg = page.locator('dialog[open]');
    await dlg.waitFor();
    assert.match(await dlg.locator('h2').textContent() || '', /转为工单/);
    assert.equal(await dlg.locator('textarea[name=summary]').inputValue(), '缺户口簿原件，居民下周补交。');
    assert.equal(await dlg.locator('select[name=deadline]').inputValue(), 'five_days');
    const ticked = await dlg.locator('#outstanding input:checked').count();
    assert.ok(ticked >= 1, 'required materials are ticked as outstanding');
    // Still in wrap-up while the dialog is open: no call can ring behind it.
    await page.waitForSelector('#op-state[data-state=wrap_up]', { state: 'attached' });
    await shot(page, '01-operator-offer-order');
    await dlg.locator('button[type=submit]').click();
    await page.waitForSelector('.toast.ok:has-text("已创建工单")');
    await page.waitForSelector('#op-state[data-state=available]');
    orderNumber = (/已创建工单 (\S+)，/.exec(await page.locator('.toast.ok:has-text("已创建工单")').textContent() || '') || [])[1] || '';
    assert.ok(orderNumber, 'the toast names the order');

    // 工单: the order is listed with its deadline in China time; steps from the detail dialog.
    await page.click('a.nav-link[href="/cases/orders"]');
    const row = page.locator(`#orders tr[data-order="${orderNumber}"]`);
    await row.waitFor();
    const text = await row.textContent() || '';
    assert.match(text, /受理/);
    assert.match(text, /需补材料/);
    assert.match(text, /\d{4}-\d{2}-\d{2}/, 'deadline shown');
    assert.match(text, /剩 \d+ 个工作日/);
    await shot(page, '02-operator-orders');
    // The detail lists the item's checklist (申请材料): what is outstanding and what the call stored.
    await row.locator('button.open-order').click();
    const md = page.locator('dialog[open]');
    const mats = md.locator('#order-materials tbody tr');
    await mats.first().waitFor();
    assert.equal(await mats.count(), item.materials.length, 'every checklist entry');
    for (const m of item.materials) {
      const r = md.locator(`#order-materials tr[data-material="${m.name}"]`);
      assert.equal(await r.getAttribute('data-outstanding'), String(m.required), `${m.name}: required ones ticked as outstanding`);
      assert.equal(await r.getAttribute('data-stored'), '0', 'nothing was scanned in this call');
      assert.match(await r.textContent() || '', m.required ? /必需.*待补/ : /可选/);
    }
    await shot(page, '02a-operator-order-materials');
    await md.locator('.dialog-actions .btn:not(.primary)').click();
    await md.waitFor({ state: 'detached' });
    /** @param {string} action @param {string | null} text */
    async function step(action, text) {
      await row.locator('button.open-order').click();
      const d = page.locator('dialog[open]');
      await d.waitFor();
      await d.locator('#step-action').selectOption(action);
      if (text != null) await d.locator('textarea[name=text]').fill(text);
      if (action === 'transfer') await shot(page, '03-operator-order-detail');
      await d.locator('button[type=submit]').click();
      await d.waitFor({ state: 'detached' });
    }
    // The resident agrees to be called: the number is stored masked and shown in full only on an audited reveal.
    await row.locator('button.open-order').click();
    await page.click('dialog[open] #add-phone');
    const ph = page.locator('dialog[open]:has(input[name=phone])');
    await ph.locator('input[name=phone]').fill('13912345678');
    // Without the consent box ticked the form does not submit.
    await ph.locator('button[type=submit]').click();
    assert.equal(await ph.locator('input[name=consent]').evaluate((el) => /** @type {HTMLInputElement} */ (el).validity.valueMissing), true);
    await ph.locator('input[name=consent]').check();
    await ph.locator('button[type=submit]').click();
    await ph.waitFor({ state: 'detached' });
    await row.locator('button.open-order').click();
    const det = page.locator('dialog[open]');
    await det.locator('dd:has-text("139****5678")').waitFor();
    page.once('dialog', (d) => d.accept());
    await det.locator('#reveal-phone').click();
    await det.locator('#phone-full:has-text("13912345678")').waitFor();
    await shot(page, '02b-operator-phone-revealed');
    await det.locator('.dialog-actions .btn:not(.primary)').click();
    const admin = await rest('/api/v1/auth/login', { username: 'admin', password: PASSWORD });
    const audit = await rest('/api/v1/audit?action=order.contact.reveal', undefined, admin.access_token);
    assert.match(JSON.stringify(audit), /order\.contact\.reveal/, 'the reveal is audited');

    await step('classify', '户籍');
    await row.locator('td:has-text("分类")').waitFor();
    // 退回 needs a reason: without one the dialog does not submit; with one the order is back at
    // 受理 and the reason is in its history.
    await row.locator('button.open-order').click();
    let rd = page.locator('dialog[open]');
    await rd.locator('#step-action').selectOption('return');
    await rd.locator('button[type=submit]').click();
    assert.equal(await rd.locator('textarea[name=text]').evaluate((el) => /** @type {HTMLTextAreaElement} */ (el).validity.valueMissing), true, 'a reason is required');
    assert.equal(await rd.count(), 1, 'the dialog stays open');
    await rd.locator('textarea[name=text]').fill('类别有误：应由社保条线办理，退回重新分类。');
    await shot(page, '03a-operator-return-reason');
    await rd.locator('button[type=submit]').click();
    await rd.waitFor({ state: 'detached' });
    await row.locator('td:has-text("受理")').waitFor();
    await row.locator('button.open-order').click();
    rd = page.locator('dialog[open]');
    await rd.locator('.order-history li:has-text("退回"):has-text("类别有误")').waitFor();
    await rd.locator('.dialog-actions .btn:not(.primary)').click();
    await rd.waitFor({ state: 'detached' });
    await step('classify', '户籍');
    await row.locator('td:has-text("分类")').waitFor();
    await step('transfer', '户籍条线');
    await row.locator('td:has-text("户籍条线")').waitFor();
    await step('complete', '材料已补齐，已办结。');
    await row.waitFor({ state: 'detached' });
    await page.click('button[data-tab=closed]');
    await row.locator('td:has-text("办结")').waitFor();

    // 回访: the completed order has its call-back task; the operator records it.
    await page.click('a.nav-link[href="/cases/callbacks"]');
    const cb = page.locator(`#callbacks tr:has-text("${orderNumber}")`);
    await cb.waitFor();
    await shot(page, '04-operator-callbacks');
    await cb.locator('button.record-callback').click();
    const d = page.locator('dialog[open]');
    await d.locator('input[name=satisfied][value=yes]').check();
    await d.locator('textarea[name=result]').fill('居民表示满意，已拿到证件。');
    await d.locator('button[type=submit]').click();
    await cb.waitFor({ state: 'detached' });
    await page.click('button[data-tab=done]');
    await page.locator(`#callbacks tr:has-text("${orderNumber}"):has-text("满意")`).waitFor();
    await page.context().close();
    await termPage.context().close();
  });
});

describe('staff', () => {
  test('sees the point\'s orders, opens one and asks for a home visit', async () => {
    const page = await newPage();
    await login(page, 'staff1');
    await page.click('a.nav-link[href="/cases/orders"]');
    await page.click('button[data-tab=all]');
    // The operator's order came from a call at this point.
    await page.locator(`#orders tr[data-order="${orderNumber}"]`).waitFor();
    await page.click('#new-order');
    const d = page.locator('dialog[open]');
    await d.locator('textarea[name=summary]').fill('居民反映养老金到账查询需线下核对。');
    await d.locator('button[type=submit]').click();
    await page.waitForSelector('.toast.ok:has-text("已创建工单")');
    await page.locator('#orders tr:has-text("养老金到账查询")').waitFor();
    assert.equal(await page.locator('#orders tr:has-text("养老金到账查询") button.open-order').count(), 1);
    await shot(page, '05-staff-orders');

    await page.click('a.nav-link[href="/cases/home-visits"]');
    await page.click('#new-visit');
    const v = page.locator('dialog[open]');
    await v.locator('textarea[name=situation]').fill('独居老人，行动不便，需办理高龄津贴。');
    await v.locator('input[name=address]').fill('静安区康定路 100 弄 5 号 301 室');
    await v.locator('button[type=submit]').click();
    const row = page.locator('#home-visits tr:has-text("高龄津贴")');
    await row.locator('td:has-text("待审核")').waitFor();
    assert.equal(await row.locator('button.approve').count(), 0, 'staff do not approve');
    await page.click('#new-visit');
    const v2 = page.locator('dialog[open]');
    await v2.locator('textarea[name=situation]').fill('居民腿脚不便，申请上门代办居住证签注。');
    await v2.locator('input[name=address]').fill('静安区康定路 200 弄 8 号');
    await v2.locator('button[type=submit]').click();
    await page.locator('#home-visits tr:has-text("居住证签注") td:has-text("待审核")').waitFor();
    await shot(page, '06-staff-home-visits');
    await page.context().close();
  });
});

describe('supervisor', () => {
  test('approves and schedules the home visit, sees the overdue board and keeps the two lists', async () => {
    const page = await newPage();
    await login(page, 'supervisor');
    await page.click('a.nav-link[href="/cases/home-visits"]');
    const row = page.locator('#home-visits tr:has-text("高龄津贴")');
    await row.waitFor();
    await shot(page, '07-supervisor-home-visit-approval');
    // 不同意 needs a reason: without one the dialog does not submit; the reason is shown on the row.
    const refused = page.locator('#home-visits tr:has-text("居住证签注")');
    await refused.locator('button.refuse').click();
    let d = page.locator('dialog[open]');
    assert.match(await d.locator('h2').textContent() || '', /不同意上门/);
    await d.locator('button[type=submit]').click();
    assert.equal(await d.locator('textarea[name=reason]').evaluate((el) => /** @type {HTMLTextAreaElement} */ (el).validity.valueMissing), true, 'a reason is required');
    await d.locator('textarea[name=reason]').fill('居住证签注可由家属持材料到服务点代办，不需上门。');
    await shot(page, '07a-supervisor-home-visit-refuse');
    await d.locator('button[type=submit]').click();
    await d.waitFor({ state: 'detached' });
    await refused.locator('td:has-text("未批准")').waitFor();
    assert.match(await refused.textContent() || '', /家属持材料到服务点代办/);
    assert.equal(await refused.locator('button').count(), 0, 'a refused request is final');

    await row.locator('button.approve').click();
    d = page.locator('dialog[open]');
    await d.locator('textarea[name=reason]').fill('符合上门条件。');
    await d.locator('button[type=submit]').click();
    await row.locator('button.schedule').click();
    d = page.locator('dialog[open]');
    // A week from now at 10:00, China time.
    const day = new Date(Date.now() + 8 * 3600e3 + 7 * 86400e3).toISOString().slice(0, 10);
    await d.locator('input[name=at]').fill(`${day}T10:00`);
    await d.locator('input[name=assignees]').fill('周社工、志愿者李四');
    await d.locator('input[name=materials]').fill('身份证、户口簿');
    await d.locator('button[type=submit]').click();
    await row.locator(`td:has-text("${day.replaceAll('-', '/')} 10:00")`).waitFor();
    await shot(page, '08-supervisor-home-visit-scheduled');
    assert.match(await row.textContent() || '', /志愿者李四/);
    assert.match(await row.textContent() || '', /携带：身份证、户口簿/);

    // A 12345 case entered with a deadline that passes at once lands on the overdue board.
    const sup = await rest('/api/v1/auth/login', { username: 'supervisor', password: PASSWORD });
    const items = await rest('/api/v1/items', undefined, sup.access_token);
    const overdueOrder = await rest('/api/v1/orders', {
      source: 'hotline_12345', point_id: place.point.id, item_id: items.find((/** @type {any} */ i) => i.active).id,
      summary: '12345 热线反映低保复核无人答复', source_ref: '12345-20261205-0088', deadline: { class: 'set', due_at: Date.now() + 500 },
    }, sup.access_token);
    await page.click('a.nav-link[href="/cases/overdue"]');
    const late = page.locator(`#overdue-orders tr[data-order="${overdueOrder.number}"]`);
    for (let i = 0; !(await late.count()); i++) {
      assert.ok(i < 50, 'the order reaches the overdue board');
      await page.click('.page-head .actions button');
      await page.waitForTimeout(200);
    }
    assert.match(await late.textContent() || '', /超期/);
    assert.match(await late.textContent() || '', /12345 热线/);
    const tiles = await page.locator('.tiles').textContent() || '';
    assert.match(tiles, /超期工单[1-9]/);

    // 提级响应: the cases worker raises the overdue order to the supervisors (on working days from
    // 09:00 China time); the board tags it and the task list carries the notification. Today is
    // made a working day (调休) through the calendar when it is not one.
    const now = chinaNow();
    if (now.afterNine) {
      const admin = await rest('/api/v1/auth/login', { username: 'admin', password: PASSWORD });
      const year = await rest(`/api/v1/calendar/${now.date.slice(0, 4)}`, undefined, admin.access_token);
      const today = year.days.find((/** @type {any} */ x) => x.date === now.date);
      if ((now.weekend && today?.kind !== 'workday') || today?.kind === 'holiday') {
        const days = year.days.filter((/** @type {any} */ x) => x.date !== now.date)
          .concat([{ date: now.date, kind: 'workday', festival: 'Test make-up day', festival_zh: '测试调休' }]);
        await put(`/api/v1/calendar/${now.date.slice(0, 4)}`, { days }, admin.access_token);
      }
      for (let i = 0; !(await late.locator('span.tag.escalated:has-text("超期提级")').count()); i++) {
        assert.ok(i < 100, 'the overdue order is raised to the supervisors');
        await page.click('.page-head .actions button');
        await page.waitForTimeout(200);
      }
      const note = page.locator(`#tasks li[data-topic="order.overdue"]:has-text("${overdueOrder.number}")`);
      await note.waitFor();
      assert.match(await note.textContent() || '', /超期提级.*已超过办理时限/);
      assert.match(await page.locator('.tiles').textContent() || '', /已提级督办[1-9]/);
      await late.locator('button.open-order').click();
      const hist = page.locator('dialog[open]');
      await hist.locator('.order-history li:has-text("超期提级")').waitFor();
      await shot(page, '09a-supervisor-escalated-order');
      await hist.locator('.dialog-actions .btn:not(.primary)').click();
    } else {
      // Before 09:00 nothing is raised yet: the board shows the order without the tag.
      assert.equal(await late.locator('span.tag.escalated').count(), 0, 'no escalation before 09:00');
    }
    await shot(page, '09-supervisor-overdue');

    // 工单: a case from the suggestion box, entered by the supervisor for a point.
    await page.click('a.nav-link[href="/cases/orders"]');
    await page.click('#new-order');
    d = page.locator('dialog[open]');
    await d.locator('select[name=source]').selectOption('suggestion_box');
    await d.locator('input[name=source_ref]').fill('YJX-2026-031');
    await d.locator('select[name=point_id]').selectOption(place.point.id);
    await d.locator('textarea[name=summary]').fill('意见箱：建议服务点周六上午开放');
    await d.locator('button[type=submit]').click();
    const sb = page.locator('#orders tr:has-text("建议服务点周六上午开放")');
    await sb.waitFor();
    assert.match(await sb.textContent() || '', /意见箱/);
    assert.ok(await page.locator(`#orders tr[data-order="${overdueOrder.number}"]`).count(), 'supervisors see every open order');
    await shot(page, '09b-supervisor-orders');

    await page.click('a.nav-link[href="/cases/lists"]');
    await page.click('#new-problem');
    d = page.locator('dialog[open]');
    await d.locator('select[name=source]').selectOption('spot_check');
    await d.locator('textarea[name=description]').fill('抽查发现服务点打印机缺纸未及时补充。');
    await d.locator('input[name=owner]').fill('周社工');
    await d.locator('button[type=submit]').click();
    const p = page.locator('#problems tr:has-text("打印机缺纸")');
    await p.locator('td:has-text("待整改")').waitFor();
    await shot(page, '10-supervisor-problems');
    await p.locator('button.rectify').click();
    d = page.locator('dialog[open]');
    await d.locator('textarea[name=measures]').fill('建立每日开门前检查纸张制度。');
    await d.locator('button[type=submit]').click();
    // Still on the problem list (open until closed), now 整改中; and on the rectification list.
    await p.locator('td:has-text("整改中")').waitFor();
    await page.click('button[data-tab=rectifications]');
    await p.locator('td:has-text("整改中")').waitFor();
    await p.locator('button.close-problem').click();
    d = page.locator('dialog[open]');
    await d.locator('textarea[name=evidence]').fill('检查记录表 12 月第一周。');
    await d.locator('button[type=submit]').click();
    await p.waitFor({ state: 'detached' });
    await page.click('button[data-tab=closed]');
    await p.waitFor();
    await shot(page, '11-supervisor-closed-problems');
    await page.context().close();
  });
});

describe('staff after the visit', () => {
  test('records the home visit\'s outcome and the resident\'s rating (评价)', async () => {
    const page = await newPage();
    await login(page, 'staff1');
    await page.click('a.nav-link[href="/cases/home-visits"]');
    const row = page.locator('#home-visits tr:has-text("高龄津贴")');
    await row.locator('button.complete').click();
    let d = page.locator('dialog[open]');
    await d.locator('textarea[name=outcome]').fill('已上门采集材料，高龄津贴申请已受理。');
    await d.locator('button[type=submit]').click();
    await row.locator('button.rate').click();
    d = page.locator('dialog[open]');
    await d.locator('select[name=level]').selectOption('very_satisfied');
    await d.locator('input[name=comment]').fill('不用跑腿，很方便');
    await d.locator('button[type=submit]').click();
    await row.locator('span.tag.rt-very_satisfied:has-text("非常满意")').waitFor();
    assert.match(await row.textContent() || '', /已上门采集材料/);
    assert.equal(await row.locator('button').count(), 0, 'nothing left to do');
    await shot(page, '12-staff-home-visit-rated');
    await page.context().close();
  });
});

describe('reports', () => {
  test('the supervisor sees the weekly report with its charts and downloads the XLSX', async () => {
    const page = await newPage({ width: 1366, height: 900 });
    await login(page, 'supervisor');
    await page.click('a.nav-link[href="/cases/reports"]');
    await page.waitForSelector('#report-table tbody tr.total');
    // This test run's call and orders are this week's, at staff1's point.
    const title = await page.textContent('.report-title') || '';
    assert.match(title, /^周通报（\d{4}-\d{2}-\d{2} 至 \d{4}-\d{2}-\d{2}，按服务点）$/);
    const row = page.locator(`#report-table tbody tr:has-text("${place.point.name}")`);
    const cells = await row.locator('td').allTextContents();
    assert.equal(Number(cells[1]), 1, `one ticket: ${cells}`);
    assert.equal(Number(cells[2]), 1, 'served');
    assert.equal(Number(cells[7]), 4, 'orders opened: from the wrap-up, by staff, from 12345 and 意见箱');
    assert.equal(Number(cells[8]), 1, 'orders closed');
    assert.equal(Number(cells[9]), 1, 'orders overdue: the 12345 one');
    assert.equal(Number(cells[10]), 1, 'call-backs done');
    await page.waitForSelector('#chart-tickets .bar-fill');
    await page.waitForSelector('#chart-first-response .bar-fill');
    await shot(page, '13-supervisor-weekly-report');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#report-download')]);
    assert.match(download.suggestedFilename(), /^bangban-weekly-point-\d{4}-\d{2}-\d{2}\.xlsx$/);
    const file = join(shots, '..', download.suggestedFilename());
    await download.saveAs(file);
    const bytes = readFileSync(file);
    assert.equal(bytes.subarray(0, 2).toString(), 'PK', 'an XLSX (zip) file');
    // By line, monthly.
    await page.click('button[data-tab=monthly]');
    await page.waitForSelector('.report-title:has-text("月汇总")');
    await page.click('button[data-tab=line]');
    await page.waitForSelector('.report-title:has-text("按条线")');
    await page.waitForSelector('#report-table thead th:has-text("条线")');
    await shot(page, '14-supervisor-monthly-by-line');
    await page.context().close();
  });
});

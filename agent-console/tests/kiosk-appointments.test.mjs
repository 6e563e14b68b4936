// The kiosk page's appointment flow (预约, #16 item 3) in Chromium at the touch screen's size,
// against a stand-in for the kiosk service's local API (the real page, endpoint-client/static/
// index.html): with nobody on duty the item's screen offers 预约 next to the call-back; signed-in
// staff pick a day, a time, enter the name and phone with consent and get the check-in code;
// 我有预约 on the welcome screen finds an appointment by its code and takes the ticket with it.
// Every screen is screenshotted into test-results/screenshots/.
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, repo, shots } from './harness.mjs';

const PAGE = readFileSync(join(repo, 'endpoint-client', 'static', 'index.html'), 'utf8');
const LINE = '0197b3f0-0000-7000-8000-00000000000a';
const ITEM = '0197b3f0-0000-7000-8000-0000000000a1';
const APPOINTMENT = '0197b3f0-0000-7000-8000-0000000000f1';
const DAY = 24 * 3600e3;
// Slots on two days: the first day full, the second with places (China time 09:00, 09:30).
const base = Date.UTC(2026, 11, 7, 1, 0); // 2026-12-07 09:00 CST, a Monday
const date = (ms) => new Date(ms + 8 * 3600e3).toISOString().slice(0, 10);
const slot = (start, free) => ({ date: date(start), label: new Date(start + 8 * 3600e3).toISOString().slice(11, 16) + '-' + new Date(start + 8 * 3600e3 + 1800e3).toISOString().slice(11, 16), start, end: start + 1800e3, capacity: 6, free });
const SLOTS = [slot(base, 0), slot(base + 1800e3, 0), slot(base + DAY, 6), slot(base + DAY + 1800e3, 2)];

/** @type {{ method: string, url: string, body: any }[]} */
const calls = [];
let staff = { name: '周社工' };
let server, browser, url = '';
const UNSTAFFED = { open: true, lines: [{ line_id: LINE, serving: 0, waiting: 0, next_staffed_at: base }] };
/** What the kiosk API answers at `/api/availability` (the server's, passed through). */
let availability = UNSTAFFED;
/** The kiosk service's phase as the stand-in pushes it: `idle`, or `waiting` once a ticket is taken. */
let phase = 'idle';
/** @type {import('node:http').ServerResponse[]} */
const streams = [];

function status() {
  const waiting = phase === 'waiting'
    ? { ticket_number: 'H-0007', position: 1, serving: 1, wait: { min_secs: 0, max_secs: 300 }, estimated_wait_secs: 300 }
    : {};
  return { phase, connected: true, staff, notices: [], screen_idle_secs: 600, ...waiting };
}
const push = () => { for (const s of streams) s.write(`event: status\ndata: ${JSON.stringify(status())}\n\n`); };

before(async () => {
  mkdirSync(shots, { recursive: true });
  server = createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = raw ? JSON.parse(raw) : null;
    calls.push({ method: req.method ?? '', url: req.url ?? '', body });
    const json = (code, v) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
    const path = (req.url ?? '').split('?')[0];
    if (path === '/') { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }); res.end(PAGE); return; }
    if (path === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(`event: status\ndata: ${JSON.stringify(status())}\n\n`);
      streams.push(res);
      return; // kept open like the kiosk service's stream
    }
    if (path === '/api/items') return json(200, [{ id: ITEM, name: '灵活就业人员参保登记', line_id: LINE, line_name: '社会保险', active: true }]);
    if (path === '/api/availability') return json(200, availability);
    if (path === '/api/appointment-slots') return json(200, SLOTS);
    if (path === '/api/appointment') {
      return json(200, { id: APPOINTMENT, item_id: ITEM, item_name: '灵活就业人员参保登记', when: '12月8日（周二）09:30-10:00', code: '042917', state: 'booked', name_masked: '王**', phone_masked: '139****5678' });
    }
    if (path === '/api/appointment/find') {
      if (body?.code !== '042917') return json(404, { error: '未找到今天在本服务点的预约，请核对签到码' });
      return json(200, { id: APPOINTMENT, item_id: ITEM, item_name: '灵活就业人员参保登记', when: '12月8日（周二）09:30-10:00', code: '042917', state: 'booked' });
    }
    if (path === '/api/ticket') {
      json(200, { ok: true });
      phase = 'waiting';
      push();
      return;
    }
    json(404, { error: 'not found' });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  url = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: CHROMIUM_ARGS, ignoreDefaultArgs: ['--headless'] });
});

after(async () => {
  await browser?.close();
  server?.closeAllConnections();
  server?.close();
});

async function kioskPage() {
  const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
  await page.goto(url);
  await page.locator('#staffbar').waitFor({ state: staff ? 'visible' : 'hidden' });
  return page;
}
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`) });

/**
 * Waits until `selector` shows text matching `re` (the page fills it after its request to the
 * kiosk API returns), then returns that text.
 * @param {import('playwright-core').Page} page @param {string} selector @param {RegExp} re
 */
async function textMatching(page, selector, re) {
  await page.locator(selector).filter({ hasText: re }).waitFor();
  return page.locator(selector).innerText();
}

test('nobody on duty: staff book a slot in three steps and get the check-in code', async () => {
  staff = { name: '周社工' };
  const page = await kioskPage();
  await page.click('#start');
  await page.click(`button[data-id="${ITEM}"]`);
  await page.locator('#take-unstaffed').waitFor();
  assert.match(await page.locator('#take-unstaffed').innerText(), /当前无人值守[\s\S]*联系电话[\s\S]*预约/);
  await shot(page, '60-kiosk-unstaffed-offers-appointment');

  await page.click('#appt-start');
  await page.locator('#days button').first().waitFor();
  const days = page.locator('#days button');
  assert.equal(await days.count(), 2);
  assert.ok(await days.nth(0).isDisabled(), 'a full day cannot be chosen');
  assert.match(await days.nth(0).innerText(), /12月7日 周一[\s\S]*已约满/);
  assert.match(await days.nth(1).innerText(), /12月8日 周二[\s\S]*还可预约 8 人/);
  await shot(page, '61-kiosk-appointment-day');

  await days.nth(1).click();
  const slots = page.locator('#slots button');
  await slots.nth(1).waitFor();
  assert.deepEqual(await slots.allInnerTexts(), ['09:00-09:30\n余 6 个名额', '09:30-10:00\n余 2 个名额']);
  await shot(page, '62-kiosk-appointment-time');

  await slots.nth(1).click();
  assert.match(await page.locator('#appt-when').innerText(), /灵活就业人员参保登记 · 12月8日 周二 09:30-10:00/);
  await page.fill('#aname', '王秀英');
  await page.fill('#aphone', '139 1234 5678');
  await page.click('#appt-save');
  assert.match(await textMatching(page, '#aform-error', /同意/), /同意/, 'consent first');
  await page.click('#appt-consent');
  await shot(page, '63-kiosk-appointment-details');
  await page.click('#appt-save');
  await page.locator('#appt-done.on').waitFor();
  assert.equal(await page.locator('#done-code').innerText(), '042917');
  assert.match(await page.locator('#done-what').innerText(), /12月8日（周二）09:30-10:00/);
  await shot(page, '64-kiosk-appointment-booked');
  const booked = calls.filter((c) => c.url === '/api/appointment').at(-1)?.body;
  assert.deepEqual(
    { ...booked, consent_text: undefined },
    { item_id: ITEM, slot_start: base + DAY + 1800e3, name: '王秀英', phone: '13912345678', consent: true, consent_text: undefined },
  );
  assert.match(booked.consent_text, /^居民同意帮办保存本人姓名和联系电话/);
  await page.click('#appt-finish');
  await page.locator('#idle.on').waitFor();
  assert.equal(await page.inputValue('#aname'), '', 'nothing of the resident is left on screen');
  await page.context().close();
});

test('without staff signed in the kiosk asks for them before booking', async () => {
  staff = null;
  const page = await kioskPage();
  await page.click('#start');
  await page.click(`button[data-id="${ITEM}"]`);
  await page.click('#appt-start');
  assert.match(await textMatching(page, '#take-error', /社区工作人员登录/), /社区工作人员登录/);
  assert.ok(await page.locator('#privacy.on').isVisible(), 'stays on the item screen');
  await page.context().close();
});

test('我有预约: the code finds the appointment and the ticket is taken with it', async () => {
  staff = null;
  const page = await kioskPage();
  await page.click('#appt-in');
  for (const d of '042918') await page.click(`#keypad button:text-is("${d}")`);
  await page.click('#acode-go');
  assert.match(await textMatching(page, '#acode-error', /未找到/), /未找到/);
  await page.click('#keypad button:text-is("删除")');
  await page.click('#keypad button:text-is("7")');
  assert.equal(await page.inputValue('#acode'), '042917');
  await shot(page, '65-kiosk-appointment-check-in');
  await page.click('#acode-go');
  await page.locator('#privacy.on').waitFor();
  assert.match(await page.locator('#chosen-name').innerText(), /预约签到：灵活就业人员参保登记 · 12月8日（周二）09:30-10:00/);
  await shot(page, '66-kiosk-appointment-checked-in');
  await page.click('#agree');
  await page.waitForFunction(() => !document.getElementById('agree').disabled);
  const ticket = calls.filter((c) => c.url === '/api/ticket').at(-1)?.body;
  assert.deepEqual(ticket, { item_id: ITEM, priority: 'normal', recording_consent: false, appointment_id: APPOINTMENT });
  // The waiting screen says it is the appointment's ticket: 预约号 and time, in large type.
  await page.locator('#waiting.on').waitFor();
  await page.locator('#wait-appt').waitFor();
  assert.equal(await page.locator('#number').innerText(), 'H-0007');
  assert.match(await page.locator('#wait-appt').innerText(), /预约[\s\S]*预约号\s*042917[\s\S]*时间\s*12月8日（周二）09:30-10:00/);
  assert.match(await page.locator('#wait-appt-hint').innerText(), /优先办理/);
  const size = await page.locator('#wait-appt-code').evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
  assert.ok(size >= 48, `large type: ${size}px`);
  await shot(page, '67-kiosk-appointment-waiting');
  // Reloaded while waiting, the page still says so; back at idle it is forgotten.
  await page.reload();
  await page.locator('#waiting.on').waitFor();
  assert.ok(await page.locator('#wait-appt').isVisible(), 'kept across a reload');
  phase = 'idle';
  push();
  await page.locator('#idle.on').waitFor();
  phase = 'waiting';
  push();
  await page.locator('#waiting.on').waitFor();
  assert.ok(await page.locator('#wait-appt').isHidden(), 'a later walk-in ticket is not an appointment');
  phase = 'idle';
  push();
  await page.context().close();
});

test('a walk-in ticket\'s waiting screen shows no appointment', async () => {
  staff = null;
  phase = 'idle';
  const page = await kioskPage();
  await page.click('#start');
  await page.click(`button[data-id="${ITEM}"]`);
  await page.click('#agree');
  await page.locator('#waiting.on').waitFor();
  assert.ok(await page.locator('#wait-appt').isHidden());
  assert.equal(await page.locator('#number').innerText(), 'H-0007');
  phase = 'idle';
  push();
  await page.context().close();
});

test('on a 2026 holiday the kiosk offers no ticket and says when the point opens', async () => {
  staff = null;
  phase = 'idle';
  // 1 October 2026, 国庆节: the server's answer for a point closed by the calendar.
  const reopens = Date.UTC(2026, 9, 8, 1, 0); // 2026-10-08 09:00 CST
  availability = { open: false, next_open_at: reopens, closed_message: '本服务点现在不开放，下次开放：10月8日（周四）09:00', lines: [] };
  try {
    const page = await kioskPage();
    await page.click('#start');
    await page.locator('#closed.on').waitFor();
    assert.equal(await page.locator('#closed-head').innerText(), '本服务点现在不开放');
    assert.match(await page.locator('#closed-next').innerText(), /下次开放：10月8日（周四）09:00/);
    assert.ok(await page.locator('#items.on').isHidden(), 'no item to take a ticket for');
    await shot(page, '68-kiosk-closed-on-a-holiday');
    await page.context().close();
  } finally {
    availability = UNSTAFFED;
  }
});

test('one operator serving: the kiosk tells the wait as a range before the ticket', async () => {
  staff = null;
  phase = 'idle';
  availability = { open: true, lines: [{ line_id: LINE, serving: 1, waiting: 2, wait: { min_secs: 600, max_secs: 900 } }] };
  try {
    const page = await kioskPage();
    await page.click('#start');
    await page.click(`button[data-id="${ITEM}"]`);
    await page.locator('#privacy.on').waitFor();
    assert.ok(await page.locator('#take-unstaffed').isHidden(), 'someone serves: not 当前无人值守');
    assert.match(await page.locator('#take-staffed').innerText(), /现在有 1 位工作人员接听此类事项，前面 2 人，预计等候 10–15 分钟/);
    await shot(page, '69-kiosk-one-operator-serving');
    await page.context().close();
  } finally {
    availability = UNSTAFFED;
  }
});

// 本服务点: the committee staff's home page — their own point only (the server refuses any
// other): its terminal's health and printer, today's tickets (the ones they helped with
// marked), today's print jobs, open work orders and call-backs, and its inspection (巡检): the
// next one, the overdue flag and the form to record one (views/inspections.js).
import { h, mount } from '../dom.js';
import * as fmt from '../fmt.js';
import { CALLBACK_KIND, ORDER_STATE, PRINT_STATE, TICKET_STATUS, t } from '../i18n.js';
import { STATE as INSPECTION_STATE, staffInspectionCard } from './inspections.js';
import { terminalRow } from './supervisor.js';

/** @param {import('../main.js').Ctx} ctx @param {HTMLElement} main */
export function staffView(ctx, main) {
  const { api } = ctx;
  const u = /** @type {any} */ (api.user);
  const title = h('h1', null, t('本服务点'));
  const openTag = h('span');
  const tiles = h('section.tiles#staff-tiles');
  const terms = h('section.card#terminals');
  const tickets = h('section.card#point-tickets');
  const prints = h('section.card#point-prints');
  const orders = h('section.card#point-orders');
  const callbacks = h('section.card#point-callbacks');
  const inspection = h('section.card.wide-card#point-inspection');
  let inspectionShown = false;

  mount(main, h('div.sup-page.staff-page', null,
    h('div.page-head', null, title, openTag, h('span.muted', null, fmt.dateWeekday(Date.now())),
      h('button.btn.small.ghost', { type: 'button', onclick: () => load() }, t('刷新'))),
    tiles,
    h('div.sup-grid', null, inspection, terms, tickets, h('div.stack', null, orders, callbacks), prints)));

  /** @param {string} label @param {string} value @param {string} [sub] @param {'ok'|'bad'|''} [tone] */
  const tile = (label, value, sub, tone = '') => h(`div.tile${tone ? '.' + tone : ''}`, null, h('div.tile-label', null, label), h('div.tile-value', null, value), sub ? h('div.tile-sub', null, sub) : null);
  /** @param {string} text */
  const empty = (text) => h('p.muted', null, text);

  async function load() {
    if (!u?.point_id) {
      mount(tiles, h('p.form-error', null, t('本账号未绑定服务点，请联系系统管理员。')));
      return;
    }
    let d;
    try {
      d = await api.get(`/api/v1/points/${u.point_id}/today`);
    } catch (e) {
      mount(tiles, h('p.form-error', null, `${t('加载失败')}：${/** @type {Error} */ (e).message}`));
      return;
    }
    mount(title, `${t('本服务点')} · ${d.point_name}`);
    mount(openTag, d.open_now == null ? null : h(`span.tag${d.open_now ? '.ok' : ''}#open-now`, null, t(d.open_now ? '开放中' : '未开放')));
    const alarms = d.terminals.reduce((/** @type {number} */ n, /** @type {any} */ x) => n + x.alarms.length, 0);
    const mine = d.tickets.filter((/** @type {any} */ x) => x.helped_by_me).length;
    const served = d.tickets.filter((/** @type {any} */ x) => x.status === 'served').length;
    const failed = d.print_jobs.filter((/** @type {any} */ x) => x.state === 'failed').length;
    const overdue = d.orders.filter((/** @type {any} */ x) => x.overdue).length;
    mount(tiles,
      tile(t('终端'), String(d.terminals.length), alarms ? `${t('告警')} ${alarms}` : t('无告警'), alarms ? 'bad' : 'ok'),
      tile(t('今日取号'), String(d.tickets.length), `${t('已服务')} ${served}`),
      tile(t('我协助的'), String(mine)),
      tile(t('今日打印'), String(d.print_jobs.length), failed ? `${t('失败')} ${failed}` : undefined, failed ? 'bad' : ''),
      tile(t('办理中工单'), String(d.orders.length), overdue ? `${t('超期')} ${overdue}` : undefined, overdue ? 'bad' : ''),
      tile(t('待回访'), String(d.callbacks.length)),
      d.inspection
        ? tile(t('巡检'), t(INSPECTION_STATE[/** @type {keyof typeof INSPECTION_STATE} */ (d.inspection.state)] || d.inspection.state),
          d.inspection.due_on ? `${t(d.inspection.state === 'done' ? '下次巡检' : '应巡检日')} ${d.inspection.due_on}` : undefined,
          d.inspection.state === 'overdue' ? 'bad' : d.inspection.state === 'done' ? 'ok' : '')
        : null);
    // The inspection card holds a form: drawn once (and after each record), not every refresh.
    if (!inspectionShown) {
      inspectionShown = true;
      staffInspectionCard(ctx, u.point_id, inspection, () => load());
    }

    terms.classList.toggle('has-alarms', alarms > 0);
    mount(terms, h('h2.card-title', null, t('终端与打印机'),
      h('span.count-badge', { class: alarms ? 'bad' : undefined }, `${t('告警')} ${alarms}`)),
      d.terminals.length ? h('div.table-wrap', null, h('table.table.compact#terminal-health', null,
        h('thead', null, h('tr', null, [t('名称'), t('状态'), t('打印机'), t('扫描仪'), t('磁盘'), t('版本'), t('最近在线')].map((c) => h('th', null, c)))),
        h('tbody', null, d.terminals.map(terminalRow))))
        : empty(t('本服务点暂无终端')));

    mount(tickets, h('h2.card-title', null, t('今日取号'), h('span.count-badge', null, String(d.tickets.length))),
      d.tickets.length ? h('div.table-wrap', null, h('table.table.compact#point-ticket-list', null,
        h('thead', null, h('tr', null, h('th', null, t('号码')), h('th', null, t('事项')), h('th', null, t('状态')), h('th', null, t('取号时间')), h('th', null, t('协助人员')))),
        h('tbody', null, d.tickets.map((/** @type {any} */ x) => h('tr', { class: x.helped_by_me ? 'mine' : undefined, 'data-ticket': x.id },
          h('td', null, h('strong', null, x.number)),
          h('td', null, x.item_name),
          h('td', null, h(`span.tag.tk-${x.status}`, null, t(TICKET_STATUS[/** @type {keyof typeof TICKET_STATUS} */ (x.status)] || x.status))),
          h('td', null, fmt.time(x.created_at)),
          h('td', null, x.helped_by_me ? h('span.tag.ok.helped', null, t('我协助')) : x.assisted_by_name || '—'))))))
        : empty(t('今日暂无取号')));

    mount(prints, h('h2.card-title', null, t('今日打印'), h('span.count-badge', { class: failed ? 'bad' : undefined }, String(d.print_jobs.length))),
      d.print_jobs.length ? h('ul.print-list#point-print-list', null, d.print_jobs.map((/** @type {any} */ j) => h('li', null,
        h('span', null, `${fmt.time(j.created_at)} · ${j.terminal_name} · ${j.copies} ${t('份')}`),
        h('span', null, h(`span.tag${j.state === 'completed' ? '.ok' : j.state === 'failed' ? '.bad' : ''}`, null,
          t(PRINT_STATE[/** @type {keyof typeof PRINT_STATE} */ (j.state)] || j.state)), j.reason ? h('span.small-text.muted', null, ` ${j.reason}`) : null))))
        : empty(t('今日暂无打印任务')));

    mount(orders, h('h2.card-title', null, t('办理中工单'), h('span.count-badge', { class: overdue ? 'bad' : undefined }, String(d.orders.length))),
      d.orders.length ? h('ul.rect-list#point-order-list', null, d.orders.map((/** @type {any} */ o) => h('li', { class: o.overdue ? 'overdue' : undefined },
        h('div', null, h('a', { href: `/cases/orders`, onclick: (/** @type {MouseEvent} */ e) => { e.preventDefault(); ctx.navigate('/cases/orders'); } }, h('strong', null, o.number)),
          h('div', null, o.summary),
          h('div.muted', null, `${t(ORDER_STATE[/** @type {keyof typeof ORDER_STATE} */ (o.state)] || o.state)} · ${t('到期')} ${fmt.dateTime(o.due_at)}`,
            o.overdue ? h('span.tag.bad', null, t('已超期')) : null)))))
        : empty(t('暂无工单')));

    mount(callbacks, h('h2.card-title', null, t('待回访'), h('span.count-badge', null, String(d.callbacks.length))),
      d.callbacks.length ? h('ul.rect-list#point-callback-list', null, d.callbacks.map((/** @type {any} */ c) => h('li', { class: c.due_at < Date.now() ? 'overdue' : undefined },
        h('div', null, h('strong', null, t(CALLBACK_KIND[/** @type {keyof typeof CALLBACK_KIND} */ (c.kind)] || c.kind)), c.order_number ? ` · ${c.order_number}` : '',
          h('div.muted', null, `${t('到期')} ${fmt.dateTime(c.due_at)}`)))))
        : empty(t('暂无待回访任务')));
  }

  const refresh = window.setInterval(load, 30_000);
  load();
  return () => clearInterval(refresh);
}

// 预约 (appointments): the supervisors' and admins' list of a day's appointments — per point, by
// slot, with their state and the resident's masked name and phone — and cancelling one that is
// still booked. The server audits every listing.
import { dialog, h, mount, toast } from '../dom.js';
import * as fmt from '../fmt.js';
import { t } from '../i18n.js';

export const STATE = { booked: '已预约', checked_in: '已签到', served: '已办理', no_show: '爽约', cancelled: '已取消' };
const TONE = { booked: '', checked_in: '.warn-tag', served: '.ok', no_show: '.bad', cancelled: '' };

/** Today in China time, `YYYY-MM-DD`. */
const today = () => new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);

/**
 * 预约 for supervisors and admins.
 * @param {import('../main.js').Ctx} ctx @param {HTMLElement} main
 */
export function appointmentsView(ctx, main) {
  const { api } = ctx;
  const dateInput = /** @type {HTMLInputElement} */ (h('input#appt-date', { type: 'date', value: today(), onchange: () => load() }));
  const body = h('div#appointments');
  mount(main, h('div.sup-page.cases-page', null,
    h('div.page-head', null, h('h1', null, t('预约')), h('label.actions', null, t('日期'), ' ', dateInput)),
    body));

  async function load() {
    mount(body, h('p.muted', null, t('加载中…')));
    /** @type {any[]} */
    let list;
    try {
      list = await api.request('GET', `/api/v1/appointments?date=${encodeURIComponent(dateInput.value || today())}`);
    } catch (e) {
      mount(body, h('p.form-error', null, `${t('加载失败')}：${/** @type {Error} */ (e).message}`));
      return;
    }
    if (!list.length) { mount(body, h('p.muted#appt-empty', null, t('当天没有预约'))); return; }
    /** @type {Map<string, any[]>} */
    const byPoint = new Map();
    for (const a of list) byPoint.set(a.point_name, [...(byPoint.get(a.point_name) || []), a]);
    mount(body, ...[...byPoint].map(([point, rows]) => h('section.appt-point', { dataset: { point } },
      h('h2', null, point, ' ', h('span.muted', null, `${rows.length} ${t('人')}`)),
      h('table.table', null,
        h('thead', null, h('tr', null, ...['时间', '事项', '居民', '电话', '状态', '预约人', ''].map((c) => h('th', null, t(c))))),
        h('tbody', null, rows.map((a) => h('tr', { dataset: { id: a.id, state: a.state } },
          h('td', null, `${fmt.time(a.slot_start)}–${fmt.time(a.slot_end)}`),
          h('td', null, a.item_name),
          h('td', null, a.name_masked),
          h('td', null, a.phone_masked),
          h('td', null, h(`span.tag${TONE[/** @type {keyof typeof TONE} */ (a.state)] ?? ''}.appt-state`, null, t(STATE[/** @type {keyof typeof STATE} */ (a.state)] || a.state))),
          h('td', null, a.booked_by),
          h('td', null, a.state === 'booked'
            ? h('button.btn.small.appt-cancel', { type: 'button', onclick: () => cancel(a) }, t('取消预约'))
            : ''))))))));
  }

  /** @param {any} a */
  async function cancel(a) {
    const ok = await dialog(t('取消预约'), () => [h('p', null, `${a.point_name} · ${a.item_name} · ${fmt.time(a.slot_start)} · ${a.name_masked}`)],
      { submit: t('确认取消'), cancel: t('返回'), onSubmit: () => api.request('POST', `/api/v1/appointments/${a.id}/cancel`) });
    if (ok) { toast(t('预约已取消')); load(); }
  }

  load();
  return () => {};
}

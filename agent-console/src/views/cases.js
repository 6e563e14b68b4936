// Cases that outlive the call: 工单 (work orders), 回访 (call-back tasks), 超期督办 (the
// overdue board), 两张清单 (problem and rectification lists), 上门办 (home visits), and the
// offer to open a work order after a wrap-up with a follow-up outcome; 报表 (reports with bar
// charts in CSS and the XLSX download).
import { dialog, field, h, mount, toast } from '../dom.js';
import * as fmt from '../fmt.js';
import { OUTCOME, RATING, t } from '../i18n.js';

/** Wrap-up outcomes that leave something to follow up. */
export const FOLLOW_UP = ['needs_materials', 'referred_offline', 'accepted_pending_approval'];

const DEADLINE = { same_day: '当日办结', five_days: '5个工作日', ten_days: '10个工作日' };
const ESCALATION = { near_due: '临期', overdue: '超期' };
const PROBLEM_SOURCE = { bad_rating: '差评', overdue_order: '超期工单', inspection: '巡查', spot_check: '抽查' };
const HV_SOURCE = { staff: '服务点发现', hotline_12345: '12345 热线', referral: '转介' };

/** @param {any} e */
const fail = (e) => toast(`${t('操作失败')}：${e.message}`, 'error');
/** @param {string} title @param {...any} actions */
const head = (title, ...actions) => h('div.page-head', null, h('h1', null, title), h('div.actions', null, actions));
/** @param {string} v @param {string} label @param {string} current @param {(v: string) => void} pick */
const tab = (v, label, current, pick) => h('button.btn.small', { type: 'button', class: v === current ? 'primary' : 'ghost', 'aria-pressed': String(v === current), dataset: { tab: v }, onclick: () => pick(v) }, label);

/** The 提级响应 tag: the order was raised to the supervisors (near due or overdue). @param {any} o */
function escalationTag(o) {
  if (o.state === 'completed' || o.state === 'closed' || !o.escalation || o.escalation === 'none') return null;
  return h(`span.tag.escalated.esc-${o.escalation}`, { title: t('已提级至值班主管') }, o.escalation === 'overdue' ? t('超期提级') : t('临期提级'));
}

/** Escalation topics in the task list. */
const TASK_TAG = { 'order.overdue': '超期提级', 'order.near_due': '临期提级' };

/** The tag for an order's deadline state. @param {any} o */
function dueTag(o) {
  if (o.state === 'completed' || o.state === 'closed') return null;
  if (o.suspended) return h('span.tag', null, t('已挂起'));
  if (o.overdue || o.escalation === 'overdue') return h('span.tag.bad', null, t('超期'));
  if (o.escalation === 'near_due') return h('span.tag.warn-tag', null, t('临期'));
  return h('span.tag.ok', null, `${t('剩')} ${o.working_days_left} ${t('个工作日')}`);
}

/**
 * After a wrap-up with a follow-up outcome: offers to open the work order (the
 * create-from-wrap-up endpoint). Resolves with the order or null.
 * @param {import('../api.js').Api} api @param {{ session_id: string, ticket: any, outcome: string, notes: string }} w
 */
export async function offerOrder(api, w) {
  const defClass = w.outcome === 'accepted_pending_approval' ? 'ten_days' : 'five_days';
  const checklist = /** @type {any[]} */ (await api.get(`/api/v1/items/${w.ticket.item_id}`).then((i) => i.materials || []).catch(() => []));
  const order = await dialog(`${t('转为工单')} · ${w.ticket.number}`, () => [
    h('p.muted', null, `${w.ticket.item_name} · ${t(OUTCOME[/** @type {keyof typeof OUTCOME} */ (w.outcome)] || w.outcome)}`),
    field(t('事由'), h('textarea', { name: 'summary', required: true, maxlength: 1000, rows: 3 }, w.notes || t(OUTCOME[/** @type {keyof typeof OUTCOME} */ (w.outcome)] || ''))),
    h('div.grid2', null,
      field(t('办理时限'), h('select', { name: 'deadline' }, Object.entries(DEADLINE).map(([k, zh]) => h('option', { value: k, selected: k === defClass }, t(zh))))),
      field(t('办件编号'), h('input', { name: 'case_number', maxlength: 64 }))),
    checklist.length
      ? h('fieldset.checks#outstanding', null, h('legend', null, t('待补材料')),
        checklist.map((/** @type {any} */ m) => h('label', null, h('input', { type: 'checkbox', name: 'outstanding', value: m.name, checked: w.outcome === 'needs_materials' && m.required }), ' ', m.name)))
      : null,
  ], {
    wide: true, submit: t('创建工单'), cancel: t('暂不创建'),
    onSubmit: (d) => api.post('/api/v1/orders', {
      source: 'wrap_up', session_id: w.session_id, summary: String(d.get('summary')).trim(),
      deadline: { class: String(d.get('deadline')) },
      case_number: String(d.get('case_number') || '').trim() || undefined,
      outstanding_materials: d.getAll('outstanding').map(String),
    }),
  });
  if (order) toast(`${t('已创建工单')} ${order.number}，${t('到期')} ${order.due_at_cst}`, 'ok');
  return order;
}

/**
 * @param {import('../main.js').Ctx} ctx @param {HTMLElement} main
 * @param {'orders'|'callbacks'|'overdue'|'lists'|'home-visits'|'reports'} page
 */
export function casesView(ctx, main, page) {
  const { api } = ctx;
  const role = /** @type {any} */ (api.user).role;
  const supervising = role === 'supervisor' || role === 'admin';
  const body = h('div.cases-body');
  mount(main, h('div.admin-page.cases-page', null, body));
  let alive = true;

  // ------------------------------------------------------------------ orders (工单)
  let orderStatus = 'open';
  async function orders() {
    const list = await api.get(`/api/v1/orders?status=${orderStatus}`);
    if (!alive) return;
    const pick = (/** @type {string} */ v) => { orderStatus = v; orders().catch(fail); };
    const title = role === 'staff' ? t('本服务点工单') : supervising ? t('全部工单') : t('我的工单');
    mount(body, head(title,
      tab('open', t('办理中'), orderStatus, pick), tab('closed', t('已办结'), orderStatus, pick), tab('all', t('全部'), orderStatus, pick),
      role !== 'operator' ? h('button.btn.primary#new-order', { type: 'button', onclick: newOrder }, t('登记工单')) : null),
    tasksCard(),
    orderTable(list, 'orders'));
  }

  /** The console's task list (待办提醒: progress, escalations) from the notification outbox. */
  function tasksCard() {
    const card = h('section.card.tasks-card#tasks');
    const load = async () => {
      const list = (await api.get('/api/v1/tasks').catch(() => [])).filter((/** @type {any} */ x) => !x.done_at);
      if (!alive) return;
      card.hidden = !list.length;
      mount(card, h('h2.card-title', null, t('待办提醒'), h('span.count-badge', null, String(list.length))),
        h('ul.task-list', null, list.slice(0, 8).map((/** @type {any} */ x) => h('li', { dataset: { topic: x.topic } },
          h('span.muted', null, fmt.dateTime(x.created_at)), ' ',
          TASK_TAG[/** @type {keyof typeof TASK_TAG} */ (x.topic)] ? [h('span.tag.escalated', null, t(TASK_TAG[/** @type {keyof typeof TASK_TAG} */ (x.topic)])), ' '] : null, x.order_number ? h('strong.mono', null, x.order_number) : null, ' ', x.text,
          h('button.btn.small.ghost', { type: 'button', onclick: () => api.post(`/api/v1/tasks/${x.id}/done`).then(load).catch(fail) }, t('已处理'))))));
    };
    card.hidden = true;
    load();
    return card;
  }

  /** @param {any[]} list @param {string} id */
  function orderTable(list, id) {
    if (!list.length) return h('div.card', null, h('p.muted', null, t('暂无工单')));
    return h('div.card.table-wrap', null, h(`table.table#${id}`, null,
      h('thead', null, h('tr', null, [t('工单号'), t('事项'), t('服务点'), t('来源'), t('环节'), t('承办'), t('到期（北京时间）'), ''].map((c) => h('th', null, c)))),
      h('tbody', null, list.map((o) => h('tr', { class: o.overdue || o.escalation === 'overdue' ? 'warn' : undefined, dataset: { order: o.number } },
        h('td.mono', null, o.number), h('td', null, o.item_name, h('div.muted.small-text.ellipsis', { title: o.summary }, o.summary)),
        h('td', null, o.point_name, h('div.muted.small-text', null, o.street)), h('td', null, t(o.source_zh)),
        h('td', null, h(`span.tag.os-${o.state}`, null, t(o.state_zh)), o.outstanding_materials.length && o.state !== 'completed' && o.state !== 'closed' ? h('span.tag.oc-needs_materials', null, t('需补材料')) : null),
        h('td', null, o.department || '—', o.assignee_name ? h('div.muted.small-text', null, o.assignee_name) : null),
        h('td', null, o.due_at_cst, ' ', dueTag(o), escalationTag(o)),
        h('td.row-actions', null, h('button.btn.small.open-order', { type: 'button', onclick: () => orderDetail(o.id) }, t('查看'))))))));
  }

  /** Staff open an order at their point; supervisors enter one from 12345, 意见箱 or 好差评. */
  async function newOrder() {
    const [items, points] = await Promise.all([api.get('/api/v1/items').catch(() => []), supervising ? api.get('/api/v1/points').catch(() => []) : []]);
    const done = await dialog(t('登记工单'), () => [
      supervising ? h('div.grid2', null,
        field(t('来源'), h('select', { name: 'source' }, h('option', { value: 'hotline_12345' }, t('12345 热线')), h('option', { value: 'suggestion_box' }, t('意见箱')), h('option', { value: 'good_bad_review' }, t('好差评')))),
        field(t('来源编号'), h('input', { name: 'source_ref', maxlength: 64 })),
        field(t('服务点'), h('select', { name: 'point_id', required: true }, points.filter((/** @type {any} */ p) => p.status === 'open').map((/** @type {any} */ p) => h('option', { value: p.id }, p.name))))) : null,
      field(t('事项'), h('select', { name: 'item_id', required: true }, items.filter((/** @type {any} */ i) => i.active).map((/** @type {any} */ i) => h('option', { value: i.id }, i.name)))),
      field(t('事由'), h('textarea', { name: 'summary', required: true, maxlength: 1000, rows: 3 })),
      field(t('办理时限'), h('select', { name: 'deadline' }, Object.entries(DEADLINE).map(([k, zh]) => h('option', { value: k, selected: k === 'five_days' }, t(zh))))),
    ], {
      submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => api.post('/api/v1/orders', {
        source: supervising ? String(d.get('source')) : 'point', item_id: String(d.get('item_id')), summary: String(d.get('summary')).trim(),
        deadline: { class: String(d.get('deadline')) },
        ...(supervising ? { point_id: String(d.get('point_id')), source_ref: String(d.get('source_ref') || '').trim() || undefined } : {}),
      }),
    });
    if (done) { toast(`${t('已创建工单')} ${done.number}`, 'ok'); orders().catch(fail); }
  }

  /** The order with its history and the steps the caller may take. @param {string} id */
  async function orderDetail(id) {
    const o = await api.get(`/api/v1/orders/${id}`).catch(fail);
    if (!o) return;
    const open = o.state !== 'completed' && o.state !== 'closed';
    /** @type {[string, string, string | null][]} action, label, text field */
    const steps = role === 'staff' ? [] : [
      ...(o.state === 'accepted' ? [['classify', t('分类'), 'category']] : []),
      ...(o.state === 'classified' ? [['transfer', t('转办'), 'department']] : []),
      ...(open && o.state !== 'accepted' ? [['return', t('退回'), 'reason']] : []),
      ...(open && !o.suspended ? [['suspend', t('挂起'), 'reason']] : []),
      ...(open && o.suspended ? [['resume', t('恢复'), null]] : []),
      ...(open ? [['request_materials', t('需补材料'), 'note'], ['complete', t('办结'), 'result']] : []),
      ...(o.state === 'completed' ? [['feedback', t('反馈'), 'feedback']] : []),
    ];
    const FIELD_ZH = { category: '类别', department: '承办部门/条线', reason: '原因', note: '需补充的材料', result: '办理结果', feedback: '居民反馈' };
    const done = await dialog(`${t('工单')} ${o.number}`, (form) => {
      const textBox = h('div#step-text');
      const select = /** @type {HTMLSelectElement} */ (h('select#step-action', { name: 'action' }, steps.map(([a, label]) => h('option', { value: a }, label))));
      const sync = () => {
        const s = steps.find(([a]) => a === select.value);
        mount(textBox, s && s[2] ? field(t(FIELD_ZH[/** @type {keyof typeof FIELD_ZH} */ (s[2])]), h('textarea', { name: 'text', required: true, maxlength: 500, rows: 2 })) : null);
      };
      select.addEventListener('change', sync);
      sync();
      form.classList.add('order-form');
      return [
        h('dl.facts.order-facts', null,
          h('dt', null, t('事项')), h('dd', null, `${o.item_name} · ${o.line_name}`),
          h('dt', null, t('服务点')), h('dd', null, `${o.point_name}（${o.street}）`),
          h('dt', null, t('居民')), h('dd', null, o.resident_masked || '—', o.phone_masked ? ` · ${o.phone_masked}` : '',
            !open ? null : o.phone_masked
              ? (role === 'staff' ? null : h('button.btn.small.ghost#reveal-phone', { type: 'button', onclick: (/** @type {Event} */ e) => revealPhone(o, /** @type {HTMLElement} */ (e.currentTarget)) }, t('查看完整号码')))
              : h('button.btn.small.ghost#add-phone', { type: 'button', onclick: () => { /** @type {HTMLElement | null} */ (form.querySelector('.dialog-actions .btn:not(.primary)'))?.click(); addPhone(o); } }, t('登记电话'))),
          h('dt', null, t('事由')), h('dd', null, o.summary),
          h('dt', null, t('环节')), h('dd', null, t(o.state_zh), o.suspended ? h('span.tag', null, `${t('已挂起')}：${o.suspended_reason || ''}`) : null),
          h('dt', null, t('到期')), h('dd', null, o.due_at_cst, ' ', dueTag(o), escalationTag(o)),
          o.case_number ? [h('dt', null, t('办件编号')), h('dd.mono', null, o.case_number)] : null,
          !o.materials?.length && o.outstanding_materials.length ? [h('dt', null, t('待补材料')), h('dd', null, o.outstanding_materials.join('、'))] : null),
        o.materials?.length ? [h('h3.sub-title', null, t('材料清单')),
          h('table.table.compact#order-materials', null,
            h('thead', null, h('tr', null, [t('材料'), t('要求'), o.session_id ? t('本次通话已存') : null, t('状态')].filter(Boolean).map((c) => h('th', null, c)))),
            h('tbody', null, o.materials.map((/** @type {any} */ m) => h('tr', { dataset: { material: m.name, outstanding: String(m.outstanding), stored: String(m.stored) } },
              h('td', null, m.name), h('td', null, m.required ? t('必需') : t('可选')),
              o.session_id ? h('td.stored', null, m.stored ? `${m.stored} ${t('份')}` : '—') : null,
              h('td', null, m.outstanding
                ? h('span.tag.oc-needs_materials', null, m.stored ? t('待补（已有扫描件待核）') : t('待补'))
                : m.stored ? h('span.tag.ok', null, t('已提交')) : h('span.muted', null, '—'))))))] : null,
        h('h3.sub-title', null, t('办理记录')),
        h('ol.order-history', null, o.history.map((/** @type {any} */ e) => h('li', null,
          h('span.muted', null, fmt.dateTime(e.at)), ' ', h('strong', null, t(e.action_zh)), ' ', e.actor_name || t('系统'),
          e.note ? h('div.small-text', null, e.note) : null))),
        steps.length ? h('div.step-row', null, field(t('下一步'), select), textBox) : null,
      ];
    }, {
      wide: true, submit: steps.length ? t('提交') : t('关闭'), cancel: t('取消'),
      onSubmit: async (d) => {
        if (!steps.length) return null;
        const action = String(d.get('action'));
        const key = steps.find(([a]) => a === action)?.[2];
        /** @type {any} */
        const step = { action };
        if (key) step[key] = String(d.get('text') || '').trim();
        return api.post(`/api/v1/orders/${o.id}/steps`, { expected_version: o.version, step });
      },
    });
    if (done && steps.length) { toast(t('已保存'), 'ok'); render(); }
  }

  const CONSENT = '居民同意帮办通过此电话告知办理进度和回访，办结后按规定期限删除。';

  /** Records the resident's phone number with their consent. @param {any} o */
  async function addPhone(o) {
    const done = await dialog(`${t('登记电话')} · ${o.number}`, () => [
      field(t('手机号码'), h('input', { name: 'phone', required: true, inputmode: 'tel', autocomplete: 'off', pattern: '1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8}', maxlength: 16 })),
      h('p.notice', null, t(CONSENT)),
      h('label.consent-line', null, h('input', { type: 'checkbox', name: 'consent', required: true }), ' ', t('已向居民宣读上述内容，居民同意')),
    ], {
      submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => api.put(`/api/v1/orders/${o.id}/contact`, { phone: String(d.get('phone')).trim(), consent_text: CONSENT, consent: d.get('consent') === 'on' }),
    });
    if (done) { toast(t('已保存'), 'ok'); render(); }
  }

  /** Shows the full number after a confirmation (audited). @param {any} o @param {HTMLElement} btn */
  async function revealPhone(o, btn) {
    if (!window.confirm(t('查看完整号码将记入审计日志，确定查看吗？'))) return;
    try {
      const r = await api.post(`/api/v1/orders/${o.id}/contact/reveal`);
      btn.replaceWith(h('span.mono.revealed#phone-full', null, r.phone));
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------------ call-backs (回访)
  let cbStatus = 'open';
  async function callbacks() {
    const list = await api.get(`/api/v1/callbacks?status=${cbStatus}`);
    if (!alive) return;
    const pick = (/** @type {string} */ v) => { cbStatus = v; callbacks().catch(fail); };
    mount(body, head(t('回访任务'), tab('open', t('待回访'), cbStatus, pick), tab('done', t('已回访'), cbStatus, pick)),
      list.length ? h('div.card.table-wrap', null, h('table.table#callbacks', null,
        h('thead', null, h('tr', null, [t('类型'), t('工单号/号码'), t('事项'), t('服务点'), t('联系电话'), t('到期'), t('结果'), ''].map((c) => h('th', null, c)))),
        h('tbody', null, list.map((/** @type {any} */ c) => h('tr', { class: c.overdue && !c.done ? 'warn' : undefined, dataset: { callback: c.id } },
          h('td', null, t(c.kind_zh)), h('td.mono', null, c.order_number || c.ticket_number || '—'),
          h('td', null, c.item_name || '—'), h('td', null, c.point_name || '—'), h('td.mono', null, c.phone_masked || '—'),
          h('td', null, c.due_at_cst, c.overdue && !c.done ? h('span.tag.bad', null, t('超期')) : null),
          h('td', null, c.done ? [h(`span.tag.${c.satisfied ? 'ok' : 'bad'}`, null, c.satisfied ? t('满意') : t('不满意')), h('div.small-text', null, c.result)] : '—'),
          h('td.row-actions', null, c.done ? null : h('button.btn.small.primary.record-callback', { type: 'button', onclick: () => recordCallback(c) }, t('记录回访'))))))))
        : h('div.card', null, h('p.muted', null, cbStatus === 'open' ? t('暂无待回访任务') : t('暂无记录'))));
  }

  /** @param {any} c */
  async function recordCallback(c) {
    const done = await dialog(`${t('回访')} · ${c.order_number || c.ticket_number || t(c.kind_zh)}`, () => [
      h('fieldset.outcomes', null, h('legend', null, t('居民是否满意')),
        h('label.outcome', null, h('input', { type: 'radio', name: 'satisfied', value: 'yes', required: true }), h('span', null, t('满意'))),
        h('label.outcome', null, h('input', { type: 'radio', name: 'satisfied', value: 'no' }), h('span', null, t('不满意')))),
      field(t('回访结果'), h('textarea', { name: 'result', required: true, maxlength: 500, rows: 3 })),
      c.kind === 'rectification' ? field(t('整改措施'), h('textarea', { name: 'rectification', maxlength: 1000, rows: 2 })) : null,
    ], {
      submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => api.post(`/api/v1/callbacks/${c.id}/result`, {
        satisfied: d.get('satisfied') === 'yes', result: String(d.get('result')).trim(),
        rectification: String(d.get('rectification') || '').trim() || undefined,
      }),
    });
    if (done) { toast(t('已保存'), 'ok'); callbacks().catch(fail); }
  }

  // ------------------------------------------------------------------ overdue board (超期督办)
  async function overdue() {
    const [list, cbs] = await Promise.all([api.get('/api/v1/orders?status=overdue'), api.get('/api/v1/callbacks?status=open')]);
    if (!alive) return;
    const over = list.filter((/** @type {any} */ o) => o.overdue || o.escalation === 'overdue').length;
    const cbOver = cbs.filter((/** @type {any} */ c) => c.overdue).length;
    const raised = list.filter((/** @type {any} */ o) => o.escalation && o.escalation !== 'none').length;
    /** @param {string} label @param {string} value @param {boolean} bad */
    const tile = (label, value, bad) => h(`div.tile${bad ? '.bad' : '.ok'}`, null, h('div.tile-label', null, label), h('div.tile-value', null, value));
    mount(body, head(t('超期督办'), h('button.btn.small.ghost', { type: 'button', onclick: () => overdue().catch(fail) }, t('刷新'))),
      h('section.tiles.tiles-4', null, tile(t('超期工单'), String(over), over > 0), tile(t('临期工单'), String(list.length - over), false),
        tile(t('已提级督办'), String(raised), raised > 0), tile(t('超期回访'), String(cbOver), cbOver > 0)),
      tasksCard(),
      orderTable(list, 'overdue-orders'));
  }

  // ------------------------------------------------------------------ two lists (两张清单)
  let listKind = 'problems';
  async function lists() {
    const list = await api.get(`/api/v1/problems?list=${listKind}`);
    if (!alive) return;
    const pick = (/** @type {string} */ v) => { listKind = v; lists().catch(fail); };
    mount(body, head(t('两张清单'),
      tab('problems', t('问题清单'), listKind, pick), tab('rectifications', t('整改清单'), listKind, pick), tab('closed', t('已销号'), listKind, pick),
      h('button.btn.primary#new-problem', { type: 'button', onclick: newProblem }, t('登记问题'))),
    list.length ? h('div.card.table-wrap', null, h('table.table#problems', null,
      h('thead', null, h('tr', null, [t('来源'), t('问题'), t('责任人'), t('整改期限'), t('状态'), t('整改措施 / 佐证'), ''].map((c) => h('th', null, c)))),
      h('tbody', null, list.map((/** @type {any} */ p) => h('tr', { class: p.overdue ? 'warn' : undefined },
        h('td', null, t(PROBLEM_SOURCE[/** @type {keyof typeof PROBLEM_SOURCE} */ (p.source)] || p.source)),
        h('td', null, p.description, p.complex_reason ? h('div.muted.small-text', null, `${t('复杂问题')}：${p.complex_reason}`) : null),
        h('td', null, p.owner), h('td', null, fmt.date(p.due_at), p.overdue ? h('span.tag.bad', null, t('超期')) : null),
        h('td', null, h('span.tag', null, t(p.status_zh))),
        h('td', null, p.measures ? h('div.small-text', null, `${t('措施')}：${p.measures}`) : '—', p.evidence ? h('div.small-text', null, `${t('佐证')}：${p.evidence}`) : null),
        h('td.row-actions', null,
          p.status === 'open' ? h('button.btn.small.rectify', { type: 'button', onclick: () => problemStep(p, 'rectify') }, t('录入措施')) : null,
          p.status === 'rectifying' ? h('button.btn.small.primary.close-problem', { type: 'button', onclick: () => problemStep(p, 'close') }, t('销号')) : null))))))
      : h('div.card', null, h('p.muted', null, t('清单为空'))));
  }

  async function newProblem() {
    const done = await dialog(t('登记问题'), () => [
      field(t('来源'), h('select', { name: 'source' }, h('option', { value: 'inspection' }, t('巡查')), h('option', { value: 'spot_check' }, t('抽查')))),
      field(t('问题'), h('textarea', { name: 'description', required: true, maxlength: 1000, rows: 3 })),
      h('div.grid2', null,
        field(t('责任人'), h('input', { name: 'owner', required: true, maxlength: 64 })),
        field(t('整改期限（工作日）'), h('input', { name: 'days', type: 'number', min: 1, max: 66, placeholder: '5' }), t('默认一周；复杂问题最长三个月'))),
      field(t('复杂问题原因'), h('input', { name: 'complex_reason', maxlength: 500 })),
    ], {
      submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => api.post('/api/v1/problems', {
        source: String(d.get('source')), description: String(d.get('description')).trim(), owner: String(d.get('owner')).trim(),
        days: d.get('days') ? Number(d.get('days')) : undefined, complex_reason: String(d.get('complex_reason') || '').trim() || undefined,
      }),
    });
    if (done) { toast(t('已保存'), 'ok'); lists().catch(fail); }
  }

  /** @param {any} p @param {'rectify'|'close'} action */
  async function problemStep(p, action) {
    const key = action === 'rectify' ? 'measures' : 'evidence';
    const done = await dialog(action === 'rectify' ? t('录入整改措施') : t('销号'), () => [
      h('p.muted', null, p.description),
      field(action === 'rectify' ? t('整改措施') : t('整改佐证'), h('textarea', { name: key, required: true, maxlength: 1000, rows: 3 })),
    ], {
      submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => api.post(`/api/v1/problems/${p.id}/steps`, { action, [key]: String(d.get(key)).trim() }),
    });
    if (done) { toast(t('已保存'), 'ok'); lists().catch(fail); }
  }

  // ------------------------------------------------------------------ home visits (上门办)
  async function homeVisits() {
    const list = await api.get('/api/v1/home-visits');
    if (!alive) return;
    mount(body, head(supervising ? t('上门办审核') : t('上门办申请'),
      role === 'staff' ? h('button.btn.primary#new-visit', { type: 'button', onclick: newVisit }, t('申请上门办')) : null),
    list.length ? h('div.card.table-wrap', null, h('table.table#home-visits', null,
      h('thead', null, h('tr', null, [t('来源'), t('服务点'), t('居民情况'), t('地址'), t('状态'), t('安排'), ''].map((c) => h('th', null, c)))),
      h('tbody', null, list.map((/** @type {any} */ v) => h('tr', { dataset: { visit: v.id, state: v.state } },
        h('td', null, t(HV_SOURCE[/** @type {keyof typeof HV_SOURCE} */ (v.source)] || v.source)), h('td', null, v.point_name),
        h('td', null, v.situation), h('td', null, v.address),
        h('td', null, h(`span.tag.hv-${v.state}`, null, t(v.state_zh)), v.decision_reason ? h('div.muted.small-text', null, v.decision_reason) : null),
        h('td', null, v.scheduled_at ? [fmt.dateTime(v.scheduled_at), h('div.muted.small-text', null, [v.assignees.join('、'), v.materials.length ? `${t('携带')}：${v.materials.join('、')}` : ''].filter(Boolean).join(' · '))] : '—',
          v.outcome ? h('div.small-text', null, `${t('结果')}：${v.outcome}`) : null,
          v.rating ? h(`span.tag.rt-${v.rating}`, null, t(RATING[/** @type {keyof typeof RATING} */ (v.rating)])) : null),
        h('td.row-actions', null, visitActions(v)))))))
      : h('div.card', null, h('p.muted', null, t('暂无上门办申请'))));
  }

  /** @param {any} v */
  function visitActions(v) {
    const btn = (/** @type {string} */ cls, /** @type {string} */ label, /** @type {() => void} */ fn) => h(`button.btn.small.${cls}`, { type: 'button', onclick: fn }, label);
    if (v.state === 'requested' && supervising) {
      return [btn('primary.approve', t('同意'), () => visitStep(v, 'approve')), btn('refuse', t('不同意'), () => visitStep(v, 'refuse'))];
    }
    if (v.state === 'approved' && supervising) return btn('primary.schedule', t('安排上门'), () => visitStep(v, 'schedule'));
    if (v.state === 'scheduled') return btn('primary.complete', t('登记结果'), () => visitStep(v, 'complete'));
    if (v.state === 'done') return btn('rate', t('登记评价'), () => visitStep(v, 'rate'));
    return null;
  }

  async function newVisit() {
    const done = await dialog(t('申请上门办'), () => [
      field(t('居民情况'), h('textarea', { name: 'situation', required: true, maxlength: 1000, rows: 3, placeholder: t('如：独居老人，行动不便，需办理…') })),
      field(t('地址'), h('input', { name: 'address', required: true, maxlength: 200 })),
    ], {
      submit: t('提交申请'), cancel: t('取消'),
      onSubmit: (d) => api.post('/api/v1/home-visits', { source: 'staff', situation: String(d.get('situation')).trim(), address: String(d.get('address')).trim() }),
    });
    if (done) { toast(t('已提交'), 'ok'); homeVisits().catch(fail); }
  }

  /** @param {any} v @param {'approve'|'refuse'|'schedule'|'complete'|'rate'} action */
  async function visitStep(v, action) {
    const TITLE = { approve: '同意上门', refuse: '不同意上门', schedule: '安排上门', complete: '登记上门结果', rate: '登记居民评价' };
    const done = await dialog(t(TITLE[action]), () => {
      const note = h('p.muted', null, `${v.point_name} · ${v.situation}`);
      if (action === 'approve' || action === 'refuse') return [note, field(t('理由'), h('textarea', { name: 'reason', required: true, maxlength: 500, rows: 2 }))];
      if (action === 'schedule') {
        return [note,
          field(t('上门时间'), h('input', { name: 'at', type: 'datetime-local', required: true })),
          field(t('帮办人员'), h('input', { name: 'assignees', required: true, maxlength: 200 }), t('多人用顿号或逗号分隔')),
          field(t('需携带材料'), h('input', { name: 'materials', maxlength: 500 }), t('多项用顿号或逗号分隔'))];
      }
      if (action === 'complete') return [note, field(t('办理结果'), h('textarea', { name: 'outcome', required: true, maxlength: 500, rows: 3 }))];
      return [note, field(t('评价'), h('select', { name: 'level' }, Object.entries(RATING).map(([k, zh]) => h('option', { value: k }, t(zh))))),
        field(t('评价内容'), h('input', { name: 'comment', maxlength: 500 }))];
    }, {
      submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => {
        const split = (/** @type {string} */ s) => s.split(/[、,，;；\s]+/).map((x) => x.trim()).filter(Boolean);
        /** @type {any} */
        let step;
        if (action === 'approve' || action === 'refuse') step = { action, reason: String(d.get('reason')).trim() };
        else if (action === 'schedule') {
          // datetime-local is the operator's wall clock in China time.
          const at = Date.parse(`${d.get('at')}:00+08:00`);
          step = { action, at, assignees: split(String(d.get('assignees'))), materials: split(String(d.get('materials') || '')) };
        } else if (action === 'complete') step = { action, outcome: String(d.get('outcome')).trim() };
        else step = { action, level: String(d.get('level')), comment: String(d.get('comment') || '').trim() || undefined };
        return api.post(`/api/v1/home-visits/${v.id}/steps`, { step });
      },
    });
    if (done) { toast(t('已保存'), 'ok'); homeVisits().catch(fail); }
  }


  // ------------------------------------------------------------------ reports (日报告、周通报、月汇总)
  const rep = { period: 'weekly', group: 'point', date: new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10) };
  const query = () => `period=${rep.period}&group=${rep.group}&date=${rep.date}`;
  async function reports() {
    const r = await api.get(`/api/v1/reports?${query()}`);
    if (!alive) return;
    const pickP = (/** @type {string} */ v) => { rep.period = v; reports().catch(fail); };
    const pickG = (/** @type {string} */ v) => { rep.group = v; reports().catch(fail); };
    const date = h('input#report-date', { type: 'date', value: rep.date, onchange: (/** @type {Event} */ e) => {
      const v = /** @type {HTMLInputElement} */ (e.target).value;
      if (v) { rep.date = v; reports().catch(fail); }
    } });
    const tot = r.total;
    /** @param {string} label @param {string} value @param {string} [sub] */
    const tile = (label, value, sub) => h('div.tile', null, h('div.tile-label', null, label), h('div.tile-value', null, value), sub ? h('div.tile-sub', null, sub) : null);
    const max = Math.max(1, ...r.rows.map((/** @type {any} */ x) => x.tickets));
    const omax = Math.max(1, ...r.rows.map((/** @type {any} */ x) => Math.max(x.orders_opened, x.orders_closed, x.orders_overdue)));
    /** @param {number} v @param {number} of @param {string} cls */
    const bar = (v, of, cls) => {
      const fill = h(`span.bar-fill${cls}`);
      fill.style.width = `${Math.min(100, (v / Math.max(1, of)) * 100)}%`;
      return h('span.bar', null, fill);
    };
    mount(body,
      head(t('报表'),
        h('span.seg', null, tab('daily', t('日报告'), rep.period, pickP), tab('weekly', t('周通报'), rep.period, pickP), tab('monthly', t('月汇总'), rep.period, pickP)),
        h('span.seg', null, tab('point', t('按服务点'), rep.group, pickG), tab('street', t('按街道'), rep.group, pickG), tab('line', t('按条线'), rep.group, pickG)),
        date,
        h('button.btn.primary#report-download', { type: 'button', onclick: download }, t('下载 Excel'))),
      h('p.muted.report-title', null, r.title),
      h('section.tiles#report-tiles', null,
        tile(t('取号'), String(tot.tickets), `${t('已服务')} ${tot.served}`),
        tile(t('60秒内首次响应'), fmt.pct(tot.first_response_within_60s_pct), `${tot.first_response_within_60s} ${t('件')}`),
        tile(t('解决率'), fmt.pct(tot.resolution_rate_pct), `${tot.resolved} / ${tot.wrapped_up}`),
        tile(t('满意率'), fmt.pct(tot.satisfaction_pct), `${t('差评')} ${tot.ratings.dissatisfied + tot.ratings.very_dissatisfied}`),
        tile(t('工单'), `${tot.orders_opened} / ${tot.orders_closed}`, `${t('新增 / 办结')} · ${t('超期')} ${tot.orders_overdue}`),
        tile(t('完成回访'), String(tot.callbacks_done))),
      r.rows.length ? h('div.sup-grid.report-charts', null,
        h('section.card#chart-tickets', null, h('h2.card-title', null, t('取号与服务'), h('span.legend', null, h('i.lg.lg-tickets'), t('取号'), h('i.lg.lg-served'), t('已服务'))),
          h('ul.bars.report-bars', null, r.rows.map((/** @type {any} */ x) => h('li', null, h('span.bar-label.ellipsis', { title: x.name }, x.name),
            h('span.bar-pair', null, bar(x.tickets, max, ''), bar(x.served, max, '.served')), h('span.bar-num', null, `${x.tickets} / ${x.served}`))))),
        h('section.card#chart-first-response', null, h('h2.card-title', null, t('60秒内首次响应率')),
          h('ul.bars.report-bars', null, r.rows.map((/** @type {any} */ x) => h('li', null, h('span.bar-label.ellipsis', { title: x.name }, x.name),
            bar(x.first_response_within_60s_pct ?? 0, 100, (x.first_response_within_60s_pct ?? 100) >= 90 ? '.good' : '.poor'), h('span.bar-num', null, fmt.pct(x.first_response_within_60s_pct)))))),
        h('section.card#chart-orders', null, h('h2.card-title', null, t('工单'),
          h('span.legend', null, h('i.lg.lg-tickets'), t('新增'), h('i.lg.lg-good'), t('办结'), h('i.lg.lg-poor'), t('超期'))),
          h('ul.bars.report-bars', null, r.rows.map((/** @type {any} */ x) => h('li', null, h('span.bar-label.ellipsis', { title: x.name }, x.name),
            h('span.bar-pair', null, bar(x.orders_opened, omax, ''), bar(x.orders_closed, omax, '.good'), bar(x.orders_overdue, omax, '.poor')),
            h('span.bar-num', null, `${x.orders_opened} / ${x.orders_closed} / ${x.orders_overdue}`))))))
        : null,
      h('div.card.table-wrap', null, r.rows.length ? h('table.table.compact#report-table', null,
        h('thead', null, h('tr', null, [t(r.group_zh), t('取号'), t('已服务'), t('60秒内首次响应'), t('解决率'), t('满意率'), t('差评'), t('新增工单'), t('办结工单'), t('超期工单'), t('完成回访')].map((c) => h('th', null, c)))),
        h('tbody', null, [...r.rows, tot].map((/** @type {any} */ x, /** @type {number} */ i) => h('tr', { class: i === r.rows.length ? 'total' : undefined },
          h('td', null, x.name), h('td.num', null, String(x.tickets)), h('td.num', null, String(x.served)),
          h('td.num', null, fmt.pct(x.first_response_within_60s_pct)), h('td.num', null, fmt.pct(x.resolution_rate_pct)), h('td.num', null, fmt.pct(x.satisfaction_pct)),
          h('td.num', null, String(x.ratings.dissatisfied + x.ratings.very_dissatisfied)),
          h('td.num', null, String(x.orders_opened)), h('td.num', null, String(x.orders_closed)),
          h('td.num', { class: x.orders_overdue ? 'bad-text' : undefined }, String(x.orders_overdue)), h('td.num', null, String(x.callbacks_done))))))
        : h('p.muted', null, t('本期暂无数据'))));
  }

  async function download() {
    try {
      const res = await api.request('GET', `/api/v1/reports/export?${query()}`, undefined, { raw: true });
      const blob = await res.blob();
      const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '')?.[1] || 'report.xlsx';
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) { fail(e); }
  }

  const PAGES = { orders, callbacks, overdue, lists, 'home-visits': homeVisits, reports };
  function render() {
    (PAGES[page] || orders)().catch((e) => mount(body, h('p.form-error', null, `${t('加载失败')}：${e.message}`)));
  }
  render();
  return () => { alive = false; };
}

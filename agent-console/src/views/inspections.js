// 巡检 (inspections): the supervisors' and admins' page — every point's schedule and where it
// stands, overdue first and highlighted, and setting a point's schedule — and the card on the
// staff's 本服务点 page: the point's next inspection, the overdue flag, and the form to record
// one (the nine checklist items passed or failed with a note, photos).
import { dialog, field, h, mount, toast } from '../dom.js';
import * as fmt from '../fmt.js';
import { t } from '../i18n.js';
import { centerFilter, pagedList, streetFilter } from '../listing.js';

export const FREQUENCY = { weekly: '每周', biweekly: '每两周', monthly: '每月（首个）' };
export const WEEKDAY = ['', '周一', '周二', '周三', '周四', '周五', '周六', '周日'];
export const STATE = { upcoming: '未到期', due: '待巡检', overdue: '已超期', done: '本期已巡检' };
export const ITEMS = {
  terminal: '一体机', screens: '双屏显示', camera: '摄像头', microphone: '麦克风', scanner: '扫描仪',
  printer: '打印机与纸张', network: '网络', notices: '公示信息', cleanliness: '环境卫生',
};
const MAX_PHOTOS = 6;
const MAX_PHOTO_BYTES = 10 * 1024 * 1024;

/** @param {any} e */
const fail = (e) => toast(`${t('操作失败')}：${e.message}`, 'error');

/** The state tag. @param {any} s */
export function stateTag(s) {
  const tone = { overdue: '.bad', due: '.warn-tag', done: '.ok', upcoming: '' }[/** @type {string} */ (s.state)] ?? '';
  return h(`span.tag${tone}.insp-state`, { dataset: { state: s.state } }, t(STATE[/** @type {keyof typeof STATE} */ (s.state)] || s.state));
}

/** `每周 周一` @param {any} s */
const rhythm = (s) => `${t(FREQUENCY[/** @type {keyof typeof FREQUENCY} */ (s.frequency)] || s.frequency)} ${t(WEEKDAY[s.weekday] || '')}`;

/** The due line: 应巡检日 2026-12-07 · 超期自 … @param {any} s */
function dueText(s) {
  const parts = [];
  if (s.due_on) parts.push(`${s.state === 'done' ? t('下次巡检') : t('应巡检日')} ${s.due_on}`);
  if (s.overdue_since) parts.push(`${t('超期自')} ${fmt.dateTime(s.overdue_since)}`);
  return parts.join(' · ');
}

/**
 * 巡检 for supervisors and admins.
 * @param {import('../main.js').Ctx} ctx @param {HTMLElement} main
 */
export function inspectionsView(ctx, main) {
  const { api } = ctx;
  let filter = 'all';
  const body = h('div#inspections');
  const tabs = h('div.actions');
  mount(main, h('div.sup-page.cases-page', null,
    h('div.page-head', null, h('h1', null, t('巡检')), tabs,
      h('button.btn.primary#new-schedule', { type: 'button', onclick: () => editSchedule(null) }, t('设置巡检计划'))),
    body));

  function renderTabs() {
    mount(tabs, Object.entries({ all: '全部', overdue: '已超期', due: '待巡检', upcoming: '未到期', done: '本期已巡检' }).map(([v, label]) =>
      h('button.btn.small', { type: 'button', class: v === filter ? 'primary' : 'ghost', 'aria-pressed': String(v === filter), dataset: { tab: v },
        onclick: () => { filter = v; renderTabs(); list?.reload(); } }, t(label))));
  }

  const badge = h('span.count-badge');
  /** The number of overdue points, whatever the page shows. */
  async function countOverdue() {
    const res = await api.request('GET', '/api/v1/inspections?state=overdue&limit=1', undefined, { raw: true }).catch(() => null);
    const n = Number(res?.headers.get('x-total-count') ?? 0);
    badge.classList.toggle('bad', n > 0);
    badge.textContent = `${t('超期')} ${n}`;
  }

  /** @type {ReturnType<typeof pagedList> | null} */
  let list = null;
  async function load() {
    renderTabs();
    countOverdue();
    if (list) { list.reload(); return; }
    list = pagedList({
      api, path: '/api/v1/inspections', id: 'inspection-list', sort: 'action', empty: t('暂无巡检计划'),
      params: () => ({ state: filter }), searchPlaceholder: t('搜索服务点或巡检负责人'),
      filters: [await centerFilter(api, api.user?.center_id ?? ''), await streetFilter(api)],
      columns: [{ label: t('服务点'), sort: 'point' }, { label: t('街道') }, { label: t('巡检周期') }, { label: t('状态'), sort: 'action' },
        { label: t('应巡检日'), sort: 'due' }, { label: t('上次巡检'), sort: 'last' }, { label: t('巡检负责人') }, { label: '' }],
      row: (/** @type {any} */ s) => h('tr', { class: s.state === 'overdue' ? 'alarm overdue' : s.state === 'due' ? 'warn' : undefined, dataset: { point: s.point_id } },
        h('td', null, h('strong', null, s.point_name), h('div.muted.small-text', null, s.point_code)),
        h('td', null, s.street),
        h('td', null, rhythm(s), h('div.muted.small-text', null, `${t('宽限')} ${s.grace_working_days} ${t('个工作日')}`)),
        h('td', null, stateTag(s)),
        h('td', null, s.due_on || '—', s.overdue_since ? h('div.small-text', null, `${t('超期自')} ${fmt.dateTime(s.overdue_since)}`) : null),
        h('td', null, s.last_inspected_at ? fmt.dateTime(s.last_inspected_at) : t('从未巡检'),
          s.last_failed ? h('span.tag.bad', null, `${s.last_failed} ${t('项不合格')}`) : null),
        h('td', null, s.inspector_name, h('div.muted.small-text', null, s.inspector_phone), s.inspector_account_name ? h('div.small-text', null, `${t('账户')}：${s.inspector_account_name}`) : null),
        h('td.row-actions', null,
          h('button.btn.small', { type: 'button', onclick: () => editSchedule(s) }, t('修改')),
          h('button.btn.small', { type: 'button', onclick: () => showPoint(s) }, t('记录')))),
    });
    mount(body, h('section.card', null, h('h2.card-title', null, t('各服务点巡检'), badge), list.el));
  }

  /** @param {any} s */
  async function showPoint(s) {
    const d = await api.get(`/api/v1/points/${s.point_id}/inspections`).catch(fail);
    if (!d) return;
    await dialog(`${t('巡检记录')} · ${d.point_name}`, () => [recordList(api, d.records)], { wide: true, submit: t('关闭') });
  }

  /** @param {any} current */
  async function editSchedule(current) {
    const [points, users] = await Promise.all([api.get('/api/v1/points'), api.get('/api/v1/users').catch(() => [])]).catch((e) => { fail(e); return [null, null]; });
    if (!points) return;
    const pointSel = h('select', { name: 'point_id', required: true, disabled: !!current },
      points.filter((/** @type {any} */ p) => p.status !== 'closed').map((/** @type {any} */ p) => h('option', { value: p.id, selected: current?.point_id === p.id }, `${p.code} ${p.name}`)));
    const accountSel = h('select', { name: 'inspector_account_id' });
    const fillAccounts = () => {
      const pid = /** @type {HTMLSelectElement} */ (pointSel).value;
      mount(accountSel, h('option', { value: '' }, t('不指定（仅按服务点登记的负责人通知）')),
        users.filter((/** @type {any} */ u) => u.active && (u.role === 'supervisor' || u.role === 'admin' || (u.role === 'staff' && u.point_id === pid)))
          .map((/** @type {any} */ u) => h('option', { value: u.id, selected: current?.inspector_account_id === u.id }, `${u.display_name}（${u.username}）`)));
    };
    pointSel.addEventListener('change', fillAccounts);
    fillAccounts();
    const done = await dialog(current ? `${t('巡检计划')} · ${current.point_name}` : t('设置巡检计划'), () => [
      field(t('服务点'), pointSel),
      h('div.grid2', null,
        field(t('巡检周期'), h('select', { name: 'frequency' }, Object.entries(FREQUENCY).map(([k, zh]) => h('option', { value: k, selected: (current?.frequency || 'weekly') === k }, t(zh))))),
        field(t('巡检日'), h('select', { name: 'weekday' }, [1, 2, 3, 4, 5, 6, 7].map((d) => h('option', { value: d, selected: (current?.weekday || 1) === d }, t(WEEKDAY[d])))))),
      h('div.grid2', null,
        field(t('起始日期'), h('input', { name: 'starts_on', type: 'date', value: current?.starts_on || '' }), t('留空为今天；每两周的计划按此日期确定周次')),
        field(t('宽限工作日'), h('input', { name: 'grace', type: 'number', min: 0, max: 5, value: current?.grace_working_days ?? 2 }), t('应巡检日之后几个工作日内未登记即为超期'))),
      field(t('巡检负责人账户'), accountSel, t('超期巡检和设备告警会进入该账户的任务列表')),
    ], {
      wide: true, submit: t('保存'),
      onSubmit: (f) => {
        const pid = current?.point_id || String(f.get('point_id'));
        const starts = String(f.get('starts_on') || '');
        const account = String(f.get('inspector_account_id') || '');
        return api.put(`/api/v1/points/${pid}/inspection-schedule`, {
          frequency: String(f.get('frequency')), weekday: Number(f.get('weekday')),
          starts_on: starts || undefined, grace_working_days: Number(f.get('grace') || 0),
          inspector_account_id: account || null,
        });
      },
    });
    if (done) {
      toast(t('巡检计划已保存'), 'ok');
      load();
    }
  }

  const refresh = window.setInterval(load, 60_000);
  load();
  return () => clearInterval(refresh);
}

/** Recorded inspections with their failed items and photos. @param {import('../api.js').Api} api @param {any[]} records */
export function recordList(api, records) {
  if (!records.length) return h('p.muted', null, t('暂无巡检记录'));
  return h('ul.rect-list.insp-records', null, records.map((r) => {
    const failed = r.checklist.filter((/** @type {any} */ c) => !c.ok);
    const photos = h('div.insp-photos');
    for (const p of r.photos) {
      const img = /** @type {HTMLImageElement} */ (h('img.insp-photo', { alt: t('巡检照片'), dataset: { photo: p.id } }));
      photos.append(img);
      api.request('GET', `/api/v1/inspection-photos/${p.id}`, undefined, { raw: true })
        .then((res) => res.blob())
        .then((b) => { img.src = URL.createObjectURL(b); })
        .catch(() => img.replaceWith(h('span.muted', null, t('照片无法加载'))));
    }
    return h('li', { class: failed.length ? 'overdue' : undefined, dataset: { record: r.id } },
      h('div', null,
        h('strong', null, fmt.dateTime(r.inspected_at)), ` · ${r.inspector_name} `,
        failed.length ? h('span.tag.bad', null, `${failed.length} ${t('项不合格')}`) : h('span.tag.ok', null, t('全部合格')),
        failed.length ? h('div', null, failed.map((/** @type {any} */ c) => `${t(ITEMS[/** @type {keyof typeof ITEMS} */ (c.item)] || c.item)}${c.note ? `（${c.note}）` : ''}`).join('；'),
          r.problem_ids.length ? h('span.muted', null, ` · ${t('已转整改')} ${r.problem_ids.length}`) : null) : null,
        r.note ? h('div.muted', null, r.note) : null,
        photos));
  }));
}

/**
 * The card on the staff's 本服务点 page: the schedule's standing and the record form.
 * @param {import('../main.js').Ctx} ctx @param {string} pointId @param {HTMLElement} card
 * @param {() => void} [onRecorded] called after an inspection was recorded (the page's tiles)
 */
export async function staffInspectionCard(ctx, pointId, card, onRecorded) {
  const { api } = ctx;
  let d;
  try {
    d = await api.get(`/api/v1/points/${pointId}/inspections`);
  } catch (e) {
    mount(card, h('p.form-error', null, `${t('加载失败')}：${/** @type {Error} */ (e).message}`));
    return;
  }
  const s = d.schedule;
  card.classList.toggle('has-alarms', s?.state === 'overdue');
  const standing = s
    ? h('div.insp-standing#inspection-standing', { class: s.state === 'overdue' ? 'overdue' : undefined },
      h('div.insp-next', null, stateTag(s), h('span.big', null, dueText(s))),
      h('div.muted', null, `${rhythm(s)} · ${t('巡检负责人')} ${s.inspector_name} ${s.inspector_phone}`,
        s.last_inspected_at ? ` · ${t('上次巡检')} ${fmt.dateTime(s.last_inspected_at)}` : ''))
    : h('p.muted#inspection-standing', null, t('本服务点尚未设置巡检计划，仍可登记巡检。'));

  const rows = Object.entries(ITEMS).map(([k, zh]) => h('tr', { dataset: { item: k } },
    h('th', { scope: 'row' }, t(zh)),
    h('td.insp-result', null, h('label.insp-choice.pass', null, h('input', { type: 'radio', name: `ok-${k}`, value: 'yes', checked: true }), t('合格')),
      h('label.insp-choice.fail', null, h('input', { type: 'radio', name: `ok-${k}`, value: 'no' }), t('不合格'))),
    h('td', null, h('input', { name: `note-${k}`, maxlength: 200, placeholder: t('情况说明（不合格时填写）'), 'aria-label': `${t(zh)} ${t('情况说明')}` }))));
  const photoInput = /** @type {HTMLInputElement} */ (h('input#inspection-photos', { type: 'file', accept: 'image/jpeg,image/png', multiple: true, name: 'photos' }));
  const err = h('p.form-error', { role: 'alert' });
  const submit = h('button.btn.primary.big-btn#inspection-submit', { type: 'submit' }, t('提交巡检记录'));
  const form = /** @type {HTMLFormElement} */ (h('form.insp-form#inspection-form', null,
    h('table.table.insp-checklist', null,
      h('thead', null, h('tr', null, h('th', null, t('检查项')), h('th', null, t('结果')), h('th', null, t('说明')))),
      h('tbody', null, rows)),
    field(t('总体备注'), h('input', { name: 'note', maxlength: 500 })),
    field(t('现场照片'), photoInput, t('JPEG 或 PNG，每张不超过 10 MB，最多 6 张')),
    err,
    h('div.form-actions', null, submit)));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const f = new FormData(form);
    const files = [...(photoInput.files || [])];
    if (files.length > MAX_PHOTOS) { err.textContent = t('最多 6 张照片'); return; }
    if (files.some((x) => x.size > MAX_PHOTO_BYTES)) { err.textContent = t('照片不能超过 10 MB'); return; }
    const checklist = Object.keys(ITEMS).map((k) => {
      const note = String(f.get(`note-${k}`) || '').trim();
      return { item: k, ok: f.get(`ok-${k}`) !== 'no', note: note || undefined };
    });
    submit.setAttribute('disabled', '');
    try {
      const note = String(f.get('note') || '').trim();
      const rec = await api.post(`/api/v1/points/${pointId}/inspections`, { checklist, note: note || undefined });
      for (const file of files) {
        await api.request('POST', `/api/v1/inspections/${rec.id}/photos`, undefined, {
          bytes: await file.arrayBuffer(), headers: { 'content-type': 'application/octet-stream' },
        });
      }
      toast(rec.failed ? `${t('巡检已登记')}，${rec.failed} ${t('项不合格已转整改')}` : t('巡检已登记'), 'ok');
      await staffInspectionCard(ctx, pointId, card, onRecorded);
      onRecorded?.();
    } catch (ex) {
      err.textContent = /** @type {Error} */ (ex).message;
    } finally {
      submit.removeAttribute('disabled');
    }
  });

  mount(card, h('h2.card-title', null, t('巡检'), s ? stateTag(s) : null),
    standing,
    h('details.insp-record', { open: s?.state === 'overdue' || s?.state === 'due' }, h('summary', null, t('登记本次巡检')), form),
    h('h3', null, t('最近巡检')),
    recordList(api, d.records.slice(0, 5)));
}

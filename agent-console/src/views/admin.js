// 管理: service points, terminals, accounts and skills, acceptance centers and their streets,
// lines and items (and the streets offering them), the audit log.
import { dialog, field, h, mount, toast } from '../dom.js';
import * as fmt from '../fmt.js';
import { POINT_KIND, ROLE, TERMINAL_STATUS, TRANSFER, t } from '../i18n.js';
import { centerFilter, pagedList, streetFilter } from '../listing.js';

/** @param {import('../main.js').Ctx} ctx @param {HTMLElement} main @param {string} tab */
export function adminView(ctx, main, tab) {
  const { api } = ctx;
  const body = h('div.admin-body');
  mount(main, h('div.admin-page', null, body));
  const fail = (/** @type {any} */ e) => toast(`${t('操作失败')}：${e.message}`, 'error');
  /** @param {string} title @param {...any} actions */
  const head = (title, ...actions) => h('div.page-head', null, h('h1', null, title), h('div.actions', null, actions));

  // ---------------------------------------------------------------- points
  async function points() {
    const list = pagedList({
      api, path: '/api/v1/points', id: 'points', sort: 'code', searchPlaceholder: t('搜索编码、名称、居委会、地址'),
      filters: [await centerFilter(api), await streetFilter(api),
        { param: 'state', label: t('状态'), options: [['', t('全部')], ['open', t('开放')], ['closed', t('已关闭')]] },
        { param: 'alarm', label: t('告警'), options: [['', t('全部')], ['yes', t('有告警')], ['no', t('无告警')]] }],
      columns: [{ label: t('编码'), sort: 'code' }, { label: t('名称'), sort: 'name' }, { label: t('街道'), sort: 'street' }, { label: t('类型'), sort: 'kind' },
        { label: t('地址') }, { label: t('开放时间') }, { label: t('巡检负责人') }, { label: t('状态'), sort: 'state' }, { label: '' }],
      row: (/** @type {any} */ p) => h('tr', { dataset: { code: p.code } },
        h('td.mono', null, p.code), h('td', null, p.name), h('td', null, p.street), h('td', null, t(POINT_KIND[/** @type {keyof typeof POINT_KIND} */ (p.kind)] || p.kind)),
        h('td.ellipsis', { title: p.address }, p.address), h('td', null, p.opening_hours), h('td', null, `${p.inspector_name} ${p.inspector_phone}`),
        h('td', null, p.status === 'open' ? h('span.tag.ok', null, t('开放')) : h('span.tag.bad', { title: p.closed_reason || '' }, t('已关闭')), p.closed_reason ? h('div.muted.small-text', null, p.closed_reason) : null),
        h('td.row-actions', null,
          h('button.btn.small.edit', { type: 'button', onclick: () => pointForm(p) }, t('修改')),
          p.status === 'open'
            ? h('button.btn.small.close', { type: 'button', onclick: () => closePoint(p) }, t('关闭'))
            : h('button.btn.small.reopen', { type: 'button', onclick: () => api.post(`/api/v1/points/${p.id}/reopen`).then(() => list.reload()).catch(fail) }, t('重新开放')),
          h('button.btn.small.ghost', { type: 'button', onclick: () => pointHistory(p) }, t('历史')))),
    });
    reloadPoints = list.reload;
    mount(body, head(t('服务点'), h('button.btn.primary#add-point', { type: 'button', onclick: () => pointForm(null) }, t('新增服务点'))), list.el);
  }
  /** Reloads the points list in place (keeps search, filters and page). */
  let reloadPoints = () => {};

  /** @param {any} p */
  async function pointForm(p) {
    const inp = (/** @type {string} */ name, /** @type {any} */ extra = {}) => h('input', { name, value: p ? String(p[name] ?? '') : '', required: true, ...extra });
    const done = await dialog(p ? `${t('修改')} · ${p.name}` : t('新增服务点'), () => [
      h('div.grid2', null,
        field(t('编码'), inp('code', { disabled: !!p, pattern: '[A-Za-z0-9-]{2,32}', placeholder: 'JA-XX01' })),
        field(t('名称'), inp('name')),
        field(t('街道'), inp('street')),
        field(t('居委会'), inp('committee')),
        field(t('类型'), h('select', { name: 'kind' }, Object.entries(POINT_KIND).map(([k, zh]) => h('option', { value: k, selected: p?.kind === k }, t(zh))))),
        field(t('开放时间'), inp('opening_hours', { placeholder: '周一至周五 9:00-17:00' })),
        field(t('经度'), inp('longitude', { type: 'number', step: 'any', value: p ? String(p.longitude) : '121.45' })),
        field(t('纬度'), inp('latitude', { type: 'number', step: 'any', value: p ? String(p.latitude) : '31.23' })),
        field(t('巡检负责人'), inp('inspector_name')),
        field(t('联系电话'), inp('inspector_phone'))),
      field(t('地址'), inp('address')),
    ], {
      wide: true, submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => {
        /** @type {any} */
        const v = Object.fromEntries(d.entries());
        v.longitude = Number(v.longitude);
        v.latitude = Number(v.latitude);
        if (p) { delete v.code; v.expected_version = p.version; return api.patch(`/api/v1/points/${p.id}`, v); }
        return api.post('/api/v1/points', v);
      },
    });
    if (done) { toast(t('已保存'), 'ok'); reloadPoints(); }
  }

  /** @param {any} p */
  async function closePoint(p) {
    const done = await dialog(`${t('关闭')} · ${p.name}`, () => [field(t('关闭原因'), h('textarea', { name: 'reason', required: true, rows: 3, maxlength: 500 }))], {
      submit: t('关闭'), cancel: t('取消'),
      onSubmit: (d) => api.post(`/api/v1/points/${p.id}/close`, { reason: String(d.get('reason')) }),
    });
    if (done) reloadPoints();
  }

  /** @param {any} p */
  async function pointHistory(p) {
    const list = await api.get(`/api/v1/points/${p.id}/history`).catch(() => []);
    await dialog(`${t('历史')} · ${p.name}`, () => [h('div.table-wrap', null, h('table.table.compact', null,
      h('thead', null, h('tr', null, ['#', t('时间'), t('操作'), t('名称'), t('状态')].map((c) => h('th', null, c)))),
      h('tbody', null, list.map((/** @type {any} */ e) => h('tr', null, h('td', null, String(e.version)), h('td', null, fmt.dateTime(e.changed_at)), h('td', null, e.action),
        h('td', null, e.point.name), h('td', null, e.point.status === 'open' ? t('开放') : `${t('已关闭')} ${e.point.closed_reason || ''}`))))))], { wide: true, submit: t('确定') });
  }

  // ---------------------------------------------------------------- terminals
  async function terminals() {
    const [pts, health] = await Promise.all([api.get('/api/v1/points'), api.get('/api/v1/terminals/health')]);
    const byId = new Map(health.map((/** @type {any} */ x) => [x.terminal_id, x]));
    /** Online state and open alarms of an active terminal. @param {any} x */
    const healthCell = (x) => {
      const hx = byId.get(x.id);
      if (!hx || x.status !== 'active') return '—';
      const offline = hx.alarms.find((/** @type {any} */ a) => a.kind === 'offline');
      return h('div', null,
        offline ? h('span.tag.bad.alarm-tag', null, t('离线告警')) : hx.online ? h('span.tag.ok', null, t('在线')) : h('span.tag.bad', null, t('离线')),
        hx.alarms.some((/** @type {any} */ a) => a.kind === 'printer_fault') ? h('span.tag.bad.alarm-tag', null, t('打印机故障')) : null,
        hx.alarms.some((/** @type {any} */ a) => a.kind === 'disk_space') ? h('span.tag.bad.alarm-tag', null, t('存储将满')) : null,
        hx.report ? h('div.muted.small-text', null, `${t('版本')} ${hx.report.version}`) : null);
    };
    const list = pagedList({
      api, path: '/api/v1/terminals', id: 'terminals', sort: 'point', searchPlaceholder: t('搜索终端或服务点名称'),
      filters: [await centerFilter(api), await streetFilter(api),
        { param: 'state', label: t('状态'), options: [['', t('全部')], ...Object.entries(TERMINAL_STATUS).map(([k, zh]) => /** @type {[string, string]} */ ([k, t(zh)]))] },
        { param: 'alarm', label: t('告警'), options: [['', t('全部')], ['yes', t('有告警')], ['no', t('无告警')]] }],
      columns: [{ label: t('名称'), sort: 'name' }, { label: t('所属服务点'), sort: 'point' }, { label: t('状态'), sort: 'state' }, { label: t('终端健康') },
        { label: t('最近在线'), sort: 'last_seen' }, { label: '' }],
      row: (/** @type {any} */ x) => h('tr', { class: byId.get(x.id)?.alarms.length ? 'alarm' : undefined },
        h('td', null, x.name), h('td', null, x.point_name, x.point_street ? h('div.muted.small-text', null, x.point_street) : null),
        h('td', null, h(`span.tag.ts-${x.status}`, null, t(TERMINAL_STATUS[/** @type {keyof typeof TERMINAL_STATUS} */ (x.status)] || x.status)),
          x.status === 'pending' && x.enrollment_expires_at ? h('div.muted.small-text', null, `${t('有效期至')} ${fmt.dateTime(x.enrollment_expires_at)}`) : null,
          x.revoked_reason ? h('div.muted.small-text', null, x.revoked_reason) : null),
        h('td', null, healthCell(x)),
        h('td', null, x.last_seen_at ? fmt.dateTime(x.last_seen_at) : t('从未在线')),
        h('td.row-actions', null,
          x.status !== 'revoked' ? h('button.btn.small', { type: 'button', onclick: () => api.post(`/api/v1/terminals/${x.id}/enrollment-code`).then(showCode).catch(fail) }, t('新激活码')) : null,
          x.status !== 'revoked' ? h('button.btn.small', { type: 'button', onclick: () => revoke(x) }, t('注销')) : null)),
    });
    mount(body, head(t('终端'), h('button.btn.primary#add-terminal', { type: 'button', onclick: () => register(pts) }, t('登记终端'))), list.el);
  }

  /** @param {any[]} pts */
  async function register(pts) {
    const r = await dialog(t('登记终端'), () => [
      field(t('所属服务点'), h('select', { name: 'point_id', required: true }, pts.filter((p) => p.status === 'open').map((p) => h('option', { value: p.id }, `${p.code} ${p.name}`)))),
      field(t('名称'), h('input', { name: 'name', required: true, maxlength: 64, placeholder: '双屏一体机 1' })),
    ], { submit: t('登记终端'), cancel: t('取消'), onSubmit: (d) => api.post('/api/v1/terminals', { point_id: String(d.get('point_id')), name: String(d.get('name')) }) });
    if (r) await showCode(r);
  }

  /** Shows the enrollment code once. @param {any} r EnrollmentCodeResponse */
  async function showCode(r) {
    await dialog(`${t('激活码')} · ${r.terminal.name}`, () => [
      h('p.enroll-code#enrollment-code', null, r.enrollment_code),
      h('p', null, t('激活码只显示这一次，请抄送给服务点。')),
      h('p.muted', null, `${t('有效期至')} ${fmt.dateTime(r.expires_at)}`),
    ], { submit: t('确定'), cancel: t('关闭') });
    terminals();
  }

  /** @param {any} x */
  async function revoke(x) {
    const done = await dialog(`${t('注销')} · ${x.name}`, () => [field(t('注销原因'), h('input', { name: 'reason', required: true, maxlength: 200 }))], {
      submit: t('注销'), cancel: t('取消'), onSubmit: (d) => api.post(`/api/v1/terminals/${x.id}/revoke`, { reason: String(d.get('reason')) }),
    });
    if (done) terminals();
  }

  // ---------------------------------------------------------------- accounts
  async function accounts() {
    const [lines, pts, centers] = await Promise.all([api.get('/api/v1/lines'), api.get('/api/v1/points'), api.get('/api/v1/centers')]);
    const lineName = new Map(lines.map((/** @type {any} */ l) => [l.id, l.name]));
    const pointName = new Map(pts.map((/** @type {any} */ p) => [p.id, p.name]));
    const centerName = new Map(centers.map((/** @type {any} */ c) => [c.id, c.name]));
    const list = pagedList({
      api, path: '/api/v1/users', id: 'accounts', sort: 'username', searchPlaceholder: t('搜索用户名或显示名'),
      filters: [
        { param: 'role', label: t('角色'), options: [['', t('全部')], ...['operator', 'supervisor', 'admin', 'staff'].map((r) => /** @type {[string, string]} */ ([r, t(ROLE[/** @type {keyof typeof ROLE} */ (r)])]))] },
        { param: 'state', label: t('状态'), options: [['', t('全部')], ['active', t('启用')], ['disabled', t('停用')]] },
        await centerFilter(api), await streetFilter(api)],
      columns: [{ label: t('用户名'), sort: 'username' }, { label: t('显示名'), sort: 'display_name' }, { label: t('角色'), sort: 'role' },
        { label: t('受理中心') }, { label: t('技能（可受理条线）') }, { label: t('状态'), sort: 'state' }, { label: '' }],
      row: (/** @type {any} */ u) => h('tr', null,
        h('td.mono', null, u.username), h('td', null, u.display_name, u.point_id ? h('div.muted.small-text', null, pointName.get(u.point_id) || '') : null),
        h('td', null, t(ROLE[/** @type {keyof typeof ROLE} */ (u.role)] || u.role)),
        h('td.user-center', null, u.center_id ? centerName.get(u.center_id) || '—' : '—'),
        h('td', null, u.role === 'operator' ? u.skills.map((/** @type {string} */ s) => lineName.get(s) || s).join('、') || '—' : '—'),
        h('td', null, u.active ? h('span.tag.ok', null, t('启用')) : h('span.tag.bad', null, t('停用'))),
        h('td.row-actions', null,
          u.role === 'operator' ? h('button.btn.small', { type: 'button', onclick: () => skills(u, lines) }, t('设置技能')) : null,
          u.role === 'operator' || u.role === 'supervisor'
            ? h('button.btn.small.set-center', { type: 'button', onclick: () => setCenter(u, centers) }, t('设置中心')) : null,
          h('button.btn.small', { type: 'button', onclick: () => api.patch(`/api/v1/users/${u.id}`, { active: !u.active }).then(() => list.reload()).catch(fail) }, u.active ? t('停用') : t('启用')),
          h('button.btn.small.ghost', { type: 'button', onclick: () => resetPassword(u) }, t('重置密码')))),
    });
    reloadAccounts = list.reload;
    mount(body, head(t('账户'), h('button.btn.primary', { type: 'button', onclick: () => userForm(null, lines, pts) }, t('新增账户'))), list.el);
  }
  let reloadAccounts = () => {};

  /** @param {any} u @param {any[]} lines @param {any[]} pts */
  async function userForm(u, lines, pts) {
    const done = await dialog(t('新增账户'), () => [
      h('div.grid2', null,
        field(t('用户名'), h('input', { name: 'username', required: true, pattern: '[a-z0-9_.-]{3,32}' })),
        field(t('显示名'), h('input', { name: 'display_name', required: true })),
        field(t('角色'), h('select', { name: 'role' }, ['operator', 'supervisor', 'admin', 'staff'].map((r) => h('option', { value: r }, t(ROLE[/** @type {keyof typeof ROLE} */ (r)]))))),
        field(t('所属服务点'), h('select', { name: 'point_id' }, h('option', { value: '' }, '—'), pts.map((p) => h('option', { value: p.id }, p.name)))),
        field(t('密码'), h('input', { name: 'password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }))),
      h('fieldset.checks', null, h('legend', null, t('技能（可受理条线）')), lines.map((l) => h('label', null, h('input', { type: 'checkbox', name: 'skills', value: l.id }), l.name))),
    ], {
      wide: true, submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => api.post('/api/v1/users', {
        username: String(d.get('username')), display_name: String(d.get('display_name')), role: String(d.get('role')),
        point_id: String(d.get('point_id')) || undefined, password: String(d.get('password')), skills: d.getAll('skills').map(String),
      }),
    });
    if (done) reloadAccounts();
  }

  /** @param {any} u @param {any[]} lines */
  async function skills(u, lines) {
    const done = await dialog(`${t('设置技能')} · ${u.display_name}`, () => [
      h('fieldset.checks', null, lines.map((l) => h('label', null, h('input', { type: 'checkbox', name: 'skills', value: l.id, checked: u.skills.includes(l.id) }), l.name))),
    ], { submit: t('保存'), cancel: t('取消'), onSubmit: (d) => api.put(`/api/v1/users/${u.id}/skills`, { line_ids: d.getAll('skills').map(String) }) });
    if (done) reloadAccounts();
  }

  /** The acceptance center of an operator or supervisor. @param {any} u @param {any[]} centers */
  async function setCenter(u, centers) {
    const done = await dialog(`${t('设置中心')} · ${u.display_name}`, () => [
      field(t('受理中心'), h('select', { name: 'center_id' }, h('option', { value: '' }, t('不属于任何中心')),
        centers.map((c) => h('option', { value: c.id, selected: u.center_id === c.id }, c.name)))),
      h('p.muted', null, t('受理员优先接听本中心街道服务点的来电，其他中心的来电在等待超时后才会分配给他。')),
    ], { submit: t('保存'), cancel: t('取消'), onSubmit: (d) => api.put(`/api/v1/users/${u.id}/center`, { center_id: String(d.get('center_id')) || null }) });
    if (done) reloadAccounts();
  }

  // ---------------------------------------------------------------- centers
  async function centersPage() {
    const [centers, pts] = await Promise.all([api.get('/api/v1/centers'), api.get('/api/v1/points')]);
    /** @type {Map<string, number>} */
    const pointsIn = new Map();
    for (const p of pts) pointsIn.set(p.street, (pointsIn.get(p.street) || 0) + 1);
    const owner = new Map(centers.flatMap((/** @type {any} */ c) => c.streets.map((/** @type {string} */ s) => [s, c.name])));
    const unowned = [...pointsIn.keys()].filter((s) => !owner.has(s)).sort((a, b) => a.localeCompare(b, 'zh-CN'));
    mount(body, head(t('受理中心'), h('button.btn.primary#add-center', { type: 'button', onclick: () => centerForm(null, centers, pts) }, t('新增受理中心'))),
      h('p.muted', null, t('受理中心负责所辖街道的服务点：来电先由本中心受理员接听，等待超时后由全区受理员接听。')),
      h('div.table-wrap', null, h('table.table#centers', null,
        h('thead', null, h('tr', null, [t('名称'), t('所辖街道'), t('服务点'), ''].map((c) => h('th', null, c)))),
        h('tbody', null, centers.length ? centers.map((/** @type {any} */ c) => h('tr', { dataset: { center: c.name } },
          h('td', null, h('strong', null, c.name)),
          h('td.center-streets', null, c.streets.length ? c.streets.map((/** @type {string} */ s) => h('span.tag', null, s)) : h('span.muted', null, t('暂无街道'))),
          h('td.num', null, String(c.streets.reduce((/** @type {number} */ n, /** @type {string} */ s) => n + (pointsIn.get(s) || 0), 0))),
          h('td.row-actions', null, h('button.btn.small.edit', { type: 'button', onclick: () => centerForm(c, centers, pts) }, t('修改')))))
          : h('tr.empty-row', null, h('td.muted', { colspan: 4 }, t('暂无受理中心')))))),
      unowned.length ? h('p.muted#unowned-streets', null, `${t('未划入受理中心的街道')}：${unowned.join('、')}`) : null);
  }

  /** @param {any} c @param {any[]} centers @param {any[]} pts */
  async function centerForm(c, centers, pts) {
    const owner = new Map(centers.filter((x) => x.id !== c?.id).flatMap((x) => x.streets.map((/** @type {string} */ s) => [s, x.name])));
    const known = [...new Set([...pts.map((p) => p.street), ...(c?.streets || [])])].sort((a, b) => a.localeCompare(b, 'zh-CN'));
    const done = await dialog(c ? `${t('修改')} · ${c.name}` : t('新增受理中心'), () => [
      field(t('名称'), h('input', { name: 'name', required: true, maxlength: 32, value: c?.name || '', placeholder: '静安南部受理中心' })),
      h('fieldset.checks.center-streets', null, h('legend', null, t('所辖街道')), known.map((s) => h('label', { title: owner.has(s) ? `${t('已属于')} ${owner.get(s)}` : '' },
        h('input', { type: 'checkbox', name: 'streets', value: s, checked: c?.streets.includes(s), disabled: owner.has(s) }),
        s, owner.has(s) ? h('span.muted.small-text', null, ` · ${owner.get(s)}`) : null))),
      field(t('其他街道（每行一个）'), h('textarea', { name: 'more', rows: 2, maxlength: 1000 })),
    ], {
      wide: true, submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => {
        const more = String(d.get('more') || '').split('\n').map((s) => s.trim()).filter(Boolean);
        const v = { name: String(d.get('name')), streets: [...d.getAll('streets').map(String), ...more] };
        return c ? api.patch(`/api/v1/centers/${c.id}`, v) : api.post('/api/v1/centers', v);
      },
    });
    if (done) { toast(t('已保存'), 'ok'); centersPage(); }
  }

  /** @param {any} u */
  async function resetPassword(u) {
    const done = await dialog(`${t('重置密码')} · ${u.display_name}`, () => [field(t('新密码'), h('input', { name: 'p', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }))], {
      submit: t('保存'), cancel: t('取消'), onSubmit: (d) => api.post(`/api/v1/users/${u.id}/password`, { new_password: String(d.get('p')) }),
    });
    if (done) toast(t('已保存'), 'ok');
  }

  // ---------------------------------------------------------------- catalog
  async function catalog() {
    const [lines, items] = await Promise.all([api.get('/api/v1/lines'), api.get('/api/v1/items')]);
    mount(body, head(t('条线与事项'),
      h('button.btn', { type: 'button', onclick: () => lineForm() }, t('新增条线')),
      h('button.btn.primary', { type: 'button', onclick: () => itemForm(null, lines) }, t('新增事项'))),
      h('div.catalog', null, lines.map((/** @type {any} */ l) => h('section.card', null,
        h('h2.card-title', null, `${l.name}`, h('span.muted', null, ` ${l.code}`), l.active ? null : h('span.tag.bad', null, t('停用'))),
        h('table.table.compact', null, h('tbody', null, items.filter((/** @type {any} */ i) => i.line_id === l.id).map((/** @type {any} */ i) => h('tr', null,
          h('td.mono', null, i.code), h('td', null, i.name, i.remote_allowed ? h('span.tag.ok', null, t('可远程办理')) : null, i.active ? null : h('span.tag.bad', null, t('停用'))),
          h('td.muted', null, `${t('材料清单')} ${i.materials.length}`),
          h('td.muted.item-streets', null, i.streets?.length ? `${t('仅限')} ${i.streets.join('、')}` : t('全区可办')),
          h('td.row-actions', null, h('button.btn.small', { type: 'button', onclick: () => itemForm(i, lines) }, t('修改')),
            h('button.btn.small.ghost', { type: 'button', onclick: () => itemStreets(i) }, t('适用街道')))))))))));
  }

  /** The streets whose points offer an item (none: everywhere). @param {any} item */
  async function itemStreets(item) {
    const pts = await api.get('/api/v1/points').catch(() => []);
    const known = [...new Set([...pts.map((/** @type {any} */ p) => p.street), ...(item.streets || [])])].sort((a, b) => a.localeCompare(b, 'zh-CN'));
    const done = await dialog(`${t('适用街道')} · ${item.name}`, () => [
      h('p.muted', null, t('不选任何街道即全区可办；选中后只有这些街道的服务点一体机可以看到并办理该事项。')),
      h('fieldset.checks', null, known.map((s) => h('label', null, h('input', { type: 'checkbox', name: 'streets', value: s, checked: item.streets?.includes(s) }), s))),
    ], { submit: t('保存'), cancel: t('取消'), onSubmit: (d) => api.put(`/api/v1/items/${item.id}/streets`, { streets: d.getAll('streets').map(String) }) });
    if (done) catalog();
  }

  async function lineForm() {
    const done = await dialog(t('新增条线'), () => [
      field(t('编码'), h('input', { name: 'code', required: true })), field(t('名称'), h('input', { name: 'name', required: true })),
      field(t('排序'), h('input', { name: 'sort_order', type: 'number', value: '100' })),
    ], { submit: t('保存'), cancel: t('取消'), onSubmit: (d) => api.post('/api/v1/lines', { code: String(d.get('code')), name: String(d.get('name')), sort_order: Number(d.get('sort_order')) || 0 }) });
    if (done) catalog();
  }

  /** @param {any} item @param {any[]} lines */
  async function itemForm(item, lines) {
    const rows = h('div.mat-rows');
    const addRow = (/** @type {any} */ m) => rows.append(h('div.mat-row', null,
      h('input', { name: 'm_name', value: m?.name || '', placeholder: t('名称'), required: true }),
      h('select', { name: 'm_transfer' }, Object.entries(TRANSFER).map(([k, zh]) => h('option', { value: k, selected: m?.transfer === k }, t(zh)))),
      h('select', { name: 'm_required' }, h('option', { value: 'true', selected: m?.required !== false }, t('必需')), h('option', { value: 'false', selected: m?.required === false }, t('可选'))),
      h('input', { name: 'm_note', value: m?.note || '', placeholder: t('说明') }),
      h('button.btn.small.ghost', { type: 'button', onclick: (/** @type {Event} */ e) => /** @type {HTMLElement} */ (e.target).parentElement?.remove() }, '×')));
    (item?.materials || []).forEach(addRow);
    const done = await dialog(item ? `${t('修改')} · ${item.name}` : t('新增事项'), () => [
      h('div.grid2', null,
        field(t('编码'), h('input', { name: 'code', required: true, value: item?.code || '', disabled: !!item })),
        field(t('名称'), h('input', { name: 'name', required: true, value: item?.name || '' })),
        field(t('条线'), h('select', { name: 'line_id' }, lines.map((l) => h('option', { value: l.id, selected: item?.line_id === l.id }, l.name)))),
        h('label.check', null, h('input', { type: 'checkbox', name: 'remote_allowed', checked: item ? item.remote_allowed : true }), t('可远程办理'))),
      field(t('说明'), h('textarea', { name: 'description', rows: 2 }, item?.description || '')),
      h('fieldset.mats', null, h('legend', null, t('材料清单')), rows, h('button.btn.small', { type: 'button', onclick: () => addRow(null) }, t('添加材料'))),
    ], {
      wide: true, submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => {
        const names = d.getAll('m_name'), tr = d.getAll('m_transfer'), req = d.getAll('m_required'), notes = d.getAll('m_note');
        const materials = names.map((n, i) => ({ name: String(n), transfer: String(tr[i]), required: req[i] === 'true', note: String(notes[i] || '') }));
        const v = { name: String(d.get('name')), line_id: String(d.get('line_id')), remote_allowed: d.get('remote_allowed') != null, description: String(d.get('description') || ''), materials };
        return item ? api.patch(`/api/v1/items/${item.id}`, v) : api.post('/api/v1/items', { ...v, code: String(d.get('code')) });
      },
    });
    if (done) catalog();
  }

  // ---------------------------------------------------------------- audit
  /** @type {number[]} */
  const pages = [];
  /** @param {number | null} before */
  async function audit(before) {
    const q = new URLSearchParams({ limit: '50' });
    if (before != null) q.set('before', String(before));
    const page = await api.get(`/api/v1/audit?${q}`);
    const verify = h('span#verify-result');
    mount(body, head(t('审计日志'),
      h('button.btn#verify', {
        type: 'button',
        onclick: async () => {
          try {
            const v = await api.get('/api/v1/audit/verify');
            mount(verify, v.intact ? h('span.tag.ok', null, `${t('审计链完整')} · ${t('已检查')} ${v.checked} ${t('条')}`)
              : h('span.tag.bad', null, `${t('审计链已损坏')} · #${v.first_broken_seq}`));
          } catch (e) { fail(e); }
        },
      }, t('校验审计链')), verify),
      h('div.table-wrap', null, h('table.table.compact#audit', null,
        h('thead', null, h('tr', null, ['#', t('时间'), t('操作人'), t('操作'), t('对象'), t('结果'), t('来源')].map((c) => h('th', null, c)))),
        h('tbody', null, page.entries.map((/** @type {any} */ e) => h('tr', null,
          h('td.mono', null, String(e.seq)), h('td', null, fmt.dateTime(e.at)), h('td', null, e.actor_name || '—'), h('td.mono', null, e.action),
          h('td.ellipsis', { title: `${e.target_type} ${e.target_id || ''}` }, `${e.target_type} ${e.target_id ? e.target_id.slice(0, 8) : ''}`),
          h('td', null, e.outcome === 'ok' || e.outcome === 'success' ? e.outcome : h('span.tag.bad', null, e.outcome)), h('td.mono', null, e.source_ip || '—')))))),
      h('div.pager', null,
        h('button.btn.small', { type: 'button', disabled: before == null, onclick: () => { pages.pop(); audit(pages.length ? pages[pages.length - 1] : null); } }, t('最新')),
        h('button.btn.small', { type: 'button', disabled: page.next_before == null, onclick: () => { pages.push(page.next_before); audit(page.next_before); } }, t('更早'))));
  }

  const tabs = /** @type {Record<string, () => Promise<void>>} */ ({ points, terminals, accounts, centers: centersPage, catalog, audit: () => audit(null) });
  (tabs[tab] || points)().catch((e) => mount(body, h('p.form-error', null, `${t('加载失败')}：${e.message}`)));
  return () => {};
}

// The long lists at district scale (#16 item 7: ~270 points and terminals): a toolbar with a
// search box and filter selects, column headers that sort, and a pager (第 N / M 页 · 共 T 条).
// Searching, filtering, sorting and paging happen on the server (q, street, center, state, alarm,
// sort, limit, offset; the total comes back in X-Total-Count), so a page is all the browser holds.
import { h, mount } from './dom.js';
import { t } from './i18n.js';

/**
 * @typedef {{ label: string, sort?: string, cls?: string }} Column
 * @typedef {{ param: string, label: string, options: [string, string][], value?: string }} Filter
 *   options: [value, label] pairs; the empty value means "all"; `value` is the one chosen at first.
 * @typedef {{
 *   api: import('./api.js').Api, path: string, id: string, columns: Column[],
 *   row: (x: any) => HTMLElement, filters?: Filter[], sort?: string, pageSize?: number,
 *   searchPlaceholder?: string, empty?: string, compact?: boolean, params?: () => Record<string, string>,
 *   onPage?: (rows: any[], total: number) => void,
 * }} ListOptions
 */

/** The streets (街镇) of the district, from the points list, for a street filter. @param {import('./api.js').Api} api */
export async function streetFilter(api) {
  const points = await api.get('/api/v1/points').catch(() => []);
  const streets = [...new Set(points.map((/** @type {any} */ p) => p.street))].sort((a, b) => a.localeCompare(b, 'zh-CN'));
  return /** @type {Filter} */ ({ param: 'street', label: t('街道'), options: [['', t('全部街道')], ...streets.map((s) => /** @type {[string, string]} */ ([s, s]))] });
}

/**
 * The acceptance centers (受理中心) for a `center` filter; `value` is chosen at first (a
 * supervisor's own center: their lists show it by default, 全区 shows the whole district).
 * @param {import('./api.js').Api} api @param {string} [value]
 */
export async function centerFilter(api, value) {
  const centers = await api.get('/api/v1/centers').catch(() => []);
  return /** @type {Filter} */ ({
    param: 'center', label: t('受理中心'), value: value || '',
    options: [['', t('全区')], ...centers.map((/** @type {any} */ c) => /** @type {[string, string]} */ ([c.id, c.name]))],
  });
}

/**
 * A server-paged list: returns its element and `reload()` (keeps the search, filters, sort and
 * page). @param {ListOptions} o
 */
export function pagedList(o) {
  const size = o.pageSize ?? 20;
  /** @type {Record<string, string>} */
  const filters = Object.fromEntries((o.filters ?? []).filter((f) => f.value).map((f) => [f.param, /** @type {string} */ (f.value)]));
  let q = '';
  let sort = o.sort ?? '';
  let page = 0;
  let seq = 0;
  const tbody = h('tbody');
  const headRow = h('tr');
  const pager = h('div.pager', { role: 'navigation', 'aria-label': t('分页') });
  const search = /** @type {HTMLInputElement} */ (h('input.list-search', {
    type: 'search', maxlength: 64, placeholder: o.searchPlaceholder ?? t('搜索'), 'aria-label': t('搜索'),
  }));
  let typing = 0;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => { q = search.value.trim(); page = 0; load(); }, 250);
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { clearTimeout(typing); q = search.value.trim(); page = 0; load(); }
  });
  const selects = (o.filters ?? []).map((f) => h('label.list-filter', null, h('span', null, f.label),
    h('select', {
      name: f.param,
      onchange: (/** @type {Event} */ e) => { filters[f.param] = /** @type {HTMLSelectElement} */ (e.target).value; page = 0; load(); },
    }, f.options.map(([v, label]) => h('option', { value: v, selected: v === (f.value ?? '') }, label)))));
  const toolbar = h('div.list-toolbar', null, search, selects);

  function renderHead() {
    mount(headRow, o.columns.map((c) => {
      if (!c.sort) return h('th', { class: c.cls }, c.label);
      const key = /** @type {string} */ (c.sort);
      const active = sort === key || sort === `-${key}`;
      const desc = sort === `-${key}`;
      return h('th.sortable', { class: c.cls, 'aria-sort': active ? (desc ? 'descending' : 'ascending') : 'none' },
        h('button.sort-btn', {
          type: 'button', dataset: { sort: key },
          onclick: () => { sort = active && !desc ? `-${key}` : key; page = 0; load(); },
        }, c.label, h('span.sort-mark', { 'aria-hidden': 'true' }, active ? (desc ? ' ▼' : ' ▲') : ' ↕')));
    }));
  }

  /** @param {number} total */
  function renderPager(total) {
    const pages = Math.max(1, Math.ceil(total / size));
    const go = (/** @type {number} */ p) => { page = Math.min(Math.max(0, p), pages - 1); load(); };
    mount(pager,
      h('button.btn.small.page-prev', { type: 'button', disabled: page === 0, onclick: () => go(page - 1) }, t('上一页')),
      h('span.page-info', null, `${t('第')} ${page + 1} / ${pages} ${t('页')}`),
      h('button.btn.small.page-next', { type: 'button', disabled: page >= pages - 1, onclick: () => go(page + 1) }, t('下一页')),
      h('span.page-total', null, `${t('共')} ${total} ${t('条')}`));
  }

  async function load() {
    const mine = ++seq;
    const params = new URLSearchParams();
    if (q) params.set('q', q);
    for (const [k, v] of Object.entries({ ...filters, ...(o.params?.() ?? {}) })) if (v) params.set(k, v);
    if (sort) params.set('sort', sort);
    params.set('limit', String(size));
    params.set('offset', String(page * size));
    renderHead();
    try {
      const res = await o.api.request('GET', `${o.path}?${params}`, undefined, { raw: true });
      const rows = await res.json();
      const total = Number(res.headers.get('x-total-count') ?? rows.length);
      if (mine !== seq) return;
      if (rows.length === 0 && total > 0 && page > 0) { page = Math.floor((total - 1) / size); load(); return; }
      mount(tbody, rows.length ? rows.map(o.row) : h('tr.empty-row', null, h('td.muted', { colspan: o.columns.length }, o.empty ?? t('没有符合条件的记录'))));
      renderPager(total);
      el.dataset.total = String(total);
      o.onPage?.(rows, total);
    } catch (e) {
      if (mine !== seq) return;
      mount(tbody, h('tr', null, h('td.form-error', { colspan: o.columns.length }, /** @type {Error} */ (e).message)));
    }
  }

  const el = h('div.paged-list', { id: `${o.id}-list` }, toolbar,
    h('div.table-wrap', null, h(`table.table${o.compact ? '.compact' : ''}`, { id: o.id }, h('thead', null, headRow), tbody)),
    pager);
  renderHead();
  load();
  return { el, reload: load };
}

// 地图 (#16 item 8): the district's points plotted to scale from /api/v1/points.geojson in Web
// Mercator, with a scale bar and a north arrow, coloured by state — open alarm, inspection
// overdue, closed now by the opening hours, open — with a legend; hovering or clicking a point
// shows its name, address and state and links on. No tiles and nothing from the internet: the
// only background is the district outline the deployment supplies as a local file
// (/api/v1/map/outline, `--map-outline`), if any.
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';

const SVG = 'http://www.w3.org/2000/svg';
const R = 6378137; // WGS 84 equatorial radius, metres
const W = 1000;
const H = 760;
const PAD = 40;

/** Map states, most urgent first (a point shows the first that applies). */
export const MAP_STATES = /** @type {const} */ ([
  ['alarm', '设备告警', '#cf222e'],
  ['overdue', '巡检超期', '#d4730b'],
  ['closed', '当前闭馆', '#8c959f'],
  ['open', '开放中', '#1a7f37'],
]);

/** @param {string} tag @param {Record<string, any>} [attrs] @param {...(Node|string|null)} kids */
function s(tag, attrs = {}, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, String(v));
  for (const k of kids) if (k != null) el.append(k);
  return el;
}

/** Web Mercator, metres. @param {number} lng @param {number} lat @returns {[number, number]} */
export function mercator(lng, lat) {
  const phi = (Math.max(-85, Math.min(85, lat)) * Math.PI) / 180;
  return [(R * lng * Math.PI) / 180, R * Math.log(Math.tan(Math.PI / 4 + phi / 2))];
}

/** Every [lng, lat] of a GeoJSON outline's polygons, as rings. @param {any} g @returns {number[][][]} */
function rings(g) {
  if (!g) return [];
  if (g.type === 'FeatureCollection') return (g.features || []).flatMap((/** @type {any} */ f) => rings(f));
  if (g.type === 'Feature') return rings(g.geometry);
  if (g.type === 'Polygon') return g.coordinates || [];
  if (g.type === 'MultiPolygon') return (g.coordinates || []).flat();
  return [];
}

/** A round length for the scale bar, about `m` metres. @param {number} m */
function niceLength(m) {
  const p = 10 ** Math.floor(Math.log10(m));
  return [1, 2, 5, 10].map((k) => k * p).filter((x) => x <= m).pop() || p;
}

/** @param {import('../main.js').Ctx} ctx @param {HTMLElement} main */
export function mapView(ctx, main) {
  const { api } = ctx;
  const isAdmin = api.user?.role === 'admin';
  const plot = h('div.map-plot');
  const info = h('aside.map-info', { 'aria-live': 'polite' }, h('p.muted', null, t('将鼠标移到服务点上或点击查看详情')));
  const legend = h('div.map-legend');
  const streetSel = /** @type {HTMLSelectElement} */ (h('select', { name: 'street', 'aria-label': t('街道') }));
  mount(main, h('div.sup-page.map-page', null,
    h('div.page-head', null, h('h1', null, t('服务点地图')), h('div.actions', null, h('label.list-filter', null, h('span', null, t('街道')), streetSel))),
    h('div.map-layout', null, h('section.card.map-card', null, plot, legend), info)));

  /** @type {any[]} */
  let points = [];
  /** @type {any} */
  let outline = null;

  async function load() {
    const [geo, health, overdue, out] = await Promise.all([
      api.get('/api/v1/points.geojson'),
      api.get('/api/v1/terminals/health'),
      api.get('/api/v1/inspections?state=overdue'),
      api.get('/api/v1/map/outline').catch(() => null),
    ]);
    outline = out;
    /** @type {Map<string, any[]>} */
    const alarms = new Map();
    for (const x of health) for (const a of x.alarms) alarms.set(x.point_id, [...(alarms.get(x.point_id) || []), { ...a, terminal_name: x.name }]);
    const late = new Map(overdue.map((/** @type {any} */ o) => [o.point_id, o]));
    points = geo.features.map((/** @type {any} */ f) => {
      const p = f.properties;
      const state = alarms.has(f.id) ? 'alarm' : late.has(f.id) ? 'overdue' : p.open_now === false ? 'closed' : 'open';
      return { id: f.id, lng: f.geometry.coordinates[0], lat: f.geometry.coordinates[1], ...p, state, alarms: alarms.get(f.id) || [], overdue: late.get(f.id) };
    });
    const streets = [...new Set(points.map((p) => p.street))].sort((a, b) => a.localeCompare(b, 'zh-CN'));
    const keep = streetSel.value;
    mount(streetSel, h('option', { value: '' }, t('全部街道')), streets.map((x) => h('option', { value: x, selected: x === keep }, x)));
    draw();
  }

  function draw() {
    const street = streetSel.value;
    const shown = points.filter((p) => !street || p.street === street);
    const outer = rings(outline);
    // Bounds of what is drawn (the street's points, or everything with the outline).
    const xy = [...shown.map((p) => mercator(p.lng, p.lat)), ...(street ? [] : outer.flat().map(([lng, lat]) => mercator(lng, lat)))];
    if (!xy.length) { mount(plot, h('p.muted', null, t('暂无服务点'))); mount(legend); return; }
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [x, y] of xy) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const span = Math.max(x1 - x0, y1 - y0, 500); // at least 500 m across
    const k = Math.min((W - 2 * PAD) / Math.max(x1 - x0, span * 0.2), (H - 2 * PAD) / Math.max(y1 - y0, span * 0.2));
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    /** @param {number} lng @param {number} lat */
    const project = (lng, lat) => { const [x, y] = mercator(lng, lat); return [W / 2 + (x - cx) * k, H / 2 - (y - cy) * k]; };
    // Mercator stretches by 1/cos(φ): ground metres per projected metre at the map's middle.
    const midLat = (Math.atan(Math.sinh(cy / R)) * 180) / Math.PI;
    const groundPerPx = Math.cos((midLat * Math.PI) / 180) / k;
    const barM = niceLength(groundPerPx * W * 0.2);
    const barPx = barM / groundPerPx;

    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'map-svg', role: 'img', 'aria-label': t('服务点地图') });
    svg.append(s('rect', { x: 0, y: 0, width: W, height: H, class: 'map-bg' }));
    if (outer.length) {
      const d = outer.map((ring) => ring.map(([lng, lat], i) => { const [x, y] = project(lng, lat); return `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`; }).join('') + 'Z').join('');
      svg.append(s('path', { d, class: 'map-outline', 'fill-rule': 'evenodd' }));
    }
    // The most urgent drawn last, on top.
    const order = Object.fromEntries(MAP_STATES.map(([k], i) => [k, i]));
    const dots = s('g', { class: 'map-points' });
    for (const p of [...shown].sort((a, b) => order[b.state] - order[a.state])) {
      const [x, y] = project(p.lng, p.lat);
      const colour = MAP_STATES.find(([k]) => k === p.state)?.[2];
      const dot = s('circle', {
        cx: x.toFixed(1), cy: y.toFixed(1), r: p.state === 'open' ? 6 : 8, fill: colour, class: `map-point state-${p.state}`,
        'data-code': p.code, 'data-state': p.state, tabindex: 0, role: 'button', 'aria-label': `${p.name} ${t(stateLabel(p.state))}`,
      }, s('title', {}, `${p.name}（${t(stateLabel(p.state))}）\n${p.address}`));
      dot.addEventListener('mouseenter', () => show(p));
      dot.addEventListener('focus', () => show(p));
      dot.addEventListener('click', () => show(p, true));
      dots.append(dot);
    }
    svg.append(dots);
    // Scale bar (bottom left) and north arrow (top right).
    const bx = PAD;
    const by = H - PAD + 8;
    svg.append(s('g', { class: 'map-scale' },
      s('path', { d: `M${bx},${by - 8}V${by}H${bx + barPx}V${by - 8}`, class: 'map-scale-bar' }),
      s('text', { x: bx + barPx / 2, y: by - 14, 'text-anchor': 'middle' }, barM >= 1000 ? `${barM / 1000} km` : `${barM} m`)));
    svg.append(s('g', { class: 'map-north', transform: `translate(${W - PAD - 10},${PAD + 30})` },
      s('path', { d: 'M0,-28L12,10L0,2L-12,10Z' }),
      s('text', { x: 0, y: -34, 'text-anchor': 'middle' }, '北 N')));
    mount(plot, svg);
    const count = (/** @type {string} */ k) => shown.filter((p) => p.state === k).length;
    mount(legend, MAP_STATES.map(([k, label, colour]) => h('span.legend-item', { dataset: { state: k } },
      h(`span.legend-dot.state-${k}`, { dataset: { colour } }), `${t(label)} `, h('strong', null, String(count(k))))),
    h('span.legend-item.muted', null, `${t('共')} ${shown.length} ${t('个服务点')}`),
    outer.length ? null : h('span.legend-item.muted', null, t('未配置区界底图（BANGBAN_MAP_OUTLINE）')));
  }

  /** @param {string} state */
  function stateLabel(state) { return MAP_STATES.find(([k]) => k === state)?.[1] || state; }

  /** @param {any} p @param {boolean} [pin] */
  function show(p, pin = false) {
    if (info.dataset.pinned && !pin) return;
    if (pin) info.dataset.pinned = p.id;
    mount(info, h('div.map-point-info', { dataset: { code: p.code } },
      h('h2', null, p.name),
      h('p', null, h(`span.tag.map-state.state-${p.state}`, null, t(stateLabel(p.state)))),
      h('dl.kv', null,
        h('dt', null, t('编码')), h('dd.mono', null, p.code),
        h('dt', null, t('街道')), h('dd', null, `${p.street} · ${p.committee}`),
        h('dt', null, t('地址')), h('dd', null, p.address),
        h('dt', null, t('开放时间')), h('dd', null, p.opening_hours, p.open_now === false ? h('div.small-text.bad-text', null, t('当前不在开放时间')) : null)),
      p.alarms.length ? h('div', null, h('h3', null, t('设备告警')), h('ul', null, p.alarms.map((/** @type {any} */ a) =>
        h('li', null, `${a.terminal_name}：${a.kind === 'offline' ? t('离线告警') : a.kind === 'printer_fault' ? t('打印机故障') : a.kind === 'disk_space' ? t('存储将满') : a.kind}`)))) : null,
      p.overdue ? h('p.bad-text', null, `${t('巡检超期')}：${t('应巡检日')} ${p.overdue.due_on || ''} · ${t('巡检负责人')} ${p.overdue.inspector_name}`) : null,
      h('div.actions', null,
        h('button.btn.small.secondary', { type: 'button', onclick: () => ctx.navigate('/supervisor') }, t('终端健康')),
        h('button.btn.small.secondary', { type: 'button', onclick: () => ctx.navigate('/inspections') }, t('巡检')),
        isAdmin ? h('button.btn.small.secondary', { type: 'button', onclick: () => ctx.navigate('/admin/points') }, t('服务点管理')) : null,
        pin ? h('button.btn.small.ghost', { type: 'button', onclick: () => { delete info.dataset.pinned; } }, t('取消固定')) : null)));
  }

  streetSel.addEventListener('change', () => { delete info.dataset.pinned; draw(); });
  load().catch((e) => mount(plot, h('p.form-error', null, `${t('加载失败')}：${e.message}`)));
  const refresh = window.setInterval(() => load().catch(() => {}), 60_000);
  return () => clearInterval(refresh);
}

// Entry point: login, the shell (header, navigation by role), routing, the shared socket.
import { Api } from './api.js';
import { h, mount, toast } from './dom.js';
import { ROLE, lang, setLang, t } from './i18n.js';
import { Socket } from './ws.js';
import { operatorView } from './views/operator.js';
import { supervisorView } from './views/supervisor.js';
import { adminView } from './views/admin.js';
import { casesView } from './views/cases.js';
import { appointmentsView } from './views/appointments.js';
import { inspectionsView } from './views/inspections.js';
import { mapView } from './views/map.js';
import { staffView } from './views/staff.js';

/** @typedef {{ api: Api, socket: Socket, board: any, opStatus: string | null, navigate: (p: string) => void, rerender: () => void }} Ctx */

const api = new Api();
/** @type {Socket | null} */
let socket = null;
/** @type {(() => void) | null} */
let cleanup = null;
const root = /** @type {HTMLElement} */ (document.getElementById('app'));
/** Latest `board` message, shared by the views. */
let board = null;
/** Latest operator state (`operator_status`). */
let opStatus = null;

setLang(lang());

const NAV = {
  operator: [['/operator', '受理台'], ['/cases/orders', '工单'], ['/cases/callbacks', '回访']],
  supervisor: [['/supervisor', '监控'], ['/cases/orders', '工单'], ['/cases/overdue', '超期督办'], ['/cases/lists', '两张清单'], ['/inspections', '巡检'], ['/appointments', '预约'], ['/map', '地图'], ['/cases/home-visits', '上门办审核'], ['/cases/callbacks', '回访'], ['/cases/reports', '报表']],
  admin: [['/supervisor', '监控'], ['/cases/orders', '工单'], ['/cases/overdue', '超期督办'], ['/cases/lists', '两张清单'], ['/inspections', '巡检'], ['/appointments', '预约'], ['/map', '地图'], ['/cases/home-visits', '上门办审核'], ['/cases/reports', '报表'], ['/admin/points', '服务点'], ['/admin/terminals', '终端'], ['/admin/accounts', '账户'], ['/admin/centers', '受理中心'], ['/admin/catalog', '条线与事项'], ['/admin/audit', '审计日志']],
  staff: [['/staff', '本服务点'], ['/cases/orders', '工单'], ['/cases/home-visits', '上门办']],
};

/** @param {string} role */
const landing = (role) => ({ operator: '/operator', supervisor: '/supervisor', admin: '/admin/points', staff: '/staff' })[role] || '/login';

/** @param {string} path */
function navigate(path) {
  if (location.pathname !== path) history.pushState(null, '', path);
  render();
}
window.addEventListener('popstate', () => render());

api.addEventListener('lost', () => {
  socket?.close();
  socket = null;
  toast(t('登录已过期，请重新登录'), 'error');
  navigate('/login');
});

// A refreshed access token goes to the open socket too (`renew`): no reconnect every 10 minutes.
api.addEventListener('token', () => socket?.renew(api.access));

function startSocket() {
  socket = new Socket(() => api.token());
  socket.addEventListener('message', (e) => {
    const msg = /** @type {CustomEvent} */ (e).detail;
    if (msg.type === 'board') board = msg;
    if (msg.type === 'operator_status') opStatus = msg.state;
  });
  socket.addEventListener('state', () => renderConn());
  socket.addEventListener('ended', (e) => {
    const reason = /** @type {CustomEvent} */ (e).detail;
    toast(reason === 'replaced' ? t('该账号已在其他地方登录，本页已断开') : t('账号已停用'), 'error');
  });
  socket.connect();
}

function renderConn() {
  const el = document.getElementById('conn');
  if (!el || !socket) return;
  const s = socket.state;
  const label = s === 'open' ? '已连接' : s === 'connecting' ? '正在连接…' : s === 'reconnecting' ? '连接中断，正在重连…' : '已断开';
  el.className = `conn conn-${s}`;
  el.textContent = t(label);
}

function loginView() {
  const err = h('p.form-error', { role: 'alert' });
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const btn = h('button.btn.primary.block', { type: 'submit' }, t('登录'));
  const form = h('form.login-card', {
    onsubmit: async (/** @type {Event} */ e) => {
      e.preventDefault();
      btn.setAttribute('disabled', '');
      btn.textContent = t('正在登录…');
      err.textContent = '';
      try {
        const u = await api.login(/** @type {HTMLInputElement} */ (user).value.trim(), /** @type {HTMLInputElement} */ (pass).value);
        startSocket();
        navigate(landing(u.role));
      } catch (ex) {
        err.textContent = /** @type {any} */ (ex).status === 401 ? t('用户名或密码错误') : /** @type {Error} */ (ex).message;
        btn.removeAttribute('disabled');
        btn.textContent = t('登录');
      }
    },
  },
    h('div.login-brand', null, h('div.logo', null, '帮'), h('div', null, h('h1', null, t('帮办 · 坐席端')), h('p', null, t('静邻帮办 · 远程虚拟窗口')))),
    h('label.field', null, h('span.field-label', null, t('用户名')), user),
    h('label.field', null, h('span.field-label', null, t('密码')), pass),
    err, btn,
    h('div.login-foot', null, h('span', null, t('社区事务受理服务中心')), langToggle()),
  );
  return h('main.login-page', null, form);
}

function langToggle() {
  return h('button.btn.ghost.small.lang', {
    type: 'button',
    title: 'Language / 语言',
    onclick: () => {
      if (opStatus === 'in_call' || opStatus === 'ringing' || opStatus === 'wrap_up') {
        toast(t('通话和整理期间不能切换语言'), 'error');
        return;
      }
      setLang(lang() === 'zh' ? 'en' : 'zh');
      render();
    },
  }, lang() === 'zh' ? 'English' : '中文');
}

function header() {
  const u = /** @type {any} */ (api.user);
  const links = (NAV[/** @type {keyof typeof NAV} */ (u.role)] || []).map(([path, label]) =>
    h('a.nav-link', {
      href: path,
      class: location.pathname.startsWith(path) ? 'active' : undefined,
      'aria-current': location.pathname.startsWith(path) ? 'page' : undefined,
      onclick: (/** @type {MouseEvent} */ e) => { e.preventDefault(); navigate(path); },
    }, t(label)));
  return h('header.topbar', null,
    h('div.brand', null, h('div.logo.small', null, '帮'), h('span', null, t('帮办 · 坐席端'))),
    h('nav.nav', null, links),
    h('div.top-right', null,
      h('span#conn.conn'),
      h('span.user', null, h('strong', null, u.display_name), ' · ', t(ROLE[/** @type {keyof typeof ROLE} */ (u.role)] || u.role)),
      langToggle(),
      h('button.btn.ghost.small#logout', {
        type: 'button',
        onclick: async () => {
          cleanup?.(); cleanup = null;
          socket?.close(); socket = null;
          board = null; opStatus = null;
          await api.logout();
          navigate('/login');
        },
      }, t('退出'))));
}

function render() {
  cleanup?.();
  cleanup = null;
  const u = api.user;
  if (!u) {
    if (location.pathname !== '/login') history.replaceState(null, '', '/login');
    mount(root, loginView());
    document.title = t('帮办 · 坐席端');
    return;
  }
  let path = location.pathname;
  const allowed = (NAV[/** @type {keyof typeof NAV} */ (u.role)] || []).some(([p]) => path.startsWith(p));
  if (!allowed) {
    path = landing(u.role);
    history.replaceState(null, '', path);
  }
  const main = h('main.view');
  mount(root, header(), main);
  renderConn();
  /** @type {Ctx} */
  const ctx = { api, socket: /** @type {Socket} */ (socket), board, opStatus, navigate, rerender: render };
  Object.defineProperty(ctx, 'board', { get: () => board });
  if (path.startsWith('/operator')) cleanup = operatorView(ctx, main);
  else if (path.startsWith('/staff')) cleanup = staffView(ctx, main);
  else if (path.startsWith('/supervisor')) cleanup = supervisorView(ctx, main);
  else if (path.startsWith('/inspections')) cleanup = inspectionsView(ctx, main);
  else if (path.startsWith('/appointments')) cleanup = appointmentsView(ctx, main);
  else if (path.startsWith('/map')) cleanup = mapView(ctx, main);
  else if (path.startsWith('/cases/')) cleanup = casesView(ctx, main, /** @type {any} */ (path.split('/')[2]));
  else if (path.startsWith('/admin')) cleanup = adminView(ctx, main, path.split('/')[2] || 'points');
  document.title = `${t(ROLE[/** @type {keyof typeof ROLE} */ (u.role)])} · ${t('帮办 · 坐席端')}`;
}

// For the tests and for support: a read-only peek at the live state.
/** @type {any} */ (window).bangban = { dropSocket: () => socket?.drop(), socketState: () => socket?.state, board: () => board };

// A reload keeps this tab's session (api.js); otherwise the login page.
api.resume().then((u) => {
  if (u) startSocket();
  render();
});

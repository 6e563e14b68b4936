// 监控: service figures, every line's queue, operators' states, rectifications, terminals.
import { dialog, field, h, mount, toast } from '../dom.js';
import * as fmt from '../fmt.js';
import { DEVICE_STATE, OP_STATE, PRINTER_REASON, PRINTER_STATE, RATING, TERMINAL_STATUS, t } from '../i18n.js';
import { PeerLink } from '../rtc.js';
import { centerFilter, pagedList, streetFilter } from '../listing.js';

/** @param {import('../main.js').Ctx} ctx @param {HTMLElement} main */
export function supervisorView(ctx, main) {
  const { api, socket } = ctx;
  const tiles = h('section.tiles#tiles');
  const ratings = h('section.card#ratings');
  const daily = h('section.card#daily');
  const lines = h('section.card#lines');
  const ops = h('section.card#operators');
  const rects = h('section.card#rectifications');
  const terms = h('section.card#terminals');
  const recs = h('section.card#recordings');
  const monitor = h('section.card.monitor-card#monitor');
  monitor.hidden = true;
  let boardAt = Date.now();
  // Only supervisors join calls (docs/protocol.md §5.8); admins see the board without the buttons.
  const canSupervise = api.user?.role === 'supervisor';
  /**
   * The call this supervisor is in: its peers (the terminal and the operator) and the links to them.
   * @type {{ sessionId: string, ticket: any, mode: string, iceServers: RTCIceServer[], participants: any[],
   *   links: Map<string, PeerLink>, mic: MediaStream | null, videos: Map<string, HTMLVideoElement> } | null}
   */
  let sup = null;
  // Acceptance centers (#16 item 6): a supervisor sees their own center by default (its
  // operators on the board, its streets' terminals), 全区 shows the whole district.
  const myCenter = api.user?.center_id ?? '';
  let scope = myCenter;
  /** Operators of the chosen center; null = the whole district. @type {Set<string> | null} */
  let members = null;
  async function loadMembers() {
    if (!scope) { members = null; renderBoard(); return; }
    const users = await api.get(`/api/v1/users?center=${encodeURIComponent(scope)}&role=operator`).catch(() => []);
    members = new Set(users.map((/** @type {any} */ u) => u.id));
    renderBoard();
  }
  const scopeSelect = h('select#board-center', {
    'aria-label': t('受理中心'),
    onchange: (/** @type {Event} */ e) => { scope = /** @type {HTMLSelectElement} */ (e.target).value; loadMembers(); },
  });
  centerFilter(api, myCenter).then((f) => {
    mount(scopeSelect, f.options.map(([v, label]) => h('option', { value: v, selected: v === scope }, label)));
    loadMembers();
  });

  mount(main, h('div.sup-page', null,
    h('div.page-head', null, h('h1', null, t('今日服务概况')), h('span.muted', null, fmt.dateWeekday(Date.now())),
      h('button.btn.small.ghost', { type: 'button', onclick: () => load() }, t('刷新'))),
    tiles,
    h('div.sup-grid', null, monitor, lines, ops, ratings, daily, rects, terms, recs)));

  function renderBoard() {
    const b = ctx.board;
    const elapsed = (Date.now() - boardAt) / 1000;
    mount(lines, h('h2.card-title', null, t('各条线排队')),
      b ? h('table.table#board-lines', null,
        h('thead', null, h('tr', null, h('th', null, t('条线')), h('th.num', null, t('等待')), h('th.num', null, t('优先')), h('th.num', null, t('最长等待')))),
        h('tbody', null, b.lines.map((/** @type {any} */ l) => h('tr', { class: l.longest_wait_secs + elapsed > 60 && l.waiting ? 'warn' : undefined },
          h('td', null, l.line_name), h('td.num', null, String(l.waiting)), h('td.num', null, l.priority_waiting ? h('span.prio', null, String(l.priority_waiting)) : '0'),
          h('td.num', null, l.waiting ? fmt.duration(l.longest_wait_secs + elapsed) : '—')))))
        : h('p.muted', null, '…'));
    const order = ['in_call', 'ringing', 'wrap_up', 'available', 'away', 'offline'];
    const list = [...(b?.operators || [])].filter((o) => !members || members.has(o.operator_id))
      .sort((x, y) => order.indexOf(x.state) - order.indexOf(y.state));
    mount(ops, h('h2.card-title', null, t('受理员状态'), h('label.list-filter.board-scope', null, scopeSelect)),
      list.length ? h('ul.op-list#board-operators', null, list.map((o) => h('li', null, h('span', null, o.name),
        h('span', null,
          h(`span.state-badge.st-${o.state}`, null, t(OP_STATE[/** @type {keyof typeof OP_STATE} */ (o.state)] || o.state)),
          canSupervise && o.session_id && sup?.sessionId !== o.session_id
            ? h('button.btn.small.secondary.monitor-btn', { type: 'button', dataset: { session: o.session_id }, onclick: () => supervise(o.session_id, 'monitor') }, t('监听'))
            : null)))) : h('p.muted', null, '—'));
  }

  // ---- monitoring a call ------------------------------------------------------------------

  /** @param {string} sessionId @param {string} mode */
  function supervise(sessionId, mode) {
    if (sup && sup.sessionId !== sessionId) leave();
    socket.send({ type: 'supervise', session_id: sessionId, mode });
  }

  function leave() {
    if (!sup) return;
    socket.send({ type: 'leave_session', session_id: sup.sessionId });
    closeMonitor();
  }

  function closeMonitor() {
    if (!sup) return;
    for (const l of sup.links.values()) l.close();
    for (const tr of sup.mic?.getTracks() || []) tr.stop();
    sup = null;
    monitor.hidden = true;
    mount(monitor);
    renderBoard();
  }

  /** Who hears the supervisor in each mode (docs/protocol.md §5.8). @param {string} mode @param {string} role */
  const hears = (mode, role) => role === 'operator' ? mode === 'whisper' || mode === 'barge' : mode === 'barge';

  /** Opens (once) a link to each other participant and sets the microphone by the mode. */
  async function applyMode() {
    if (!sup) return;
    const cur = sup;
    const peers = cur.participants.filter((p) => p.role === 'terminal' || p.role === 'operator');
    if (peers.some((p) => hears(cur.mode, p.role)) && !cur.mic) {
      try {
        cur.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
      } catch {
        toast(t('未获得麦克风权限'), 'error');
      }
    }
    if (sup !== cur) return;
    for (const p of peers) {
      let link = cur.links.get(p.participant_id);
      if (!link) {
        const peer = p.participant_id;
        link = new PeerLink({
          peer,
          iceServers: cur.iceServers,
          offerer: true,
          send: (signal) => socket.send({ type: 'peer_signal', session_id: cur.sessionId, peer, signal }),
        });
        const l = link;
        l.addEventListener('remote', () => {
          const v = cur.videos.get(p.role);
          if (v && v.srcObject !== l.remote) { v.srcObject = l.remote; v.play().catch(() => {}); }
        });
        cur.links.set(peer, link);
      }
      await link.setSpeaking(hears(cur.mode, p.role) ? cur.mic?.getAudioTracks()[0] || null : null);
    }
    renderMonitor();
  }

  function renderMonitor() {
    if (!sup) return;
    const cur = sup;
    monitor.hidden = false;
    const video = (/** @type {string} */ role, /** @type {string} */ label) => {
      let v = cur.videos.get(role);
      if (!v) {
        v = /** @type {HTMLVideoElement} */ (h(`video#monitor-${role}`, { autoplay: true, playsInline: true }));
        cur.videos.set(role, v);
      }
      return h('figure', null, v, h('figcaption', null, label));
    };
    const op = cur.participants.find((p) => p.role === 'operator');
    const tk = cur.ticket;
    const modes = [['monitor', '监听', '您能看到、听到双方，双方听不到您'], ['whisper', '耳语', '只有受理员能听到您'], ['barge', '插话', '居民和受理员都能听到您']];
    mount(monitor,
      h('h2.card-title', null, `${t('正在监听')} · ${tk.number} · ${tk.item_name}`),
      h('div.monitor-videos', null,
        video('terminal', `${t('居民')} · ${tk.point_name}`),
        video('operator', `${t('受理员')} · ${op?.name || ''}`)),
      h('div.monitor-modes', null,
        modes.map(([m, zh]) => h(`button.btn.secondary.mode-${m}`, { type: 'button', 'aria-pressed': String(cur.mode === m), onclick: () => supervise(cur.sessionId, m) }, t(zh))),
        h('button.btn.ghost#monitor-leave', { type: 'button', onclick: leave }, t('退出监听')),
        h('button.btn.danger#monitor-end', { type: 'button', onclick: () => { if (confirm(t('确定结束该通话？'))) socket.send({ type: 'end_call', session_id: cur.sessionId }); } }, t('结束通话'))),
      h('p.muted.monitor-hint', null, t(modes.find(([m]) => m === cur.mode)?.[2] || '')));
  }

  // ---- recorded calls (quality checks; every playback audited) -------------------------------

  async function loadRecordings() {
    try {
      const list = await api.get('/api/v1/recordings?limit=20');
      mount(recs, h('h2.card-title', null, t('通话录像'), h('span.count-badge', null, String(list.length))),
        h('p.muted', null, t('居民同意后录制，仅值班主管可以查看，每次播放均记入审计日志')),
        list.length ? h('ul.rect-list#recording-list', null, list.map((/** @type {any} */ r) => h('li', null,
          h('div', null, h('strong', null, `${r.ticket_number} · ${r.item_name}`),
            h('div.muted', null, `${r.point_name} · ${r.operator_name} · ${fmt.dateTime(r.started_at)}`),
            h('div.muted.recording-meta', null, r.purged ? t('已按保存期限删除')
              : [r.duration_ms ? `${t('时长')} ${fmt.duration(r.duration_ms / 1000)}` : null,
                fmt.bytes((r.parts?.length ? r.parts : [r]).reduce((/** @type {number} */ n, /** @type {any} */ p) => n + p.size, 0))]
                .filter(Boolean).join(' · '))),
          r.purged ? null : h('button.btn.small.primary.play-recording', { type: 'button', dataset: { material: r.material_id }, onclick: () => play(r) }, t('播放'))))) : h('p.muted', null, t('暂无录像')),
        h('div#recording-player'));
    } catch (e) {
      mount(recs, h('h2.card-title', null, t('通话录像')), h('p.form-error', null, /** @type {Error} */ (e).message));
    }
  }

  /**
   * Plays a recording: part 1 (the terminal's camera and microphone) and part 2 (the operator's)
   * side by side under one control bar — play, pause and seek act on both, and part 2 follows
   * part 1 when it drifts by more than 0.25 s. A recording from before parts existed is one file
   * (its first camera plays). Each part's fetch is audited by the server (`recording.play`).
   * @param {any} r one RecordingView
   */
  async function play(r) {
    const box = recs.querySelector('#recording-player');
    if (!box) return;
    /** @type {any[]} */
    const parts = (r.parts?.length ? r.parts : [{ part: 1, material_id: r.material_id }]).filter((/** @type {any} */ p) => !p.purged);
    try {
      const urls = await Promise.all(parts.map(async (/** @type {any} */ p) => {
        const res = await api.request('GET', `/api/v1/materials/${p.material_id}/content`, undefined, { raw: true });
        return URL.createObjectURL(await res.blob());
      }));
      const label = (/** @type {number} */ n) => (n === 1 ? t('居民（服务点一体机）') : t('受理员'));
      const videos = parts.map((/** @type {any} */ p, /** @type {number} */ i) => {
        const v = /** @type {HTMLVideoElement} */ (h(`video${i === 0 ? '#recording-video' : '#recording-video-2'}.recording-video`,
          { preload: 'auto', playsInline: true, src: urls[i], dataset: { part: String(p.part) } }));
        v.addEventListener('emptied', () => URL.revokeObjectURL(urls[i]), { once: true });
        return h('figure.recording-side', null, v, h('figcaption', null, label(p.part)));
      });
      const vs = /** @type {HTMLVideoElement[]} */ (videos.map((/** @type {HTMLElement} */ f) => f.querySelector('video')));
      const [lead, ...rest] = vs;
      const known = r.duration_ms ? r.duration_ms / 1000 : NaN;
      const total = () => (Number.isFinite(lead.duration) && lead.duration > 0 ? lead.duration : known);
      const btn = /** @type {HTMLButtonElement} */ (h('button.btn.primary#recording-toggle', { type: 'button' }, t('播放')));
      const seek = /** @type {HTMLInputElement} */ (h('input#recording-seek', { type: 'range', min: '0', max: '1000', step: '1', value: '0', 'aria-label': t('进度') }));
      const clock = h('span#recording-clock.muted', null, `00:00 / ${Number.isFinite(known) ? fmt.clock(known) : '--:--'}`);
      const show = () => {
        const d = total();
        clock.textContent = `${fmt.clock(lead.currentTime)} / ${Number.isFinite(d) ? fmt.clock(d) : '--:--'}`;
        if (Number.isFinite(d) && d > 0 && document.activeElement !== seek) seek.value = String(Math.round((lead.currentTime / d) * 1000));
        btn.textContent = lead.paused ? t('播放') : t('暂停');
      };
      const follow = () => {
        for (const v of rest) {
          if (Math.abs(v.currentTime - lead.currentTime) > 0.25 && lead.currentTime <= (Number.isFinite(v.duration) ? v.duration : Infinity)) v.currentTime = lead.currentTime;
        }
      };
      btn.addEventListener('click', async () => {
        if (lead.paused) {
          if (lead.ended) for (const v of vs) v.currentTime = 0;
          follow();
          const results = await Promise.allSettled(vs.map((v) => v.play()));
          const failed = results.find((x) => x.status === 'rejected');
          if (failed) toast(String(/** @type {PromiseRejectedResult} */ (failed).reason?.message || failed), 'error');
        } else {
          for (const v of vs) v.pause();
        }
        show();
      });
      seek.addEventListener('input', () => {
        const d = total();
        if (!Number.isFinite(d)) return;
        for (const v of vs) v.currentTime = (Number(seek.value) / 1000) * d;
        show();
      });
      lead.addEventListener('timeupdate', () => { follow(); show(); });
      lead.addEventListener('pause', () => { for (const v of rest) v.pause(); show(); });
      lead.addEventListener('play', () => { for (const v of rest) if (v.paused && !v.ended) v.play().catch(() => {}); show(); });
      lead.addEventListener('loadedmetadata', show);
      mount(box, h('p', null, `${t('正在播放')} ${r.ticket_number} · ${r.item_name}`),
        h(`div.recording-pair${vs.length > 1 ? '.two' : ''}`, null, videos),
        h('div.recording-bar', null, btn, seek, clock));
    } catch (e) {
      toast(/** @type {Error} */ (e).message, 'error');
    }
  }

  /** Support hook and tests: what the supervisor receives from each side. */
  const hook = /** @type {any} */ (window).bangban;
  if (hook) hook.monitorInbound = async () => {
    /** @type {Record<string, any>} */
    const out = {};
    for (const p of sup?.participants || []) {
      const l = sup?.links.get(p.participant_id);
      if (l) out[p.role] = await l.inbound();
    }
    return out;
  };

  /** @param {string} label @param {string} value @param {string} [sub] @param {'ok'|'bad'|''} [tone] */
  const tile = (label, value, sub, tone = '') => h(`div.tile${tone ? '.' + tone : ''}`, null, h('div.tile-label', null, label), h('div.tile-value', null, value), sub ? h('div.tile-sub', null, sub) : null);

  async function load() {
    try {
      const [s, days] = await Promise.all([api.get('/api/v1/stats/summary'), api.get('/api/v1/stats/daily?days=7')]);
      const fr = s.first_response_within_60s_pct, rr = s.resolution_rate_pct;
      mount(tiles,
        tile(t('60秒内首次响应'), fmt.pct(fr), `${t('目标')} 100%`, fr == null ? '' : fr >= 90 ? 'ok' : 'bad'),
        tile(t('平均等待'), fmt.duration(s.avg_wait_secs)),
        tile(t('90%等待不超过'), fmt.duration(s.p90_wait_secs)),
        tile(t('解决率'), fmt.pct(rr), `${t('目标')} ≥ 90%`, rr == null ? '' : rr >= 90 ? 'ok' : 'bad'),
        tile(t('取号'), String(s.tickets), `${t('已服务')} ${s.served_sessions}`),
        tile(t('差评'), String(s.negative_ratings), `${t('待整改差评')} ${s.open_rectifications}`, s.overdue_rectifications ? 'bad' : ''));
      const total = Object.values(s.ratings).reduce((a, b) => a + Number(b), 0);
      mount(ratings, h('h2.card-title', null, t('评价分布'), h('span.count-badge', null, String(total))),
        h('ul.bars', null, Object.entries(RATING).map(([k, zh]) => {
          const n = s.ratings[k] || 0;
          const bar = h(`span.bar-fill.rt-${k}`);
          bar.style.width = total ? `${(n / total) * 100}%` : '0';
          return h('li', null, h('span.bar-label', null, t(zh)), h('span.bar', null, bar), h('span.bar-num', null, String(n)));
        })));
      mount(daily, h('h2.card-title', null, t('近7日')),
        h('table.table.compact', null,
          h('thead', null, h('tr', null, [t('日期'), t('取号'), t('已服务'), t('60秒内首次响应'), t('平均等待'), t('解决率')].map((c) => h('th', null, c)))),
          h('tbody', null, days.slice().reverse().map((/** @type {any} */ d) => h('tr', null,
            h('td', null, d.day.slice(5).replace('-', '/')), h('td.num', null, String(d.tickets)), h('td.num', null, String(d.served_sessions)),
            h('td.num', null, fmt.pct(d.first_response_within_60s_pct)), h('td.num', null, fmt.duration(d.avg_wait_secs)), h('td.num', null, fmt.pct(d.resolution_rate_pct)))))));
    } catch (e) {
      mount(tiles, h('p.form-error', null, `${t('加载失败')}：${/** @type {Error} */ (e).message}`));
    }
    loadRects();
    loadTerminals();
    loadRecordings();
  }

  async function loadRects() {
    try {
      const list = await api.get('/api/v1/rectifications?status=open');
      mount(rects, h('h2.card-title', null, t('待整改差评'), h('span.count-badge', null, String(list.length))),
        list.length ? h('ul.rect-list', null, list.map((/** @type {any} */ r) => h('li', { class: r.overdue ? 'overdue' : undefined },
          h('div', null, h('strong', null, `${r.ticket_number} · ${r.level_zh}`), h('div.muted', null, `${r.item_name} · ${r.point_name} · ${r.operator_name}`),
            r.comment ? h('div.quote', null, `“${r.comment}”`) : null,
            h('div.muted', null, `${t('到期')} ${fmt.dateTime(r.due_at)}`, r.overdue ? h('span.tag.bad', null, t('已超期')) : null)),
          h('button.btn.small.primary', { type: 'button', onclick: () => callback(r) }, t('回访'))))) : h('p.muted', null, t('暂无待整改事项')));
    } catch (e) {
      mount(rects, h('h2.card-title', null, t('待整改差评')), h('p.form-error', null, /** @type {Error} */ (e).message));
    }
  }

  /** @param {any} r */
  async function callback(r) {
    const done = await dialog(`${t('回访')} · ${r.ticket_number}`, () => [
      field(t('回访结果'), h('textarea', { name: 'callback_result', required: true, maxlength: 500, rows: 3 })),
      field(t('整改措施'), h('textarea', { name: 'rectification', maxlength: 1000, rows: 3 })),
    ], {
      submit: t('保存'), cancel: t('取消'),
      onSubmit: (d) => api.post(`/api/v1/rectifications/${r.id}/callback`, {
        callback_result: String(d.get('callback_result')),
        rectification: String(d.get('rectification') || '') || undefined,
      }),
    });
    if (done) { toast(t('已保存'), 'ok'); load(); }
  }

  // 终端健康 at district scale: what needs action first (open alarms, offline, printer fault),
  // searched, filtered and paged on the server (listing.js).
  /** @type {ReturnType<typeof pagedList> | null} */
  let healthList = null;
  const alarmBadge = h('span.count-badge');
  async function loadTerminals() {
    try {
      // Open alarms move the card to the top of the page.
      const res = await api.request('GET', '/api/v1/terminals/health?alarm=yes&limit=1', undefined, { raw: true });
      const alarmed = Number(res.headers.get('x-total-count') ?? 0);
      terms.classList.toggle('has-alarms', alarmed > 0);
      alarmBadge.classList.toggle('bad', alarmed > 0);
      alarmBadge.textContent = `${t('告警终端')} ${alarmed}`;
      if (healthList) { healthList.reload(); return; }
      healthList = pagedList({
        api, path: '/api/v1/terminals/health', id: 'terminal-health', compact: true, sort: 'action', pageSize: 15,
        searchPlaceholder: t('搜索终端或服务点名称'),
        filters: [await centerFilter(api, myCenter), await streetFilter(api),
          { param: 'state', label: t('状态'), options: [['', t('全部')], ['offline', t('离线')], ['online', t('在线')], ['printer_fault', t('打印机故障')], ['pending', t('待激活')]] },
          { param: 'alarm', label: t('告警'), options: [['', t('全部')], ['yes', t('有告警')], ['no', t('无告警')]] }],
        columns: [{ label: t('名称'), sort: 'name' }, { label: t('状态'), sort: 'action' }, { label: t('打印机') }, { label: t('扫描仪') }, { label: t('磁盘') },
          { label: t('版本') }, { label: t('最近在线'), sort: 'last_seen' }],
        row: terminalRow,
      });
      mount(terms, h('h2.card-title', null, t('终端健康'), alarmBadge), healthList.el);
    } catch (e) {
      healthList = null;
      mount(terms, h('h2.card-title', null, t('终端健康')), h('p.form-error', null, /** @type {Error} */ (e).message));
    }
  }

  /** @param {Event} e */
  const onMessage = (e) => {
    if (/** @type {CustomEvent} */ (e).detail.type === 'board') { boardAt = Date.now(); renderBoard(); }
    // An alarm opened or cleared: reload the terminals' health at once.
    if (/** @type {CustomEvent} */ (e).detail.type === 'terminal_alarm') loadTerminals();
    const msg = /** @type {CustomEvent} */ (e).detail;
    switch (msg.type) {
      case 'supervising':
        if (sup && sup.sessionId === msg.session_id) { sup.mode = msg.mode; sup.ticket = msg.ticket; }
        else {
          closeMonitor();
          sup = { sessionId: msg.session_id, ticket: msg.ticket, mode: msg.mode, iceServers: msg.ice_servers || [], participants: [], links: new Map(), mic: null, videos: new Map() };
        }
        renderMonitor();
        renderBoard();
        break;
      case 'participants':
        if (!sup || sup.sessionId !== msg.session_id) break;
        if (!msg.participants.some((/** @type {any} */ p) => p.participant_id === api.user?.id)) { closeMonitor(); break; }
        sup.participants = msg.participants;
        applyMode();
        break;
      case 'peer_signal':
        if (sup && sup.sessionId === msg.session_id) sup.links.get(msg.peer)?.handle(msg.signal);
        break;
      case 'peer_reconnected':
        if (sup && sup.sessionId === msg.session_id) for (const l of sup.links.values()) l.restartIce();
        break;
      case 'session_ended':
        if (sup && sup.sessionId === msg.session_id) {
          toast(msg.reason === 'supervisor_ended' ? t('已结束该通话') : t('通话已结束'), 'ok');
          closeMonitor();
        }
        break;
      case 'error':
        if (['supervise', 'leave_session', 'end_call'].includes(msg.request)) toast(msg.message || msg.code, 'error');
        break;
    }
  };
  socket.addEventListener('message', onMessage);
  const tick = window.setInterval(renderBoard, 1000);
  const refresh = window.setInterval(load, 30_000);
  renderBoard();
  load();
  return () => { leave(); socket.removeEventListener('message', onMessage); clearInterval(tick); clearInterval(refresh); };
}

// The health board's row of one terminal, shared with the staff's page (staff.js).
/** @param {any} x one TerminalHealthView */
export function terminalRow(x) {
  const r = x.report;
  const offline = x.alarms.find((/** @type {any} */ a) => a.kind === 'offline');
  const printerFault = x.alarms.find((/** @type {any} */ a) => a.kind === 'printer_fault');
  const status = x.status !== 'active'
    ? h('span.tag.ts-pending', null, t(TERMINAL_STATUS[/** @type {keyof typeof TERMINAL_STATUS} */ (x.status)] || x.status))
    : offline
      ? h('div.alarm-text', null, h('span.tag.bad.alarm-tag', null, t('离线告警')),
        h('div.small-text', null, `${t('自')} ${fmt.dateTime(x.last_seen_at ?? offline.opened_at)} ${t('起')}`))
      : x.online ? h('span.tag.ok', null, t('在线')) : h('span.tag.bad', null, t('离线'));
  const printer = !r ? '—' : h('div', null,
    h(`span.tag${r.printer.state === 'idle' || r.printer.state === 'processing' ? '.ok' : r.printer.state === 'disabled' ? '' : '.bad'}`, null,
      t(PRINTER_STATE[/** @type {keyof typeof PRINTER_STATE} */ (r.printer.state)] || r.printer.state)),
    printerFault ? h('span.tag.bad.alarm-tag', null, t('打印机故障')) : null,
    r.printer.reasons.length ? h('div.small-text.printer-reasons', null, [...new Set(r.printer.reasons.map(reasonZh))].join('、')) : null);
  /** @param {any} d */
  const device = (d) => !r ? '—' : h('div', null, h(`span.tag${d.state === 'ok' ? '.ok' : d.state === 'fault' ? '.bad' : ''}`, null,
    t(DEVICE_STATE[/** @type {keyof typeof DEVICE_STATE} */ (d.state)] || d.state)), d.state === 'fault' && d.detail ? h('div.small-text.muted', null, d.detail) : null);
  const disk = r?.disk;
  const diskAlarm = x.alarms.find((/** @type {any} */ a) => a.kind === 'disk_space');
  const low = diskAlarm || (disk && disk.total_bytes && disk.free_bytes / disk.total_bytes < 0.1);
  return h('tr', { class: x.alarms.length ? 'alarm' : undefined, 'data-terminal': x.terminal_id },
    h('td', null, x.name, h('div.muted.small-text', null, x.point_name)),
    h('td', null, status),
    h('td', null, printer),
    h('td', null, device(r?.scanner)),
    h('td', { class: low ? 'bad-text' : undefined }, disk ? h('div', null,
      diskAlarm ? h('span.tag.bad.alarm-tag', null, t(disk.level === 'full' ? '存储已满' : '存储将满')) : null,
      h('div', null, `${t('剩余')} ${fmt.bytes(disk.free_bytes)} / ${fmt.bytes(disk.total_bytes)}`),
      disk.used_bytes != null && disk.max_bytes ? h('div.small-text.muted.disk-use', null, `${t('终端占用')} ${fmt.bytes(disk.used_bytes)} / ${fmt.bytes(disk.max_bytes)}`) : null)
      : r ? t('未上报') : '—'),
    h('td', null, r ? r.version : '—'),
    h('td', null, x.last_seen_at ? fmt.dateTime(x.last_seen_at) : t('从未在线')));
}

/** Chinese for an IPP printer-state-reason (`media-empty-error` → 缺纸); others as they are. @param {string} reason */
export function reasonZh(reason) {
  const base = reason.replace(/-(error|warning|report)$/, '');
  const zh = PRINTER_REASON[/** @type {keyof typeof PRINTER_REASON} */ (base)];
  return zh ? t(zh) : reason;
}

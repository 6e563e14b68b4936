// 受理台: the operator's whole working day — availability, queue board, ringing, the call,
// materials and printing, wrap-up, today's history.
import { tusUpload } from '../api.js';
import { dialog, field, h, mount, toast } from '../dom.js';
import * as fmt from '../fmt.js';
import { MATERIAL_STATUS, OP_STATE, OUTCOME, PRINT_STATE, PRIORITY, RATING, TRANSFER, t } from '../i18n.js';
import { Ringer } from '../ringer.js';
import { Call, PeerLink, setVideoCodec, videoCodec } from '../rtc.js';
import { FOLLOW_UP, offerOrder } from './cases.js';

/** @param {import('../main.js').Ctx} ctx @param {HTMLElement} main */
export function operatorView(ctx, main) {
  const { api, socket } = ctx;
  const ringer = new Ringer();
  const st = {
    // The last state the server sent: a view rendered again (language switch, a status that
    // came before this view listened) starts from it, not from "offline".
    opState: ctx.opStatus || 'offline',
    /** @type {any} */ ringing: null,
    ringUntil: 0,
    /** @type {any} */ session: null,
    /** @type {Call | null} */ call: null,
    callStart: 0,
    held: false,
    peerDown: false,
    /** @type {any} */ wrap: null,
    /** @type {any} */ item: null,
    /** @type {Map<string, any>} */ materials: new Map(),
    /** @type {Map<string, any>} */ prints: new Map(),
    /** @type {any[]} */ history: [],
    boardAt: Date.now(),
    /** @type {MediaDeviceInfo[]} */ cameras: [],
    /** Guests of the current call: supervisors and specialists (participants). @type {any[]} */ supervisors: [],
    /**
     * A call this operator joined as a specialist (三方通话).
     * @type {{ sessionId: string, ticket: any, iceServers: RTCIceServer[], participants: any[], links: Map<string, PeerLink>, local: MediaStream | null, videos: Map<string, HTMLVideoElement> } | null}
     */
    consult: null,
    /** Invitation shown, by session. @type {any} */ invited: null,
    /** This console asked to take the consulted call over. */ takingOver: false,
    /** Peer connections with them, by participant id. @type {Map<string, { link: PeerLink, audio: HTMLAudioElement }>} */ links: new Map(),
  };

  const side = h('aside.op-side');
  const stage = h('section.op-stage');
  const detail = h('aside.op-detail');
  const layout = h('div.op-layout', null, side, stage, detail);
  mount(main, layout);

  const statusCard = h('section.card.status-card');
  const boardCard = h('section.card.board-card');
  const historyCard = h('section.card.history-card');
  mount(side, statusCard, boardCard, historyCard);

  // Persistent call elements (created once, reused per call).
  const remoteVideo = /** @type {HTMLVideoElement} */ (h('video#remote-video', { autoplay: true, playsInline: true }));
  const localVideo = /** @type {HTMLVideoElement} */ (h('video#local-video', { autoplay: true, playsInline: true, muted: true }));
  localVideo.muted = true;

  // ---------------------------------------------------------------------------------------
  // Rendering

  function renderStatus() {
    const s = st.opState;
    const busy = ['ringing', 'in_call', 'wrap_up'].includes(s);
    const toggle = h('button.btn.block#availability', {
      type: 'button',
      class: s === 'available' ? 'secondary' : 'primary',
      disabled: busy || s === 'offline',
      onclick: () => {
        ringer.unlock();
        socket.send({ type: 'set_availability', available: s !== 'available' });
      },
    }, s === 'available' ? t('暂停接件') : t('开始接件'));
    mount(statusCard,
      h('h2.card-title', null, t('我的状态')),
      h('div.state-row', null, h(`span.state-badge.st-${s}#op-state`, { dataset: { state: s } }, t(OP_STATE[/** @type {keyof typeof OP_STATE} */ (s)] || s))),
      toggle);
  }

  function renderBoard() {
    const b = ctx.board;
    const lines = b?.lines || [];
    const elapsed = (Date.now() - st.boardAt) / 1000;
    const mine = new Set(/** @type {any} */ (api.user)?.skills || []);
    const rows = lines
      .filter((/** @type {any} */ l) => mine.size === 0 || mine.has(l.line_id))
      .map((/** @type {any} */ l) => h('li.board-line', { class: l.waiting ? 'has-waiting' : undefined },
        h('div.board-name', null, l.line_name),
        h('div.board-figures', null,
          h('span.count', { title: t('等待') }, String(l.waiting)),
          l.priority_waiting ? h('span.prio', { title: t('优先') }, `${t('优先')} ${l.priority_waiting}`) : null,
          l.waiting ? h('span.wait', { title: t('最长等待') }, fmt.duration(l.longest_wait_secs + elapsed)) : h('span.muted', null, t('暂无排队'))),
        l.next?.length ? h('ol.board-next', null, l.next.map((/** @type {any} */ n) => h('li', { 'data-ticket': n.ticket_id },
          h('span.num', null, n.number), priorityTag(n.priority),
          h('span.ellipsis', { title: n.item_name }, n.item_name),
          h('span.muted', null, fmt.duration(n.waited_secs + elapsed)),
          !st.session && !st.wrap && !st.ringing
            ? h('button.btn.small.ghost.pick', { type: 'button', title: t('跳过顺序，接听此号'), onclick: () => socket.send({ type: 'pick', ticket_id: n.ticket_id }) }, t('接听'))
            : null))) : null));
    mount(boardCard, h('h2.card-title', null, t('排队情况')), rows.length ? h('ul.board-list#queue-board', null, rows) : h('p.muted#queue-board', null, t('暂无排队')));
  }

  function renderHistory() {
    const rows = st.history.map((r) => h('li', null,
      h('div.hist-top', null, h('span.num-strong', null, r.ticket_number), h('span', null, fmt.time(r.started_at)),
        h('span.right', null, `${t('时长')} ${fmt.duration(r.handle_ms == null ? null : r.handle_ms / 1000)}`)),
      h('div.hist-item', { title: r.item_name }, r.item_name),
      h('div.hist-tags', null,
        r.outcome ? h(`span.tag.oc-${r.outcome}`, null, t(OUTCOME[/** @type {keyof typeof OUTCOME} */ (r.outcome)] || r.outcome)) : h('span.tag', null, r.end_reason === 'transferred' ? t('已转办') : '—'),
        r.rating ? h(`span.tag.rt-${r.rating}`, null, t(RATING[/** @type {keyof typeof RATING} */ (r.rating)] || r.rating)) : null)));
    mount(historyCard,
      h('h2.card-title', null, t('今日办件'), h('span.count-badge', null, String(st.history.length)),
        h('button.btn.small.ghost', { type: 'button', title: t('刷新'), onclick: loadHistory }, '↻')),
      st.history.length ? h('ul.hist-list#history', null, rows) : h('p.muted#history', null, t('今日暂无办件')));
  }

  /** @param {any} tk */
  function ticketFacts(tk) {
    return h('dl.facts', null,
      h('dt', null, t('号码')), h('dd.big', null, tk.number),
      h('dt', null, t('事项')), h('dd', null, tk.item_name),
      h('dt', null, t('条线')), h('dd', null, tk.line_name),
      h('dt', null, t('服务点')), h('dd', null, tk.point_name),
      h('dt', null, t('居民')), h('dd#resident-name', null, tk.resident_name_masked || '—'),
      h('dt', null, t('身份证号')), h('dd', null, h('span.mono#id-number', null, tk.id_number_masked || '—'),
        tk.id_number_masked || tk.resident_name_masked
          ? h('button.btn.small.ghost#reveal', { type: 'button', title: t('查看完整信息（将记入审计日志）'), onclick: () => reveal(tk) }, t('查看完整'))
          : null),
      h('dt', null, t('优先级')), h('dd', null, priorityTag(tk.priority)),
      tk.assisted_by ? h('dt', null, t('协助人员')) : null,
      tk.assisted_by ? h('dd#assisted-by', null, `${tk.assisted_by}（${t('居委会工作人员')}）`) : null);
  }

  /**
   * Shows the resident's full name and ID number for 30 seconds, after an explicit click; the
   * server records every reveal in the audit log.
   * @param {any} tk
   */
  async function reveal(tk) {
    if (!window.confirm(t('查看完整身份证号将记入审计日志，确定查看吗？'))) return;
    try {
      const r = await api.post(`/api/v1/tickets/${tk.ticket_id}/reveal`);
      const idEl = detail.querySelector('#id-number');
      const nameEl = detail.querySelector('#resident-name');
      if (idEl && r.id_number) { idEl.textContent = r.id_number; idEl.classList.add('revealed'); }
      if (nameEl && r.name) nameEl.textContent = r.name;
      window.setTimeout(() => {
        if (idEl) { idEl.textContent = tk.id_number_masked || '—'; idEl.classList.remove('revealed'); }
        if (nameEl) nameEl.textContent = tk.resident_name_masked || '—';
      }, 30_000);
    } catch (e) {
      toast(`${t('操作失败')}：${/** @type {Error} */ (e).message}`, 'error');
    }
  }

  /** @param {string} p */
  function priorityTag(p) {
    return h(`span.prio-tag.pr-${p || 'normal'}`, null, t(PRIORITY[/** @type {keyof typeof PRIORITY} */ (p)] || '普通'));
  }

  function renderStage() {
    layout.classList.toggle('has-call', !!(st.session || st.wrap));
    if (st.ringing) {
      const tk = st.ringing.ticket;
      const left = Math.max(0, Math.ceil((st.ringUntil - Date.now()) / 1000));
      mount(stage, h('div.ring-card#ringing', { role: 'alertdialog', 'aria-label': t('来电') },
        h('div.ring-pulse', null, h('span.ring-icon', null, '☎')),
        h('h2', null, t('来电'), ' · ', tk.number),
        h('p.ring-item', null, tk.item_name),
        h('p.ring-meta', null, `${tk.point_name} · ${tk.line_name} · ${t('已等待')} ${fmt.duration(tk.waited_secs)}`),
        tk.priority && tk.priority !== 'normal' ? h('p', null, priorityTag(tk.priority)) : null,
        st.ringing.transfer ? h('p.transfer-note', null, `${t('转来')}：${st.ringing.transfer.from_operator}${st.ringing.transfer.note ? ' — ' + st.ringing.transfer.note : ''}`) : null,
        h('div.ring-actions', null,
          h('button.btn.accept#accept', { type: 'button', onclick: accept }, t('接听')),
          h('button.btn.decline#decline', { type: 'button', onclick: () => socket.send({ type: 'decline', ticket_id: tk.ticket_id }) }, t('拒绝'))),
        h('p.muted.ring-timer', null, `${left} ${t('秒后转给其他受理员')}`)));
      return;
    }
    if (st.wrap) {
      mount(stage, wrapUpForm());
      return;
    }
    if (st.session && st.call) {
      if (!stage.querySelector('#call-stage')) mount(stage, callStage());
      updateCallStage();
      applySupervisors();
      return;
    }
    if (st.consult) {
      if (!stage.querySelector('#consult')) mount(stage, consultStage());
      return;
    }
    const away = st.opState !== 'available';
    mount(stage, h('div.idle#idle', null,
      h(`div.idle-icon${away ? '.away' : ''}`, { 'aria-hidden': 'true' }, away ? 'Ⅱ' : '☎'),
      h('h2', null, away ? t('暂离') : t('等待来电')),
      h('p.muted', null, away ? t('您已暂离，不会分配来电。') : t('点击“开始接件”后，新来电会响铃提示。')),
      h('p.muted.today', null, fmt.dateWeekday(Date.now())),
      codecSetting()));
  }

  /** This workstation's video codec (used from the next call on). */
  function codecSetting() {
    const select = /** @type {HTMLSelectElement} */ (h('select#video-codec', {
      onchange: () => {
        setVideoCodec(select.value === 'h264' ? 'h264' : 'vp8');
        toast(t('视频编码已设置，下次通话起生效'));
      },
    },
    h('option', { value: 'vp8', selected: videoCodec() === 'vp8' }, t('VP8（默认）')),
    h('option', { value: 'h264', selected: videoCodec() === 'h264' }, t('H.264（本机硬件解码时选用）'))));
    return h('label.ctl-select.codec-setting', null, h('span', null, t('视频编码')), select);
  }

  function callStage() {
    const cameraSelect = /** @type {HTMLSelectElement} */ (h('select#camera-select', {
      'aria-label': t('摄像头'),
      onchange: () => st.call?.switchCamera(cameraSelect.value).catch((e) => toast(String(e.message || e), 'error')),
    }));
    return h('div#call-stage.call-stage', null,
      h('div.video-wrap', null,
        remoteVideo,
        h('div.video-overlay#call-banner'),
        h('div.sup-badge#supervisor-badge', { role: 'status', 'aria-live': 'polite' }),
        h('div.guest-tile#specialist-tile', { hidden: true }, h('video#specialist-video', { autoplay: true, playsInline: true }), h('span.pip-label#specialist-name')),
        h('div.pip', null, localVideo, h('span.pip-label', null, t('本人画面'))),
        h('div.call-clock#call-clock')),
      h('div.controls', null,
        h('button.ctl#mute', { type: 'button', onclick: () => { st.call?.setMic(!st.call.micOn); updateCallStage(); } }),
        h('button.ctl#camera', { type: 'button', onclick: () => { st.call?.setCam(!st.call.camOn); updateCallStage(); } }),
        h('label.ctl-select', null, h('span', null, t('摄像头')), cameraSelect),
        h('button.ctl#share', { type: 'button', onclick: toggleShare }),
        h('button.ctl#hold', { type: 'button', onclick: () => socket.send({ type: st.held ? 'resume' : 'hold', session_id: st.session.session_id }) }),
        h('button.ctl#transfer', { type: 'button', onclick: transferDialog }, t('转办')),
        h('button.ctl#invite', { type: 'button', onclick: inviteDialog }, t('邀请协办')),
        h('button.ctl.danger#end-call', { type: 'button', onclick: () => socket.deliver({ type: 'end_call', session_id: st.session.session_id }) }, t('结束通话'))));
  }

  function updateCallStage() {
    const call = st.call;
    if (!call) return;
    const set = (/** @type {string} */ id, /** @type {string} */ text, /** @type {boolean} */ on) => {
      const el = stage.querySelector(id);
      if (el) { el.textContent = text; el.classList.toggle('on', on); el.setAttribute('aria-pressed', String(on)); }
    };
    set('#mute', call.micOn ? t('静音') : t('取消静音'), !call.micOn);
    set('#camera', call.camOn ? t('关闭摄像头') : t('开启摄像头'), !call.camOn);
    set('#share', call.screen ? t('停止共享') : t('共享屏幕'), !!call.screen);
    set('#hold', st.held ? t('恢复通话') : t('保持'), st.held);
    const sel = /** @type {HTMLSelectElement | null} */ (stage.querySelector('#camera-select'));
    if (sel && sel.options.length !== st.cameras.length) {
      const current = call.local?.getVideoTracks()[0]?.getSettings().deviceId;
      mount(sel, st.cameras.map((c, i) => h('option', { value: c.deviceId, selected: c.deviceId === current }, c.label || `${t('摄像头')} ${i + 1}`)));
    }
    const banner = stage.querySelector('#call-banner');
    if (banner) {
      const conn = call.pc.connectionState;
      const msg = st.held ? t('通话已保持，双方音视频已暂停')
        : st.peerDown ? t('居民端网络中断，等待重连')
          : conn === 'disconnected' || conn === 'failed' ? t('正在恢复连接…')
            : conn !== 'connected' ? t('正在建立视频连接…')
              : call.screen ? t('正在共享屏幕（居民副屏显示）') : '';
      banner.textContent = msg;
      banner.classList.toggle('show', !!msg);
      banner.classList.toggle('sharing', !!call.screen && !st.held && conn === 'connected' && !st.peerDown);
    }
    const badge = stage.querySelector('#supervisor-badge');
    if (badge) {
      // Policy (docs/protocol.md §5.8): the operator always sees who supervises the call, and how.
      const doing = { monitor: '正在监听', whisper: '正在耳语（只有您能听到）', barge: '已插话（居民也能听到）' };
      const parts = st.supervisors.map((x) => x.role === 'specialist' ? `${t('协办')} ${x.name} ${t('已加入通话')}`
        : `${t('值班主管')} ${x.name} ${t(doing[/** @type {keyof typeof doing} */ (x.mode)] || x.mode)}`);
      // The resident agreed to recording: the operator knows the call is recorded.
      if (st.session?.recording) parts.unshift(t('● 录音录像中（居民已同意）'));
      const text = parts.join('；');
      badge.textContent = text;
      badge.classList.toggle('show', !!text);
    }
    const clock = stage.querySelector('#call-clock');
    if (clock) clock.textContent = fmt.clock((Date.now() - st.callStart) / 1000);
  }

  function renderDetail() {
    if (!st.session && !st.wrap) { mount(detail); return; }
    const tk = (st.session || st.wrap).ticket;
    const item = st.item;
    const mats = [...st.materials.values()];
    const checklist = item?.materials?.length
      ? h('ul.checklist#checklist', null, item.materials.map((/** @type {any} */ m) => {
        const got = mats.filter((x) => x.slot_id === m.id);
        const ok = got.some((x) => x.status === 'accepted');
        return h('li', { class: ok ? 'done' : got.length ? 'received' : undefined },
          h('span.check', { 'aria-hidden': 'true' }, ok ? '✓' : got.length ? '•' : '○'),
          h('div', null,
            h('div.cl-name', null, m.name, h('span.muted', null, ` · ${m.required ? t('必需') : t('可选')}`)),
            h('div.cl-meta', null, t(TRANSFER[/** @type {keyof typeof TRANSFER} */ (m.transfer)] || m.transfer), m.note ? ` · ${m.note}` : '')),
          st.session && m.transfer === 'scan' && !ok
            ? h('button.btn.small.secondary.ask-scan', { type: 'button', 'data-slot': m.id, onclick: () => askScan(m) }, t('请求扫描'))
            : null);
      }))
      : h('p.muted#checklist', null, item ? '—' : '…');
    mount(detail,
      h('section.card', null, h('h2.card-title', null, t('办件信息')), ticketFacts(tk)),
      h('section.card', null, h('h2.card-title', null, t('所需材料')), checklist),
      h('section.card#materials', null,
        h('div.card-head', null, h('h2.card-title', null, t('已收材料')),
          st.session ? h('button.btn.small#ask-scan', { type: 'button', onclick: () => askScan(null) }, t('请求扫描')) : null),
        materialsList(mats)),
      st.session ? h('section.card#print', null, h('h2.card-title', null, t('远程打印')), printPanel()) : null);
  }

  /**
   * Asks the point to scan (a required-material slot, or anything); the terminal shows the
   * request in large type with a scan button.
   * @param {any | null} slot
   */
  function askScan(slot) {
    if (!st.session) return;
    socket.send({ type: 'request_scan', session_id: st.session.session_id, ...(slot ? { slot_id: slot.id } : {}) });
    toast(slot ? `${t('已请求扫描')}：${slot.name}` : t('已请求扫描'), 'ok');
  }

  /**
   * Sends a stored PDF material (e.g. a form) to the point's printer.
   * @param {any} m
   */
  async function printMaterial(m) {
    if (!st.session) return;
    try {
      const job = await api.post(`/api/v1/sessions/${st.session.session_id}/print-jobs`, {
        material_id: m.id, idempotency_key: crypto.randomUUID(), copies: 1,
      });
      st.prints.set(job.id, job);
      renderDetail();
    } catch (e) {
      toast(`${t('操作失败')}：${/** @type {Error} */ (e).message}`, 'error');
    }
  }

  /** @param {any[]} mats */
  function materialsList(mats) {
    if (!mats.length) return h('p.muted', null, t('暂无材料'));
    return h('ul.mat-list', null, mats.map((m) => {
      const thumb = h('div.thumb');
      if (m.has_thumbnail && !m.purged) loadBlob(`/api/v1/materials/${m.id}/thumbnail`).then((url) => thumb.append(h('img', { src: url, alt: '' }))).catch(() => {});
      return h('li.mat', null, thumb,
        h('div.mat-body', null,
          h('div.mat-name', null, m.slot_name || m.filename),
          h('div.mat-meta', null, `${m.filename} · ${Math.ceil(m.size / 1024)} KB · ${fmt.time(m.created_at)}`),
          h(`span.tag.ms-${m.status}`, null, t(MATERIAL_STATUS[/** @type {keyof typeof MATERIAL_STATUS} */ (m.status)] || m.status)),
          m.reject_reason ? h('div.mat-meta', null, m.reject_reason) : null,
          h('div.mat-actions', null,
            h('button.btn.small', { type: 'button', disabled: m.purged, onclick: () => openMaterial(m) }, t('查看')),
            m.source === 'scan' && m.status !== 'accepted' ? h('button.btn.small.secondary', { type: 'button', onclick: () => review(m, 'accept') }, t('通过')) : null,
            m.source === 'scan' && m.status !== 'rejected' ? h('button.btn.small', { type: 'button', onclick: () => review(m, 'reject') }, t('退回')) : null,
            st.session && !m.purged && m.content_type === 'application/pdf'
              ? h('button.btn.small.ghost.print-material', { type: 'button', onclick: () => printMaterial(m) }, t('打印')) : null)));
    }));
  }

  function printPanel() {
    const fileName = h('span.file-name', null, t('未选择文件'));
    const file = /** @type {HTMLInputElement} */ (h('input#print-file', {
      type: 'file', accept: 'application/pdf,.pdf',
      onchange: () => { fileName.textContent = file.files?.[0]?.name || t('未选择文件'); },
    }));
    const picker = h('label.file-pick', null, h('span.btn.small', null, t('选择文件')), file, fileName);
    const copies = /** @type {HTMLInputElement} */ (h('input#print-copies', { type: 'number', min: 1, max: 10, value: '1' }));
    const send = h('button.btn.small.primary', {
      type: 'button',
      onclick: async () => {
        const f = file.files?.[0];
        if (!f || !st.session) return;
        send.setAttribute('disabled', '');
        try {
          const materialId = await tusUpload(api, st.session.session_id, f);
          const job = await api.post(`/api/v1/sessions/${st.session.session_id}/print-jobs`, {
            material_id: materialId, idempotency_key: crypto.randomUUID(), copies: Number(copies.value) || 1,
          });
          st.prints.set(job.id, job);
          file.value = '';
          renderDetail();
        } catch (e) {
          toast(`${t('操作失败')}：${/** @type {Error} */ (e).message}`, 'error');
        } finally {
          send.removeAttribute('disabled');
        }
      },
    }, t('发送打印'));
    const jobs = [...st.prints.values()].sort((a, b) => b.created_at - a.created_at);
    const FINAL = ['completed', 'failed', 'cancelled', 'expired'];
    return [
      h('p.muted.small-text', null, t('选择 PDF 表单并发送到服务点打印')),
      h('div.print-form', null, picker, h('label.inline', null, t('份数'), copies), send),
      jobs.length ? h('ul.print-list', null, jobs.map((j) => h('li', null,
        h('span.ellipsis', { title: j.filename }, `${j.filename} ×${j.copies}`),
        h(`span.tag.ps-${j.state}`, null, t(PRINT_STATE[/** @type {keyof typeof PRINT_STATE} */ (j.state)] || j.state), j.reason ? ` (${j.reason})` : ''),
        FINAL.includes(j.state) ? null : h('button.btn.small.ghost', {
          type: 'button',
          onclick: () => api.post(`/api/v1/print-jobs/${j.id}/cancel`).then((v) => { st.prints.set(v.id, v); renderDetail(); }).catch((e) => toast(e.message, 'error')),
        }, t('取消打印'))))) : null,
    ];
  }

  function wrapUpForm() {
    const w = st.wrap;
    const notes = /** @type {HTMLTextAreaElement} */ (h('textarea#wrap-notes', { maxlength: 2000, rows: 4, placeholder: t('备注') }));
    const options = Object.entries(OUTCOME).map(([k, zh]) => h('label.outcome', null,
      h('input', { type: 'radio', name: 'outcome', value: k, required: true }), h('span', null, t(zh))));
    const form = h('form.wrap-card#wrap-up', {
      onsubmit: async (/** @type {Event} */ e) => {
        e.preventDefault();
        const outcome = /** @type {HTMLInputElement | null} */ (form.querySelector('input[name=outcome]:checked'))?.value;
        if (!outcome) return;
        form.querySelector('button[type=submit]')?.setAttribute('disabled', '');
        // A follow-up outcome offers its work order (工单) first, while still in wrap-up, so no
        // call rings behind the dialog; the wrap-up goes once the order is made or declined.
        if (FOLLOW_UP.includes(outcome)) {
          await offerOrder(api, { session_id: w.session_id, ticket: w.ticket, outcome, notes: notes.value.trim() })
            .catch((ex) => toast(`${t('创建工单失败')}：${ex.message}`, 'error'));
        }
        socket.deliver({ type: 'wrap_up', session_id: w.session_id, outcome, notes: notes.value });
      },
    },
      h('h2', null, t('通话已结束'), ' · ', w.ticket.number, h('span.muted', null, ` ${fmt.duration(w.secs)}`)),
      h('p.muted', null, `${w.ticket.item_name} · ${w.reasonText}`),
      h('fieldset.outcomes', null, h('legend', null, t('办理结果')), options),
      field(t('备注'), notes),
      h('div.form-actions', null, h('button.btn.primary#wrap-submit', { type: 'submit' }, t('提交办理结果'))));
    return form;
  }

  // ---------------------------------------------------------------------------------------
  // Actions

  function accept() {
    if (!st.ringing) return;
    ringer.stop();
    socket.send({ type: 'accept', ticket_id: st.ringing.ticket.ticket_id });
    const btn = stage.querySelector('#accept');
    btn?.setAttribute('disabled', '');
  }

  async function toggleShare() {
    const call = st.call;
    if (!call) return;
    try {
      if (call.screen) call.stopScreen();
      else await call.shareScreen();
    } catch (e) {
      if (/** @type {any} */ (e).name !== 'NotAllowedError') toast(`${t('操作失败')}：${/** @type {Error} */ (e).message}`, 'error');
    }
    updateCallStage();
  }

  async function transferDialog() {
    if (!st.session) return;
    const lines = await api.get('/api/v1/lines').catch(() => []);
    const me = /** @type {any} */ (api.user).id;
    const ops = (ctx.board?.operators || []).filter((/** @type {any} */ o) => o.operator_id !== me && o.state === 'available');
    const data = await dialog(t('转办给'), () => [
      h('fieldset.radio-row', null,
        h('label', null, h('input', { type: 'radio', name: 'kind', value: 'line', checked: true }), t('条线队列')),
        h('label', null, h('input', { type: 'radio', name: 'kind', value: 'operator', disabled: !ops.length }), t('指定受理员'))),
      field(t('条线'), h('select', { name: 'line_id' }, lines.filter((/** @type {any} */ l) => l.active).map((/** @type {any} */ l) => h('option', { value: l.id }, l.name)))),
      field(t('指定受理员'), h('select', { name: 'operator_id', disabled: !ops.length }, ops.map((/** @type {any} */ o) => h('option', { value: o.operator_id }, `${o.name}（${t(OP_STATE[/** @type {keyof typeof OP_STATE} */ (o.state)])}）`)))),
      field(t('转办说明'), h('textarea', { name: 'note', rows: 3, maxlength: 2000 })),
    ], { submit: t('确定转办'), cancel: t('取消') });
    if (!data || !st.session) return;
    const kind = String(data.get('kind'));
    const target = kind === 'operator' ? { kind, operator_id: String(data.get('operator_id')) } : { kind: 'line', line_id: String(data.get('line_id')) };
    /** @type {any} */
    const msg = { type: 'transfer', session_id: st.session.session_id, target };
    const note = String(data.get('note') || '').trim();
    if (note) msg.note = note;
    socket.send(msg);
  }

  /** @param {string} url */
  async function loadBlob(url) {
    const res = await api.request('GET', url, undefined, { raw: true });
    return URL.createObjectURL(await res.blob());
  }

  /** @param {any} m */
  async function openMaterial(m) {
    try {
      const url = await loadBlob(`/api/v1/materials/${m.id}/content`);
      window.open(url, '_blank', 'noopener');
    } catch (e) {
      toast(/** @type {Error} */ (e).message, 'error');
    }
  }

  /** @param {any} m @param {'accept'|'reject'} decision */
  async function review(m, decision) {
    /** @type {any} */
    let body = { decision };
    if (decision === 'reject') {
      const data = await dialog(t('退回'), () => [field(t('退回原因'), h('input', { name: 'reason', required: true, maxlength: 200 }))]);
      if (!data) return;
      body.reason = String(data.get('reason'));
    }
    try {
      const v = await api.post(`/api/v1/materials/${m.id}/review`, body);
      st.materials.set(v.id, v);
      renderDetail();
    } catch (e) {
      toast(/** @type {Error} */ (e).message, 'error');
    }
  }

  let historySeq = 0;
  async function loadHistory() {
    // Loads overlap (call ended, wrapped up, rated): only the newest request's answer counts.
    const seq = ++historySeq;
    try {
      const list = await api.get(`/api/v1/sessions?from=${fmt.todayStart()}`);
      if (seq !== historySeq) return;
      st.history = list;
      st.history.sort((a, b) => b.started_at - a.started_at);
      // The call clock counts from the server's start (after a reload too, not from the page's).
      const live = st.session && st.history.find((r) => r.session_id === st.session.session_id);
      if (live && st.call && live.started_at < st.callStart) st.callStart = live.started_at;
    } catch { /* keep the old list */ }
    if (seq === historySeq) renderHistory();
  }

  /** @param {any} session */
  async function loadSessionData(session) {
    const id = session.session_id;
    api.get(`/api/v1/items/${session.ticket.item_id}`).then((item) => { st.item = item; renderDetail(); }).catch(() => {});
    api.get(`/api/v1/sessions/${id}/materials`).then((list) => { for (const m of list) st.materials.set(m.id, m); renderDetail(); }).catch(() => {});
    api.get(`/api/v1/sessions/${id}/print-jobs`).then((list) => { for (const j of list) st.prints.set(j.id, j); renderDetail(); }).catch(() => {});
  }

  /** @param {any} session */
  async function startCall(session) {
    const call = new Call({
      sessionId: session.session_id,
      iceServers: session.ice_servers || [],
      polite: session.polite,
      send: (signal) => socket.send({ type: 'signal', session_id: session.session_id, signal }),
      videoCodec: videoCodec(),
    });
    st.call = call;
    st.callStart = Date.now();
    st.held = false;
    st.peerDown = false;
    reportSetup(call, session.session_id, performance.now());
    call.addEventListener('remote', () => {
      if (remoteVideo.srcObject !== call.remote) remoteVideo.srcObject = call.remote;
      remoteVideo.play().catch(() => {});
    });
    call.addEventListener('state', updateCallStage);
    call.addEventListener('screen', updateCallStage);
    renderStage();
    /** @type {MediaStream | null} */
    let stream = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true }, video: { width: { ideal: 1280 }, height: { ideal: 720 } } });
    } catch {
      try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch { toast(t('未获得摄像头或麦克风权限'), 'error'); }
    }
    if (st.call !== call) { stream?.getTracks().forEach((x) => x.stop()); return; }
    call.start(stream);
    localVideo.srcObject = stream;
    st.cameras = (await navigator.mediaDevices.enumerateDevices().catch(() => [])).filter((d) => d.kind === 'videoinput');
    updateCallStage();
  }

  /** The link with supervisor `peer`, made when its first offer arrives. @param {string} peer */
  function linkWith(peer) {
    let l = st.links.get(peer);
    if (l || !st.call || !st.session) return l;
    const sessionId = st.session.session_id;
    const link = new PeerLink({
      peer,
      iceServers: st.session.ice_servers || [],
      offerer: false,
      local: st.call.local,
      send: (signal) => socket.send({ type: 'peer_signal', session_id: sessionId, peer, signal }),
    });
    const audio = /** @type {HTMLAudioElement} */ (h('audio.sup-audio', { autoplay: true }));
    link.addEventListener('remote', () => {
      audio.srcObject = link.remote;
      audio.play().catch(() => {});
      // A specialist's camera shows beside the resident.
      const v = /** @type {HTMLVideoElement | null} */ (stage.querySelector('#specialist-video'));
      if (v && link.remote.getVideoTracks().length && v.srcObject !== link.remote) { v.srcObject = link.remote; v.muted = true; v.play().catch(() => {}); }
    });
    layout.append(audio);
    l = { link, audio };
    st.links.set(peer, l);
    applySupervisors();
    return l;
  }

  /** Plays a supervisor only in whisper and barge; closes links of supervisors who left. */
  function applySupervisors() {
    for (const [peer, l] of st.links) {
      const sup = st.supervisors.find((x) => x.participant_id === peer);
      if (!sup) { l.link.close(); l.audio.remove(); st.links.delete(peer); continue; }
      l.audio.muted = !(sup.role === 'specialist' || sup.mode === 'whisper' || sup.mode === 'barge');
    }
    const spec = st.supervisors.find((x) => x.role === 'specialist');
    const tile = /** @type {HTMLElement | null} */ (stage.querySelector('#specialist-tile'));
    if (tile) {
      tile.hidden = !spec;
      const name = stage.querySelector('#specialist-name');
      if (name) name.textContent = spec ? `${t('协办')} · ${spec.name}` : '';
    }
  }

  /** Invites another operator (by name or line) into the call as a specialist. */
  async function inviteDialog() {
    if (!st.session) return;
    const lines = await api.get('/api/v1/lines').catch(() => []);
    const me = /** @type {any} */ (api.user).id;
    const ops = (ctx.board?.operators || []).filter((/** @type {any} */ o) => o.operator_id !== me && (o.state === 'available' || o.state === 'away'));
    const data = await dialog(t('邀请协办（三方通话）'), () => [
      h('fieldset.radio-row', null,
        h('label', null, h('input', { type: 'radio', name: 'kind', value: 'operator', checked: !!ops.length, disabled: !ops.length }), t('指定受理员')),
        h('label', null, h('input', { type: 'radio', name: 'kind', value: 'line', checked: !ops.length }), t('条线中空闲的受理员'))),
      field(t('指定受理员'), h('select', { name: 'operator_id', disabled: !ops.length }, ops.map((/** @type {any} */ o) => h('option', { value: o.operator_id }, `${o.name}（${t(OP_STATE[/** @type {keyof typeof OP_STATE} */ (o.state)])}）`)))),
      field(t('条线'), h('select', { name: 'line_id' }, lines.filter((/** @type {any} */ l) => l.active).map((/** @type {any} */ l) => h('option', { value: l.id }, l.name)))),
      field(t('说明'), h('textarea', { name: 'note', rows: 2, maxlength: 2000 })),
    ], { submit: t('发出邀请'), cancel: t('取消') });
    if (!data || !st.session) return;
    const kind = String(data.get('kind'));
    const target = kind === 'operator' ? { kind, operator_id: String(data.get('operator_id')) } : { kind: 'line', line_id: String(data.get('line_id')) };
    /** @type {any} */
    const msg = { type: 'invite', session_id: st.session.session_id, target };
    const note = String(data.get('note') || '').trim();
    if (note) msg.note = note;
    socket.send(msg);
    toast(t('已发出邀请'), 'ok');
  }

  // ---- joining someone else's call as a specialist ---------------------------------------

  /** @param {any} inv the `invited` message */
  async function answerInvite(inv) {
    st.invited = inv;
    const ok = await dialog(`${inv.from_operator} ${t('邀请您协助办理')}`, () => [
      h('p#invite-text', null, `${inv.ticket.number} · ${inv.ticket.item_name} · ${inv.ticket.point_name}`),
      inv.note ? h('p.quote', null, `“${inv.note}”`) : null,
    ].filter(Boolean), { submit: t('加入通话'), cancel: t('拒绝') });
    st.invited = null;
    if (!ok) { socket.send({ type: 'answer_invite', session_id: inv.session_id, accept: false }); return; }
    // Camera and microphone first: the links open as soon as `participants` names us.
    let local = null;
    try {
      local = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true }, video: { width: { ideal: 1280 }, height: { ideal: 720 } } });
    } catch { toast(t('未获得摄像头或麦克风权限'), 'error'); }
    st.consult = { sessionId: inv.session_id, ticket: inv.ticket, iceServers: inv.ice_servers || [], participants: [], links: new Map(), local, videos: new Map() };
    socket.send({ type: 'answer_invite', session_id: inv.session_id, accept: true });
    renderStage();
  }

  function consultStage() {
    const c = /** @type {NonNullable<typeof st.consult>} */ (st.consult);
    const video = (/** @type {string} */ role) => {
      let v = c.videos.get(role);
      if (!v) { v = /** @type {HTMLVideoElement} */ (h(`video#consult-${role}`, { autoplay: true, playsInline: true })); c.videos.set(role, v); }
      return v;
    };
    const op = c.participants.find((p) => p.role === 'operator');
    const self = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsInline: true, muted: true }));
    self.muted = true;
    self.srcObject = c.local;
    return h('div.consult#consult', null,
      h('h2', null, `${t('协办中')} · ${c.ticket.number} · ${c.ticket.item_name}`),
      h('div.monitor-videos', null,
        h('figure', null, video('terminal'), h('figcaption', null, `${t('居民')} · ${c.ticket.point_name}`)),
        h('figure', null, video('operator'), h('figcaption#consult-operator', null, `${t('受理员')} · ${op?.name || ''}`))),
      h('div.monitor-modes', null,
        h('figure.consult-self', null, self),
        h('button.btn.primary#consult-take-over', { type: 'button', onclick: () => { if (confirm(t('由您接手办理？居民将转由您服务，原受理员退出通话。'))) { st.takingOver = true; socket.send({ type: 'take_over', session_id: c.sessionId }); } } }, t('接手办理')),
        h('button.btn.secondary#consult-leave', { type: 'button', onclick: leaveConsult }, t('离开通话'))));
  }

  function leaveConsult() {
    if (!st.consult) return;
    socket.send({ type: 'leave_session', session_id: st.consult.sessionId });
    closeConsult();
  }

  function closeConsult() {
    const c = st.consult;
    if (!c) return;
    for (const l of c.links.values()) l.close();
    for (const tr of c.local?.getTracks() || []) tr.stop();
    st.consult = null;
    renderStage();
  }

  /** Opens a link to the terminal and to the operator (once each), sending our camera and microphone. */
  function consultLinks() {
    const c = st.consult;
    if (!c) return;
    for (const p of c.participants.filter((x) => x.role === 'terminal' || x.role === 'operator')) {
      if (c.links.has(p.participant_id)) continue;
      const peer = p.participant_id;
      const link = new PeerLink({ peer, iceServers: c.iceServers, offerer: true, local: c.local,
        send: (signal) => socket.send({ type: 'peer_signal', session_id: c.sessionId, peer, signal }) });
      link.addEventListener('remote', () => {
        const v = c.videos.get(p.role);
        if (v && v.srcObject !== link.remote) { v.srcObject = link.remote; v.play().catch(() => {}); }
      });
      c.links.set(peer, link);
    }
    if (!stage.querySelector('#consult')) renderStage();
    const op = c.participants.find((p) => p.role === 'operator');
    const cap = stage.querySelector('#consult-operator');
    if (cap) cap.textContent = `${t('受理员')} · ${op?.name || ''}`;
  }

  /**
   * Tells the server how long the call took to show the resident's video: from
   * `session_started` to the first decoded remote frame (`call_setup`, docs/protocol.md §5.12;
   * only a metric). Once per call; nothing if the call ends first.
   * @param {Call} call @param {string} sessionId @param {number} from
   */
  function reportSetup(call, sessionId, from) {
    const first = () => {
      const ours = st.call === call;
      if (ours && !remoteVideo.videoWidth) return;
      remoteVideo.removeEventListener('resize', first);
      remoteVideo.removeEventListener('loadeddata', first);
      const ms = Math.round(performance.now() - from);
      if (ours && ms >= 0 && ms <= 600_000) socket.send({ type: 'call_setup', session_id: sessionId, first_frame_ms: ms });
    };
    remoteVideo.addEventListener('resize', first);
    remoteVideo.addEventListener('loadeddata', first);
  }

  function endCall() {
    st.supervisors = [];
    applySupervisors();
    st.call?.close();
    st.call = null;
    remoteVideo.srcObject = null;
    localVideo.srcObject = null;
  }

  // ---------------------------------------------------------------------------------------
  // Messages

  /** @param {Event} e */
  function onMessage(e) {
    const msg = /** @type {CustomEvent} */ (e).detail;
    switch (msg.type) {
      case 'welcome':
        if (!msg.resumed && st.session) {
          // The resume window passed: the call ended on the server.
          endCall();
          st.session = null;
          renderStage(); renderDetail();
        }
        break;
      case 'operator_status':
        st.opState = msg.state;
        if (msg.state !== 'ringing' && st.ringing) { st.ringing = null; ringer.stop(); }
        if ((msg.state === 'available' || msg.state === 'away') && st.wrap) { st.wrap = null; loadHistory(); }
        renderStatus(); renderStage(); renderDetail();
        break;
      case 'board':
        st.boardAt = Date.now();
        renderBoard();
        break;
      case 'ringing':
        st.ringing = msg;
        st.ringUntil = Date.now() + (msg.expires_in_ms || 20000);
        ringer.start();
        renderStage();
        break;
      case 'ring_cancelled': {
        ringer.stop();
        st.ringing = null;
        const why = { timeout: '响铃超时，已设为暂离', taken_by_other: '已被其他受理员接听', resident_left: '居民已离开' }[/** @type {string} */ (msg.reason)] || '来电已取消';
        toast(t(why));
        renderStage();
        break;
      }
      case 'session_started': {
        ringer.stop();
        st.ringing = null;
        const s = msg.session;
        if (st.session?.session_id === s.session_id && st.call) { st.session = s; break; }
        endCall();
        st.session = s;
        st.wrap = null;
        st.item = null;
        st.materials.clear();
        st.prints.clear();
        startCall(s);
        loadSessionData(s);
        loadHistory();
        renderDetail();
        break;
      }
      case 'signal':
        if (st.call && msg.session_id === st.call.sessionId) st.call.handle(msg.signal);
        break;
      case 'invited':
        answerInvite(msg);
        break;
      case 'invite_declined': {
        const who = (ctx.board?.operators || []).find((/** @type {any} */ o) => o.operator_id === msg.operator_id);
        toast(`${who?.name || t('受理员')} ${t('未接受邀请')}`);
        break;
      }
      case 'participants':
        if (st.consult?.sessionId === msg.session_id) {
          if (!msg.participants.some((/** @type {any} */ p) => p.participant_id === api.user?.id)) { closeConsult(); break; }
          st.consult.participants = msg.participants;
          consultLinks();
          break;
        }
        if (st.session?.session_id !== msg.session_id) break;
        st.supervisors = msg.participants.filter((/** @type {any} */ p) => p.role === 'supervisor' || p.role === 'specialist');
        applySupervisors();
        updateCallStage();
        break;
      case 'peer_signal':
        if (st.consult?.sessionId === msg.session_id) { st.consult.links.get(msg.peer)?.handle(msg.signal); break; }
        if (st.call && msg.session_id === st.call.sessionId && st.supervisors.some((x) => x.participant_id === msg.peer)) {
          linkWith(msg.peer)?.link.handle(msg.signal);
        }
        break;
      case 'session_held':
      case 'session_resumed':
        if (st.session?.session_id !== msg.session_id) break;
        st.held = msg.type === 'session_held';
        st.call?.setHeld(st.held);
        updateCallStage();
        break;
      case 'peer_disconnected':
        st.peerDown = true;
        updateCallStage();
        break;
      case 'peer_reconnected':
        st.peerDown = false;
        st.call?.restartIce();
        updateCallStage();
        break;
      case 'session_ended': {
        if (st.consult?.sessionId === msg.session_id) {
          toast(st.takingOver && msg.reason === 'transferred' ? t('已由您接手办理') : t('通话已结束'), 'ok');
          st.takingOver = false;
          closeConsult();
          break;
        }
        if (st.session?.session_id !== msg.session_id) break;
        const s = st.session;
        const secs = (Date.now() - st.callStart) / 1000;
        endCall();
        st.session = null;
        const reasons = { operator_ended: '受理员结束通话', resident_left: '居民已离开', connection_lost: '连接中断', supervisor_ended: '主管结束通话', server_shutdown: '服务器重启' };
        if (msg.reason === 'transferred') toast(t('通话已转办'), 'ok');
        else st.wrap = { session_id: s.session_id, ticket: s.ticket, secs, reasonText: t(reasons[/** @type {keyof typeof reasons} */ (msg.reason)] || msg.reason) };
        renderStage(); renderDetail();
        loadHistory();
        break;
      }
      case 'rating_recorded':
        // The resident rated a call this operator served.
        loadHistory();
        break;
      case 'material_changed':
        if (st.session?.session_id === msg.session_id || st.wrap?.session_id === msg.session_id) {
          st.materials.set(msg.material.id, msg.material);
          renderDetail();
        }
        break;
      case 'print_job_changed':
        if (st.session?.session_id === msg.job.session_id) {
          st.prints.set(msg.job.id, msg.job);
          renderDetail();
        }
        break;
      case 'error':
        if (msg.request === 'answer_invite') closeConsult();
        // Candidates still trickling to a call that just ended are refused: nothing to tell;
        // nor about a call_setup report (only a metric) an older server does not know.
        if (msg.request === 'peer_signal' || msg.request === 'signal' || msg.request === 'call_setup') break;
        toast(msg.message || msg.code, 'error');
        if (msg.request === 'wrap_up') stage.querySelector('#wrap-submit')?.removeAttribute('disabled');
        if (msg.request === 'accept') stage.querySelector('#accept')?.removeAttribute('disabled');
        break;
    }
  }

  /** @param {Event} e */
  function onState(e) {
    if (/** @type {CustomEvent} */ (e).detail !== 'open') { st.opState = st.opState === 'offline' ? 'offline' : st.opState; }
    renderStatus();
  }

  socket.addEventListener('message', onMessage);
  socket.addEventListener('state', onState);
  // Support hook (also used by the tests): inbound video frames decoded in the current call.
  const hook = /** @type {any} */ (window).bangban;
  if (hook) hook.framesDecoded = () => (st.call ? st.call.framesDecoded() : Promise.resolve(0));
  // What this console received from supervisors (audio samples; tests check whisper reaches only the operator).
  if (hook) hook.supervisorInbound = async () => {
    const all = await Promise.all([...st.links.values()].map((l) => l.link.inbound()));
    return all.reduce((a, b) => ({ frames: a.frames + b.frames, audioSamples: a.audioSamples + b.audioSamples, audioBytes: a.audioBytes + b.audioBytes }), { frames: 0, audioSamples: 0, audioBytes: 0 });
  };
  // What this console receives in a call it joined as a specialist, by side.
  if (hook) hook.consultInbound = async () => {
    /** @type {Record<string, any>} */
    const out = {};
    for (const p of st.consult?.participants || []) {
      const l = st.consult?.links.get(p.participant_id);
      if (l) out[p.role] = await l.inbound();
    }
    return out;
  };
  if (hook) hook.videoCodecs = () => (st.call ? st.call.videoCodecs() : Promise.resolve({ inbound: [], outbound: [] }));
  // Keyboard: Enter accepts a ringing call (one key, like the one click).
  const onKey = (/** @type {KeyboardEvent} */ e) => { if (e.key === 'Enter' && st.ringing && !(e.target instanceof HTMLTextAreaElement)) accept(); };
  document.addEventListener('keydown', onKey);
  const tick = window.setInterval(() => {
    if (st.ringing) {
      const el = stage.querySelector('.ring-timer');
      if (el) el.textContent = `${Math.max(0, Math.ceil((st.ringUntil - Date.now()) / 1000))} ${t('秒后转给其他受理员')}`;
    }
    if (st.call) updateCallStage();
    if (ctx.board?.lines?.some((/** @type {any} */ l) => l.waiting)) renderBoard();
  }, 1000);

  // The socket may already have delivered the state before this view mounted.
  if (ctx.opStatus) st.opState = ctx.opStatus;
  renderStatus(); renderBoard(); renderHistory(); renderStage(); renderDetail();
  loadHistory();

  return () => {
    socket.removeEventListener('message', onMessage);
    socket.removeEventListener('state', onState);
    document.removeEventListener('keydown', onKey);
    clearInterval(tick);
    ringer.stop();
    endCall();
    leaveConsult();
  };
}

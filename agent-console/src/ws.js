// The console's WebSocket (`bangban.v1`): hello with the access token (and the last resume
// token), heartbeat, reconnect with backoff and jitter, resume.

/** @typedef {'idle'|'connecting'|'open'|'reconnecting'|'closed'} SocketState */

export class Socket extends EventTarget {
  /** @param {() => Promise<string | null>} getToken fresh access token (refreshes when needed) */
  constructor(getToken) {
    super();
    this.getToken = getToken;
    /** @type {WebSocket | null} */ this.ws = null;
    /** @type {string | null} */ this.resumeToken = null;
    /** @type {SocketState} */ this.state = 'idle';
    this.attempt = 0;
    this.seq = 0;
    this.lastFrame = 0;
    this.stopped = false;
    this.heartbeatSecs = 15;
    /** @type {number | undefined} */ this.beat = undefined;
    /** @type {number | undefined} */ this.retry = undefined;
    /** Actions the operator took while the socket was reconnecting ([`deliver`]). @type {any[]} */
    this.outbox = [];
  }

  /** @param {SocketState} s */
  setState(s) {
    this.state = s;
    this.dispatchEvent(new CustomEvent('state', { detail: s }));
  }

  async connect() {
    this.stopped = false;
    clearTimeout(this.retry);
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let token;
    try {
      token = await this.getToken();
    } catch {
      token = null;
    }
    if (this.stopped) return;
    if (!token) {
      this.setState('closed');
      return;
    }
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    const ws = new WebSocket(url, ['bangban.v1']);
    this.ws = ws;
    ws.onopen = () => {
      /** @type {any} */
      const hello = { type: 'hello', v: 1, token };
      if (this.resumeToken) hello.resume = this.resumeToken;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      this.lastFrame = Date.now();
      if (typeof ev.data !== 'string' || ev.data.length > 65536) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'welcome') {
        this.resumeToken = msg.resume_token;
        this.heartbeatSecs = msg.heartbeat_secs || 15;
        this.attempt = 0;
        this.startHeartbeat();
        this.setState('open');
        // What the operator did while reconnecting goes now, in order, after the welcome.
        for (const m of this.outbox.splice(0)) this.send(m);
      } else if (msg.type === 'bye') {
        this.onBye(msg.reason);
      }
      this.dispatchEvent(new CustomEvent('message', { detail: msg }));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.beat);
      if (this.stopped) {
        this.setState('closed');
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {};
  }

  /** @param {string} reason */
  onBye(reason) {
    if (reason === 'revoked' || reason === 'replaced') {
      this.stopped = true;
      this.dispatchEvent(new CustomEvent('ended', { detail: reason }));
    }
    // slow_consumer, shutdown, auth_expired, protocol_error: the close handler reconnects;
    // getToken() refreshes an expired access token.
  }

  scheduleReconnect() {
    this.setState('reconnecting');
    const base = Math.min(10_000, 500 * 2 ** this.attempt);
    const delay = base * (0.7 + Math.random() * 0.6);
    this.attempt++;
    this.retry = window.setTimeout(() => this.connect(), delay);
  }

  startHeartbeat() {
    clearInterval(this.beat);
    this.lastFrame = Date.now();
    this.beat = window.setInterval(() => {
      if (!this.ws) return;
      if (Date.now() - this.lastFrame > this.heartbeatSecs * 3000) {
        // No pong or anything else for three heartbeats: the link is dead.
        const ws = this.ws;
        this.ws = null;
        clearInterval(this.beat);
        try { ws.close(); } catch { /* ignore */ }
        this.scheduleReconnect();
        return;
      }
      this.send({ type: 'ping', seq: ++this.seq });
    }, this.heartbeatSecs * 1000);
  }

  /** @param {any} msg @returns {boolean} sent */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== 'open') return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Sends an action the operator must not lose (ending a call, the wrap-up): at once when the
   * socket is open, else as soon as it is open again (the server closes a socket whose token
   * has expired, and the console reconnects with a fresh one in about half a second). At most
   * eight wait; a signed-out or replaced session drops them.
   * @param {any} msg
   */
  deliver(msg) {
    if (this.send(msg)) return;
    if (this.stopped) return;
    this.outbox.push(msg);
    if (this.outbox.length > 8) this.outbox.shift();
  }

  /**
   * Hands the open connection a refreshed access token (`renew`), so that the server keeps it
   * open past the old token's expiry instead of closing it with `auth_expired` mid-call.
   * @param {string | null} token
   */
  renew(token) {
    if (token) this.send({ type: 'renew', token });
  }

  /** Drops the connection as a network blip would (used by the tests and the retry button). */
  drop() {
    try { this.ws?.close(); } catch { /* ignore */ }
  }

  close() {
    this.stopped = true;
    this.outbox = [];
    clearTimeout(this.retry);
    clearInterval(this.beat);
    this.resumeToken = null;
    try { this.ws?.close(1000); } catch { /* ignore */ }
    this.ws = null;
    this.setState('closed');
  }
}

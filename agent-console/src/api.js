// REST client. The access token lives in memory only and is refreshed a minute before it
// expires (and once more on a 401). The refresh token is also kept in this tab's
// sessionStorage, so a reload (F5) signs the operator back in and a live call resumes; it goes
// with the tab (closing it, or 退出, ends the session) and is never shared with other tabs.

const SESSION_KEY = 'bangban.session';

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @typedef {{ id: string, username: string, display_name: string, role: string, point_id?: string, skills: string[], center_id?: string | null }} User */

export class Api extends EventTarget {
  constructor() {
    super();
    /** @type {string | null} */ this.access = null;
    /** @type {string | null} */ this.refreshToken = null;
    /** @type {User | null} */ this.user = null;
    /** @type {number | undefined} */ this.timer = undefined;
    /** @type {Promise<void> | null} */ this.refreshing = null;
    this.expiresAt = 0;
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async token() {
    if (!this.access) return null;
    if (Date.now() > this.expiresAt - 30_000) await this.refresh();
    return this.access;
  }

  /** @param {string} username @param {string} password */
  async login(username, password) {
    const r = await this.request('POST', '/api/v1/auth/login', { username, password }, { auth: false });
    this.accept(r);
    return /** @type {User} */ (this.user);
  }

  /** @param {any} r TokenResponse */
  accept(r) {
    this.access = r.access_token;
    this.expiresAt = Date.now() + r.expires_in * 1000;
    this.refreshToken = r.refresh_token;
    try { sessionStorage.setItem(SESSION_KEY, r.refresh_token); } catch { /* storage off: memory only */ }
    if (r.user) this.user = r.user;
    clearTimeout(this.timer);
    const ms = Math.max(10, r.expires_in - 60) * 1000;
    this.timer = window.setTimeout(() => this.refresh().catch(() => {}), ms);
    this.dispatchEvent(new Event('token'));
  }

  /** Exchanges the refresh token; on failure the session is over. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          if (!this.refreshToken) throw new ApiError(401, 'unauthenticated', 'no session');
          const r = await this.request('POST', '/api/v1/auth/refresh', { refresh_token: this.refreshToken }, { auth: false });
          this.accept(r);
        } catch (e) {
          if (e instanceof ApiError && (e.status === 401 || e.status === 400)) this.lost();
          throw e;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  async logout() {
    const rt = this.refreshToken;
    if (rt) await this.request('POST', '/api/v1/auth/logout', { refresh_token: rt }).catch(() => {});
    this.clear();
  }

  clear() {
    clearTimeout(this.timer);
    this.access = this.refreshToken = null;
    this.user = null;
    try { sessionStorage.removeItem(SESSION_KEY); } catch { /* storage off */ }
  }

  /** After a reload: the tab's session, if it has a live one (the refresh token rotates). */
  async resume() {
    let rt = null;
    try { rt = sessionStorage.getItem(SESSION_KEY); } catch { /* storage off */ }
    if (!rt) return null;
    this.refreshToken = rt;
    try {
      await this.refresh();
      return this.user;
    } catch {
      this.clear();
      return null;
    }
  }

  lost() {
    this.clear();
    this.dispatchEvent(new Event('lost'));
  }

  /**
   * @param {string} method @param {string} path @param {any} [body]
   * @param {{ auth?: boolean, raw?: boolean, headers?: Record<string,string>, bytes?: BodyInit, retried?: boolean }} [opts]
   * @returns {Promise<any>}
   */
  async request(method, path, body, opts = {}) {
    /** @type {Record<string, string>} */
    const headers = { ...(opts.headers || {}) };
    if (opts.auth !== false && this.access) headers.authorization = `Bearer ${this.access}`;
    let payload = opts.bytes;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(path, { method, headers, body: payload, cache: 'no-store', credentials: 'omit' });
    if (res.status === 401 && opts.auth !== false && !opts.retried && this.refreshToken) {
      await this.refresh();
      return this.request(method, path, body, { ...opts, retried: true });
    }
    if (opts.raw) {
      if (!res.ok) throw await toError(res);
      return res;
    }
    if (!res.ok) throw await toError(res);
    if (res.status === 204) return null;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  /** @param {string} p */ get(p) { return this.request('GET', p); }
  /** @param {string} p @param {any} [b] */ post(p, b) { return this.request('POST', p, b ?? {}); }
  /** @param {string} p @param {any} b */ patch(p, b) { return this.request('PATCH', p, b); }
  /** @param {string} p @param {any} b */ put(p, b) { return this.request('PUT', p, b); }
}

/** @param {Response} res */
async function toError(res) {
  try {
    const b = await res.json();
    return new ApiError(res.status, b.error?.code || 'unknown', b.error?.message || res.statusText);
  } catch {
    return new ApiError(res.status, 'unknown', `HTTP ${res.status}`);
  }
}

/**
 * Uploads a file as a material of a session with tus 1.0 (creation + checksum). Returns the
 * material id from the final PATCH.
 * @param {Api} api @param {string} sessionId @param {File} file
 */
export async function tusUpload(api, sessionId, file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
  const b64 = (/** @type {string} */ s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
  const meta = `filename ${b64(file.name)},session_id ${b64(sessionId)},sha256 ${b64(hex)}`;
  const created = await api.request('POST', '/api/v1/uploads', undefined, {
    raw: true,
    headers: { 'tus-resumable': '1.0.0', 'upload-length': String(bytes.length), 'upload-metadata': meta },
  });
  const location = created.headers.get('location');
  if (!location) throw new Error('no upload location');
  const url = new URL(location, location.startsWith('http') ? undefined : window.location.origin).pathname;
  const CHUNK = 4 * 1024 * 1024;
  let offset = 0;
  let materialId = null;
  while (offset < bytes.length || bytes.length === 0) {
    const chunk = bytes.subarray(offset, offset + CHUNK);
    const r = await api.request('PATCH', url, undefined, {
      raw: true,
      bytes: chunk,
      headers: { 'tus-resumable': '1.0.0', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
    });
    offset = Number(r.headers.get('upload-offset') ?? offset + chunk.length);
    materialId = r.headers.get('bangban-material-id') || materialId;
    if (bytes.length === 0) break;
  }
  return materialId;
}

// Tiny DOM helpers. Text is always set as text (never parsed as HTML): every string from the
// server or the user is data.

/**
 * @param {string} tag  e.g. "div.card#main"
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const [, name, rest] = /^([a-z0-9-]+)(.*)$/i.exec(tag) || [, 'div', ''];
  const el = document.createElement(name);
  for (const m of rest.matchAll(/([.#])([\w-]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]);
    else el.id = m[2];
  }
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k in el && k !== 'list' && k !== 'form' && typeof v !== 'string') /** @type {any} */ (el)[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {any[]} children */
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace all children. @param {Element} el @param {...any} children */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** @param {string} sel @returns {HTMLElement} */
export const $ = (sel, root = document) => /** @type {HTMLElement} */ (root.querySelector(sel));

/** Short-lived message at the bottom of the screen. @param {string} msg @param {'info'|'error'|'ok'} [kind] */
export function toast(msg, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div#toasts', { role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = h(`div.toast.${kind}`, null, msg);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * A modal dialog built on <dialog>. Resolves with the form's values on submit, null on cancel.
 * @param {string} title @param {(form: HTMLFormElement) => any[]} body
 * @param {{ submit?: string, cancel?: string, wide?: boolean, onSubmit?: (data: FormData, form: HTMLFormElement) => Promise<any> }} [opts]
 */
export function dialog(title, body, opts = {}) {
  return new Promise((resolve) => {
    const form = /** @type {HTMLFormElement} */ (h('form.dialog-form', { method: 'dialog' }));
    const err = h('p.form-error', { role: 'alert' });
    const submit = h('button.btn.primary', { type: 'submit' }, opts.submit || '确定');
    const cancel = h('button.btn', { type: 'button', onclick: () => { dlg.close(); resolve(null); } }, opts.cancel || '取消');
    mount(form, h('h2', null, title), ...body(form), err, h('div.dialog-actions', null, cancel, submit));
    const dlg = /** @type {HTMLDialogElement} */ (h('dialog' + (opts.wide ? '.wide' : ''), null, form));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      if (opts.onSubmit) {
        submit.setAttribute('disabled', '');
        try {
          const result = await opts.onSubmit(data, form);
          dlg.close();
          resolve(result ?? data);
        } catch (ex) {
          err.textContent = /** @type {Error} */ (ex).message;
        } finally {
          submit.removeAttribute('disabled');
        }
      } else {
        dlg.close();
        resolve(data);
      }
    });
    dlg.addEventListener('cancel', () => resolve(null));
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** A labelled form field. @param {string} label @param {HTMLElement} input @param {string} [hint] */
export function field(label, input, hint) {
  return h('label.field', null, h('span.field-label', null, label), input, hint ? h('small.hint', null, hint) : null);
}

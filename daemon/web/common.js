// orderd pages: what every page shares — API calls, live streams (SSE over fetch, resumed
// with Last-Event-ID), the staff sign-in, and small DOM and formatting helpers.
'use strict';

const O = (() => {
  const boot = JSON.parse(document.getElementById('boot').textContent);

  /** Builds an element: el('button', {class: 'x', onclick: f}, 'text', child…). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  /** Minor units as text with the currency's decimal places (`[billing] minor_digits`). */
  function money(minor, currency) {
    const d = boot.minor_digits ?? 2;
    return (minor / 10 ** d).toFixed(d) + ' ' + (currency || boot.currency);
  }

  /** Text typed as an amount (`12.50`) in minor units, or NaN. */
  function toMinor(text) {
    const d = boot.minor_digits ?? 2;
    const v = Number(String(text).replace(',', '.'));
    return Number.isFinite(v) ? Math.round(v * 10 ** d) : NaN;
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  /** Calls the API; resolves to {status, data, seq}. Never throws on an HTTP status. */
  async function api(method, path, body, headers) {
    const h = Object.assign({}, headers || {});
    const token = staffToken();
    if (token && !('authorization' in h)) h.authorization = 'Bearer ' + token;
    if (!h.authorization) delete h.authorization;
    if (body !== undefined) h['content-type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { status: 0, data: { error: { code: 'offline', message: 'The box cannot be reached. Check the Wi-Fi and try again.' } } };
    }
    let data = null;
    const type = resp.headers.get('content-type') || '';
    if (type.includes('json')) data = await resp.json().catch(() => null);
    else data = await resp.text();
    if (resp.status === 401 && token && !(headers && 'authorization' in headers)) {
      signOut();
    }
    return { status: resp.status, data, seq: Number(resp.headers.get('x-event-seq') || 0) };
  }

  function errorText(r) {
    return (r.data && r.data.error && r.data.error.message) || ('Something went wrong (' + r.status + ')');
  }

  /**
   * Follows a live stream. `snapshot()` loads the state and resolves to the seq it reflects;
   * events after it arrive through `onEvent(type, data, id)`. Reconnects by itself (resuming
   * after the last id), reloads the snapshot on `reset`, and reports `onState('live'|'down')`.
   */
  function live(path, { snapshot, onEvent, onState, headers }) {
    let last = 0;
    let synced = false;
    let stopped = false;
    let ctrl = null;
    let delay = 1000;
    const idleLimit = (boot.heartbeat_secs || 15) * 3000;

    async function run() {
      while (!stopped) {
        try {
          if (!synced) { last = await snapshot(); synced = true; }
          await connect();
          delay = 1000;
        } catch (e) {
          // fall through to the retry below
        }
        if (stopped) return;
        if (onState) onState('down');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 15000);
      }
    }

    async function connect() {
      ctrl = new AbortController();
      const h = Object.assign({ accept: 'text/event-stream' }, headers || {});
      const token = staffToken();
      if (token && !('authorization' in h)) h.authorization = 'Bearer ' + token;
      if (!h.authorization) delete h.authorization;
      h['last-event-id'] = String(last);
      const resp = await fetch(path, { headers: h, signal: ctrl.signal, cache: 'no-store' });
      if (resp.status === 401 && token) { signOut(); stopped = true; return; }
      if (!resp.ok || !resp.body) throw new Error('stream ' + resp.status);
      if (onState) onState('live');
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      let idle = setTimeout(() => ctrl.abort(), idleLimit);
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          clearTimeout(idle);
          idle = setTimeout(() => ctrl.abort(), idleLimit);
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = { id: null, type: 'message', data: '' };
            for (const line of chunk.split('\n')) {
              if (line.startsWith(':')) continue;
              const c = line.indexOf(':');
              const k = c < 0 ? line : line.slice(0, c);
              const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
              if (k === 'id') ev.id = v;
              else if (k === 'event') ev.type = v;
              else if (k === 'data') ev.data += v;
            }
            if (!ev.data) continue;
            const data = JSON.parse(ev.data);
            if (ev.type === 'reset') { synced = false; return; }
            if (ev.type === 'end') {
              if (data.resume_after) last = Math.max(last, data.resume_after);
              return;
            }
            if (ev.type === 'hello') continue;
            if (ev.id) last = Number(ev.id);
            onEvent(ev.type, data, last);
          }
        }
      } finally {
        clearTimeout(idle);
      }
    }

    run();
    return { stop() { stopped = true; if (ctrl) ctrl.abort(); } };
  }

  // Staff sign-in: the session token lives in this browser only (localStorage, 12 h).
  function staffToken() {
    // The customer page never sends a staff session, even on a waiter's phone.
    if (boot.page === 'customer') return null;
    return localStorage.getItem('orderd.staff.token');
  }
  function staffRole() {
    return localStorage.getItem('orderd.staff.role');
  }
  function signOut() {
    localStorage.removeItem('orderd.staff.token');
    localStorage.removeItem('orderd.staff.role');
  }

  /** Resolves once a staff member is signed in (showing the sign-in form if needed). */
  function signIn(app, title) {
    return new Promise((resolve) => {
      if (staffToken()) { resolve(); return; }
      const msg = el('div', { role: 'alert' });
      const user = el('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
      const pass = el('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
      const form = el('form', {
        onsubmit: async (e) => {
          e.preventDefault();
          msg.replaceChildren();
          const r = await api('POST', '/api/v1/auth/login', { username: user.value.trim(), password: pass.value }, { authorization: '' });
          if (r.status !== 200) { msg.replaceChildren(el('p', { class: 'error' }, errorText(r))); return; }
          localStorage.setItem('orderd.staff.token', r.data.token);
          localStorage.setItem('orderd.staff.role', r.data.role || '');
          resolve();
        },
      },
      el('h1', {}, title + ' — sign in'),
      el('label', { for: 'login-user' }, 'Username'), user,
      el('label', { for: 'login-pass' }, 'Password'), pass,
      el('p', {}, el('button', { type: 'submit' }, 'Sign in')), msg);
      app.replaceChildren(form);
      user.focus();
    });
  }

  function banner(text) {
    const b = document.getElementById('banner');
    b.hidden = !text;
    b.textContent = text || '';
  }

  function nav() {
    return el('nav', {}, el('a', { href: '/kitchen' }, 'Kitchen'), el('a', { href: '/staff' }, 'Take orders'),
      el('a', { href: '/admin' }, 'Admin'),
      el('button', { class: 'secondary', onclick: async () => { await api('POST', '/api/v1/auth/logout'); signOut(); location.reload(); } }, 'Sign out'));
  }

  /**
   * Opens `dialog` to choose an item's options (min/max per group), quantity and note;
   * `onAdd({item_id, quantity, modifiers, note})` gets the line. `t` translates the labels.
   */
  function optionsDialog(dialog, item, t, onAdd) {
    const groups = item.modifier_groups || [];
    const qty = el('input', { id: 'dlg-qty', type: 'number', min: 1, max: boot.max_quantity, value: 1, inputmode: 'numeric' });
    const note = el('input', { id: 'dlg-note', maxlength: boot.max_text });
    const err = el('div', { role: 'alert' });
    // "Choose 1" for a pick-exactly-N group, "Choose at least N" only when more may be picked.
    const rule = (g) => (g.min && g.min === g.max ? ' (' + t('choose') + ' ' + g.min + ')' : g.min ? ' (' + t('min') + ' ' + g.min + ')' : '');
    const sets = groups.map((g) => el('fieldset', {}, el('legend', {}, g.name + rule(g)),
      g.options.map((o) => el('label', { class: 'inline' },
        el('input', { type: g.max === 1 ? 'radio' : 'checkbox', name: 'g-' + g.id, value: o.id }),
        o.name + (o.price_delta ? ' (+' + money(o.price_delta) + ')' : '')))));
    const form = el('form', {
      onsubmit: (e) => {
        e.preventDefault();
        const mods = [];
        for (let k = 0; k < groups.length; k++) {
          const g = groups[k];
          const picked = Array.from(sets[k].querySelectorAll('input:checked')).map((x) => x.value);
          if (picked.length < g.min) { err.replaceChildren(el('p', { class: 'error' }, g.name + ':' + rule(g).replace(/[()]/g, ''))); return; }
          if (picked.length > g.max) { err.replaceChildren(el('p', { class: 'error' }, g.name + ': ' + t('max') + ' ' + g.max)); return; }
          mods.push(...picked);
        }
        const q = Math.max(1, Math.min(boot.max_quantity || 99, Math.floor(Number(qty.value)) || 1));
        dialog.close();
        onAdd({ item_id: item.id, quantity: q, modifiers: mods, note: note.value.trim() || null });
      },
    },
    el('h2', { id: 'dlg-h' }, item.name), sets,
    el('label', { for: 'dlg-qty' }, t('qty')), qty,
    el('label', { for: 'dlg-note' }, t('note')), note, err,
    el('p', { class: 'row' }, el('button', { type: 'submit', id: 'dlg-add' }, t('add')),
      el('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, t('cancel'))));
    dialog.replaceChildren(form);
    dialog.showModal();
  }

  /** Plays a short alert tone; false when the browser still blocks sound. */
  let audio = null;
  function unlockSound() {
    if (!audio) { try { audio = new AudioContext(); } catch (e) { return false; } }
    if (audio.state !== 'running') audio.resume();
    return audio.state === 'running';
  }
  function soundOn() { return !!audio && audio.state === 'running'; }
  function beep() {
    if (!soundOn()) return false;
    for (const [at, f] of [[0, 880], [0.25, 1175]]) {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.frequency.value = f;
      g.gain.setValueAtTime(0.3, audio.currentTime + at);
      g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + at + 0.2);
      o.connect(g).connect(audio.destination);
      o.start(audio.currentTime + at);
      o.stop(audio.currentTime + at + 0.22);
    }
    return true;
  }

  /** All pages of a list endpoint (`data`), and the smallest `X-Event-Seq` among them. */
  async function all(path) {
    const out = [];
    let seq = Infinity;
    for (let page = 1; page < 100; page++) {
      const r = await api('GET', path + (path.includes('?') ? '&' : '?') + 'limit=200&page=' + page);
      if (r.status !== 200) throw new Error(path + ' ' + r.status);
      seq = Math.min(seq, r.seq || 0);
      out.push(...r.data.data);
      if (r.data.data.length < 200) break;
    }
    return { data: out, seq: seq === Infinity ? 0 : seq };
  }

  /**
   * Shows a refused form's problem at its field: `fields` maps the API's field names to the
   * inputs; the field the error names gets `aria-invalid`, a message under it, and the focus.
   * Clears what an earlier submit showed. Returns whether a field was marked.
   */
  function fieldError(fields, r) {
    for (const input of Object.values(fields)) {
      input.removeAttribute('aria-invalid');
      const old = input.id && document.getElementById(input.id + '-error');
      if (old) old.remove();
    }
    const err = r && r.data && r.data.error;
    const name = err && err.details && err.details.field;
    const input = name && fields[String(name).split(/[.[]/)[0]];
    if (!input) return false;
    input.setAttribute('aria-invalid', 'true');
    const note = el('p', { class: 'field-error', id: input.id + '-error', role: 'alert' }, err.message);
    input.setAttribute('aria-describedby', note.id);
    input.insertAdjacentElement('afterend', note);
    input.focus();
    return true;
  }

  return { fieldError, optionsDialog, unlockSound, soundOn, beep, all, boot, el, money, toMinor, uuid, api, errorText, live, signIn, staffToken, staffRole, signOut, banner, nav };
})();

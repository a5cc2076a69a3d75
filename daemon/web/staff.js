// orderd staff order entry (/staff): a waiter picks a table or takeaway, adds items with
// modifiers and notes, sends the order to the kitchen (source: staff), and sees the table's
// open orders with their status live; then settles the bill: the table's check, guests,
// discounts, comps and voids (a manager's PIN for staff), split evenly or by lines, transfer
// and merge, the printed bill, and payments (split tender, tips, cash change).
'use strict';
(async () => {
  const { el, api, live, money } = O;
  const app = document.getElementById('app');
  document.body.classList.add('staff');
  await O.signIn(app, 'Take orders');
  const t = (k) => ({ choose: 'Choose', min: 'Choose at least', max: 'Choose at most', qty: 'Quantity', note: 'Note for the kitchen', add: 'Add', cancel: 'Cancel' })[k] || k;
  const orders = new Map();
  let tables = [];
  let menu = null;
  let target = localStorage.getItem('orderd.staff.target') || '';
  let cart = [];
  let idemKey = null;
  let sending = false;
  const dialog = el('dialog', { 'aria-labelledby': 'dlg-h' });
  const msg = el('div', { 'aria-live': 'polite' });
  const pick = el('select', { id: 'target', onchange: (e) => { target = e.target.value; localStorage.setItem('orderd.staff.target', target); shown = null; renderOpen(); loadBill(); } });
  const name = el('input', { id: 'cust-name', maxlength: O.boot.max_text, autocomplete: 'off' });
  // The guest's allergies: shown large to every station, which must acknowledge it.
  const allergy = el('input', { id: 'allergy', maxlength: O.boot.max_text, autocomplete: 'off', oninput: () => { idemKey = null; } });
  const menuBox = el('section', {});
  const cartBox = el('section', { class: 'cart' });
  const openBox = el('section', { 'aria-live': 'polite' });
  const tablesBox = el('section', { id: 'tables' });
  // The send button within the thumb's reach while items wait in the new order.
  const sendBar = el('button', { id: 'send-bar', class: 'send-bar', hidden: true, onclick: () => send() });
  const billBox = el('section', { id: 'bill', 'aria-live': 'polite' });
  app.replaceChildren(O.nav(), el('h1', {}, 'Take an order'), tablesBox,
    el('div', { class: 'row' }, el('div', {}, el('label', { for: 'target' }, 'Table'), pick),
      el('div', {}, el('label', { for: 'cust-name' }, 'Name (takeaway, optional)'), name),
      el('div', {}, el('label', { for: 'allergy' }, 'Allergies (for the kitchen)'), allergy)),
    msg, billBox, cartBox, openBox, menuBox, dialog, sendBar);

  function renderPick() {
    pick.replaceChildren(el('option', { value: '' }, '— choose —'), el('option', { value: 'takeaway', selected: target === 'takeaway' }, 'Takeaway'),
      ...tables.map((tb) => el('option', { value: tb.id, selected: tb.id === target }, tb.label + (tb.zone ? ' (' + tb.zone + ')' : ''))));
  }

  function renderMenu() {
    menuBox.replaceChildren(el('h2', {}, 'Menu'), ...menu.categories.flatMap((c) => [el('h3', {}, c.name),
      ...c.items.map((i) => el('div', { class: 'item' },
        el('div', {}, el('div', { class: 'name' }, i.name), i.allergens.length ? el('div', { class: 'allergens' }, 'Contains: ' + i.allergens.join(', ')) : null),
        el('div', { class: 'row' }, el('span', { class: 'price' }, money(i.price)),
          el('button', { 'data-add': i.id, disabled: !i.available, onclick: () => O.optionsDialog(dialog, i, t, (l) => { cart.push(l); idemKey = null; renderCart(); }) },
            i.available ? 'Add' : 'Sold out'))))]));
  }

  function itemOf(id) {
    for (const c of menu.categories) for (const i of c.items) if (i.id === id) return i;
    return null;
  }

  function renderCart() {
    const lines = cart.map((l, n) => {
      const i = itemOf(l.item_id);
      const mods = i ? i.modifier_groups.flatMap((g) => g.options.filter((o) => l.modifiers.includes(o.id)).map((o) => o.name)) : [];
      return el('div', { class: 'item' }, el('div', {}, el('strong', {}, l.quantity + ' × ' + (i ? i.name : l.item_id)),
        mods.length ? el('div', { class: 'muted' }, mods.join(', ')) : null, l.note ? el('div', { class: 'muted' }, l.note) : null),
      el('button', { class: 'secondary', onclick: () => { cart.splice(n, 1); idemKey = null; renderCart(); } }, 'Remove'));
    });
    const count = cart.reduce((n, l) => n + l.quantity, 0);
    sendBar.hidden = !count || !target;
    sendBar.disabled = sending;
    sendBar.textContent = sending ? 'Sending…' : 'Send ' + count + (count === 1 ? ' item' : ' items') + ' to the kitchen';
    cartBox.replaceChildren(el('h2', {}, 'New order'), ...(lines.length ? lines : [el('p', { class: 'muted' }, 'Add items from the menu below.')]),
      el('button', { id: 'send', disabled: !cart.length || !target || sending, onclick: send }, sending ? 'Sending…' : 'Send to kitchen'));
  }

  async function send() {
    if (sending || !cart.length || !target) return;
    sending = true;
    renderCart();
    if (!idemKey) idemKey = O.uuid();
    const body = target === 'takeaway'
      ? { type: 'takeaway', customer_name: name.value.trim() || null, items: cart }
      : { type: 'dine_in', table_id: target, items: cart };
    body.allergy = allergy.value.trim() || null;
    const r = await api('POST', '/api/v1/orders', body, { 'idempotency-key': idemKey });
    sending = false;
    if (r.status === 201) {
      cart = [];
      idemKey = null;
      allergy.value = '';
      orders.set(r.data.id, r.data);
      msg.replaceChildren(el('p', { class: 'notice' }, 'Sent: ' + r.data.number));
      renderOpen();
    } else {
      msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, O.errorText(r)));
    }
    renderCart();
  }

  const SERVE = { dine_in: 'served', takeaway: 'picked_up' };
  function renderOpen() {
    const mine = [...orders.values()].filter((o) => (target === 'takeaway' ? o.type === 'takeaway' : o.table_id === target));
    openBox.replaceChildren(el('h2', {}, 'Open orders here'), mine.length ? el('table', {}, el('tbody', {}, mine.map((o) => el('tr', { 'data-order': o.id },
      el('td', {}, o.number), el('td', {}, o.items.map((l) => l.quantity + '× ' + l.name).join(', '),
        o.allergy ? el('div', { class: 'allergens', 'data-allergy': o.id }, 'Allergy: ' + o.allergy.note) : null),
      el('td', {}, el('span', { class: 'status ' + o.status, 'data-status': o.status }, o.status)),
      el('td', {}, o.status === 'ready' && SERVE[o.type] ? el('button', { onclick: () => serve(o) }, 'Mark ' + SERVE[o.type].replace('_', ' ')) : null,
        o.type !== 'dine_in' ? el('button', { class: 'secondary', 'data-bill-order': o.id, onclick: () => openOrderCheck(o.id) }, 'Bill') : null))))) : el('p', { class: 'muted' }, 'None.'));
  }

  // ----- the bill -----
  let billing = { payment_methods: ['cash', 'card'], reasons: [], cash_rounding: 0 };
  let statuses = [];
  let shown = null; // the check id shown for a takeaway order
  const admin = O.staffRole() === 'admin';
  const STATUS = { free: 'free', occupied: 'occupied', bill_printed: 'bill printed', paid: 'paid' };

  async function loadTables() {
    const r = await api('GET', '/api/v1/tables/status');
    if (r.status !== 200) return;
    statuses = r.data.data;
    // Big tiles, coloured by status, easy to hit with a thumb.
    tablesBox.replaceChildren(el('h2', {}, 'Tables'), el('div', { class: 'table-tiles' }, statuses.map((tb) => el('button', {
      class: 'table-chip ' + tb.status + (tb.id === target ? ' chosen' : '') + (tb.bill_requested ? ' asks' : ''), 'data-table-status': tb.id, 'data-status': tb.status,
      'aria-pressed': tb.id === target ? 'true' : 'false',
      onclick: () => { target = tb.id; localStorage.setItem('orderd.staff.target', target); shown = null; renderPick(); renderOpen(); loadBill(); loadTables(); } },
      el('span', { class: 'label' }, tb.label), el('span', { class: 'state' }, STATUS[tb.status]),
      tb.status === 'occupied' || tb.status === 'bill_printed' ? el('span', { class: 'amount' }, money(tb.balance) + ' · ' + tb.minutes_seated + ' min') : null,
      tb.bill_requested ? el('span', { class: 'asks' }, 'asks for the bill') : null))));
  }

  async function openOrderCheck(orderId) {
    const r = await api('POST', '/api/v1/orders/' + encodeURIComponent(orderId) + '/check');
    if (r.status !== 200) return msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, O.errorText(r)));
    shown = r.data.id;
    loadBill();
  }

  // Live events and the waiter's own actions both reload the bill. Only the newest load draws, and
  // it redraws only when a check changed, so a payment being typed is not wiped by an echo.
  let billLoads = 0;
  let billDrawn = '';
  async function loadBill() {
    const mine = ++billLoads;
    await loadTables();
    let ids = [];
    if (shown) ids = [shown];
    else { const tb = statuses.find((x) => x.id === target); if (tb) ids = tb.checks; }
    const checks = [];
    for (const id of ids) { const r = await api('GET', '/api/v1/checks/' + id); if (r.status === 200) checks.push(r.data); }
    if (mine !== billLoads) return;
    const drawn = JSON.stringify([target, shown, checks, statuses.map((x) => [x.id, x.label])]);
    if (drawn === billDrawn) return;
    billDrawn = drawn;
    billBox.replaceChildren(...(checks.length ? [el('h2', {}, 'Bill')] : []), ...checks.map((c) => renderCheck(c, checks)));
  }

  function approvalFields() {
    if (admin) return { fields: null, value: () => undefined };
    const manager = el('input', { name: 'manager', autocomplete: 'off', 'aria-label': 'Manager' });
    const pin = el('input', { name: 'pin', type: 'password', inputmode: 'numeric', autocomplete: 'off', 'aria-label': 'Manager PIN', maxlength: 8 });
    return { fields: el('fieldset', {}, el('legend', {}, "Manager's approval"), el('label', {}, 'Manager', manager), el('label', {}, 'PIN', pin)),
      value: () => ({ manager: manager.value.trim(), pin: pin.value.trim() }) };
  }

  function reasonField() {
    const list = 'reasons-' + O.uuid();
    const input = el('input', { name: 'reason', list, required: true, maxlength: 200, 'aria-label': 'Reason' });
    return { field: el('label', {}, 'Reason', input, el('datalist', { id: list }, billing.reasons.map((x) => el('option', { value: x })))), value: () => input.value.trim() };
  }

  /** A small form in the dialog; `build` gives its fields and the body to send. */
  function ask(title, build, send) {
    const err = el('div', { role: 'alert' });
    const { fields, body } = build();
    const form = el('form', { method: 'dialog', onsubmit: async (e) => {
      e.preventDefault();
      const r = await send(body());
      if (r.status >= 200 && r.status < 300) { dialog.close(); loadBill(); } else err.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
    } }, el('h2', { id: 'dlg-h' }, title), fields, err,
    el('div', { class: 'row' }, el('button', { type: 'submit' }, 'OK'), el('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel')));
    dialog.replaceChildren(form);
    dialog.showModal();
  }

  function adjust(c, kind, line) {
    const path = '/api/v1/checks/' + c.id + (kind === 'void' ? '/voids' : '/discounts');
    ask(kind === 'void' ? 'Void ' + line.name : kind === 'comp' ? 'Comp ' + line.name : line ? 'Discount on ' + line.name : 'Discount on the check', () => {
      const reason = reasonField();
      const appr = approvalFields();
      const pct = el('input', { name: 'percent', type: 'number', min: 0, max: 100, step: '0.01', 'aria-label': 'Percent off' });
      const amt = el('input', { name: 'amount', inputmode: 'decimal', 'aria-label': 'Amount off' });
      const qty = el('input', { name: 'quantity', type: 'number', min: 1, max: line ? line.quantity : 1, value: 1, 'aria-label': 'Units to void' });
      const fields = [kind === 'discount' ? el('div', { class: 'row' }, el('label', {}, 'Percent', pct), el('label', {}, 'or amount', amt)) : null,
        kind === 'void' ? el('label', {}, 'Units', qty) : null, reason.field, appr.fields];
      return { fields, body: () => {
        const b = { reason: reason.value(), approval: appr.value() };
        if (line) b.line = line.id;
        if (kind === 'comp') b.comp = true;
        if (kind === 'void') b.quantity = Number(qty.value);
        if (kind === 'discount') { if (pct.value !== '') b.percent_bp = Math.round(Number(pct.value) * 100); else b.amount = O.toMinor(amt.value); }
        return b;
      } };
    }, (b) => api('POST', path, b));
  }

  function renderCheck(c, all) {
    const paying = el('form', { class: 'row', 'data-pay': c.id });
    const method = el('select', { name: 'method', 'aria-label': 'Method' }, billing.payment_methods.map((m) => el('option', { value: m }, m)));
    const amount = el('input', { name: 'amount', inputmode: 'decimal', size: 8, 'aria-label': 'Amount', value: (c.balance / 10 ** (O.boot.minor_digits ?? 2)).toFixed(O.boot.minor_digits ?? 2) });
    const tip = el('input', { name: 'tip', inputmode: 'decimal', size: 6, 'aria-label': 'Tip', placeholder: 'tip' });
    const tendered = el('input', { name: 'tendered', inputmode: 'decimal', size: 8, 'aria-label': 'Cash tendered', placeholder: 'tendered' });
    let key = O.uuid();
    for (const x of [method, amount, tip, tendered]) x.addEventListener('input', () => { key = O.uuid(); });
    method.addEventListener('change', () => {
      key = O.uuid();
      tendered.hidden = method.value !== 'cash';
      if (method.value === 'cash' && O.toMinor(amount.value) === c.balance) amount.value = (c.cash_due / 10 ** (O.boot.minor_digits ?? 2)).toFixed(O.boot.minor_digits ?? 2);
    });
    tendered.hidden = method.value !== 'cash';
    paying.replaceChildren(el('label', { class: 'inline' }, 'Pay', method), amount, tip, tendered, el('button', { type: 'submit', 'data-pay-button': c.id }, 'Record payment'));
    paying.addEventListener('submit', async (e) => {
      e.preventDefault();
      const b = { method: method.value, amount: O.toMinor(amount.value) };
      if (tip.value) b.tip = O.toMinor(tip.value);
      if (method.value === 'cash' && tendered.value) b.tendered = O.toMinor(tendered.value);
      const r = await api('POST', '/api/v1/checks/' + c.id + '/payments', b, { 'idempotency-key': key });
      if (r.status !== 201) return msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, O.errorText(r)));
      const p = r.data.payment;
      msg.replaceChildren(el('p', { class: 'notice', 'data-paid': c.id }, 'Paid ' + money(p.amount + p.rounding) + ' by ' + p.method +
        (p.change ? ' — change ' + money(p.change) : '') + (r.data.check.state === 'closed' ? ' — check ' + c.number + ' settled' : ' — ' + money(r.data.check.balance) + ' to pay')));
      loadBill();
    });
    const others = all.filter((x) => x.id !== c.id);
    const parts = el('input', { type: 'number', min: 2, max: 50, value: 2, size: 3, 'aria-label': 'Parts' });
    const splitOut = el('span', { class: 'muted', 'data-split': c.id });
    const moveTo = el('select', { 'aria-label': 'Move to table' }, statuses.filter((x) => x.id !== c.table_id).map((x) => el('option', { value: x.id }, x.label)));
    return el('article', { class: 'cart', 'data-check': c.id, 'data-state': c.state },
      el('h3', {}, 'Check ' + c.number + (c.table_label ? ' · ' + c.table_label : '') + ' · ' + c.opened_by),
      el('div', { class: 'table-wrap' }, el('table', {}, el('tbody', {}, c.lines.map((l) => el('tr', { 'data-line': l.id },
        el('td', {}, l.quantity + '× ' + l.name + (l.voided ? ' (' + l.voided + ' voided)' : '')),
        el('td', { class: 'price' }, money(l.net) + (l.discount + l.comp ? ' (−' + money(l.discount + l.comp) + ')' : '')),
        el('td', {}, l.quantity > 0 ? el('div', { class: 'row' },
          el('button', { class: 'secondary', 'data-discount-line': l.id, onclick: () => adjust(c, 'discount', l) }, 'Discount'),
          el('button', { class: 'secondary', 'data-comp-line': l.id, onclick: () => adjust(c, 'comp', l) }, 'Comp'),
          el('button', { class: 'secondary', 'data-void-line': l.id, onclick: () => adjust(c, 'void', l) }, 'Void')) : null)))))),
      el('p', {}, 'Subtotal ' + money(c.subtotal) + (c.discounts + c.comps ? ' · discounts ' + money(c.discounts + c.comps) : '') +
        ' · ', el('strong', { 'data-total': c.id }, 'Total ' + money(c.total)), ' · paid ' + money(c.paid) + ' · ',
        el('strong', { 'data-balance': c.id }, 'To pay ' + money(c.balance)), c.tips ? ' · tips ' + money(c.tips) : ''),
      el('p', { class: 'muted' }, c.vat.map((v) => 'VAT ' + v.rate_bp / 100 + '% ' + money(v.vat)).join(' · ')),
      el('div', { class: 'row' },
        el('label', { class: 'inline' }, 'Guests', el('input', { type: 'number', min: 0, max: 999, value: c.covers, size: 3, 'aria-label': 'Guests',
          onchange: async (e) => { const r = await api('POST', '/api/v1/checks/' + c.id + '/covers', { covers: Number(e.target.value) }); if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r))); } })),
        el('button', { 'data-print': c.id, onclick: async () => { const r = await api('POST', '/api/v1/checks/' + c.id + '/print', {}); msg.replaceChildren(el('p', { class: r.status === 202 ? 'notice' : 'error' }, r.status === 202 ? 'Bill sent to the printer' : O.errorText(r))); loadBill(); } }, 'Print bill'),
        el('button', { class: 'secondary', onclick: () => adjust(c, 'discount', null) }, 'Discount check')),
      paying,
      el('div', { class: 'row' }, el('label', { class: 'inline' }, 'Split evenly', parts),
        el('button', { class: 'secondary', 'data-split-button': c.id, onclick: async () => {
          const r = await api('GET', '/api/v1/checks/' + c.id + '/split?parts=' + Number(parts.value));
          if (r.status !== 200) return msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
          splitOut.textContent = r.data.parts.map((x) => money(x)).join(' + ');
          amount.value = (r.data.parts[0] / 10 ** (O.boot.minor_digits ?? 2)).toFixed(O.boot.minor_digits ?? 2);
          key = O.uuid();
        } }, 'Show parts'), splitOut),
      el('div', { class: 'row' }, el('label', { class: 'inline' }, 'Move to', moveTo),
        el('button', { class: 'secondary', onclick: async () => { const r = await api('POST', '/api/v1/checks/' + c.id + '/transfer', { table_id: moveTo.value }); if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r))); else { target = r.data.table_id || target; renderPick(); loadBill(); } } }, 'Transfer'),
        ...others.map((o) => el('button', { class: 'secondary', onclick: async () => { const r = await api('POST', '/api/v1/checks/' + c.id + '/merge', { check_id: o.id }); if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r))); loadBill(); } }, 'Merge check ' + o.number))));
  }

  async function serve(o) {
    const r = await api('POST', '/api/v1/orders/' + encodeURIComponent(o.id) + '/status', { status: SERVE[o.type] });
    if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
  }

  async function refresh(id) {
    const r = await api('GET', '/api/v1/orders/' + encodeURIComponent(id));
    if (r.status === 200) { orders.set(id, r.data); renderOpen(); }
  }

  let billTimer = null;
  live('/api/v1/events', {
    snapshot: async () => {
      const [act, m, tb, bs] = await Promise.all([O.all('/api/v1/orders/active'), api('GET', '/api/v1/menu'), api('GET', '/api/v1/tables'), api('GET', '/api/v1/billing')]);
      if (bs.status === 200) billing = bs.data;
      orders.clear();
      for (const o of act.data) orders.set(o.id, o);
      menu = m.data;
      tables = tb.status === 200 ? tb.data.data : [];
      renderPick();
      renderMenu();
      renderCart();
      renderOpen();
      loadBill();
      return Math.min(act.seq, m.seq || act.seq);
    },
    onEvent: (type, e) => {
      const d = e.data;
      if (type === 'order_placed') {
        orders.set(d.order.id, d.order);
        if (d.order.table_id) { clearTimeout(billTimer); billTimer = setTimeout(loadBill, 150); }
      }
      else if (type === 'status_changed') {
        const o = orders.get(d.order_id);
        if (o) o.status = d.to;
        if (['served', 'picked_up', 'delivered', 'cancelled'].includes(d.to)) orders.delete(d.order_id);
      } else if (type === 'lines_changed') refresh(d.order_id);
      else if (['payment_recorded', 'check_adjusted', 'check_closed', 'check_moved', 'bill_requested', 'bill_printed', 'lines_edited'].includes(type)) {
        clearTimeout(billTimer);
        billTimer = setTimeout(loadBill, 150);
      } else if (type === 'availability_changed' || type === 'sold_out' || type === 'menu_replaced') {
        api('GET', '/api/v1/menu').then((r) => { if (r.status === 200) { menu = r.data; renderMenu(); } });
      }
      renderOpen();
    },
    onState: (s) => O.banner(s === 'down' ? 'Connection to the box lost — reconnecting…' : ''),
  });
})();

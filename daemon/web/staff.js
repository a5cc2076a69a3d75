// orderd staff order entry (/staff): a waiter picks a table or takeaway, adds items with
// modifiers and notes, sends the order to the kitchen (source: staff), and sees the table's
// open orders with their status live.
'use strict';
(async () => {
  const { el, api, live, money } = O;
  const app = document.getElementById('app');
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
  const pick = el('select', { id: 'target', onchange: (e) => { target = e.target.value; localStorage.setItem('orderd.staff.target', target); renderOpen(); } });
  const name = el('input', { id: 'cust-name', maxlength: O.boot.max_text, autocomplete: 'off' });
  const menuBox = el('section', {});
  const cartBox = el('section', { class: 'cart' });
  const openBox = el('section', { 'aria-live': 'polite' });
  app.replaceChildren(O.nav(), el('h1', {}, 'Take an order'),
    el('div', { class: 'row' }, el('div', {}, el('label', { for: 'target' }, 'Table'), pick),
      el('div', {}, el('label', { for: 'cust-name' }, 'Name (takeaway, optional)'), name)),
    msg, cartBox, openBox, menuBox, dialog);

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
    const r = await api('POST', '/api/v1/orders', body, { 'idempotency-key': idemKey });
    sending = false;
    if (r.status === 201) {
      cart = [];
      idemKey = null;
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
      el('td', {}, o.number), el('td', {}, o.items.map((l) => l.quantity + '× ' + l.name).join(', ')),
      el('td', {}, el('span', { class: 'status ' + o.status, 'data-status': o.status }, o.status)),
      el('td', {}, o.status === 'ready' && SERVE[o.type] ? el('button', { onclick: () => serve(o) }, 'Mark ' + SERVE[o.type].replace('_', ' ')) : null))))) : el('p', { class: 'muted' }, 'None.'));
  }

  async function serve(o) {
    const r = await api('POST', '/api/v1/orders/' + encodeURIComponent(o.id) + '/status', { status: SERVE[o.type] });
    if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
  }

  async function refresh(id) {
    const r = await api('GET', '/api/v1/orders/' + encodeURIComponent(id));
    if (r.status === 200) { orders.set(id, r.data); renderOpen(); }
  }

  live('/api/v1/events', {
    snapshot: async () => {
      const [act, m, tb] = await Promise.all([O.all('/api/v1/orders/active'), api('GET', '/api/v1/menu'), api('GET', '/api/v1/tables')]);
      orders.clear();
      for (const o of act.data) orders.set(o.id, o);
      menu = m.data;
      tables = tb.status === 200 ? tb.data.data : [];
      renderPick();
      renderMenu();
      renderCart();
      renderOpen();
      return Math.min(act.seq, m.seq || act.seq);
    },
    onEvent: (type, e) => {
      const d = e.data;
      if (type === 'order_placed') orders.set(d.order.id, d.order);
      else if (type === 'status_changed') {
        const o = orders.get(d.order_id);
        if (o) o.status = d.to;
        if (['served', 'picked_up', 'delivered', 'cancelled'].includes(d.to)) orders.delete(d.order_id);
      } else if (type === 'lines_changed') refresh(d.order_id);
      else if (type === 'availability_changed' || type === 'sold_out' || type === 'menu_replaced') {
        api('GET', '/api/v1/menu').then((r) => { if (r.status === 200) { menu = r.data; renderMenu(); } });
      }
      renderOpen();
    },
    onState: (s) => O.banner(s === 'down' ? 'Connection to the box lost — reconnecting…' : ''),
  });
})();

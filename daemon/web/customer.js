// orderd customer page (/t/{token}): the restaurant's name, category tabs that stay in view, the
// menu in the guest's language with allergens as marked labels and prices in the locale's
// format, a cart bar with count and total that stays in view, live
// sold-out items, modifiers, a cart, phone verification when the box requires it, one order per
// tap (idempotency key), live status of this phone's own orders only, and the table's running
// bill with a button that asks the waiter for it.
'use strict';
(() => {
  const { boot, el, api, live } = O;
  const app = document.getElementById('app');
  document.body.classList.add('guest');
  const T = {
    en: {
      lang: 'Language', table: 'Table', menu: 'Menu', add: 'Add', soldout: 'Sold out', contains: 'Contains',
      cart: 'Your order', empty: 'Nothing in your order yet.', place: 'Place order', placing: 'Sending…', total: 'Total',
      remove: 'Remove', note: 'Note for the kitchen (optional)', allergy: 'Allergies or intolerances (optional; the kitchen confirms it has read them)', qty: 'Quantity', cancel: 'Cancel', choose: 'Choose',
      min: 'Choose at least', max: 'Choose at most', mine: 'Your orders', placed_ok: 'Thank you! Your order was sent to the kitchen.',
      invalid_title: 'This QR code is no longer valid',
      invalid_body: 'The code was changed or this link is old. Please scan the code on your table again, or ask a member of staff.',
      verify: 'Verify your phone', phone: 'Phone number (international, e.g. +355691234567)', channel: 'Send the code by',
      send_code: 'Send code', code: 'The 6-digit code', confirm: 'Confirm and place order', code_sent: 'We sent you a code.',
      open_telegram: 'Open Telegram to get your code', unavailable: 'Ordering from the table is not available right now. Please ask a member of staff.',
      status_placed: 'Received', status_accepted: 'Accepted', status_preparing: 'Being prepared', status_ready: 'Ready',
      status_served: 'Served', status_picked_up: 'Picked up', status_delivered: 'Delivered', status_cancelled: 'Cancelled', status_out_for_delivery: 'On its way', live: 'Live updates paused — reconnecting…',
      increase: 'One more', decrease: 'One less', view_cart: 'View your order', categories: 'Categories',
      bill: 'Your bill', bill_total: 'Total', bill_paid: 'Paid', bill_due: 'To pay', vat: 'VAT included',
      ask_bill: 'Ask for the bill', bill_asked: 'The waiter is on the way with your bill.', refresh: 'Refresh',
    },
    sq: {
      lang: 'Gjuha', table: 'Tavolina', menu: 'Menuja', add: 'Shto', soldout: 'Mbaroi', contains: 'Përmban',
      cart: 'Porosia juaj', empty: 'Ende asgjë në porosi.', place: 'Dërgo porosinë', placing: 'Po dërgohet…', total: 'Totali',
      remove: 'Hiq', note: 'Shënim për kuzhinën (opsionale)', allergy: 'Alergji ose intoleranca (opsionale; kuzhina konfirmon që i ka lexuar)', qty: 'Sasia', cancel: 'Anulo', choose: 'Zgjidh',
      min: 'Zgjidhni të paktën', max: 'Zgjidhni jo më shumë se', mine: 'Porositë tuaja', placed_ok: 'Faleminderit! Porosia juaj u dërgua në kuzhinë.',
      invalid_title: 'Ky kod QR nuk është më i vlefshëm',
      invalid_body: 'Kodi u ndryshua ose lidhja është e vjetër. Skanoni përsëri kodin në tavolinë ose pyesni stafin.',
      verify: 'Verifikoni telefonin', phone: 'Numri i telefonit (ndërkombëtar, p.sh. +355691234567)', channel: 'Dërgo kodin me',
      send_code: 'Dërgo kodin', code: 'Kodi me 6 shifra', confirm: 'Konfirmo dhe dërgo porosinë', code_sent: 'Ju dërguam një kod.',
      open_telegram: 'Hapni Telegram për të marrë kodin', unavailable: 'Porositja nga tavolina nuk është e mundur tani. Ju lutemi pyesni stafin.',
      status_placed: 'U mor', status_accepted: 'U pranua', status_preparing: 'Po përgatitet', status_ready: 'Gati',
      status_served: 'U shërbye', status_picked_up: 'U mor', status_delivered: 'U dorëzua', status_cancelled: 'U anulua', status_out_for_delivery: 'Në rrugë', live: 'Përditësimet janë ndalur — po rilidhet…',
      increase: 'Një më shumë', decrease: 'Një më pak', view_cart: 'Shiko porosinë', categories: 'Kategoritë',
      bill: 'Llogaria juaj', bill_total: 'Totali', bill_paid: 'Paguar', bill_due: 'Për të paguar', vat: 'TVSH e përfshirë',
      ask_bill: 'Kërko llogarinë', bill_asked: 'Kamarieri po vjen me llogarinë.', refresh: 'Rifresko',
    },
  };
  // The languages the restaurant offers (Admin → Restaurant); the guest's choice is kept.
  const offered = (boot.languages || ['en']).filter((l) => T[l]);
  let lang = localStorage.getItem('orderd.lang') || boot.default_lang || 'en';
  if (!offered.includes(lang)) lang = offered.includes(boot.default_lang) ? boot.default_lang : offered[0] || 'en';
  const t = (k) => T[lang][k] || T.en[k] || k;

  function invalid() {
    document.documentElement.lang = lang;
    app.replaceChildren(el('h1', {}, t('invalid_title')), el('p', { class: 'error', role: 'alert' }, t('invalid_body')));
  }
  if (boot.invalid_token) { invalid(); return; }

  const store = 'orderd.orders.' + boot.table.token;
  let mine = JSON.parse(localStorage.getItem(store) || '[]');
  let menu = null;
  let items = new Map();
  let cart = [];
  let idemKey = null;
  let placing = false;
  let customer = sessionStorage.getItem('orderd.customer');
  const streams = new Map();
  let catObserver = null;
  let menuStream = null;

  const head = el('header', {});
  const msg = el('div', { 'aria-live': 'polite' });
  const menuBox = el('section', { 'aria-labelledby': 'menu-h' });
  const cartBox = el('section', { class: 'cart', 'aria-labelledby': 'cart-h' });
  const allergyInput = el('input', { id: 'allergy', maxlength: boot.max_text, autocomplete: 'off', oninput: () => { idemKey = null; } });
  const verifyBox = el('section', {});
  const mineBox = el('section', { 'aria-labelledby': 'mine-h' });
  const billBox = el('section', { id: 'bill', 'aria-labelledby': 'bill-h', 'aria-live': 'polite' });
  const dialog = el('dialog', { 'aria-labelledby': 'dlg-h' });
  // The cart bar: how many items and their total, always in view; a tap goes to the order.
  const cartBar = el('button', { id: 'cart-bar', class: 'cart-bar', hidden: true, onclick: () => cartBox.scrollIntoView({ behavior: 'smooth', block: 'start' }) });
  app.replaceChildren(head, msg, menuBox, cartBox, verifyBox, mineBox, billBox, dialog, cartBar);

  /** A price in the guest's locale (`1.234,50 €` in Albanian, `€1,234.50` in English). */
  function price(minor, currency) {
    const d = boot.minor_digits ?? 2;
    try {
      return new Intl.NumberFormat(lang === 'sq' ? 'sq-AL' : 'en-GB', { style: 'currency', currency: currency || boot.currency, minimumFractionDigits: d, maximumFractionDigits: d }).format(minor / 10 ** d);
    } catch { return O.money(minor, currency); }
  }

  /** The table's running bill, read with the key of this phone's latest order. */
  async function loadBill() {
    const m = mine.find((x) => x.key && x.status !== 'cancelled');
    if (!m) { billBox.replaceChildren(); return; }
    const headers = { 'x-order-key': m.key, authorization: customer ? 'Bearer ' + customer : '' };
    const r = await api('GET', '/api/v1/orders/' + encodeURIComponent(m.id) + '/bill', undefined, headers);
    if (r.status !== 200 || r.data.state !== 'open') { billBox.replaceChildren(); return; }
    const b = r.data;
    const asked = el('p', { class: 'notice', hidden: !b.bill_requested, 'data-bill-asked': '' }, t('bill_asked'));
    billBox.replaceChildren(el('h2', { id: 'bill-h' }, t('bill')),
      ...b.lines.filter((l) => l.quantity > 0).map((l) => el('div', { class: 'item' }, el('span', {}, l.quantity + ' × ' + l.name), el('span', { class: 'price' }, price(l.net)))),
      el('p', {}, el('strong', { 'data-bill-total': '' }, t('bill_total') + ' ' + price(b.total)),
        b.paid ? ' · ' + t('bill_paid') + ' ' + price(b.paid) + ' · ' + t('bill_due') + ' ' + price(b.balance) : ''),
      el('p', { class: 'muted' }, b.vat.map((v) => t('vat') + ' ' + v.rate_bp / 100 + '%: ' + price(v.vat)).join(' · ')),
      el('p', { class: 'row' },
        el('button', { id: 'ask-bill', disabled: b.bill_requested, onclick: async () => {
          const a = await api('POST', '/api/v1/orders/' + encodeURIComponent(m.id) + '/bill-request', { lang }, headers);
          if (a.status === 202) { asked.hidden = false; say(t('bill_asked')); loadBill(); } else say(O.errorText(a), 'error');
        } }, t('ask_bill')),
        el('button', { class: 'secondary', onclick: loadBill }, t('refresh'))),
      asked);
  }

  function say(text, kind) {
    msg.replaceChildren(text ? el('p', { class: kind || 'notice', role: kind === 'error' ? 'alert' : 'status' }, text) : '');
  }

  function renderHead() {
    document.documentElement.lang = lang;
    const names = { en: 'English', sq: 'Shqip' };
    const pick = el('select', {
      id: 'lang', onchange: (e) => { lang = e.target.value; localStorage.setItem('orderd.lang', lang); loadMenu(); renderAll(); },
    }, offered.map((l) => el('option', { value: l, selected: lang === l }, names[l] || l)));
    head.replaceChildren(el('div', { class: 'bar' },
      el('div', {}, boot.restaurant ? el('div', { class: 'restaurant', id: 'restaurant' }, boot.restaurant) : null, el('h1', {}, t('table') + ' ' + boot.table.label)),
      // One language offered: no choice to make.
      offered.length > 1 ? el('div', {}, el('label', { for: 'lang', class: 'inline' }, t('lang')), pick) : null));
  }

  function renderMenu() {
    if (!menu) return;
    // Category tabs that stay at the top while the guest scrolls.
    const tabs = el('nav', { class: 'tabs', id: 'cat-tabs', 'aria-label': t('categories') },
      menu.categories.map((c, n) => el('a', { href: '#cat-' + n, 'data-cat': n }, c.name)));
    const out = [el('h2', { id: 'menu-h' }, t('menu')), tabs];
    menu.categories.forEach((c, n) => {
      out.push(el('h3', { id: 'cat-' + n, class: 'cat' }, c.name));
      for (const i of c.items) {
        const allergens = i.allergens && i.allergens.length ? el('div', { class: 'allergens' }, t('contains') + ': ', ...i.allergens.map((a) => el('span', { class: 'tag' }, a))) : null;
        out.push(el('div', { class: 'item' + (i.photo ? ' with-photo' : ''), 'data-item': i.id },
          // Photos load only when scrolled near (the page without them stays small).
          i.photo ? el('img', { class: 'photo', src: i.photo, loading: 'lazy', decoding: 'async', alt: '', width: 96, height: 72 }) : null,
          el('div', { class: 'info' }, el('div', { class: 'name' }, i.name), i.description ? el('div', { class: 'muted' }, i.description) : null, allergens),
          el('div', { class: 'row' }, el('span', { class: 'price', 'data-price': i.id }, price(i.price, i.currency)),
            el('button', { 'data-add': i.id, disabled: !i.available, 'aria-label': t('add') + ' ' + i.name, onclick: () => choose(i) },
              i.available ? t('add') : t('soldout')))));
      }
    });
    menuBox.replaceChildren(...out);
    // The tab of the category in view is marked as the guest scrolls.
    if (catObserver) catObserver.disconnect();
    if ('IntersectionObserver' in window) {
      const seen = catObserver = new IntersectionObserver((entries) => {
        for (const e of entries) if (e.isIntersecting) {
          for (const a of tabs.children) a.setAttribute('aria-current', a.getAttribute('href') === '#' + e.target.id ? 'true' : 'false');
        }
      }, { rootMargin: '-60px 0px -70% 0px' });
      for (const h of menuBox.querySelectorAll('h3.cat')) seen.observe(h);
    }
  }

  function setAvailable(id, available) {
    const i = items.get(id);
    if (i) i.available = available;
    const b = menuBox.querySelector('[data-add="' + CSS.escape(id) + '"]');
    if (b) { b.disabled = !available; b.textContent = available ? t('add') : t('soldout'); }
    renderCart();
  }

  function lineTotal(l) {
    const i = items.get(l.item_id);
    if (!i) return 0;
    let unit = i.price;
    for (const g of i.modifier_groups) for (const o of g.options) if (l.modifiers.includes(o.id)) unit += o.price_delta;
    return unit * l.quantity;
  }

  function changed() { idemKey = null; renderCart(); }

  function renderCart() {
    const out = [el('h2', { id: 'cart-h' }, t('cart'))];
    if (!cart.length) out.push(el('p', { class: 'muted' }, t('empty')));
    let total = 0;
    cart.forEach((l, n) => {
      const i = items.get(l.item_id);
      const name = i ? i.name : l.item_id;
      const mods = i ? i.modifier_groups.flatMap((g) => g.options.filter((o) => l.modifiers.includes(o.id)).map((o) => o.name)) : [];
      total += lineTotal(l);
      out.push(el('div', { class: 'item' },
        el('div', {}, el('div', { class: 'name' }, l.quantity + ' × ' + name), mods.length ? el('div', { class: 'muted' }, mods.join(', ')) : null,
          l.note ? el('div', { class: 'muted' }, '“' + l.note + '”') : null,
          i && !i.available ? el('div', { class: 'soldout' }, t('soldout')) : null),
        el('div', { class: 'row' },
          el('button', { class: 'secondary', 'aria-label': t('decrease') + ': ' + name, onclick: () => { if (--l.quantity <= 0) cart.splice(n, 1); changed(); } }, '−'),
          el('button', { class: 'secondary', 'aria-label': t('increase') + ': ' + name, disabled: l.quantity >= boot.max_quantity, onclick: () => { l.quantity++; changed(); } }, '+'),
          el('button', { class: 'secondary', onclick: () => { cart.splice(n, 1); changed(); } }, t('remove')))));
    });
    const unavailable = boot.otp_required && !boot.channels.length;
    if (cart.length) out.push(el('p', { class: 'price' }, t('total') + ': ' + price(total)));
    // The same field each time (its text and focus survive a redraw of the cart).
    if (cart.length) out.push(el('label', { for: 'allergy' }, t('allergy')), allergyInput);
    if (unavailable) out.push(el('p', { class: 'error' }, t('unavailable')));
    const blocked = cart.some((l) => { const i = items.get(l.item_id); return !i || !i.available; });
    out.push(el('button', { id: 'place', disabled: !cart.length || placing || blocked || unavailable, onclick: place }, placing ? t('placing') : t('place')));
    cartBox.replaceChildren(...out);
    const count = cart.reduce((n, l) => n + l.quantity, 0);
    cartBar.hidden = !count;
    cartBar.replaceChildren(el('span', { class: 'count' }, String(count)), el('span', {}, t('view_cart')), el('span', { class: 'price' }, price(total)));
  }

  function choose(item) {
    O.optionsDialog(dialog, item, t, (line) => { cart.push(line); changed(); });
  }

  async function place() {
    if (placing || !cart.length) return;
    placing = true;
    renderCart();
    // One key per cart: a double tap or a retry after a timeout cannot create a second order.
    if (!idemKey) idemKey = O.uuid();
    const body = {
      type: 'dine_in', table_token: boot.table.token,
      items: cart.map((l) => ({ item_id: l.item_id, quantity: l.quantity, modifiers: l.modifiers, note: l.note })),
      allergy: allergyInput.value.trim() || null,
    };
    const r = await api('POST', '/api/v1/orders', body, { 'idempotency-key': idemKey, authorization: customer ? 'Bearer ' + customer : '' });
    placing = false;
    const code = r.data && r.data.error && r.data.error.code;
    if (r.status === 201) {
      const o = r.data;
      if (!mine.some((m) => m.id === o.id)) mine.unshift({ id: o.id, key: o.order_key, number: o.number, status: o.status, total: o.total });
      mine = mine.slice(0, 20);
      localStorage.setItem(store, JSON.stringify(mine));
      cart = [];
      idemKey = null;
      allergyInput.value = '';
      verifyBox.replaceChildren();
      say(t('placed_ok'));
      renderCart();
      renderMine();
      track(mine[0]);
      return;
    }
    renderCart();
    if (code === 'invalid_table_token') { stopAll(); invalid(); return; }
    if (code === 'verification_required' || code === 'invalid_customer_token') {
      customer = null;
      sessionStorage.removeItem('orderd.customer');
      showVerify();
      return;
    }
    say(O.errorText(r), 'error');
  }

  function showVerify() {
    const phone = el('input', { id: 'phone', type: 'tel', autocomplete: 'tel', placeholder: '+355…', required: true });
    const channel = el('select', { id: 'channel' }, boot.channels.map((c) => el('option', { value: c }, c === 'whatsapp' ? 'WhatsApp' : 'Telegram')));
    const code = el('input', { id: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6 });
    const out = el('div', { 'aria-live': 'polite' });
    const step2 = el('form', {
      hidden: true,
      onsubmit: async (e) => {
        e.preventDefault();
        const r = await api('POST', '/api/v1/otp/verify', { phone: phone.value.trim(), code: code.value.trim() }, { authorization: '' });
        if (r.status !== 200) { out.replaceChildren(el('p', { class: 'error' }, O.errorText(r))); return; }
        customer = r.data.token;
        sessionStorage.setItem('orderd.customer', customer);
        verifyBox.replaceChildren();
        place();
      },
    }, el('label', { for: 'code' }, t('code')), code, el('p', {}, el('button', { type: 'submit' }, t('confirm'))));
    const step1 = el('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        const r = await api('POST', '/api/v1/otp/request', { phone: phone.value.trim(), channel: channel.value, lang, table_token: boot.table.token }, { authorization: '' });
        if (r.status !== 202) { out.replaceChildren(el('p', { class: 'error' }, O.errorText(r))); return; }
        out.replaceChildren(el('p', { class: 'notice' }, t('code_sent')),
          r.data.deep_link ? el('p', {}, el('a', { href: r.data.deep_link, target: '_blank', rel: 'noopener' }, t('open_telegram'))) : '');
        step2.hidden = false;
        code.focus();
      },
    }, el('label', { for: 'phone' }, t('phone')), phone, el('label', { for: 'channel' }, t('channel')), channel,
    el('p', {}, el('button', { type: 'submit' }, t('send_code'))));
    verifyBox.replaceChildren(el('h2', {}, t('verify')), step1, out, step2);
    phone.focus();
  }

  function renderMine() {
    if (!mine.length) { mineBox.replaceChildren(); return; }
    mineBox.replaceChildren(el('h2', { id: 'mine-h' }, t('mine')),
      ...mine.map((m) => el('div', { class: 'item', 'data-order': m.id },
        el('div', {}, el('div', { class: 'name' }, m.number), m.total !== undefined ? el('div', { class: 'muted' }, price(m.total)) : null),
        el('span', { class: 'status ' + m.status, 'data-status': m.status }, t('status_' + m.status)))));
  }

  const FINAL = ['served', 'picked_up', 'delivered', 'cancelled'];
  function track(m) {
    if (!m.key || streams.has(m.id) || FINAL.includes(m.status)) return;
    const headers = { 'x-order-key': m.key, authorization: customer ? 'Bearer ' + customer : '' };
    streams.set(m.id, live('/api/v1/orders/' + encodeURIComponent(m.id) + '/events', {
      headers,
      snapshot: async () => {
        const r = await api('GET', '/api/v1/orders/' + encodeURIComponent(m.id), undefined, headers);
        if (r.status === 404) { mine = mine.filter((x) => x.id !== m.id); localStorage.setItem(store, JSON.stringify(mine)); renderMine(); streams.get(m.id).stop(); throw new Error('gone'); }
        if (r.status !== 200) throw new Error('order ' + r.status);
        m.status = r.data.status; m.total = r.data.total;
        localStorage.setItem(store, JSON.stringify(mine));
        renderMine();
        loadBill();
        return r.seq;
      },
      onEvent: (type, data) => {
        if (data.status) m.status = data.status;
        if (data.total !== undefined) m.total = data.total;
        localStorage.setItem(store, JSON.stringify(mine));
        renderMine();
        loadBill();
        if (FINAL.includes(m.status)) { streams.get(m.id).stop(); streams.delete(m.id); }
      },
      onState: (s) => O.banner(s === 'down' ? t('live') : ''),
    }));
  }

  function stopAll() {
    for (const s of streams.values()) s.stop();
    streams.clear();
    if (menuStream) menuStream.stop();
  }

  async function loadMenu() {
    const r = await api('GET', '/api/v1/menu?lang=' + encodeURIComponent(lang));
    if (r.status !== 200) throw new Error('menu ' + r.status);
    menu = r.data;
    items = new Map(menu.categories.flatMap((c) => c.items.map((i) => [i.id, i])));
    renderMenu();
    renderCart();
    return r.seq;
  }

  function renderAll() { renderHead(); renderCart(); renderMine(); }

  renderAll();
  loadBill();
  menuStream = live('/api/v1/menu/events', {
    headers: { authorization: '' },
    snapshot: loadMenu,
    onEvent: (type, data) => {
      if (type === 'menu_replaced') loadMenu();
      else if (data.item_id) setAvailable(data.item_id, data.available);
    },
    onState: (s) => O.banner(s === 'down' ? t('live') : ''),
  });
  mine.forEach(track);
})();

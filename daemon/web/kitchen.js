// orderd kitchen display (/kitchen?station=): live tickets per station with age colours,
// modifiers and notes up front, bump and recall, sold-out toggles, device and clock banners,
// and an audible alert — all from the staff live stream, reconnecting by itself. A station's
// page bumps its own part of an order (the order is ready when every station's part is); the
// page with no station is the expo: every ticket, which stations are done, and the status. A USB bump bar
// (a keyboard) works it: select the next or previous ticket, bump, recall, digits for the n-th
// ticket (`[kitchen.bump_keys]`). An order's allergy note is shown large on its tickets; each
// station acknowledges it before its first bump (the bump key's first press on such a ticket
// acknowledges it; on the expo, it is acknowledged for every station of the order). Made for a
// wall screen read from two metres: a dark theme, a grid of cards that fills the screen, each
// card's header coloured by the ticket's age with a running timer, the all-day counts of what is
// open, and pages of 20 tickets (PageDown / PageUp, or the buttons) when there are more.
'use strict';
(async () => {
  const { boot, el, api, live } = O;
  const app = document.getElementById('app');
  document.body.classList.add('kds');
  await O.signIn(app, 'Kitchen');
  const station = new URLSearchParams(location.search).get('station') || '';
  const NEXT = { placed: ['accepted', 'Accept'], accepted: ['preparing', 'Start'], preparing: ['ready', 'Ready'] };
  const OPEN = ['placed', 'accepted', 'preparing'];
  const orders = new Map();
  let menu = null;
  const devices = new Map();
  let clockUnset = false;
  let connected = true;
  const msg = el('div', { 'aria-live': 'polite' });
  /** A bell drawn as SVG (struck through when off): no emoji font needed. */
  function bellIcon(on) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    for (const [k, v] of Object.entries({ viewBox: '0 0 24 24', width: '20', height: '20', fill: 'none', stroke: 'currentColor', 'stroke-width': '2', 'aria-hidden': 'true', class: 'icon' })) svg.setAttribute(k, v);
    const paths = ['M6 16V11a6 6 0 0 1 12 0v5l2 2H4z', 'M10 20a2 2 0 0 0 4 0'];
    if (!on) paths.push('M3 3l18 18');
    for (const d of paths) { const p = document.createElementNS(NS, 'path'); p.setAttribute('d', d); svg.append(p); }
    return svg;
  }
  const soundCue = el('button', { id: 'sound', class: 'secondary', onclick: () => { O.unlockSound(); setTimeout(renderSound, 200); } });
  const ticketsBox = el('section', { 'aria-labelledby': 'tk-h' });
  const allDayBox = el('div', { id: 'all-day', class: 'all-day', 'aria-label': 'All day' });
  const pager = el('div', { id: 'pager', class: 'row pager' });
  // Tickets per page: 20 fit a 1080p screen without scrolling.
  const PAGE = 20;
  let page = 0;
  const readyBox = el('section', {});
  const soldBox = el('details', {});
  app.replaceChildren(O.nav(), el('div', { class: 'bar' }, el('h1', { id: 'tk-h' }, 'Kitchen' + (station ? ' - ' + station : '')), soundCue),
    el('nav', { 'aria-label': 'Stations', id: 'stations' }), allDayBox, msg, pager, ticketsBox, readyBox, soldBox);
  // The first tap anywhere unlocks sound (browsers block audio until the user interacts).
  document.addEventListener('pointerdown', () => { O.unlockSound(); setTimeout(renderSound, 200); }, { once: true });

  function renderSound() {
    const on = O.soundOn();
    // A drawn icon (CSS), not an emoji: kitchen screens often have no emoji font.
    soundCue.replaceChildren(bellIcon(on), on ? ' Sound on' : ' Sound is off - tap to enable');
    soundCue.setAttribute('aria-pressed', on ? 'true' : 'false');
    soundCue.dataset.on = on ? '1' : '0';
  }

  function linesFor(o) {
    return station ? o.items.filter((l) => l.station === station) : o.items;
  }

  /** An item's allergens, from the menu. */
  function allergensOf(itemId) {
    for (const c of (menu ? menu.categories : [])) for (const i of c.items) if (i.id === itemId) return i.allergens || [];
    return [];
  }

  /** Whether this page's station has bumped its part of the order. */
  function doneHere(o) {
    return !!station && (o.stations_done || []).includes(station);
  }

  /** The stations an order has lines at, each with whether it is done (for the expo). */
  function stationsOf(o) {
    return [...new Set(o.items.map((l) => l.station))].sort().map((s) => [s, (o.stations_done || []).includes(s)]);
  }

  /** The stations that still have to acknowledge the order's allergy note (this page's, or all on the expo). */
  function ackDue(o) {
    if (!o.allergy) return [];
    const acked = o.allergy.acked || [];
    return (station ? [station] : stationsOf(o).map(([s]) => s)).filter((s) => !acked.includes(s));
  }

  /** Acknowledges the allergy note for each station that has not yet. */
  async function ackAllergy(o) {
    for (const s of ackDue(o)) {
      const r = await api('POST', '/api/v1/orders/' + encodeURIComponent(o.id) + '/bump', { station: s, action: 'ack_allergy' });
      if (r.status !== 200 && !(r.data && r.data.error && r.data.error.code === 'already_acknowledged')) {
        msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
        return;
      }
      if (r.status === 200) orders.set(o.id, r.data);
    }
    msg.replaceChildren();
    render();
  }

  function age(o) { return (Date.now() - Date.parse(o.created_at)) / 1000; }

  /** A ticket's age class: fresh, warn or late (`[kitchen] age_warn_secs`, `age_late_secs`). */
  function ageClass(secs) { return secs >= boot.age_late_secs ? 'late' : secs >= boot.age_warn_secs ? 'warn' : 'fresh'; }

  /** A running timer, `m:ss`. */
  function timer(secs) {
    const s = Math.max(0, Math.floor(secs));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  /** The all-day counts: how many of each item the open tickets still need, most first. */
  function allDay(open) {
    const n = new Map();
    for (const o of open) for (const l of linesFor(o)) n.set(l.name, (n.get(l.name) || 0) + l.quantity);
    return [...n].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  }

  // The bump bar's selection: the selected ticket's order id (the first one when none).
  let selected = null;
  let lastBumped = null;
  function openTickets() {
    return [...orders.values()].filter((o) => OPEN.includes(o.status) && linesFor(o).length && !doneHere(o))
      .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.daily_seq - b.daily_seq);
  }

  function ticket(o) {
    const secs = age(o);
    const next = NEXT[o.status];
    const sel = o.id === selected;
    const due = ackDue(o);
    return el('article', { class: 'ticket ' + ageClass(secs) + (sel ? ' selected' : '') + (o.allergy ? ' allergy' : ''), 'data-order': o.id, 'data-status': o.status, 'data-since': o.created_at, 'aria-label': 'Order ' + o.number + (o.allergy ? ', allergy' : ''), 'aria-current': sel ? 'true' : null },
      el('div', { class: 'head' }, el('span', { class: 'num' }, '#' + String(o.daily_seq).padStart(3, '0')), el('span', { class: 'where' }, o.table_label || o.type.replace('_', ' ')), el('span', { class: 'age', role: 'timer' }, timer(secs))),
      el('div', { class: 'body' },
      el('div', { class: 'muted' }, o.number + ' · ' + o.status),
      o.allergy ? el('div', { class: 'allergy-note' + (due.length ? '' : ' acked'), 'data-allergy': o.id, 'data-acked': due.length ? '0' : '1', role: 'alert' },
        'ALLERGY: ' + o.allergy.note + (due.length ? '' : ' (read)')) : null,
      o.note ? el('div', { class: 'note' }, 'NOTE: ' + o.note) : null,
      el('ul', {}, linesFor(o).map((l) => el('li', {}, el('strong', {}, l.quantity + ' × ' + l.name),
        l.modifiers.length ? el('div', { class: 'mods' }, l.modifiers.map((m) => m.name).join(', ')) : null,
        l.note ? el('div', { class: 'note' }, l.note) : null,
        allergensOf(l.item_id).length ? el('div', { class: 'allergens', 'data-allergens': l.item_id }, 'Allergens: ' + allergensOf(l.item_id).join(', ')) : null))),
      station ? null : el('div', { class: 'row' }, stationsOf(o).map(([s, done]) => el('span', { class: 'status ' + (done ? 'ready' : ''), 'data-station-done': s, 'data-done': done ? '1' : '0' }, s + (done ? ': done' : ': cooking')))),
      due.length ? el('button', { class: 'ack', 'data-ack': o.id, onclick: () => ackAllergy(o) }, 'Allergy read')
        : station ? el('button', { 'data-bump': o.id, onclick: () => stationBump(o, 'bump') }, 'Done')
          : next ? el('button', { 'data-bump': o.id, onclick: () => move(o, next[0]) }, next[1]) : null));
  }

  // The timers run every second, and a card's colour follows its age, without a redraw.
  setInterval(() => {
    for (const t of ticketsBox.querySelectorAll('.ticket[data-since]')) {
      const secs = (Date.now() - Date.parse(t.dataset.since)) / 1000;
      const a = t.querySelector('.age');
      if (a) a.textContent = timer(secs);
      const cls = ageClass(secs);
      if (!t.classList.contains(cls)) { t.classList.remove('fresh', 'warn', 'late'); t.classList.add(cls); }
    }
  }, 1000);

  /** A bump of this station's part (or, with `recall`, taking it back). */
  async function stationBump(o, action) {
    const r = await api('POST', '/api/v1/orders/' + encodeURIComponent(o.id) + '/bump', { station, action });
    if (r.status !== 200) return msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
    msg.replaceChildren();
    orders.set(o.id, r.data);
    if (action === 'bump') lastBumped = o.id;
    render();
  }

  /** What this page can take back: the station's own bumps (a station), or ready orders (the expo). */
  function recallable() {
    return station
      ? [...orders.values()].filter((o) => doneHere(o) && (OPEN.includes(o.status) || o.status === 'ready'))
      : [...orders.values()].filter((o) => o.status === 'ready' && linesFor(o).length);
  }

  function render() {
    const open = openTickets();
    if (!open.some((o) => o.id === selected)) selected = open.length ? open[Math.min(page * PAGE, open.length - 1)].id : null;
    // The page follows the bump bar's selection.
    const pages = Math.max(1, Math.ceil(open.length / PAGE));
    const at = open.findIndex((o) => o.id === selected);
    if (at >= 0) page = Math.floor(at / PAGE);
    page = Math.min(page, pages - 1);
    const shown = open.slice(page * PAGE, page * PAGE + PAGE);
    ticketsBox.replaceChildren(open.length ? el('div', { class: 'tickets' }, shown.map(ticket)) : el('p', { class: 'muted' }, 'No open tickets.'));
    pager.replaceChildren(...(pages > 1 ? [
      el('button', { class: 'secondary', 'data-page': 'previous', disabled: page === 0, onclick: () => turn(-1) }, 'Previous page'),
      el('span', { 'data-pages': pages }, 'Page ' + (page + 1) + ' of ' + pages + ' (' + open.length + ' tickets)'),
      el('button', { class: 'secondary', 'data-page': 'next', disabled: page >= pages - 1, onclick: () => turn(1) }, 'Next page')] : []));
    const counts = allDay(open);
    allDayBox.replaceChildren(...(counts.length ? [el('strong', {}, 'All day: '), ...counts.map(([name, n]) => el('span', { class: 'chip', 'data-all-day': name }, n + ' × ' + name))] : []));
    const ready = recallable();
    readyBox.replaceChildren(el('h2', {}, station ? 'Done here' : 'Ready'), ready.length ? el('div', { class: 'row' }, ready.map((o) => el('span', { class: 'row', 'data-ready': o.id },
      el('span', { class: 'status ready' }, '#' + String(o.daily_seq).padStart(3, '0')),
      el('button', { class: 'secondary', 'data-recall': o.id, onclick: () => (station ? stationBump(o, 'recall') : recall(o)) }, 'Recall')))) : el('p', { class: 'muted' }, '—'));
    renderBanner();
  }

  /** Turns the page (and the selection with it). */
  function turn(by) {
    const open = openTickets();
    const pages = Math.max(1, Math.ceil(open.length / PAGE));
    page = Math.min(Math.max(page + by, 0), pages - 1);
    selected = open.length ? open[page * PAGE].id : null;
    render();
  }

  function renderBanner() {
    const parts = [];
    if (!connected) parts.push('Connection to the box lost — reconnecting…');
    if (clockUnset) parts.push('The box clock is not set — check the network time (NTP).');
    for (const d of devices.values()) {
      if (station && d.stations && d.stations.length && !d.stations.includes(station)) continue;
      if (!d.online) parts.push(d.kind + ' ' + d.id + ' is offline');
      else if (d.state && !['ready', 'ok', ''].includes(d.state)) parts.push(d.kind + ' ' + d.id + ': ' + d.state.replace('_', ' '));
    }
    O.banner(parts.join(' · '));
  }

  function renderSoldOut() {
    if (!menu) return;
    const items = menu.categories.flatMap((c) => c.items).filter((i) => !station || i.station === station);
    soldBox.replaceChildren(el('summary', {}, 'Sold-out items'),
      el('div', { class: 'row' }, items.map((i) => el('label', { class: 'inline' },
        el('input', { type: 'checkbox', 'data-soldout': i.id, checked: !i.available, onchange: (e) => setSoldOut(i, e.target.checked) }),
        i.name))));
  }

  async function setSoldOut(i, sold) {
    const r = await api('PATCH', '/api/v1/menu/items/' + encodeURIComponent(i.id), { available: !sold });
    if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
  }

  async function move(o, to) {
    const r = await api('POST', '/api/v1/orders/' + encodeURIComponent(o.id) + '/status', { status: to });
    if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
    else { msg.replaceChildren(); lastBumped = o.id; }
  }

  // The bump bar: keys as `[kitchen.bump_keys]` names them; never while typing in a field.
  const keys = boot.bump_keys || { next: ['ArrowRight', 'ArrowDown'], previous: ['ArrowLeft', 'ArrowUp'], bump: ['Enter', ' '], recall: ['Backspace', 'r'], numbers: true };
  document.addEventListener('keydown', (e) => {
    if (e.target.closest && e.target.closest('input, select, textarea, dialog')) return;
    if (e.ctrlKey || e.altKey || e.metaKey) return;
    const open = openTickets();
    const at = Math.max(0, open.findIndex((o) => o.id === selected));
    let handled = true;
    if (keys.next.includes(e.key)) selected = open.length ? open[Math.min(at + 1, open.length - 1)].id : null;
    else if (keys.previous.includes(e.key)) selected = open.length ? open[Math.max(at - 1, 0)].id : null;
    else if (keys.numbers && /^[1-9]$/.test(e.key)) { const o = open[page * PAGE + Number(e.key) - 1]; if (o) selected = o.id; }
    else if (e.key === 'PageDown' || e.key === 'PageUp') { turn(e.key === 'PageDown' ? 1 : -1); e.preventDefault(); return; }
    else if (keys.bump.includes(e.key)) {
      const o = open.find((x) => x.id === selected) || open[0];
      // An allergy ticket: the first press acknowledges the note, the next one bumps.
      if (o && ackDue(o).length) ackAllergy(o);
      else if (o && station) stationBump(o, 'bump');
      else if (o && NEXT[o.status]) move(o, NEXT[o.status][0]);
    } else if (keys.recall.includes(e.key)) {
      const o = (lastBumped && orders.get(lastBumped)) || recallable()[0];
      if (o && station) stationBump(o, 'recall');
      else if (o) recall(o);
    } else handled = false;
    if (handled) { e.preventDefault(); render(); }
  });

  async function recall(o) {
    const r = await api('POST', '/api/v1/orders/' + encodeURIComponent(o.id) + '/recall');
    if (r.status !== 200) msg.replaceChildren(el('p', { class: 'error' }, O.errorText(r)));
  }

  async function refreshOrder(id) {
    const r = await api('GET', '/api/v1/orders/' + encodeURIComponent(id));
    if (r.status === 200) { orders.set(id, r.data); render(); }
  }

  async function snapshot() {
    const [act, m, dev, st] = await Promise.all([
      O.all('/api/v1/orders/active'),
      api('GET', '/api/v1/menu'),
      api('GET', '/api/v1/devices'),
      api('GET', '/api/v1/status'),
    ]);
    orders.clear();
    for (const o of act.data) orders.set(o.id, o);
    if (m.status === 200) menu = m.data;
    devices.clear();
    if (dev.status === 200) for (const d of dev.data.data) devices.set(d.id, d);
    if (st.status === 200) clockUnset = !!st.data.clock_unset;
    const stations = [...new Set((menu ? menu.categories.flatMap((c) => c.items.map((i) => i.station)) : []))].sort();
    document.getElementById('stations').replaceChildren(el('a', { href: '/kitchen' }, 'All'),
      ...stations.map((s) => el('a', { href: '/kitchen?station=' + encodeURIComponent(s), 'aria-current': s === station ? 'page' : null }, s)));
    render();
    renderSoldOut();
    return Math.min(act.seq, m.seq || act.seq);
  }

  function onEvent(type, e) {
    const d = e.data;
    if (type === 'order_placed') {
      orders.set(d.order.id, d.order);
      if (linesFor(d.order).length) O.beep();
    } else if (type === 'status_changed') {
      const o = orders.get(d.order_id);
      if (o) {
        o.status = d.to;
        if (!OPEN.includes(d.to) && d.to !== 'ready') orders.delete(d.order_id);
      } else if (OPEN.includes(d.to) || d.to === 'ready') {
        refreshOrder(d.order_id);
      }
    } else if (type === 'lines_changed' || type === 'lines_edited') {
      refreshOrder(d.order_id);
      O.beep();
    } else if (type === 'station_done') {
      const o = orders.get(d.order_id);
      if (!o) refreshOrder(d.order_id);
      else {
        const done = new Set(o.stations_done || []);
        if (d.done) done.add(d.station); else done.delete(d.station);
        o.stations_done = [...done].sort();
      }
    } else if (type === 'allergy_noted' || type === 'allergy_acked') {
      const o = orders.get(d.order_id);
      if (!o) refreshOrder(d.order_id);
      else if (type === 'allergy_noted') { o.allergy = { note: d.note, acked: [] }; O.beep(); }
      else if (o.allergy && !o.allergy.acked.includes(d.station)) o.allergy.acked = [...o.allergy.acked, d.station].sort();
    } else if (type === 'availability_changed' || type === 'sold_out') {
      for (const c of (menu ? menu.categories : [])) for (const i of c.items) if (i.id === d.item_id) i.available = type === 'availability_changed' ? d.available : false;
      renderSoldOut();
    } else if (type === 'menu_replaced') {
      api('GET', '/api/v1/menu').then((r) => { if (r.status === 200) { menu = r.data; renderSoldOut(); } });
    } else if (type === 'device_status') {
      const dv = devices.get(d.device) || { id: d.device, kind: 'device' };
      dv.online = d.online;
      dv.state = d.state;
      devices.set(d.device, dv);
    }
    render();
  }

  renderSound();
  live('/api/v1/events', {
    snapshot,
    onEvent,
    onState: (s) => { connected = s === 'live'; renderBanner(); },
  });
  // Ages and the clock banner move with time; once every 15 s is enough.
  setInterval(render, 15000);
  setInterval(async () => {
    const st = await api('GET', '/api/v1/status');
    if (st.status === 200) { clockUnset = !!st.data.clock_unset; renderBanner(); }
  }, 300000);
})();

// orderd admin page (/admin): the owner's guided set-up on first sign-in (the restaurant, then
// the menu, tables, devices and users, each step skippable), the restaurant's settings (name,
// address and tax id on the bill, currency, time zone, languages; saved by the box and applied by
// a restart), the menu (availability, prices, stock, translations, photos; exported to and
// imported from a spreadsheet, CSV, with each problem named by row), tables and their printable
// QR sheet, users and their approval PINs, devices, print jobs, the notification queue, upload
// status, analytics drawn as SVG, and the day's money: the X report, the cash drawer, closing the
// day with a Z report, and past Z reports.
'use strict';
(async () => {
  const { el, api, money } = O;
  const app = document.getElementById('app');
  await O.signIn(app, 'Admin');
  const msg = el('div', { 'aria-live': 'polite' });
  const body = el('section', {});
  const tabs = ['Restaurant', 'Menu', 'Tables', 'Users', 'Devices', 'Print jobs', 'Notifications', 'Left open', 'Upload', 'Analytics', 'Day'];
  let current = decodeURIComponent(location.hash.slice(1)) || 'Menu';
  const tabBar = el('nav', { 'aria-label': 'Sections', class: 'row' });
  // The guided set-up: shown on sign-in until the owner finishes or skips it. Its step is kept
  // for the tab, so the restart that applies the restaurant's settings comes back to it.
  const steps = [
    ['Restaurant', 'Who you are: the name guests see, and the address and tax id printed on the bill; the currency, time zone and languages.'],
    ['Menu', 'Your menu: import it from a spreadsheet (Export gives one to start from), or edit prices and names here. Photos are shrunk by the box.'],
    ['Tables', 'Your tables: add each one, then print the QR sheet and put each code on its table.'],
    ['Devices', 'Kitchen printers, screens, bump bars and buzzers: add each with its stations, then send a test print. An MQTT password is shown once.'],
    ['Users', 'Your staff: a sign-in for each waiter, and an approval PIN for managers. This can wait until the first shift.'],
  ];
  const setupBar = el('div', { id: 'setup', class: 'setup', hidden: true });
  app.replaceChildren(O.nav(), el('h1', {}, 'Admin'), setupBar, tabBar, msg, body);
  // Until it is finished, the set-up opens at its first step (or where the owner left it); a
  // link to one section opens that section, inside the set-up when it is one of its steps.
  let setupStep = -1;
  const site = await api('GET', '/api/v1/site');
  if (site.status === 200 && !site.data.setup.finished) {
    const hashed = decodeURIComponent(location.hash.slice(1));
    const kept = Number(sessionStorage.getItem('orderd.setup') || '0');
    setupStep = hashed ? steps.findIndex(([n]) => n === hashed) : Math.min(Math.max(kept, 0), steps.length - 1);
  }
  if (setupStep >= 0) current = steps[setupStep][0];

  async function endSetup() {
    const r = await api('PUT', '/api/v1/site/setup', { finished: true });
    if (r.status !== 200) return fail(r);
    setupStep = -1;
    sessionStorage.removeItem('orderd.setup');
    ok('Set-up finished. Everything in it stays here to change later.');
    renderSetup();
  }
  function goStep(i) {
    if (i >= steps.length) return endSetup();
    setupStep = Math.max(0, i);
    sessionStorage.setItem('orderd.setup', String(setupStep));
    current = steps[setupStep][0];
    location.hash = current;
    msg.replaceChildren();
    show();
  }
  function renderSetup() {
    setupBar.hidden = setupStep < 0;
    if (setupStep < 0) return setupBar.replaceChildren();
    const [name, text] = steps[setupStep];
    const last = setupStep === steps.length - 1;
    setupBar.replaceChildren(
      el('p', { class: 'setup-step' }, el('strong', {}, 'Set-up, step ' + (setupStep + 1) + ' of ' + steps.length + ': ' + name)),
      el('ol', { class: 'setup-steps' }, steps.map(([n], i) => el('li', { class: i === setupStep ? 'now' : i < setupStep ? 'done' : '', 'aria-current': i === setupStep ? 'step' : null }, n))),
      el('p', { class: 'muted' }, text),
      el('div', { class: 'row' },
        setupStep > 0 ? el('button', { class: 'secondary', id: 'setup-back', onclick: () => goStep(setupStep - 1) }, 'Back') : null,
        el('button', { id: 'setup-next', onclick: () => goStep(setupStep + 1) }, last ? 'Finish' : 'Next: ' + steps[setupStep + 1][0]),
        el('button', { class: 'secondary', id: 'setup-skip', onclick: endSetup }, 'Skip the set-up (do it later)')));
  }

  function ok(text) { msg.replaceChildren(el('p', { class: 'notice' }, text)); }
  function fail(r) { msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, O.errorText(r))); }
  function table(head, rows) {
    // In its own scrolling box: a wide table never makes the page scroll sideways.
    return el('div', { class: 'table-wrap' },
      el('table', {}, el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows)));
  }

  function renderTabs() {
    tabBar.replaceChildren(...tabs.map((n) => el('button', { class: n === current ? '' : 'secondary', 'aria-current': n === current ? 'page' : null,
      onclick: () => { current = n; location.hash = n; msg.replaceChildren(); const i = steps.findIndex(([x]) => x === n); if (setupStep >= 0 && i >= 0) { setupStep = i; sessionStorage.setItem('orderd.setup', String(i)); } show(); } }, n)));
  }

  /** Restarts the box and reloads the page once it has come back with the saved settings. */
  async function restartAndReload() {
    const r = await api('POST', '/api/v1/restart');
    if (r.status !== 202) return fail(r);
    msg.replaceChildren(el('p', { class: 'notice', id: 'restarting', role: 'status' }, 'Restarting the box to apply the settings…'));
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 500));
      let back = null;
      try { back = await api('GET', '/api/v1/site'); } catch { continue; }
      if (back && back.status === 200 && !back.data.restart_needed) { location.reload(); return; }
    }
    msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'The box has not come back within a minute. Check that it is powered and running (orderd status).'));
  }

  const views = {
    async Restaurant() {
      const r = await api('GET', '/api/v1/site');
      if (r.status !== 200) return fail(r);
      const v = r.data.settings;
      const langName = { en: 'English', sq: 'Shqip (Albanian)' };
      const f = {
        name: el('input', { id: 's-name', required: true, maxlength: 100, value: v.name, autocomplete: 'organization' }),
        address: el('textarea', { id: 's-address', rows: 3, maxlength: 200 }, v.address),
        tax_id: el('input', { id: 's-tax', maxlength: 50, value: v.tax_id }),
        currency: el('input', { id: 's-currency', required: true, maxlength: 3, size: 4, value: v.currency, list: 's-currencies', autocapitalize: 'characters' }),
        minor_digits: el('select', { id: 's-digits' }, [0, 1, 2, 3].map((d) => el('option', { value: d, selected: d === v.minor_digits }, String(d)))),
        time_zone: el('input', { id: 's-tz', required: true, value: v.time_zone, list: 's-zones' }),
        default_language: el('select', { id: 's-lang' }, r.data.choices.languages.map((l) => el('option', { value: l, selected: l === v.default_language }, langName[l] || l))),
        languages: el('fieldset', { id: 's-langs' }, el('legend', {}, 'Languages offered to guests'),
          r.data.choices.languages.map((l) => el('label', { class: 'inline' }, el('input', { type: 'checkbox', value: l, checked: v.languages.includes(l), 'data-lang': l }), langName[l] || l))),
      };
      // The digits a currency is used with, filled in when the currency is picked.
      const digits = { EUR: 2, USD: 2, GBP: 2, CHF: 2, ALL: 0, MKD: 0, RSD: 0, HUF: 0, JPY: 0, TRY: 2, BAM: 2, PLN: 2, CZK: 2, SEK: 2, NOK: 2, DKK: 2 };
      f.currency.addEventListener('change', () => { const c = f.currency.value.trim().toUpperCase(); f.currency.value = c; if (c in digits) f.minor_digits.value = String(digits[c]); });
      const save = async (e) => {
        e.preventDefault();
        const body = {
          name: f.name.value, address: f.address.value, tax_id: f.tax_id.value, currency: f.currency.value.trim().toUpperCase(),
          minor_digits: Number(f.minor_digits.value), time_zone: f.time_zone.value.trim(), default_language: f.default_language.value,
          languages: [...f.languages.querySelectorAll('input:checked')].map((x) => x.value),
        };
        const a = await api('PUT', '/api/v1/site', body);
        if (a.status !== 200) return O.fieldError(f, a) ? msg.replaceChildren() : fail(a);
        O.fieldError(f, null);
        // In the set-up, the page comes back from the restart at the next step.
        if (setupStep === 0) { sessionStorage.setItem('orderd.setup', '1'); history.replaceState(null, '', '#' + steps[1][0]); }
        if (a.data.restart_needed) return restartAndReload();
        if (setupStep === 0) return goStep(1);
        ok('Saved; nothing changed.');
      };
      const running = r.data.running;
      body.replaceChildren(...[
        r.data.restart_needed ? el('p', { class: 'notice' }, 'Saved settings wait for a restart. ', el('button', { class: 'secondary', onclick: restartAndReload }, 'Restart now')) : null,
        el('form', { id: 'site-form', onsubmit: save },
          el('label', { for: 's-name' }, "Restaurant's name (on the guest page, tickets and the bill)"), f.name,
          el('label', { for: 's-address' }, 'Address (printed on the bill)'), f.address,
          el('label', { for: 's-tax' }, 'Tax id, e.g. NIPT or VAT number (printed on the bill)'), f.tax_id,
          el('div', { class: 'row' },
            el('div', {}, el('label', { for: 's-currency' }, 'Currency (ISO code)'), f.currency),
            el('div', {}, el('label', { for: 's-digits' }, 'Decimals'), f.minor_digits)),
          el('datalist', { id: 's-currencies' }, Object.keys(digits).map((c) => el('option', { value: c }))),
          el('p', { class: 'muted' }, 'Prices are kept as they are: changing the currency or its decimals does not convert them (' + money(1250) + ' now).'),
          el('label', { for: 's-tz' }, 'Time zone (business days and reports)'), f.time_zone,
          el('datalist', { id: 's-zones' }, r.data.choices.time_zones.map((z) => el('option', { value: z }))),
          el('label', { for: 's-lang' }, 'Default language (tickets, and guests who choose none)'), f.default_language,
          f.languages,
          el('p', { class: 'muted' }, 'Saving restarts the box, which takes a few seconds: kitchen screens and printers reconnect by themselves, and nothing saved is lost.'),
          el('p', {}, el('button', { type: 'submit', id: 's-save' }, 'Save and apply'))),
        el('p', { class: 'muted' }, 'In force now: ' + running.name + ', ' + running.currency + ', ' + running.time_zone + '. Settings saved here win over /etc/orderd/orderd.toml.'),
        setupStep < 0 ? el('p', {}, el('button', { class: 'secondary', id: 'setup-again', onclick: async () => {
          const x = await api('PUT', '/api/v1/site/setup', { finished: false });
          if (x.status !== 200) return fail(x);
          goStep(0);
        } }, 'Run the guided set-up again')) : null].filter(Boolean));
    },
    async Menu() {
      const [en, sq] = await Promise.all([api('GET', '/api/v1/menu?lang=en'), api('GET', '/api/v1/menu?lang=sq')]);
      if (en.status !== 200) return fail(en);
      const sqName = new Map(sq.data.categories.flatMap((c) => c.items.map((i) => [i.id, i.name])));
      const rows = en.data.categories.flatMap((c) => c.items.map((i) => {
        const d = O.boot.minor_digits ?? 2;
        const price = el('input', { type: 'number', step: String(1 / 10 ** d), min: 0, value: (i.price / 10 ** d).toFixed(d), 'aria-label': 'Price of ' + i.name, size: 6 });
        const stock = el('input', { type: 'number', min: 0, value: i.stock ?? '', placeholder: 'untracked', 'aria-label': 'Stock of ' + i.name, size: 5 });
        const nEn = el('input', { value: i.name, 'aria-label': 'English name of ' + i.id });
        const nSq = el('input', { value: sqName.get(i.id) || '', 'aria-label': 'Albanian name of ' + i.id });
        const avail = el('input', { type: 'checkbox', checked: i.available, 'data-available': i.id, 'aria-label': 'Available: ' + i.name,
          onchange: async (e) => { const r = await api('PATCH', '/api/v1/menu/items/' + encodeURIComponent(i.id), { available: e.target.checked }); r.status === 200 ? ok('Saved ' + i.name) : fail(r); } });
        // The item's photo: chosen here, shrunk by the box, shown on the guest page.
        const photo = el('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp', 'data-photo-input': i.id, 'aria-label': 'Photo of ' + i.name,
          onchange: async (e) => {
            const f = e.target.files[0];
            if (!f) return;
            let resp;
            try {
              resp = await fetch('/api/v1/menu/items/' + encodeURIComponent(i.id) + '/photo', { method: 'PUT', headers: { authorization: 'Bearer ' + O.staffToken(), 'content-type': f.type || 'application/octet-stream' }, body: f });
            } catch { return msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'The box cannot be reached.')); }
            const data = await resp.json().catch(() => null);
            if (resp.status !== 200) return fail({ status: resp.status, data });
            ok('Photo saved for ' + i.name);
            views.Menu();
          } });
        const photoCell = el('div', { class: 'row' },
          i.photo ? el('img', { src: i.photo, alt: 'Photo of ' + i.name, width: 48, height: 36, 'data-photo': i.id, class: 'thumb' }) : null, photo,
          i.photo ? el('button', { class: 'secondary', 'data-photo-remove': i.id, onclick: async () => { const r = await api('DELETE', '/api/v1/menu/items/' + encodeURIComponent(i.id) + '/photo'); r.status === 204 ? (ok('Photo removed'), views.Menu()) : fail(r); } }, 'Remove') : null);
        const save = el('button', { onclick: async () => {
          const r = await api('PATCH', '/api/v1/menu/items/' + encodeURIComponent(i.id), { price: O.toMinor(price.value), name: { en: nEn.value.trim(), sq: nSq.value.trim() } });
          if (r.status !== 200) return fail(r);
          if (stock.value !== '') {
            const s = await api('POST', '/api/v1/menu/items/' + encodeURIComponent(i.id) + '/stock', { set: Number(stock.value) });
            if (s.status !== 200) return fail(s);
          }
          ok('Saved ' + nEn.value);
        } }, 'Save');
        return el('tr', {}, el('td', {}, c.name), el('td', {}, nEn), el('td', {}, nSq), el('td', {}, price), el('td', {}, stock), el('td', {}, avail), el('td', {}, photoCell), el('td', {}, save));
      }));
      // The whole menu as a spreadsheet: export, edit, import (nothing changes unless every row is right).
      const file = el('input', { type: 'file', id: 'menu-csv', accept: '.csv,text/csv' });
      const problems = el('div', { id: 'csv-problems', 'aria-live': 'polite' });
      const exportCsv = async () => {
        const r = await api('GET', '/api/v1/menu/csv');
        if (r.status !== 200) return fail(r);
        const a = el('a', { href: URL.createObjectURL(new Blob([r.data], { type: 'text/csv' })), download: 'menu.csv' });
        document.body.append(a);
        a.click();
        a.remove();
      };
      const importCsv = async () => {
        problems.replaceChildren();
        if (!file.files.length) return msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'Choose a CSV file first.'));
        let resp;
        try {
          resp = await fetch('/api/v1/menu/csv', { method: 'PUT', headers: { authorization: 'Bearer ' + O.staffToken(), 'content-type': 'text/csv' }, body: await file.files[0].text() });
        } catch { return msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'The box cannot be reached.')); }
        const data = await resp.json().catch(() => null);
        if (resp.status === 200) { await views.Menu(); return ok('Imported ' + data.items + ' items.'); }
        const list = (data && data.error && data.error.details && data.error.details.problems) || [];
        fail({ status: resp.status, data });
        problems.replaceChildren(el('ul', { class: 'error' }, list.map((p) => el('li', { 'data-problem': '' }, p))));
      };
      // Photos of many dishes at once: each file is named after its dish's id (burger.jpg).
      const ids = new Set(en.data.categories.flatMap((c) => c.items.map((i) => i.id)));
      const photos = el('input', { type: 'file', id: 'menu-photos', multiple: true, accept: 'image/jpeg,image/png,image/webp' });
      const uploadPhotos = async () => {
        const files = [...photos.files];
        if (!files.length) return msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'Choose the photos first.'));
        const unknown = files.filter((f) => !ids.has(f.name.replace(/\.[^.]*$/, '')));
        if (unknown.length) return msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'No dish has the id of ' + unknown.map((f) => f.name).join(', ') + '. Name each photo after its dish\'s id (the id column of the CSV).'));
        const failed = [];
        let done = 0;
        const next = async () => {
          for (let f = files.shift(); f; f = files.shift()) {
            const id = f.name.replace(/\.[^.]*$/, '');
            let resp = null;
            try {
              resp = await fetch('/api/v1/menu/items/' + encodeURIComponent(id) + '/photo', { method: 'PUT', headers: { authorization: 'Bearer ' + O.staffToken(), 'content-type': f.type || 'application/octet-stream' }, body: f });
            } catch { /* counted below */ }
            if (resp && resp.status === 200) done += 1;
            else failed.push(f.name + (resp ? ': ' + O.errorText({ status: resp.status, data: await resp.json().catch(() => null) }) : ': the box cannot be reached'));
            msg.replaceChildren(el('p', { class: 'notice', role: 'status' }, 'Photos saved: ' + done + '…'));
          }
        };
        // Two at a time: the box shrinks each one, and it has two cores.
        await Promise.all([next(), next()]);
        await views.Menu();
        if (failed.length) msg.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'Photos saved: ' + done + '. Not saved: ' + failed.join('; ')));
        else ok('Photos saved: ' + done + '.');
      };
      body.replaceChildren(
        el('div', { class: 'row' },
          el('button', { class: 'secondary', id: 'export-csv', onclick: exportCsv }, 'Export CSV'),
          el('label', { for: 'menu-csv', class: 'inline' }, 'Import a CSV (replaces the whole menu)'), file,
          el('button', { id: 'import-csv', onclick: importCsv }, 'Import')),
        el('div', { class: 'row' },
          el('label', { for: 'menu-photos', class: 'inline' }, "Photos of many dishes (each file named after the dish's id, e.g. burger.jpg)"), photos,
          el('button', { id: 'upload-photos', class: 'secondary', onclick: uploadPhotos }, 'Upload photos')),
        problems,
        table(['Category', 'Name (en)', 'Name (sq)', 'Price', 'Stock', 'Available', 'Photo', ''], rows));
    },
    async Tables() {
      const r = await api('GET', '/api/v1/tables');
      if (r.status !== 200) return fail(r);
      const label = el('input', { id: 'new-table', required: true, maxlength: 32 });
      const sheet = el('div', {});
      body.replaceChildren(
        el('form', { class: 'row', onsubmit: async (e) => { e.preventDefault(); const a = await api('POST', '/api/v1/tables', { label: label.value.trim() }); if (a.status === 201) views.Tables(); else if (O.fieldError({ label }, a)) msg.replaceChildren(); else fail(a); } },
          el('label', { for: 'new-table', class: 'inline' }, 'New table'), label, el('button', { type: 'submit' }, 'Add')),
        table(['Table', 'Link', ''], r.data.data.map((tb) => el('tr', { 'data-table': tb.id }, el('td', {}, tb.label),
          el('td', {}, el('a', { href: '/t/' + tb.qr_token, target: '_blank', rel: 'noopener' }, '/t/' + tb.qr_token)),
          el('td', {}, el('button', { class: 'secondary', 'data-rotate': tb.id, onclick: async () => {
            if (!confirm('Rotate the QR code of ' + tb.label + '? The printed code stops working.')) return;
            const x = await api('POST', '/api/v1/tables/' + encodeURIComponent(tb.id) + '/rotate-token');
            x.status === 200 ? (ok('New code for ' + tb.label + ' — print the sheet again'), views.Tables()) : fail(x);
          } }, 'Rotate code'))))),
        el('p', {}, el('button', { onclick: async () => {
          const resp = await fetch('/api/v1/tables/qr-sheet.svg', { headers: { authorization: 'Bearer ' + O.staffToken() } });
          if (!resp.ok) return fail({ status: resp.status, data: null });
          const url = URL.createObjectURL(await resp.blob());
          sheet.replaceChildren(el('p', { class: 'row' }, el('a', { href: url, download: 'tables-qr.svg' }, 'Download the QR sheet (SVG)'),
            el('button', { id: 'print-qr', onclick: () => window.print() }, 'Print the QR sheet')),
            el('img', { src: url, alt: 'QR codes of every table', style: null, class: 'chart qr-sheet', id: 'qr-sheet' }));
        } }, 'Show QR sheet')), sheet);
    },
    async Users() {
      const r = await api('GET', '/api/v1/users');
      if (r.status !== 200) return fail(r);
      const u = el('input', { id: 'u-name', required: true, autocomplete: 'off' });
      const p = el('input', { id: 'u-pass', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
      const role = el('select', { id: 'u-role' }, el('option', { value: 'staff' }, 'staff'), el('option', { value: 'admin' }, 'admin'));
      const pinRow = (x) => {
        if (x.role !== 'admin') return el('td', {});
        const pin = el('input', { type: 'password', inputmode: 'numeric', maxlength: 8, size: 8, 'aria-label': 'Approval PIN of ' + x.username, 'data-pin': x.username });
        return el('td', {}, el('form', { class: 'row', onsubmit: async (e) => { e.preventDefault(); const a = await api('PUT', '/api/v1/users/' + encodeURIComponent(x.username) + '/pin', { pin: pin.value.trim() }); a.status === 204 ? ok('Approval PIN set for ' + x.username) : fail(a); pin.value = ''; } },
          pin, el('button', { type: 'submit', class: 'secondary' }, 'Set PIN')));
      };
      body.replaceChildren(el('p', { class: 'muted' }, "An admin's approval PIN (4-8 digits) lets a waiter's discounts, comps, voids and refunds go through on the waiter's own device."),
        table(['User', 'Role', 'Since', 'Approval PIN'], r.data.data.map((x) => el('tr', {}, el('td', {}, x.username), el('td', {}, x.role), el('td', {}, x.created_at), pinRow(x)))),
        el('form', { onsubmit: async (e) => { e.preventDefault(); const a = await api('POST', '/api/v1/users', { username: u.value.trim(), password: p.value, role: role.value }); if (a.status === 201) { ok('Added ' + u.value); views.Users(); } else if (O.fieldError({ username: u, password: p, role }, a)) msg.replaceChildren(); else fail(a); } },
          el('h2', {}, 'Add a user'), el('label', { for: 'u-name' }, 'Username'), u, el('label', { for: 'u-pass' }, 'Password (8+ characters)'), p,
          el('label', { for: 'u-role' }, 'Role'), role, el('p', {}, el('button', { type: 'submit' }, 'Add user'))));
    },
    async Devices() {
      const r = await api('GET', '/api/v1/devices');
      if (r.status !== 200) return fail(r);
      const id = el('input', { id: 'd-id', required: true });
      const kind = el('select', { id: 'd-kind' }, ['printer', 'buzzer', 'display', 'bump_bar'].map((k) => el('option', { value: k }, k)));
      const st = el('input', { id: 'd-st', placeholder: 'grill, bar' });
      // A backup printer gets a station's tickets when its main printer is down (REPRINT).
      const backup = el('input', { id: 'd-backup', type: 'checkbox' });
      const backupRow = el('p', {}, backup, el('label', { for: 'd-backup', class: 'inline' }, ' Backup printer (prints when the station\'s main printer is down)'));
      // A printer on the LAN is reached by its address; the box drives it (no MQTT password).
      const tcp = el('input', { id: 'd-tcp', placeholder: '192.168.1.50 (port 9100 by default)', inputmode: 'decimal' });
      const tcpRow = el('div', {}, el('label', { for: 'd-tcp' }, 'Network printer address (leave empty for an MQTT device)'), tcp);
      // A printer on USB is reached by its device path on the box.
      const usb = el('input', { id: 'd-usb', placeholder: '/dev/usb/lp0' });
      const usbRow = el('div', {}, el('label', { for: 'd-usb' }, 'Or a USB printer on the box: its device'), usb);
      // A printer's code page and characters per line, when they differ from the defaults.
      const codepage = el('select', { id: 'd-codepage' }, [['', 'PC858 (default)'], ['pc437', 'PC437'], ['pc850', 'PC850'], ['wpc1252', 'WPC1252']].map(([v, t]) => el('option', { value: v }, t)));
      const columns = el('select', { id: 'd-columns' }, [['', 'as the paper'], ['32', '32'], ['42', '42'], ['48', '48']].map(([v, t]) => el('option', { value: v }, t)));
      const printRow = el('div', { class: 'row' }, el('label', { for: 'd-codepage' }, 'Code page', codepage), el('label', { for: 'd-columns' }, 'Columns', columns));
      // A buzzer or light may be a stock Tasmota or Shelly relay, which speaks its own topics.
      const flavour = el('select', { id: 'd-flavour' }, [['orderd', "orderd's own topics"], ['tasmota', 'Tasmota relay'], ['shelly_gen2', 'Shelly Plus/Pro (Gen2)'], ['shelly_gen1', 'Shelly Gen1']].map(([v, t]) => el('option', { value: v }, t)));
      const flavourRow = el('div', {}, el('label', { for: 'd-flavour' }, 'Speaks (set the relay\'s MQTT client, user and topic to the id)'), flavour);
      const showBackup = () => {
        backupRow.hidden = kind.value !== 'printer'; tcpRow.hidden = backupRow.hidden; usbRow.hidden = backupRow.hidden; printRow.hidden = backupRow.hidden; if (backupRow.hidden) { backup.checked = false; tcp.value = ''; usb.value = ''; codepage.value = ''; columns.value = ''; }
        flavourRow.hidden = kind.value !== 'buzzer'; if (flavourRow.hidden) flavour.value = 'orderd';
      };
      kind.addEventListener('change', showBackup);
      body.replaceChildren(table(['Device', 'Kind', 'Stations', 'Online', 'State', ''], r.data.data.map((d) => el('tr', {},
          el('td', {}, d.id), el('td', {}, d.kind + (d.backup ? ' (backup)' : '') + (d.tcp ? ' at ' + d.tcp : '') + (d.usb ? ' on ' + d.usb : '') + (d.flavour && d.flavour !== 'orderd' ? ' (' + d.flavour + ')' : '')), el('td', {}, (d.stations || []).join(', ')), el('td', {}, d.online ? 'yes' : 'no'), el('td', {}, d.state || ''),
          el('td', {}, el('div', { class: 'row' },
            d.kind === 'printer' ? el('button', { class: 'secondary', 'data-test-print': d.id, onclick: async () => { const x = await api('POST', '/api/v1/devices/' + encodeURIComponent(d.id) + '/test-print'); x.status === 202 ? ok('Test slip sent to ' + d.id) : fail(x); } }, 'Test print') : null,
            el('button', { class: 'secondary', onclick: async () => { if (!confirm('Remove ' + d.id + '?')) return; const x = await api('DELETE', '/api/v1/devices/' + encodeURIComponent(d.id)); x.status === 204 ? views.Devices() : fail(x); } }, 'Remove')))))),
        el('form', { onsubmit: async (e) => {
          e.preventDefault();
          const a = await api('POST', '/api/v1/devices', { id: id.value.trim(), kind: kind.value, stations: st.value.split(',').map((s) => s.trim()).filter(Boolean), backup: backup.checked, tcp: tcp.value.trim() || null, usb: usb.value.trim() || null, codepage: codepage.value || null, columns: columns.value ? Number(columns.value) : null, flavour: flavour.value });
          if (a.status !== 201) return O.fieldError({ id, kind, stations: st, backup, tcp, usb, codepage, columns, flavour }, a) ? msg.replaceChildren() : fail(a);
          await views.Devices();
          msg.replaceChildren(a.data.tcp || a.data.usb ? el('p', { class: 'notice' }, 'Added ' + a.data.id + ' at ' + (a.data.tcp || a.data.usb) + '; the box prints to it itself.')
            : el('p', { class: 'notice' }, 'Added ' + a.data.id + '. Its MQTT password (shown once): ', el('code', {}, a.data.password)));
        } }, el('h2', {}, 'Add a device'), el('label', { for: 'd-id' }, 'Id'), id, el('label', { for: 'd-kind' }, 'Kind'), kind,
        el('label', { for: 'd-st' }, 'Stations (comma-separated)'), st, backupRow, tcpRow, usbRow, printRow, flavourRow, el('p', {}, el('button', { type: 'submit' }, 'Add device'))));
      showBackup();
    },
    async 'Print jobs'() {
      const r = await api('GET', '/api/v1/print-jobs');
      if (r.status !== 200) return fail(r);
      body.replaceChildren(table(['Job', 'Order', 'Station', 'Printer', 'State'], r.data.data.map((j) => el('tr', {},
        el('td', {}, j.job_id), el('td', {}, j.order_number), el('td', {}, j.station), el('td', {}, j.printer), el('td', {}, j.state)))));
    },
    async Notifications(page) {
      page = Number(page) || 1;
      const r = await api('GET', '/api/v1/notifications?page=' + page);
      if (r.status !== 200) return fail(r);
      const pg = r.data.pagination;
      const resend = (n) => el('button', { onclick: async () => {
        const x = await api('POST', '/api/v1/notifications/' + n.id + '/retry');
        if (x.status !== 200) return fail(x);
        views.Notifications(page);
      } }, 'Resend');
      body.replaceChildren(
        el('p', { class: 'notice' }, 'Status messages and alerts are delivered at least once: after a provider timeout or a restart mid-send a message is sent again, so a guest may get it twice. A one-time code is never sent after a newer code replaced it or it expired. A dead status message or alert can be resent here.'),
        table(['Id', 'Channel', 'Kind', 'State', 'Attempts', 'Last error', ''], r.data.data.map((n) => el('tr', {},
          el('td', {}, n.id), el('td', {}, n.channel), el('td', {}, n.kind), el('td', {}, n.state), el('td', {}, n.attempts), el('td', {}, n.last_error || ''),
          el('td', {}, (n.state === 'dead' || n.state === 'failed') && n.kind !== 'code' ? resend(n) : '')))),
        el('p', { class: 'row' },
          pg.has_prev ? el('button', { onclick: () => views.Notifications(page - 1) }, 'Newer') : '',
          el('span', {}, ' Page ' + pg.page + ' of ' + Math.max(1, pg.total_pages) + ' (' + pg.total + ' messages) '),
          pg.has_next ? el('button', { onclick: () => views.Notifications(page + 1) }, 'Older') : ''));
    },
    async Upload() {
      const r = await api('GET', '/api/v1/status');
      if (r.status !== 200) return fail(r);
      const u = r.data.upload || {};
      const h = r.data.https;
      body.replaceChildren(el('p', {}, r.data.status), r.data.clock_unset ? el('p', { class: 'error' }, 'The clock is not set.') : '',
        r.data.otp ? el('p', { id: 'otp-rule' }, 'Guest orders: ' + r.data.otp.why) : '',
        h ? el('p', { class: 'notice', id: 'https-info' }, 'HTTPS on port ' + h.addr.split(':').pop() + '. When a browser asks whether to trust this box, its certificate’s SHA-256 fingerprint must read: ', el('code', {}, h.fingerprint)) : '',
        table(['', ''], Object.entries(u).map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k.replace(/_/g, ' ')), el('td', {}, v === null ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v))))));
    },
    async 'Left open'() {
      const r = await api('GET', '/api/v1/orders/left-open');
      if (r.status !== 200) return fail(r);
      body.replaceChildren(
        el('p', { class: 'notice' }, 'Orders still open from earlier business days. The kitchen screens drop them when a new day starts; nothing closes them by itself. Finish or cancel each from the staff page.'),
        r.data.total === 0 ? el('p', {}, 'Nothing left open.') : table(['Order', 'Placed', 'Status', 'Type', 'Total'], r.data.data.map((o) => el('tr', {},
          el('td', {}, o.number), el('td', {}, new Date(o.created_at).toLocaleString()), el('td', {}, o.status), el('td', {}, o.type), el('td', {}, money(o.total, o.currency))))),
        r.data.total > r.data.data.length ? el('p', {}, r.data.total + ' in all; the oldest ' + r.data.data.length + ' are shown.') : '');
    },
    async Day() {
      const [x, zs] = await Promise.all([api('GET', '/api/v1/reports/x'), api('GET', '/api/v1/reports/z')]);
      if (x.status !== 200) return fail(x);
      const kind = el('select', { id: 'cash-kind' }, [['float', 'Opening float'], ['paid_in', 'Paid in'], ['paid_out', 'Paid out'], ['count', 'Counted cash']].map(([v, t]) => el('option', { value: v }, t)));
      const amount = el('input', { id: 'cash-amount', inputmode: 'decimal', size: 8, required: true });
      const reason = el('input', { id: 'cash-reason', maxlength: 200 });
      const force = el('input', { id: 'z-force', maxlength: 200, placeholder: 'only if checks are still open' });
      const d = String(x.data.business_day);
      const bs = await api('GET', '/api/v1/billing');
      const settings = bs.status === 200 ? el('p', { class: 'muted', 'data-billing': '' }, 'Payment methods: ' + bs.data.payment_methods.join(', ') +
        ' · reasons offered: ' + (bs.data.reasons.join('; ') || 'none') + ' · cash rounding: ' + (bs.data.cash_rounding > 1 ? money(bs.data.cash_rounding) : 'none') +
        ' (set in [billing] of the configuration)') : '';
      body.replaceChildren(
        el('h2', {}, 'X report — business day ' + d.slice(0, 4) + '-' + d.slice(4, 6) + '-' + d.slice(6)), settings, figures(x.data),
        el('form', { class: 'row', onsubmit: async (e) => {
          e.preventDefault();
          const a = await api('POST', '/api/v1/cash', { kind: kind.value, amount: O.toMinor(amount.value), reason: reason.value.trim() || null });
          a.status === 201 ? (ok('Recorded'), views.Day()) : fail(a);
        } }, el('h3', {}, 'Cash'), el('label', { for: 'cash-kind', class: 'inline' }, 'What'), kind, el('label', { for: 'cash-amount', class: 'inline' }, 'Amount'), amount,
          el('label', { for: 'cash-reason', class: 'inline' }, 'Reason'), reason, el('button', { type: 'submit' }, 'Record')),
        el('form', { class: 'row', onsubmit: async (e) => {
          e.preventDefault();
          if (!confirm('Close the business day with a Z report? This cannot be undone.')) return;
          const a = await api('POST', '/api/v1/reports/z', force.value.trim() ? { force_reason: force.value.trim() } : {});
          a.status === 201 ? (ok('Day closed: Z report ' + a.data.number), views.Day()) : fail(a);
        } }, el('h3', {}, 'Close the day'), el('label', { for: 'z-force', class: 'inline' }, 'Reason to close with open checks'), force, el('button', { type: 'submit', id: 'close-day' }, 'Close the day (Z report)')),
        el('h2', {}, 'Z reports'),
        zs.status === 200 && zs.data.data.length ? table(['Z', 'Business day', 'Closed', 'By', 'Net sales', 'Tips', ''], zs.data.data.map((z) => el('tr', { 'data-z': z.number },
          el('td', {}, String(z.number)), el('td', {}, String(z.figures.business_day)), el('td', {}, new Date(z.closed_at).toLocaleString()), el('td', {}, z.actor + (z.forced ? ' (forced: ' + z.forced + ')' : '')),
          el('td', {}, money(z.figures.net)), el('td', {}, money(z.figures.tips)),
          el('td', {}, el('button', { class: 'secondary', onclick: async () => {
            const resp = await fetch('/api/v1/reports/z/' + z.number + '?format=csv', { headers: { authorization: 'Bearer ' + O.staffToken() } });
            const url = URL.createObjectURL(await resp.blob());
            const a = el('a', { href: url, download: 'z-' + z.number + '.csv' });
            document.body.append(a); a.click(); a.remove();
          } }, 'CSV'))))) : el('p', { class: 'muted' }, 'No Z report yet.'));
    },
    async Analytics() {
      const today = new Date().toISOString().slice(0, 10);
      const from = el('input', { id: 'a-from', type: 'date', value: today });
      const to = el('input', { id: 'a-to', type: 'date', value: today });
      const out = el('div', {});
      const load = async () => {
        const r = await api('GET', '/api/v1/analytics/summary?from=' + from.value + '&to=' + to.value);
        if (r.status !== 200) return fail(r);
        const s = r.data;
        out.replaceChildren(
          el('p', {}, s.orders + (s.orders === 1 ? ' order · ' : ' orders · ') + money(s.revenue, s.currency) + ' revenue · average ' + money(s.average_order_value, s.currency) +
            ' · prep time ' + (s.average_prep_secs === null ? '—' : Math.round(s.average_prep_secs / 60) + ' min')),
          el('div', { class: 'grid2' },
            el('figure', {}, el('figcaption', {}, 'Revenue by hour'), bars((s.revenue_by_hour || []).map((v, h) => [String(h), v / 100]))),
            el('figure', {}, el('figcaption', {}, 'Orders by hour'), bars(s.orders_by_hour.map((v, h) => [String(h), v]))),
            el('figure', {}, el('figcaption', {}, 'Top items'), bars(s.top_items.map((i) => [i.name, i.quantity]), true))));
      };
      body.replaceChildren(el('div', { class: 'row' }, el('label', { for: 'a-from', class: 'inline' }, 'From'), from,
        el('label', { for: 'a-to', class: 'inline' }, 'To'), to, el('button', { onclick: load }, 'Show')), out);
      load();
    },
  };

  /** A day's figures (an X report, or a Z report's body) as tables. */
  function figures(f) {
    const row = (k, v) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, v));
    const open = f.open_checks || [];
    return el('div', { class: 'grid2', 'data-figures': f.business_day },
      el('div', { class: 'table-wrap' }, el('table', { class: 'figures' }, el('tbody', {},
        row('Checks', String(f.checks)), row('Guests', String(f.covers)), row('Sales', money(f.sales)),
        row('Discounts', money(f.discounts)), row('Comps', money(f.comps)), row('Voids', money(f.voids)),
        el('tr', {}, el('th', { scope: 'row' }, 'Net sales'), el('td', { 'data-net': '' }, money(f.net))),
        row('Tips', money(f.tips)), row('Cash rounding', money(f.rounding)), row('Refunds', money(f.refunds)),
        row('Average check', money(f.average_check)),
        ...f.vat.map((v) => row('VAT ' + v.rate_bp / 100 + '% (of ' + money(v.gross) + ')', money(v.vat)))))),
      el('div', {},
        table(['Method', 'Payments', 'Amount', 'Tips', 'Refunds'], f.methods.map((m) => el('tr', { 'data-method': m.method }, el('td', {}, m.method), el('td', {}, String(m.count)), el('td', {}, money(m.amount)), el('td', {}, money(m.tips)), el('td', {}, money(m.refunds))))),
        el('h3', {}, 'Cash drawer'),
        table(['', ''], [['Float', f.cash.float], ['Cash received', f.cash.received], ['Cash refunded', f.cash.refunded], ['Paid in', f.cash.paid_in], ['Paid out', f.cash.paid_out], ['Expected', f.cash.expected], ['Counted', f.cash.counted], ['Variance', f.cash.variance]]
          .map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, v === null || v === undefined ? '—' : money(v)))))),
      el('div', {}, el('h3', {}, 'Discounts, comps, voids and refunds'),
        table(['What', 'Amount', 'Reason', 'By', 'Approved by'], [
          ...f.adjustments.map((a) => el('tr', {}, el('td', {}, a.kind + (a.name ? ': ' + a.name : '')), el('td', {}, money(a.amount)), el('td', {}, a.reason), el('td', {}, a.actor), el('td', {}, a.approved_by))),
          ...f.refund_list.map((r) => el('tr', {}, el('td', {}, 'refund (' + r.method + ', check ' + r.check.number + ')'), el('td', {}, money(r.amount)), el('td', {}, r.reason), el('td', {}, r.actor), el('td', {}, r.approved_by)))]),
        el('h3', {}, 'Open checks'),
        open.length ? table(['Check', 'Table', 'Total', 'Paid'], open.map((o) => el('tr', {}, el('td', {}, String(o.check.number)), el('td', {}, o.table_id || '—'), el('td', {}, money(o.total)), el('td', {}, money(o.paid))))) : el('p', { class: 'muted' }, 'None.')));
  }

  /** A bar chart as inline SVG: vertical bars, or horizontal with labels for `horizontal`. */
  function bars(data, horizontal) {
    const NS = 'http://www.w3.org/2000/svg';
    const s = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
    const max = Math.max(1, ...data.map((d) => d[1]));
    const svg = s('svg', { viewBox: horizontal ? '0 0 300 ' + (data.length * 22 + 4) : '0 0 300 140', class: 'chart', role: 'img' });
    if (horizontal) {
      data.forEach(([label, v], i) => {
        svg.append(s('text', { x: 0, y: i * 22 + 15, 'font-size': 11 }, label.slice(0, 18)),
          s('rect', { x: 110, y: i * 22 + 4, width: Math.max(1, (v / max) * 160), height: 16, fill: '#0b57d0' }),
          s('text', { x: 114 + (v / max) * 160, y: i * 22 + 16, 'font-size': 11 }, String(v)));
      });
    } else {
      const w = 300 / Math.max(1, data.length);
      data.forEach(([label, v], i) => {
        const h = (v / max) * 110;
        svg.append(s('rect', { x: i * w + 1, y: 120 - h, width: Math.max(1, w - 2), height: h, fill: '#0b57d0' }, undefined));
        if (i % 3 === 0) svg.append(s('text', { x: i * w, y: 136, 'font-size': 9 }, label));
      });
    }
    svg.append(s('title', {}, data.map((d) => d[0] + ': ' + d[1]).join(', ')));
    return svg;
  }

  function show() {
    renderSetup();
    renderTabs();
    body.replaceChildren(el('p', {}, 'Loading…'));
    (views[current] || views.Menu)();
  }
  show();
})();

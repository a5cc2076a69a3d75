// Browser tests of the box's own pages: the real orderd binary (a temp data directory, HTTP and
// MQTT on port 0) driven through Debian's headless chromium with playwright-core. Screenshots of
// every page, phone- and tablet-sized, go to $ARTIFACTS (default target/browser-artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.ORDERD_BIN || path.join(root, 'target/debug/orderd');
const ARTIFACTS = process.env.ARTIFACTS || path.join(root, 'target/browser-artifacts');
const PHONE = { width: 360, height: 740 };
const TABLET = { width: 1024, height: 768 };

let daemon;
let base;
let browser;
let admin;
let dir;

async function api(method, p, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = 'Bearer ' + token;
  const r = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, data: text ? JSON.parse(text) : null };
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderd-browser-'));
  fs.writeFileSync(path.join(dir, 'orderd.toml'), [
    '[store]', `data_dir = "${dir}/data"`,
    '[http]', 'listen = "127.0.0.1:0"', 'sse_heartbeat_secs = 2',
    '[mqtt]', 'listen = "127.0.0.1:0"',
    // The shipped rule (`[otp] required = "auto"`, no channel on): customers order with the
    // table's code alone, as on the README's first command. OTP has its own tests.
    '',
  ].join('\n'));
  daemon = spawn(BIN, ['run', '--config', path.join(dir, 'orderd.toml')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('orderd did not start: ' + out)), 30000);
    daemon.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/API:\s+(http:\/\/[^/\s]+)\//);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    daemon.on('exit', (code) => reject(new Error('orderd exited ' + code + ': ' + out)));
  });
  const pw = fs.readFileSync(path.join(dir, 'data/initial-admin-password'), 'utf8').trim();
  admin = (await api('POST', '/api/v1/auth/login', { username: 'admin', password: pw })).data.token;
  assert.equal((await api('POST', '/api/v1/users', { username: 'kim', password: 'kitchen-pass-1', role: 'staff' }, admin)).status, 201);
  fs.writeFileSync(path.join(dir, 'admin-pass'), pw);
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] });
});

after(async () => {
  if (browser) await browser.close();
  if (daemon) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

async function tables() {
  return (await api('GET', '/api/v1/tables', undefined, admin)).data.data;
}

async function phone() {
  const ctx = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  return ctx.newPage();
}

async function signedIn(url, user, pass, viewport = TABLET, home = base) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  await page.goto(home + url);
  await page.fill('#login-user', user);
  await page.fill('#login-pass', pass);
  await page.click('button[type=submit]');
  await page.waitForSelector('#login-user', { state: 'detached' });
  return page;
}

async function addBurger(page) {
  await page.click('[data-add=burger]');
  await page.check('input[value=medium]');
  await page.check('input[value=bacon]');
  await page.fill('#dlg-note', 'no pickles');
  await page.click('#dlg-add');
}

async function activeCount() {
  return (await api('GET', '/api/v1/orders/active?limit=200', undefined, admin)).data.pagination.total;
}

test('a customer orders on a phone, the kitchen sees it live, bumps it, and the customer sees ready', async () => {
  const [t1] = await tables();
  const customer = await phone();
  const loaded = [];
  customer.on('response', async (r) => { try { loaded.push({ url: r.url(), bytes: (await r.body()).length }); } catch { /* streams */ } });
  await customer.goto(base + '/t/' + t1.qr_token);
  await customer.waitForSelector('[data-add=burger]');
  // Phone first: no sideways scrolling at 360 px, nothing from another origin, ≤ 100 KB.
  assert.ok(await customer.evaluate(() => document.documentElement.scrollWidth <= 360), 'fits 360 px');
  const weight = loaded.filter((l) => !l.url.includes('/events')).reduce((n, l) => n + l.bytes, 0);
  assert.ok(weight <= 100 * 1024, 'page weight ' + weight);
  assert.ok(loaded.every((l) => l.url.startsWith(base)), 'only the box: ' + loaded.map((l) => l.url));
  // Every form control has a label.
  const unlabelled = await customer.evaluate(() => [...document.querySelectorAll('input,select')].filter((e) => !e.labels?.length && !e.getAttribute('aria-label')).length);
  assert.equal(unlabelled, 0);
  // Allergens are shown; the language picker switches to Albanian and back.
  assert.match(await customer.textContent('[data-item=burger]'), /Contains:/);
  await customer.selectOption('#lang', 'sq');
  await customer.waitForSelector('text=Porosia juaj');
  await customer.selectOption('#lang', 'en');
  await customer.waitForSelector('text=Your order');

  // The restaurant's name heads the page; prices are in the locale's format.
  assert.ok((await customer.textContent('#restaurant')).trim().length > 0);
  assert.match(await customer.textContent('[data-price=burger]'), /^€\d+\.\d\d$/);
  // The category tabs stay at the top while the guest scrolls, and a tab goes to its category.
  await customer.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  const tabsTop = await customer.$eval('#cat-tabs', (n) => n.getBoundingClientRect().top);
  assert.ok(tabsTop >= 0 && tabsTop < 5, 'tabs in view at ' + tabsTop);
  await customer.click('#cat-tabs a[data-cat="0"]');
  await customer.waitForFunction(() => Math.abs(document.getElementById('cat-0').getBoundingClientRect().top - 60) < 40, null, { timeout: 3000 });
  assert.equal(await customer.isVisible('#cart-bar'), false, 'no cart bar with an empty cart');

  const kitchen = await signedIn('/kitchen?station=grill', 'kim', 'kitchen-pass-1');
  await kitchen.waitForSelector('text=No open tickets.');
  await addBurger(customer);
  // The cart bar shows the count and the total, in view at the bottom of the screen.
  const bar = await customer.waitForSelector('#cart-bar');
  assert.match(await bar.textContent(), /^1View your order€\d+\.\d\d$/);
  const barBox = await bar.boundingBox();
  assert.ok(barBox.y + barBox.height <= PHONE.height && barBox.y > PHONE.height / 2, 'cart bar at the bottom');
  assert.ok(await customer.evaluate(() => document.documentElement.scrollWidth <= 360), 'still fits 360 px');
  await customer.click('#place');
  const orderEl = await customer.waitForSelector('[data-order]');
  const id = await orderEl.getAttribute('data-order');
  await customer.waitForSelector(`[data-order="${id}"] [data-status=placed]`);

  // The kitchen shows the ticket without a reload, modifiers and note up front.
  const ticket = await kitchen.waitForSelector(`.ticket[data-order="${id}"]`, { timeout: 5000 });
  const text = await ticket.textContent();
  assert.match(text, /Medium/i);
  assert.match(text, /no pickles/);
  // The burger's allergens, from the menu, stand out on the ticket.
  assert.match(await kitchen.textContent(`.ticket[data-order="${id}"] [data-allergens=burger]`), /gluten, milk, mustard/);
  await kitchen.screenshot({ path: path.join(ARTIFACTS, 'kitchen-tablet.png'), fullPage: true });
  await kitchen.setViewportSize(PHONE);
  await kitchen.screenshot({ path: path.join(ARTIFACTS, 'kitchen-phone.png'), fullPage: true });
  await kitchen.setViewportSize(TABLET);
  // The grill is the order's only station: its bump makes the order ready.
  await kitchen.click(`[data-bump="${id}"]`);
  await customer.waitForSelector(`[data-order="${id}"] [data-status=ready]`, { timeout: 5000 });
  assert.equal(await customer.textContent(`[data-order="${id}"] .status`), 'Ready');
  await kitchen.waitForSelector(`[data-ready="${id}"]`);
  await customer.screenshot({ path: path.join(ARTIFACTS, 'customer-phone.png'), fullPage: true });
  await customer.setViewportSize(TABLET);
  await customer.screenshot({ path: path.join(ARTIFACTS, 'customer-tablet.png'), fullPage: true });
  await customer.context().close();
  await kitchen.context().close();
});

test('an admin marks an item sold out and an open customer page disables it live', async () => {
  const [, t2] = await tables();
  const customer = await phone();
  await customer.goto(base + '/t/' + t2.qr_token);
  const add = await customer.waitForSelector('[data-add=espresso]');
  assert.equal(await add.isDisabled(), false);
  const adminPage = await signedIn('/admin#Menu', 'admin', fs.readFileSync(path.join(dir, 'admin-pass'), 'utf8'));
  await adminPage.waitForSelector('[data-available=espresso]');
  await adminPage.uncheck('[data-available=espresso]');
  await customer.waitForSelector('[data-add=espresso]:disabled', { timeout: 5000 });
  assert.equal(await customer.textContent('[data-add=espresso]'), 'Sold out');
  await adminPage.check('[data-available=espresso]');
  await customer.waitForSelector('[data-add=espresso]:not(:disabled)', { timeout: 5000 });
  // Every admin tab fits a 390 px phone and a 1,024 px tablet without sideways scrolling.
  for (const [name, vp] of [['phone', { width: 390, height: 800 }], ['tablet', TABLET]]) {
    await adminPage.setViewportSize(vp);
    for (const tab of ['Restaurant', 'Menu', 'Tables', 'Users', 'Devices', 'Print jobs', 'Notifications', 'Left open', 'Upload', 'Analytics']) {
      await adminPage.click(`nav button:text-is("${tab}")`);
      await adminPage.waitForFunction((t) => document.querySelector(`nav button[aria-current=page]`)?.textContent === t, tab);
      await adminPage.waitForLoadState('networkidle');
      const wide = await adminPage.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(wide <= vp.width, `admin ${tab} is ${wide} px wide on a ${vp.width} px ${name}`);
      await adminPage.screenshot({ path: path.join(ARTIFACTS, `admin-${tab.toLowerCase().replace(' ', '-')}-${name}.png`), fullPage: true });
    }
  }
  // The devices form can mark a backup printer.
  await adminPage.click('nav button:text-is("Devices")');
  await adminPage.waitForSelector('#d-backup');
  await adminPage.fill('#d-id', 'p-spare');
  await adminPage.selectOption('#d-kind', 'printer');
  await adminPage.fill('#d-st', 'grill');
  await adminPage.check('#d-backup');
  await adminPage.click('button:text-is("Add device")');
  await adminPage.waitForSelector('text=p-spare');
  const spare = (await api('GET', '/api/v1/devices', undefined, admin)).data.data.find((d) => d.id === 'p-spare');
  assert.equal(spare.backup, true);
  // The QR sheet renders, one code per table.
  await adminPage.click('nav button:text-is("Tables")');
  await adminPage.click('text=Show QR sheet');
  await adminPage.waitForSelector('#qr-sheet');
  const svg = (await (await fetch(base + '/api/v1/tables/qr-sheet.svg', { headers: { authorization: 'Bearer ' + admin } })).text());
  assert.equal((svg.match(/<path/g) || []).length, (await tables()).length);
  assert.ok(svg.includes('/t/' + t2.qr_token));
  await customer.context().close();
  await adminPage.context().close();
});

test('a rotated table token refuses a new order on the old link', async () => {
  const [, , t3] = await tables();
  const customer = await phone();
  await customer.goto(base + '/t/' + t3.qr_token);
  await customer.waitForSelector('[data-add=espresso]');
  await customer.click('[data-add=espresso]');
  await customer.click('#dlg-add');
  const adminPage = await signedIn('/admin#Tables', 'admin', fs.readFileSync(path.join(dir, 'admin-pass'), 'utf8'));
  adminPage.on('dialog', (d) => d.accept());
  await adminPage.click(`[data-rotate="${t3.id}"]`);
  await adminPage.waitForSelector('text=New code for');
  const before = await activeCount();
  await customer.click('#place');
  await customer.waitForSelector('text=This QR code is no longer valid');
  assert.equal(await activeCount(), before);
  // Opening the old link again shows the same message, not the menu.
  const again = await phone();
  const resp = await again.goto(base + '/t/' + t3.qr_token);
  assert.equal(resp.status(), 404);
  await again.waitForSelector('text=This QR code is no longer valid');
  assert.equal(await again.$('[data-add]'), null);
  await customer.context().close();
  await again.context().close();
  await adminPage.context().close();
});

test("customer A cannot see customer B's order at the same table", async () => {
  const t4 = (await tables())[3];
  const a = await phone();
  const b = await phone();
  const ids = [];
  for (const p of [a, b]) {
    await p.goto(base + '/t/' + t4.qr_token);
    await p.waitForSelector('[data-add=lemonade]');
    await p.click('[data-add=lemonade]');
    await p.click('#dlg-add');
    await p.click('#place');
    const el = await p.waitForSelector('[data-order]');
    ids.push(await el.getAttribute('data-order'));
  }
  assert.notEqual(ids[0], ids[1]);
  assert.deepEqual(await a.$$eval('[data-order]', (es) => es.map((e) => e.dataset.order)), [ids[0]]);
  assert.deepEqual(await b.$$eval('[data-order]', (es) => es.map((e) => e.dataset.order)), [ids[1]]);
  // Even asking directly, with its own key, A cannot read B's order or follow it.
  const probe = await a.evaluate(async (other) => {
    const mine = JSON.parse(localStorage.getItem(Object.keys(localStorage).find((k) => k.startsWith('orderd.orders.'))))[0];
    const h = { 'x-order-key': mine.key };
    const read = await fetch('/api/v1/orders/' + other, { headers: h });
    const follow = await fetch('/api/v1/orders/' + other + '/events', { headers: h });
    const own = await fetch('/api/v1/orders/' + mine.id, { headers: h });
    return [read.status, follow.status, own.status];
  }, ids[1]);
  assert.deepEqual(probe, [404, 404, 200]);
  await a.context().close();
  await b.context().close();
});

test('double-tapping "Place order" creates one order', async () => {
  const t5 = (await tables())[4];
  const p = await phone();
  await p.goto(base + '/t/' + t5.qr_token);
  await p.waitForSelector('[data-add=espresso]');
  await p.click('[data-add=espresso]');
  await p.click('#dlg-add');
  const before = await activeCount();
  // Two taps on the same button before the first answer arrives.
  await p.evaluate(() => { const b = document.querySelector('#place'); b.click(); b.click(); });
  await p.waitForSelector('[data-order]');
  await p.waitForTimeout(500);
  assert.equal(await activeCount(), before + 1);
  assert.equal((await p.$$('[data-order]')).length, 1);
  await p.context().close();
});

test('a waiter places an order from /staff and the kitchen page shows it', async () => {
  const [t1] = await tables();
  const kitchen = await signedIn('/kitchen', 'kim', 'kitchen-pass-1');
  await kitchen.waitForSelector('#tk-h');
  const waiter = await signedIn('/staff', 'kim', 'kitchen-pass-1', PHONE);
  await waiter.waitForSelector('[data-add=greek_salad]');
  await waiter.selectOption('#target', t1.id);
  await waiter.click('[data-add=greek_salad]');
  await waiter.check('input[value=large]');
  await waiter.fill('#dlg-note', 'dressing on the side');
  await waiter.click('#dlg-add');
  // One-handed on a phone: tables are big tiles by status, and the send button waits at the
  // bottom of the screen while items wait in the new order.
  const tiles = await waiter.$$eval('.table-tiles [data-table-status]', (ts) => ts.map((t) => { const r = t.getBoundingClientRect(); return [r.width, r.height, t.dataset.status]; }));
  assert.ok(tiles.length >= 2 && tiles.every(([w, h]) => w >= 96 && h >= 72), JSON.stringify(tiles));
  assert.equal(await waiter.getAttribute(`[data-table-status="${t1.id}"]`, 'aria-pressed'), 'true');
  const bar = await waiter.waitForSelector('#send-bar');
  assert.equal(await bar.textContent(), 'Send 1 item to the kitchen');
  const box = await bar.boundingBox();
  assert.ok(box.y + box.height <= PHONE.height && box.y > PHONE.height / 2, 'send bar at the bottom');
  assert.ok(await waiter.evaluate(() => document.documentElement.scrollWidth <= 360), 'fits 360 px');
  await bar.click();
  const sent = await waiter.waitForSelector('text=/Sent: /');
  await waiter.waitForSelector('#send-bar', { state: 'hidden' });
  const number = (await sent.textContent()).replace('Sent: ', '').trim();
  const ticket = await kitchen.waitForSelector(`.ticket:has-text("${number}")`, { timeout: 5000 });
  assert.match(await ticket.textContent(), /dressing on the side/);
  const order = (await api('GET', '/api/v1/orders/search?q=' + encodeURIComponent(number), undefined, admin)).data.data[0];
  // The page with no station is the expo: it shows which stations are done with the order.
  await kitchen.waitForSelector(`.ticket[data-order="${order.id}"] [data-station-done=cold][data-done="0"]`);
  assert.equal(order.source, 'staff');
  assert.equal(order.table_id, t1.id);
  // The waiter sees the table's open orders live.
  await waiter.waitForSelector(`[data-order="${order.id}"] [data-status=placed]`);
  await kitchen.click(`[data-bump="${order.id}"]`);
  await waiter.waitForSelector(`[data-order="${order.id}"] [data-status=accepted]`, { timeout: 5000 });
  await waiter.screenshot({ path: path.join(ARTIFACTS, 'staff-phone.png'), fullPage: true });
  await waiter.setViewportSize(TABLET);
  await waiter.screenshot({ path: path.join(ARTIFACTS, 'staff-tablet.png'), fullPage: true });
  await kitchen.context().close();
  await waiter.context().close();
});

test('the kitchen page reconnects by itself and misses nothing', async () => {
  const kitchen = await signedIn('/kitchen', 'kim', 'kitchen-pass-1');
  await kitchen.waitForSelector('#tk-h');
  // Cut the network, place an order while offline, bring it back: the ticket appears.
  await kitchen.context().setOffline(true);
  await kitchen.evaluate(() => window.dispatchEvent(new Event('offline')));
  const staff = (await api('POST', '/api/v1/auth/login', { username: 'kim', password: 'kitchen-pass-1' })).data.token;
  const r = await api('POST', '/api/v1/orders', { type: 'takeaway', items: [{ item_id: 'tave_kosi', quantity: 1 }] }, staff);
  assert.equal(r.status, 201);
  await kitchen.context().setOffline(false);
  await kitchen.waitForSelector(`.ticket[data-order="${r.data.id}"]`, { timeout: 30000 });
  await kitchen.context().close();
});

test("a waiter's whole bill: order, printed bill, split evenly, cash with change and card with a tip, table free", async () => {
  const t6 = (await tables()).find((t) => t.id === 't6');
  const waiter = await signedIn('/staff', 'kim', 'kitchen-pass-1', PHONE);
  await waiter.waitForSelector('[data-add=espresso]');
  await waiter.click(`[data-table-status="${t6.id}"]`);
  await waiter.click('[data-add=espresso]');
  await waiter.fill('#dlg-qty', '2');
  await waiter.click('#dlg-add');
  await waiter.click('[data-add=lemonade]');
  await waiter.click('#dlg-add');
  await waiter.click('#send');
  await waiter.waitForSelector('text=/Sent: /');
  // The table's check appears with its total; the table shows as occupied.
  const check = await waiter.waitForSelector('[data-check]', { timeout: 5000 });
  const id = await check.getAttribute('data-check');
  await waiter.waitForSelector(`[data-total="${id}"]:has-text("6.00")`);
  await waiter.waitForSelector(`[data-table-status="${t6.id}"][data-status=occupied]`);
  await waiter.click(`[data-print="${id}"]`);
  await waiter.waitForSelector('text=Bill sent to the printer');
  await waiter.waitForSelector(`[data-table-status="${t6.id}"][data-status=bill_printed]`);
  // Split in two: 3.00 each. The first part in cash, 5.00 tendered: 2.00 change.
  await waiter.click(`[data-split-button="${id}"]`);
  await waiter.waitForSelector(`[data-split="${id}"]:has-text("3.00 EUR + 3.00 EUR")`);
  const form = `[data-pay="${id}"]`;
  await waiter.selectOption(`${form} select[name=method]`, 'cash');
  await waiter.fill(`${form} input[name=amount]`, '3.00');
  await waiter.fill(`${form} input[name=tendered]`, '5.00');
  await waiter.click(`[data-pay-button="${id}"]`);
  await waiter.waitForSelector(`[data-paid="${id}"]:has-text("change 2.00")`);
  await waiter.waitForSelector(`[data-balance="${id}"]:has-text("3.00")`);
  // The rest by card, with a 0.50 tip: settled, the table is paid and then free for new guests.
  await waiter.selectOption(`${form} select[name=method]`, 'card');
  await waiter.fill(`${form} input[name=amount]`, '3.00');
  await waiter.fill(`${form} input[name=tip]`, '0.50');
  await waiter.click(`[data-pay-button="${id}"]`);
  await waiter.waitForSelector(`[data-paid="${id}"]:has-text("settled")`);
  await waiter.waitForSelector(`[data-table-status="${t6.id}"][data-status=paid]`);
  const c = (await api('GET', '/api/v1/checks/' + id, undefined, admin)).data;
  assert.equal(c.state, 'closed');
  assert.equal(c.total, 600);
  assert.equal(c.tips, 50);
  assert.deepEqual(c.payments.map((p) => [p.method, p.amount, p.change]), [['cash', 300, 200], ['card', 300, null]]);
  await waiter.screenshot({ path: path.join(ARTIFACTS, 'staff-bill-phone.png'), fullPage: true });
  await waiter.context().close();
});

test("the manager sets a PIN, approves a waiter's comp on the waiter's device, and closes the day with a Z", async () => {
  const pw = fs.readFileSync(path.join(dir, 'admin-pass'), 'utf8');
  const manager = await signedIn('/admin#Users', 'admin', pw);
  await manager.fill('[data-pin=admin]', '2468');
  await manager.click('[data-pin=admin] + button');
  await manager.waitForSelector('text=Approval PIN set for admin');
  // The waiter comps a lemonade with the manager's PIN.
  const staff = (await api('POST', '/api/v1/auth/login', { username: 'kim', password: 'kitchen-pass-1' })).data.token;
  const o = await api('POST', '/api/v1/orders', { type: 'dine_in', table_id: 't5', items: [{ item_id: 'lemonade', quantity: 2 }] }, staff);
  assert.equal(o.status, 201);
  const waiter = await signedIn('/staff', 'kim', 'kitchen-pass-1', TABLET);
  await waiter.waitForSelector('[data-table-status=t5]');
  await waiter.click('[data-table-status=t5]');
  const check = await waiter.waitForSelector('[data-check]');
  const id = await check.getAttribute('data-check');
  const line = await waiter.getAttribute(`[data-check="${id}"] [data-line]:has-text("2× Lemonade")`, 'data-line');
  await waiter.click(`[data-comp-line="${line}"]`);
  await waiter.fill('dialog input[name=reason]', 'Wrong order');
  await waiter.fill('dialog input[name=manager]', 'admin');
  await waiter.fill('dialog input[name=pin]', '0000');
  await waiter.click('dialog button[type=submit]');
  await waiter.waitForSelector('dialog >> text=wrong manager or PIN');
  // After a wrong PIN the next try waits a second (the sign-in throttle): the dialog says so,
  // and the waiter tries again until it goes through.
  await waiter.fill('dialog input[name=pin]', '2468');
  const deadline = Date.now() + 15000;
  for (;;) {
    const [resp] = await Promise.all([
      waiter.waitForResponse((r) => r.url().endsWith('/discounts') && r.request().method() === 'POST'),
      waiter.click('dialog button[type=submit]'),
    ]);
    if (resp.status() === 200) break;
    assert.equal(resp.status(), 429, 'only the throttle may refuse the right PIN');
    await waiter.waitForSelector('dialog >> text=/try again in \\d+ s/');
    assert.ok(Date.now() < deadline, 'the right PIN went through within 15 s');
  }
  // The comped line now costs nothing, and says what came off.
  await waiter.waitForSelector(`[data-line="${line}"] td.price:has-text("0.00 EUR (−")`);
  const c = (await api('GET', '/api/v1/checks/' + id, undefined, admin)).data;
  const comp = c.adjustments.find((a) => a.kind === 'comp');
  assert.equal(comp.amount, 600);
  assert.equal(comp.actor, 'kim');
  assert.equal(comp.approved_by, 'admin');
  await waiter.context().close();
  // The manager's close of day: the X report lists the comp, the float is recorded, the Z is
  // refused while checks are open and taken with a reason, and listed with its CSV.
  await manager.click('nav button:has-text("Day")');
  await manager.waitForSelector('[data-figures]');
  await manager.waitForSelector('td:has-text("comp: Lemonade")');
  await manager.selectOption('#cash-kind', 'float');
  await manager.fill('#cash-amount', '100.00');
  await manager.click('form:has(#cash-kind) button[type=submit]');
  await manager.waitForSelector('text=Recorded');
  manager.on('dialog', (d) => d.accept());
  await manager.click('#close-day');
  await manager.waitForSelector('text=/checks are still open/');
  await manager.fill('#z-force', 'Tables left open at closing');
  await manager.click('#close-day');
  await manager.waitForSelector('text=/Day closed: Z report \\d+/');
  await manager.waitForSelector('[data-z] button:has-text("CSV")');
  const zs = (await api('GET', '/api/v1/reports/z', undefined, admin)).data.data;
  assert.equal(zs[0].forced, 'Tables left open at closing');
  assert.equal(zs[0].figures.cash.float, 10000);
  assert.ok(zs[0].figures.adjustments.some((a) => a.kind === 'comp' && a.approved_by === 'admin'));
  await manager.screenshot({ path: path.join(ARTIFACTS, 'admin-day-tablet.png'), fullPage: true });
  await manager.context().close();
});

test("a guest sees the table's running bill and asks for it; the waiter's page shows it", async () => {
  const t4 = (await tables()).find((t) => t.id === 't4');
  const guest = await phone();
  await guest.goto(base + '/t/' + t4.qr_token);
  await guest.waitForSelector('[data-add=lemonade]');
  await guest.click('[data-add=lemonade]');
  await guest.click('#dlg-add');
  await guest.click('#place');
  await guest.waitForSelector('[data-order]');
  const total = await guest.waitForSelector('[data-bill-total]', { timeout: 5000 });
  assert.match(await total.textContent(), /Total €\d+\.\d{2}/);
  await guest.click('#ask-bill');
  await guest.waitForSelector('[data-bill-asked]:not([hidden])');
  assert.ok(await guest.evaluate(() => document.documentElement.scrollWidth <= 360), 'fits 360 px');
  await guest.screenshot({ path: path.join(ARTIFACTS, 'customer-bill-phone.png'), fullPage: true });
  const waiter = await signedIn('/staff', 'kim', 'kitchen-pass-1', PHONE);
  await waiter.waitForSelector(`[data-table-status="${t4.id}"]:has-text("asks for the bill")`, { timeout: 5000 });
  await waiter.context().close();
  await guest.context().close();
});

test('a USB bump bar works the kitchen page: select, bump, digits and recall', async () => {
  const staff = (await api('POST', '/api/v1/auth/login', { username: 'kim', password: 'kitchen-pass-1' })).data.token;
  const kitchen = await signedIn('/kitchen?station=cold', 'kim', 'kitchen-pass-1');
  await kitchen.waitForSelector('#tk-h');
  const a = (await api('POST', '/api/v1/orders', { type: 'takeaway', items: [{ item_id: 'greek_salad', quantity: 1 }] }, staff)).data;
  const b = (await api('POST', '/api/v1/orders', { type: 'takeaway', items: [{ item_id: 'greek_salad', quantity: 2 }] }, staff)).data;
  await kitchen.waitForSelector(`.ticket[data-order="${a.id}"]`);
  await kitchen.waitForSelector(`.ticket[data-order="${b.id}"]`);
  const status = async (o) => (await api('GET', '/api/v1/orders/' + o.id, undefined, staff)).data.status;
  const until = async (o, s) => { await kitchen.waitForSelector(`.ticket[data-order="${o.id}"][data-status=${s}], [data-ready="${o.id}"]`, { timeout: 5000 }); assert.equal(await status(o), s); };
  const selected = () => kitchen.$eval('.ticket.selected', (t) => t.dataset.order);
  const tickets = await kitchen.$$eval('.ticket', (ts) => ts.map((t) => t.dataset.order));
  // Digit 1 picks the first ticket; the arrows walk from there.
  await kitchen.keyboard.press('1');
  assert.equal(await selected(), tickets[0]);
  for (let i = 0; i < tickets.indexOf(b.id); i++) await kitchen.keyboard.press('ArrowRight');
  assert.equal(await selected(), b.id);
  // Each bump is the cold station's part, the orders' only one: the order is ready.
  await kitchen.keyboard.press('Enter');
  await until(b, 'ready');
  for (let i = 0; i < tickets.length; i++) await kitchen.keyboard.press('ArrowLeft');
  for (let i = 0; i < tickets.indexOf(a.id); i++) await kitchen.keyboard.press('ArrowRight');
  assert.equal(await selected(), a.id);
  await kitchen.keyboard.press(' ');
  await until(a, 'ready');
  // The recall key takes back the last bump made on this screen: the ticket is back.
  await kitchen.keyboard.press('r');
  await kitchen.waitForSelector(`.ticket[data-order="${a.id}"][data-status=preparing]`, { timeout: 5000 });
  assert.equal(await status(a), 'preparing');
  await kitchen.context().close();
});

test('each station bumps its own part; the expo shows which are done and the order is ready when all are', async () => {
  const staff = (await api('POST', '/api/v1/auth/login', { username: 'kim', password: 'kitchen-pass-1' })).data.token;
  const grill = await signedIn('/kitchen?station=grill', 'kim', 'kitchen-pass-1');
  const expo = await signedIn('/kitchen', 'kim', 'kitchen-pass-1');
  await grill.waitForSelector('#tk-h');
  await expo.waitForSelector('#tk-h');
  const o = (await api('POST', '/api/v1/orders', { type: 'takeaway', items: [{ item_id: 'tave_kosi', quantity: 1 }, { item_id: 'espresso', quantity: 1 }] }, staff)).data;
  await grill.click(`.ticket[data-order="${o.id}"] [data-bump]`);
  // Gone from the grill's tickets, listed under "Done here"; the expo sees the grill done and
  // the bar still cooking.
  await grill.waitForSelector(`.ticket[data-order="${o.id}"]`, { state: 'detached', timeout: 5000 });
  await grill.waitForSelector(`[data-ready="${o.id}"]`);
  await expo.waitForSelector(`.ticket[data-order="${o.id}"] [data-station-done=grill][data-done="1"]`, { timeout: 5000 });
  await expo.waitForSelector(`.ticket[data-order="${o.id}"] [data-station-done=bar][data-done="0"]`);
  assert.equal((await api('GET', '/api/v1/orders/' + o.id, undefined, staff)).data.status, 'preparing');
  // The bar's part, from the bar's own page: the order is ready.
  const bar = await signedIn('/kitchen?station=bar', 'kim', 'kitchen-pass-1');
  await bar.click(`.ticket[data-order="${o.id}"] [data-bump]`);
  await expo.waitForSelector(`[data-ready="${o.id}"]`, { timeout: 5000 });
  assert.equal((await api('GET', '/api/v1/orders/' + o.id, undefined, staff)).data.status, 'ready');
  await expo.screenshot({ path: path.join(ARTIFACTS, 'kitchen-expo.png'), fullPage: true });
  for (const p of [grill, expo, bar]) await p.context().close();
});

test("a guest's allergy note is read at every station before the first bump", async () => {
  const staff = (await api('POST', '/api/v1/auth/login', { username: 'kim', password: 'kitchen-pass-1' })).data.token;
  const [, t2] = await tables();
  const customer = await phone();
  await customer.goto(base + '/t/' + t2.qr_token);
  await customer.waitForSelector('[data-add=burger]');
  const grill = await signedIn('/kitchen?station=grill', 'kim', 'kitchen-pass-1');
  await grill.waitForSelector('#tk-h');
  await addBurger(customer);
  await customer.fill('#allergy', 'peanuts, severe');
  await customer.click('#place');
  const id = await (await customer.waitForSelector('[data-order]')).getAttribute('data-order');
  // The grill's ticket shows the note large, and asks for it to be read instead of "Done".
  const note = await grill.waitForSelector(`.ticket[data-order="${id}"] [data-allergy][data-acked="0"]`, { timeout: 5000 });
  assert.match(await note.textContent(), /ALLERGY: peanuts, severe/);
  assert.equal(await grill.$(`.ticket[data-order="${id}"] [data-bump]`), null);
  await grill.screenshot({ path: path.join(ARTIFACTS, 'kitchen-allergy.png'), fullPage: true });
  // The bump bar's first press acknowledges it; the order has not moved.
  await grill.click('#tk-h');
  const tickets = await grill.$$eval('.ticket', (ts) => ts.map((t) => t.dataset.order));
  await grill.keyboard.press(String(tickets.indexOf(id) + 1));
  await grill.keyboard.press('Enter');
  await grill.waitForSelector(`.ticket[data-order="${id}"] [data-allergy][data-acked="1"]`, { timeout: 5000 });
  let order = (await api('GET', '/api/v1/orders/' + id, undefined, staff)).data;
  assert.deepEqual(order.allergy, { note: 'peanuts, severe', acked: ['grill'] });
  assert.equal(order.status, 'placed');
  // The next press bumps: the grill is the order's only station, so it is ready.
  await grill.keyboard.press('Enter');
  await customer.waitForSelector(`[data-order="${id}"] [data-status=ready]`, { timeout: 5000 });
  // A waiter's order with a note: the expo reads it for every station of the order at once.
  const expo = await signedIn('/kitchen', 'kim', 'kitchen-pass-1');
  const o = (await api('POST', '/api/v1/orders', { type: 'takeaway', allergy: 'milk', items: [{ item_id: 'tave_kosi', quantity: 1 }, { item_id: 'espresso', quantity: 1 }] }, staff)).data;
  await expo.click(`.ticket[data-order="${o.id}"] [data-ack]`);
  await expo.waitForSelector(`.ticket[data-order="${o.id}"] [data-allergy][data-acked="1"]`, { timeout: 5000 });
  await expo.waitForSelector(`.ticket[data-order="${o.id}"] [data-bump]`);
  order = (await api('GET', '/api/v1/orders/' + o.id, undefined, staff)).data;
  assert.deepEqual(order.allergy.acked, ['bar', 'grill']);
  for (const p of [customer, grill, expo]) await p.context().close();
});

test('the kitchen display fills a 1080p wall screen: 20 tickets without scrolling, then pages; timers, all-day counts', async () => {
  const staff = (await api('POST', '/api/v1/auth/login', { username: 'kim', password: 'kitchen-pass-1' })).data.token;
  for (let i = 0; i < 25; i++) {
    const r = await api('POST', '/api/v1/orders', { type: 'takeaway', items: [{ item_id: 'greek_salad', quantity: 1 }] }, staff);
    assert.equal(r.status, 201);
  }
  const open = (await api('GET', '/api/v1/orders/active?limit=200', undefined, staff)).data.data
    .filter((o) => o.items.some((l) => l.station === 'cold') && !(o.stations_done || []).includes('cold'));
  const salads = open.reduce((n, o) => n + o.items.filter((l) => l.station === 'cold').reduce((m, l) => m + l.quantity, 0), 0);
  const wall = await signedIn('/kitchen?station=cold', 'kim', 'kitchen-pass-1', { width: 1920, height: 1080 });
  await wall.waitForSelector('.ticket');
  // Twenty cards, every one of them whole on the screen.
  assert.equal(await wall.$$eval('.ticket', (ts) => ts.length), 20);
  const outside = await wall.$$eval('.ticket', (ts) => ts.filter((t) => { const r = t.getBoundingClientRect(); return r.bottom > 1080 || r.right > 1920; }).length);
  assert.equal(outside, 0, 'tickets below the fold');
  // Each header shows its number and its timer whole.
  const clipped = await wall.$$eval('.ticket', (ts) => ts.filter((t) => {
    const card = t.getBoundingClientRect();
    return [...t.querySelectorAll('.head .num, .head .age')].some((e) => { const r = e.getBoundingClientRect(); return r.left < card.left || r.right > card.right; });
  }).length);
  assert.equal(clipped, 0, 'headers cut off');
  assert.match(await wall.textContent('#pager'), new RegExp(`Page 1 of ${Math.ceil(open.length / 20)} \\(${open.length} tickets\\)`));
  // The all-day count is the sum of what is open at the station.
  assert.match(await wall.textContent('#all-day'), new RegExp(`${salads} × Greek salad`));
  // A running timer in each header, and the dark theme.
  const t1 = await wall.textContent('.ticket .age');
  assert.match(t1, /^\d+:\d\d$/);
  await wall.waitForFunction((t) => document.querySelector('.ticket .age').textContent !== t, t1, { timeout: 3000 });
  assert.equal(await wall.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(18, 18, 18)');
  await wall.screenshot({ path: path.join(ARTIFACTS, 'kitchen-1080p.png') });
  // The next page holds the rest; the bump bar's selection turns the page with it.
  await wall.keyboard.press('PageDown');
  await wall.waitForSelector('#pager >> text=Page 2');
  assert.equal(await wall.$$eval('.ticket', (ts) => ts.length), Math.min(20, open.length - 20));
  await wall.keyboard.press('PageUp');
  await wall.waitForSelector('#pager >> text=Page 1');
  for (let i = 0; i < 20; i++) await wall.keyboard.press('ArrowRight');
  await wall.waitForSelector('#pager >> text=Page 2');
  // On a phone it still fits the width.
  await wall.setViewportSize({ width: 390, height: 800 });
  assert.ok(await wall.evaluate(() => document.documentElement.scrollWidth <= 390), 'fits 390 px');
  await wall.context().close();
});

test("the owner exports the menu as a spreadsheet, adds to it, imports it, and a guest orders the new dish", async () => {
  const pw = fs.readFileSync(path.join(dir, 'admin-pass'), 'utf8').trim();
  const owner = await signedIn('/admin#Menu', 'admin', pw);
  await owner.waitForSelector('#export-csv');
  const [download] = await Promise.all([owner.waitForEvent('download'), owner.click('#export-csv')]);
  assert.equal(download.suggestedFilename(), 'menu.csv');
  const csv = fs.readFileSync(await download.path(), 'utf8');
  const header = csv.replace(/^\uFEFF/, '').split(/\r?\n/)[0].split(',');
  const row = (cells) => header.map((h) => cells[h] ?? '').join(',');
  // A mistake first: the import names the row and column, and changes nothing.
  const bad = csv.trimEnd() + '\n' + row({ category_id: 'desserts', 'category_name:en': 'Desserts', id: 'baklava', 'name:en': 'Baklava', price: '4.555', station: 'cold', available: 'yes' }) + '\n';
  const sheet = path.join(dir, 'menu-edit.csv');
  fs.writeFileSync(sheet, bad);
  await owner.setInputFiles('#menu-csv', sheet);
  await owner.click('#import-csv');
  const problem = await owner.waitForSelector('[data-problem]');
  assert.match(await problem.textContent(), /^row \d+, price/);
  assert.equal((await api('GET', '/api/v1/menu?lang=en')).data.categories.some((c) => c.items.some((i) => i.id === 'baklava')), false);
  // Fixed: imported, listed on the page, and on the guest's menu.
  fs.writeFileSync(sheet, bad.replace('4.555', '4.50'));
  await owner.setInputFiles('#menu-csv', sheet);
  await owner.click('#import-csv');
  await owner.waitForSelector('text=/Imported \\d+ items/');
  await owner.waitForSelector('input[aria-label="English name of baklava"]');
  const [t1] = await tables();
  const guest = await phone();
  await guest.goto(base + '/t/' + t1.qr_token);
  await guest.click('[data-add=baklava]');
  await guest.click('#dlg-add');
  await guest.click('#place');
  await guest.waitForSelector('[data-order] >> text=€4.50');
  for (const p of [owner, guest]) await p.context().close();
});

test('every page fits a 390 px phone, a 1,024 px tablet and a 1080p screen without sideways scrolling', async () => {
  const pw = fs.readFileSync(path.join(dir, 'admin-pass'), 'utf8').trim();
  const [t1] = await tables();
  const pages = [
    ['guest', '/t/' + t1.qr_token, null, '[data-add]'],
    ['kitchen-station', '/kitchen?station=grill', 'kim', '#tk-h'],
    ['kitchen-expo', '/kitchen', 'kim', '#tk-h'],
    ['staff', '/staff', 'kim', '[data-add]'],
    ['admin', '/admin#Menu', 'admin', '#export-csv'],
  ];
  for (const [name, url, user, ready] of pages) {
    for (const size of [{ width: 390, height: 844 }, { width: 1024, height: 768 }, { width: 1920, height: 1080 }]) {
      let page;
      if (user) page = await signedIn(url, user, user === 'admin' ? pw : 'kitchen-pass-1', size);
      else { page = await (await browser.newContext({ viewport: size })).newPage(); await page.goto(base + url); }
      await page.waitForSelector(ready);
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(wide <= size.width, `${name} at ${size.width} px is ${wide} px wide`);
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${size.width}.png`) });
      await page.context().close();
    }
  }
});

test('the owner adds a photo to a dish; the box shrinks it and the guest page loads it lazily', async () => {
  const pw = fs.readFileSync(path.join(dir, 'admin-pass'), 'utf8').trim();
  const owner = await signedIn('/admin#Menu', 'admin', pw, { width: 1920, height: 1080 });
  await owner.waitForSelector('[data-photo-input=burger]');
  // A 1920×1080 PNG (a screenshot) as the phone's picture.
  const picture = path.join(dir, 'dish.png');
  fs.writeFileSync(picture, await owner.screenshot());
  await owner.setInputFiles('[data-photo-input=burger]', picture);
  await owner.waitForSelector('text=Photo saved for Beef burger');
  await owner.waitForSelector('img[data-photo=burger]');
  const url = (await api('GET', '/api/v1/menu?lang=en')).data.categories.flatMap((c) => c.items).find((i) => i.id === 'burger').photo;
  assert.match(url, /^\/photos\/burger\.jpg\?v=/);
  const [t1] = await tables();
  const guest = await phone();
  await guest.goto(base + '/t/' + t1.qr_token);
  const img = await guest.waitForSelector('[data-item=burger] img.photo');
  assert.equal(await img.getAttribute('loading'), 'lazy');
  await img.scrollIntoViewIfNeeded();
  await guest.waitForFunction(() => document.querySelector('[data-item=burger] img.photo').naturalWidth > 0, null, { timeout: 5000 });
  // Shrunk by the box: 640 px on its longer side.
  assert.equal(await img.evaluate((i) => i.naturalWidth), 640);
  assert.ok(await guest.evaluate(() => document.documentElement.scrollWidth <= 360), 'fits 360 px');
  await guest.screenshot({ path: path.join(ARTIFACTS, 'guest-photos-phone.png') });
  for (const p of [owner, guest]) await p.context().close();
});

test("the README's first command: on embedded defaults a guest scans the demo table's code and orders, and the kitchen sees it", async () => {
  // `cargo run --release` is the binary with no arguments: no config file, data in
  // ./orderd-data of the directory it runs in, HTTP on 0.0.0.0:8080, MQTT on 0.0.0.0:1883.
  const net = await import('node:net');
  for (const port of [8080, 1883]) {
    const free = await new Promise((resolve) => {
      const srv = net.createServer().once('error', () => resolve(false)).once('listening', () => srv.close(() => resolve(true)));
      srv.listen(port, '0.0.0.0');
    });
    assert.ok(free, `port ${port} is taken: the README's first command needs it (stop what uses it)`);
  }
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'orderd-defaults-'));
  const box = spawn(BIN, [], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  try {
    await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('orderd did not start: ' + out)), 30000);
      box.stdout.on('data', (d) => { out += d; if (out.includes('orderd is running') && out.includes('initial-admin-password')) { clearTimeout(timer); resolve(); } });
      box.on('exit', (code) => reject(new Error('orderd exited ' + code + ': ' + out)));
    });
    const home = 'http://127.0.0.1:8080';
    const pass = fs.readFileSync(path.join(cwd, 'orderd-data/initial-admin-password'), 'utf8').trim();
    const login = await (await fetch(home + '/api/v1/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: pass }) })).json();
    const demo = (await (await fetch(home + '/api/v1/tables', { headers: { authorization: 'Bearer ' + login.token } })).json()).data[0];
    // The guest: the demo table's code, no phone verification on defaults.
    const guest = await phone();
    await guest.goto(home + '/t/' + demo.qr_token);
    await guest.click('[data-add=espresso]');
    await guest.click('#dlg-add');
    await guest.click('#place');
    const id = await (await guest.waitForSelector('[data-order]')).getAttribute('data-order');
    // The kitchen, signed in with the first-run password.
    const ctx = await browser.newContext({ viewport: TABLET });
    const kitchen = await ctx.newPage();
    await kitchen.goto(home + '/kitchen?station=bar');
    await kitchen.fill('#login-user', 'admin');
    await kitchen.fill('#login-pass', pass);
    await kitchen.click('button[type=submit]');
    await kitchen.waitForSelector(`.ticket[data-order="${id}"]`, { timeout: 5000 });
    await guest.context().close();
    await ctx.close();
  } finally {
    box.kill('SIGTERM');
    await new Promise((r) => (box.exitCode !== null ? r() : box.once('exit', r)));
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

test("the admin's forms say what is wrong at the field", async () => {
  const pw = fs.readFileSync(path.join(dir, 'admin-pass'), 'utf8').trim();
  const owner = await signedIn('/admin#Devices', 'admin', pw);
  await owner.waitForSelector('#d-id');
  await owner.fill('#d-id', 'pfield');
  await owner.selectOption('#d-kind', 'printer');
  await owner.fill('#d-st', '');
  await owner.click('text=Add device');
  const note = await owner.waitForSelector('#d-st-error');
  assert.match(await note.textContent(), /stations: printers, displays and bump bars serve at least one station/);
  assert.equal(await owner.getAttribute('#d-st', 'aria-invalid'), 'true');
  assert.equal(await owner.getAttribute('#d-st', 'aria-describedby'), 'd-st-error');
  assert.equal(await owner.evaluate(() => document.activeElement.id), 'd-st');
  // Fixed: the mark goes, the device is added.
  await owner.fill('#d-st', 'grill');
  await owner.click('text=Add device');
  await owner.waitForSelector('text=/Added pfield/');
  assert.equal(await owner.$('#d-st-error'), null);
  // The tables form too.
  await owner.click('nav[aria-label=Sections] button:has-text("Tables")');
  await owner.waitForSelector('#new-table');
  await owner.evaluate(() => document.getElementById('new-table').removeAttribute('maxlength'));
  await owner.fill('#new-table', 'x'.repeat(33));
  await owner.click('form button[type=submit]');
  await owner.waitForSelector('#new-table-error');
  assert.equal(await owner.getAttribute('#new-table', 'aria-invalid'), 'true');
  await owner.context().close();
});

test("the owner's first hour: the guided set-up names the restaurant, a 120-dish menu with photos comes from a spreadsheet, the QR sheet prints, and a guest orders", async () => {
  // A box of its own, on a fixed port: saving the restaurant restarts it, and the page must
  // find it again at the same address.
  const net = await import('node:net');
  const port = await new Promise((resolve) => { const srv = net.createServer().listen(0, '127.0.0.1', () => { const p = srv.address().port; srv.close(() => resolve(p)); }); });
  const own = fs.mkdtempSync(path.join(os.tmpdir(), 'orderd-owner-'));
  fs.writeFileSync(path.join(own, 'orderd.toml'), ['[store]', `data_dir = "${own}/data"`, '[http]', `listen = "127.0.0.1:${port}"`, '[mqtt]', 'listen = "127.0.0.1:0"', ''].join('\n'));
  const box = spawn(BIN, ['run', '--config', path.join(own, 'orderd.toml')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  let log = '';
  box.stdout.on('data', (d) => { log += d; });
  box.stderr.on('data', (d) => { log += d; });
  const home = `http://127.0.0.1:${port}`;
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('orderd did not start: ' + log)), 30000);
      const check = () => { if (log.includes('orderd is running')) { clearTimeout(timer); resolve(); } else setTimeout(check, 50); };
      check();
      box.on('exit', (code) => reject(new Error('orderd exited ' + code + ': ' + log)));
    });
    const pass = fs.readFileSync(path.join(own, 'data/initial-admin-password'), 'utf8').trim();
    const owner = await signedIn('/admin', 'admin', pass, TABLET, home);
    // First sign-in: the set-up opens at its first step.
    await owner.waitForSelector('#setup >> text=Set-up, step 1 of 5: Restaurant');
    await owner.screenshot({ path: path.join(ARTIFACTS, 'admin-setup-restaurant.png'), fullPage: true });
    await owner.fill('#s-name', 'Trattoria Vlora');
    await owner.fill('#s-address', 'Rruga Ismail Qemali 12, Vlorë');
    await owner.fill('#s-tax', 'L91234567B');
    // A wrong time zone is named at its field, and nothing is saved.
    await owner.fill('#s-tz', 'Europe/Vlora');
    await owner.click('#s-save');
    await owner.waitForSelector('#s-tz-error');
    assert.equal(fs.existsSync(path.join(own, 'data/site.toml')), false);
    await owner.fill('#s-tz', 'Europe/Tirane');
    // The lek: its decimals follow the currency.
    await owner.fill('#s-currency', 'ALL');
    await owner.dispatchEvent('#s-currency', 'change');
    assert.equal(await owner.inputValue('#s-digits'), '0');
    await owner.selectOption('#s-lang', 'sq');
    await owner.click('#s-save');
    // Saved, the box restarts itself (the same process), and the set-up goes on at the menu.
    await owner.waitForSelector('#setup >> text=Set-up, step 2 of 5: Menu', { timeout: 60000 });
    assert.match(log, /restarting to apply the restaurant's settings/);
    assert.equal(box.exitCode, null, 'the box is still running');
    // The menu: 120 dishes in 12 categories from a spreadsheet, prices in whole lek.
    const [download] = await Promise.all([owner.waitForEvent('download'), owner.click('#export-csv')]);
    const header = fs.readFileSync(await download.path(), 'utf8').replace(/^\uFEFF/, '').split(/\r?\n/)[0].split(',');
    const row = (cells) => header.map((h) => cells[h] ?? '').join(',');
    const lines = [header.join(',')];
    for (let c = 0; c < 12; c++) {
      for (let i = 0; i < 10; i++) {
        lines.push(row({ category_id: `cat${c}`, 'category_name:en': `Course ${c + 1}`, 'category_name:sq': `Pjata ${c + 1}`, id: `dish${c * 10 + i}`, 'name:en': `Dish ${c * 10 + i}`, 'name:sq': `Gjella ${c * 10 + i}`, price: String(300 + 50 * i), station: c < 6 ? 'grill' : 'bar', available: 'yes' }));
      }
    }
    const sheet = path.join(own, 'menu.csv');
    fs.writeFileSync(sheet, lines.join('\n') + '\n');
    await owner.setInputFiles('#menu-csv', sheet);
    await owner.click('#import-csv');
    await owner.waitForSelector('text=Imported 120 items.');
    // A photo for every dish, each named after its id, drawn here as the phone would take it.
    const pictures = await owner.evaluate(() => Array.from({ length: 120 }, (_, n) => {
      const c = document.createElement('canvas');
      c.width = 800; c.height = 600;
      const g = c.getContext('2d');
      g.fillStyle = `hsl(${n * 3}, 60%, 50%)`; g.fillRect(0, 0, 800, 600);
      g.fillStyle = '#fff'; g.font = '120px sans-serif'; g.fillText(String(n), 200, 340);
      return c.toDataURL('image/jpeg', 0.8).split(',')[1];
    }));
    const files = pictures.map((b64, n) => { const f = path.join(own, `dish${n}.jpg`); fs.writeFileSync(f, Buffer.from(b64, 'base64')); return f; });
    await owner.setInputFiles('#menu-photos', files);
    await owner.click('#upload-photos');
    await owner.waitForSelector('text=Photos saved: 120.', { timeout: 120000 });
    assert.equal(await owner.$$eval('img[data-photo]', (imgs) => imgs.length), 120);
    await owner.click('#setup-next');
    // Tables: two added, the QR sheet shown and printed on its own.
    await owner.waitForSelector('#setup >> text=step 3 of 5: Tables');
    for (const label of ['Terrace 1', 'Terrace 2']) {
      await owner.fill('#new-table', label);
      await owner.click('form button[type=submit]');
      await owner.waitForSelector(`td:text-is("${label}")`);
    }
    await owner.click('text=Show QR sheet');
    await owner.waitForSelector('#qr-sheet');
    await owner.evaluate(() => { window.print = () => { window.printed = true; }; });
    await owner.click('#print-qr');
    assert.equal(await owner.evaluate(() => window.printed), true);
    await owner.emulateMedia({ media: 'print' });
    assert.equal(await owner.evaluate(() => getComputedStyle(document.querySelector('#qr-sheet')).visibility), 'visible');
    assert.equal(await owner.evaluate(() => getComputedStyle(document.querySelector('nav[aria-label=Sections]')).visibility), 'hidden');
    await owner.emulateMedia({ media: 'screen' });
    const token = (await (await fetch(home + '/api/v1/tables', { headers: { authorization: 'Bearer ' + (await owner.evaluate(() => O.staffToken())) } })).json()).data.find((t) => t.label === 'Terrace 2').qr_token;
    const svg = await (await fetch(home + '/api/v1/tables/qr-sheet.svg', { headers: { authorization: 'Bearer ' + (await owner.evaluate(() => O.staffToken())) } })).text();
    assert.ok(svg.includes('/t/' + token), 'the sheet holds the new table');
    // Devices and users wait; the set-up ends, and a new sign-in opens the menu, not the set-up.
    await owner.click('#setup-next');
    await owner.waitForSelector('#setup >> text=step 4 of 5: Devices');
    await owner.click('#setup-next');
    await owner.waitForSelector('#setup >> text=step 5 of 5: Users');
    await owner.click('#setup-next');
    await owner.waitForSelector('text=Set-up finished.');
    assert.equal(await owner.isHidden('#setup'), true);
    assert.match(fs.readFileSync(path.join(own, 'data/site.toml'), 'utf8'), /finished = true/);
    await owner.screenshot({ path: path.join(ARTIFACTS, 'admin-after-setup.png'), fullPage: false });
    // A guest at Terrace 2: the restaurant's name, Albanian first, photos, and lek.
    const guest = await phone();
    await guest.goto(home + '/t/' + token);
    await guest.waitForSelector('#restaurant >> text=Trattoria Vlora');
    assert.equal(await guest.evaluate(() => document.documentElement.lang), 'sq');
    const dish = await guest.waitForSelector('[data-item=dish57]');
    assert.match(await dish.textContent(), /Gjella 57/);
    assert.match(await dish.textContent(), /650/);
    assert.ok(await guest.$('[data-item=dish57] img.photo'), 'the dish has its photo');
    await guest.click('[data-add=dish57]');
    await guest.click('#dlg-add');
    await guest.click('#place');
    const id = await (await guest.waitForSelector('[data-order]')).getAttribute('data-order');
    const order = await (await fetch(home + '/api/v1/orders/' + id, { headers: { authorization: 'Bearer ' + (await owner.evaluate(() => O.staffToken())) } })).json();
    assert.equal(order.total, 650);
    assert.equal(order.currency, 'ALL');
    assert.ok(await guest.evaluate(() => document.documentElement.scrollWidth <= 360), 'fits 360 px');
    await guest.screenshot({ path: path.join(ARTIFACTS, 'guest-after-setup-phone.png') });
    for (const p of [owner, guest]) await p.context().close();
  } finally {
    box.kill('SIGTERM');
    await new Promise((r) => (box.exitCode !== null ? r() : box.once('exit', r)));
    fs.rmSync(own, { recursive: true, force: true });
  }
});

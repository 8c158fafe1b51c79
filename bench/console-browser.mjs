// The browser half of bench/console.sh: Debian's headless Chromium, driven
// by playwright-core from tests-browser/node_modules, launched as
// tests-browser/visit.mjs launches it.
//
// Usage:
//   node bench/console-browser.mjs paint --console URL --token-file PATH [--runs N] [--save-state FILE]
//   node bench/console-browser.mjs sign-in --console URL --token-file PATH --save-state FILE
//   node bench/console-browser.mjs hold (--open --state FILE | --blank) [--console URL]
//
// paint: N fresh browser contexts (no cookies, no HTTP cache) load the sign-in
//   page, then N fresh contexts signed in (one sign-in through the form, its
//   cookie reused as storageState) load the dashboard. One warm-up load of
//   each, not counted, starts the browser's renderer first. Times are in ms
//   from the navigation's start (performance.timeOrigin), read in the page:
//     signin fcp   first-contentful-paint of the sign-in page (the page's
//                  header, painted before its script has run);
//     signin form  the sign-in form shown (the page's script has asked
//                  GET /api/v1/session, got 401 and unhidden the form);
//     dash fcp     first-contentful-paint of the signed-in page;
//     dash chart   the Traffic chart holding data: `data-total` on
//                  #traffic-chart set to a non-zero count from
//                  /api/v1/traffic (the canvas is drawn in the same task),
//                  plus the next animation frame, i.e. the frame that shows it.
//   Prints one `run KIND k=v...` line per load, then `stat KIND NAME median
//   min max` lines, and `problem ...` lines for script errors, CSP reports
//   and API answers >= 400 other than the sign-in page's expected 401 on
//   GET /api/v1/session. Exits 1 if a load did not reach its mark.
// sign-in: signs in through the form once and saves the session cookie.
// hold: one browser, on the signed-in dashboard (--open) or on about:blank
//   (--blank), until SIGTERM or SIGINT; prints `ready` once the dashboard is
//   live (stream open and chart holding data), then at the end the server-sent
//   `tick` events the page received, the API calls it made by status, and
//   any problems.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'tests-browser', 'package.json'));
const { chromium } = require('playwright-core');

const mode = process.argv[2];
const options = { console: null, tokenFile: null, runs: 10, saveState: null, state: null, open: false, blank: false };
const argv = process.argv.slice(3);
for (let i = 0; i < argv.length; i++) {
  switch (argv[i]) {
    case '--console': options.console = argv[++i]; break;
    case '--token-file': options.tokenFile = argv[++i]; break;
    case '--runs': options.runs = Number(argv[++i]); break;
    case '--save-state': options.saveState = argv[++i]; break;
    case '--state': options.state = argv[++i]; break;
    case '--open': options.open = true; break;
    case '--blank': options.blank = true; break;
    default:
      console.error(`unknown argument ${argv[i]}`);
      process.exit(2);
  }
}
const usage = 'usage: node console-browser.mjs paint --console URL --token-file PATH [--runs N] [--save-state FILE]\n'
  + '       node console-browser.mjs sign-in --console URL --token-file PATH --save-state FILE\n'
  + '       node console-browser.mjs hold (--open --state FILE | --blank) [--console URL]';
if (!((mode === 'paint' && options.console && options.tokenFile && options.runs > 0)
  || (mode === 'sign-in' && options.console && options.tokenFile && options.saveState)
  || (mode === 'hold' && (options.blank || (options.open && options.state && options.console))))) {
  console.error(usage);
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // `hold` ends on SIGTERM with a report: the signals are ours, not Playwright's.
  handleSIGTERM: false, handleSIGINT: false, handleSIGHUP: false,
  // This machine has no network beyond loopback: keep Chromium from trying.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const VIEWPORT = { width: 1280, height: 900 };

// Marks taken in the page, in ms since the navigation started, by an
// observer installed before any of the page's own scripts (an init script
// goes in through the DevTools protocol, outside the page's CSP).
function marks() {
  const m = {};
  window.__bench = m;
  const now = () => performance.now();
  const check = () => {
    const signin = document.getElementById('signin-view');
    if (m.form == null && signin && !signin.hidden) m.form = now();
    const view = document.getElementById('console-view');
    if (m.shown == null && view && !view.hidden) m.shown = now();
    const chart = document.getElementById('traffic-chart');
    const total = chart && Number(chart.getAttribute('data-total'));
    if (m.data == null && total > 0) {
      m.data = now();
      m.total = total;
      requestAnimationFrame(() => { m.chart = now(); });
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
}

const problems = [];
function watch(page, expected401) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`script error: ${err.message}`));
  page.on('response', (res) => {
    const p = new URL(res.url()).pathname;
    if (res.status() < 400) return;
    if (expected401 && res.status() === 401 && p === '/api/v1/session' && res.request().method() === 'GET') return;
    problems.push(`${res.request().method()} ${p} answered ${res.status()}`);
  });
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
async function until(page, seconds, what, probe) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const v = await page.evaluate(probe).catch(() => null);
    if (v) return v;
    await sleep(20);
  }
  throw new Error(`${what} did not happen within ${seconds} s`);
}
const fcp = () => {
  const e = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
  return e ? e.startTime : null;
};

// One load in a fresh context; answers its marks.
async function load(kind, state) {
  const context = await browser.newContext({ viewport: VIEWPORT, ...(state ? { storageState: state } : {}) });
  await context.addInitScript(marks);
  const page = await context.newPage();
  watch(page, kind === 'signin');
  try {
    await page.goto(options.console, { waitUntil: 'commit', timeout: 20000 });
    if (kind === 'signin') {
      const m = await until(page, 20, 'the sign-in form', () => window.__bench && window.__bench.form != null && window.__bench);
      const paint = await until(page, 5, 'a first contentful paint', fcp);
      return { fcp: paint, form: m.form };
    }
    const m = await until(page, 20, 'the traffic chart with data', () => window.__bench && window.__bench.chart != null && window.__bench);
    const paint = await until(page, 5, 'a first contentful paint', fcp);
    return { fcp: paint, shown: m.shown, data: m.data, chart: m.chart, total: m.total };
  } finally {
    await context.close();
  }
}

async function signIn() {
  const token = fs.readFileSync(options.tokenFile, 'utf8').trim();
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  watch(page, true);
  await page.goto(options.console);
  await page.getByLabel('Admin token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor({ timeout: 20000 });
  const state = await context.storageState();
  if (options.saveState) fs.writeFileSync(options.saveState, JSON.stringify(state));
  await context.close();
  return state;
}

const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, min: s[0], max: s[s.length - 1] };
};
const ms = (v) => (v == null ? '?' : v.toFixed(1));

async function paint() {
  const results = { signin: [], dash: [] };
  await load('signin'); // warm-up, not counted
  for (let i = 0; i < options.runs; i++) {
    const r = await load('signin');
    results.signin.push(r);
    console.log(`run signin fcp=${ms(r.fcp)} form=${ms(r.form)}`);
  }
  const state = await signIn();
  await load('dash', state); // warm-up, not counted
  for (let i = 0; i < options.runs; i++) {
    const r = await load('dash', state);
    results.dash.push(r);
    console.log(`run dash fcp=${ms(r.fcp)} shown=${ms(r.shown)} data=${ms(r.data)} chart=${ms(r.chart)} total=${r.total}`);
  }
  for (const [kind, names] of [['signin', ['fcp', 'form']], ['dash', ['fcp', 'shown', 'chart']]]) {
    for (const name of names) {
      const s = stat(results[kind].map((r) => r[name]));
      console.log(`stat ${kind} ${name} ${ms(s.median)} ${ms(s.min)} ${ms(s.max)}`);
    }
  }
}

async function hold() {
  let page, context, ticks = 0;
  const calls = {};
  if (options.open) {
    context = await browser.newContext({ viewport: VIEWPORT, storageState: options.state });
    page = await context.newPage();
    watch(page, false);
    // Server-sent events as the browser's network stack sees them.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.eventSourceMessageReceived', (e) => { if (e.eventName === 'tick') ticks++; });
    page.on('response', (res) => {
      const u = new URL(res.url());
      if (!u.pathname.startsWith('/api/')) return;
      const key = `${u.pathname.replace(/\/\d+(?=\/|$)/g, '/ID')} ${res.status()}`;
      calls[key] = (calls[key] || 0) + 1;
    });
    await context.addInitScript(marks);
    await page.goto(options.console, { timeout: 20000 });
    await until(page, 20, 'the dashboard live with data', () => window.__bench && window.__bench.chart != null
      && document.getElementById('live').textContent === 'Live');
  } else {
    context = await browser.newContext({ viewport: VIEWPORT });
    page = await context.newPage();
    await page.goto('about:blank');
  }
  const began = Date.now();
  console.log('ready');
  await new Promise((ok) => { process.once('SIGTERM', ok); process.once('SIGINT', ok); });
  const seconds = (Date.now() - began) / 1000;
  if (options.open) {
    const live = await page.evaluate(() => document.getElementById('live').textContent).catch((e) => `? (${e.message})`);
    console.log(`held ${seconds.toFixed(1)} s: ${ticks} ticks received, live indicator "${live}"`);
    console.log(`calls ${Object.entries(calls).sort().map(([k, n]) => `${k} x${n}`).join(', ')}`);
  } else {
    console.log(`held about:blank ${seconds.toFixed(1)} s`);
  }
  await context.close();
}

let failed = false;
try {
  if (mode === 'paint') await paint();
  else if (mode === 'sign-in') await signIn();
  else await hold();
} catch (e) {
  failed = true;
  console.log(`FAILED: ${e.message.split('\n')[0]}`);
}
for (const p of problems) console.log(`problem ${p}`);
await browser.close();
process.exit(failed ? 1 : 0);

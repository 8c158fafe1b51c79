// rampart console: one page over the admin API (docs/console.md), same
// origin only. Strings from the API reach the page as text nodes, never HTML.
'use strict';

const $ = (id) => document.getElementById(id);
// Verdicts: key, words, and a dash pattern so colour is not the only cue.
const SERIES = [['passed', 'passed', []], ['blocked', 'blocked', [8, 4]], ['challenged', 'challenged', [2, 3]],
  ['limited', 'limited', [12, 3, 3, 3]], ['upstream_errors', 'upstream errors', [5, 2, 1, 2]]];
const WINDOW_S = 300; // the chart's 5 minutes, one point a second
const REPORTS = ['Markdown', 'HTML', 'JSON', 'STIX', 'MISP'];
const ENDED = 'Your session has ended: sign in again.';

let csrf = null;          // in memory only: a reloaded page asks GET /session
let source = null;        // EventSource of /api/v1/live
let timers = [];
let refreshing = null, again = false;
let lastBans = null;      // ban count of the last tick
const points = new Map(); // second -> traffic point
let sites = [];
const held = {};          // site -> {until, mode}: ticks may not undo a switch under way
const shown = {};         // element id -> signature of what it shows
let incidentId = null, incidentSeen = null, proposal = null, opener = null;

// One call. Changes carry the CSRF token; a 401 from anything but the
// session route means the session ended.
async function api(method, path, body) {
  const headers = body === undefined ? {} : { 'Content-Type': 'application/json' };
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw Object.assign(new Error('The console cannot reach rampart.'), { status: 0 });
  }
  let data = null;
  try { data = JSON.parse(await res.text()); } catch (e) { /* empty or not JSON */ }
  if (res.ok) return data || {};
  if (res.status === 401 && path !== '/api/v1/session') signedOut(ENDED);
  const text = data && typeof data.error === 'string' ? data.error : `${res.status} ${res.statusText}`;
  throw Object.assign(new Error(text), { status: res.status, retryAfter: res.headers.get('Retry-After') });
}

// ---- DOM helpers ----
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v; else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
function say(node, text, kind) {
  node.textContent = text || '';
  node.classList.toggle('err', kind === 'err');
  node.classList.toggle('ok', kind === 'ok');
}
const fail = (node, err) => { if (err.status !== 401) say(node, err.message, 'err'); };
const pad = (n) => String(n).padStart(2, '0');
// Local HH:MM:SS, with the date in front when it is not today.
function fmtTime(ms) {
  if (ms == null || !isFinite(ms)) return '–';
  const d = new Date(ms), hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === new Date().toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}
const timeEl = (ms) => ms == null || !isFinite(ms) ? '–'
  : el('time', { datetime: new Date(ms).toISOString(), class: 'nowrap' }, fmtTime(ms));
const onOff = (v) => v === true ? 'on' : !v ? 'off' : typeof v === 'string' ? v : 'on';
const list = (xs) => (xs || []).join(', ');
const and = (xs) => xs.length < 2 ? xs.join('') : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const keyOf = (s) => String(s).replace(/[^A-Za-z0-9_-]/g, '_');

// Redraws a table body only when its data changed, keeping keyboard focus
// on the same button (by data-key) across the redraw.
function fill(tbody, data, build, columns, empty) {
  const sig = JSON.stringify(data);
  if (shown[tbody.id] === sig) return;
  shown[tbody.id] = sig;
  const active = document.activeElement;
  const key = tbody.contains(active) ? active.getAttribute('data-key') : null;
  tbody.replaceChildren(...(data.length ? data.map(build) : [el('tr', {}, el('td', { colspan: columns, class: 'empty' }, empty))]));
  const back = key && tbody.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (back) back.focus();
}
function button(text, key, attrs, onClick) {
  const b = el('button', Object.assign({ type: 'button', 'data-key': key }, attrs), text);
  b.addEventListener('click', () => onClick(b));
  return b;
}

// ---- signing in and out ----
function view(signedIn) {
  $('signin-view').hidden = signedIn;
  for (const id of ['console-view', 'nav', 'session']) $(id).hidden = !signedIn;
}

function signedIn(token, fromForm) {
  csrf = token == null ? '' : String(token);
  view(true);
  say($('status'), '');
  if (fromForm) $('h-traffic').focus();
  loadTraffic();
  refresh();
  connect();
  timers.push(setInterval(refresh, 5000));
}

function signedOut(message) {
  if (csrf === null) return;
  csrf = null;
  timers.forEach(clearTimeout); timers = [];
  if (source) { source.close(); source = null; }
  if ($('allow').open) $('allow').close();
  points.clear(); sites = []; lastBans = null; incidentId = null; $('incident').hidden = true;
  for (const k of Object.keys(shown)) delete shown[k];
  view(false);
  say($('signin-msg'), message, message === ENDED ? 'err' : null);
  $('token').focus();
}

$('signin').addEventListener('submit', async (e) => {
  e.preventDefault();
  const msg = $('signin-msg'), submit = e.target.querySelector('button');
  say(msg, 'Signing in…');
  try {
    const data = await api('POST', '/api/v1/session', { token: $('token').value.trim() });
    $('token').value = '';
    say(msg, '');
    signedIn(data.csrf, true);
  } catch (err) {
    if (err.status === 401) return say(msg, 'That token is not right', 'err');
    if (err.status !== 429) return say(msg, err.message, 'err');
    const s = waitSeconds(err.retryAfter);
    say(msg, `Too many failed sign-ins: wait ${s} seconds before trying again.`, 'err');
    // Any try before then is refused, whatever the token.
    submit.disabled = true;
    setTimeout(() => { submit.disabled = false; }, s * 1000);
  }
});

// Retry-After is seconds or an HTTP date.
function waitSeconds(value) {
  const n = Number(value), at = Date.parse(value || '');
  const s = value && isFinite(n) ? n : isFinite(at) ? (at - Date.now()) / 1000 : 60;
  return Math.max(1, Math.ceil(s));
}

$('sign-out').addEventListener('click', async () => {
  try { await api('DELETE', '/api/v1/session'); } catch (e) { /* signed out here either way */ }
  signedOut('Signed out.');
});

// ---- live updates ----
function setLive(text, paused) {
  say($('live'), text);
  $('live').classList.toggle('paused', paused);
}

function connect() {
  if (source) source.close();
  source = new EventSource('/api/v1/live');
  source.addEventListener('open', () => setLive('Live', false));
  source.addEventListener('tick', (e) => {
    let t;
    try { t = JSON.parse(e.data); } catch (err) { return; }
    addPoint(t, true);
    drawChart();
    if (Array.isArray(t.sites)) mergeSites(t.sites);
    if (t.generation != null) $('generation').textContent = `config generation ${t.generation}`;
    if (t.bans != null && lastBans !== null && t.bans !== lastBans) loadBans();
    if (t.bans != null) lastBans = t.bans;
  });
  source.addEventListener('error', () => {
    setLive('Live updates paused, reconnecting', true);
    if (!source || source.readyState !== EventSource.CLOSED) return;
    // EventSource retries by itself, unless the server refused the stream
    // (401, 5xx): then see whether the session holds, and open it again.
    timers.push(setTimeout(async () => {
      try { await api('GET', '/api/v1/session'); } catch (err) {
        if (err.status === 401) return signedOut(ENDED);
      }
      if (csrf !== null) connect();
    }, 3000));
  });
}

// Re-reads the lists; a call while one runs makes one more run after it,
// so an action's outcome is never hidden by an older answer.
async function refresh() {
  if (csrf === null) return;
  if (refreshing) { again = true; return refreshing; }
  refreshing = Promise.all([loadOverview(), loadTop(), loadWaf(), loadLeaks(), loadIncidents(), loadBans()]);
  await refreshing;
  refreshing = null;
  if (again) { again = false; refresh(); }
}

// ---- traffic ----
function addPoint(p, replace) {
  if (!p || p.at == null) return;
  const s = Math.floor(p.at / 1000);
  if (replace || !points.has(s)) points.set(s, p);
  const newest = Math.max(...points.keys());
  for (const k of points.keys()) if (k <= newest - WINDOW_S) points.delete(k);
}

async function loadTraffic() {
  try {
    for (const p of (await api('GET', '/api/v1/traffic?window=5m')).points || []) addPoint(p, false);
    drawChart();
  } catch (err) { fail($('traffic-now'), err); }
}

const summary = (p) => `${p.requests || 0} requests, ` + SERIES.map(([k, words]) => `${p[k] || 0} ${words}`).join(', ');

// Draws the last 5 minutes at the canvas's CSS size times the pixel ratio,
// and keeps its text alternatives (aria-label, #traffic-now) in step.
function drawChart() {
  const canvas = $('traffic-chart');
  const newest = points.size ? Math.max(...points.keys()) : Math.floor(Date.now() / 1000);
  const first = newest - WINDOW_S + 1;
  let total = 0, top = 1;
  for (const p of points.values()) {
    total += p.requests || 0;
    for (const [k] of SERIES) top = Math.max(top, p[k] || 0);
  }
  canvas.setAttribute('data-total', String(total));
  const last = points.get(newest);
  if (last) {
    $('traffic-now').textContent = `Last second (${fmtTime(last.at)}): ${summary(last)}. ${total} requests in the last 5 minutes.`;
    canvas.setAttribute('aria-label', `Requests per second by verdict, last 5 minutes. Last second: ${summary(last)}. ${total} requests in the window.`);
  }
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return; // hidden: the resize observer draws it once shown
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
  if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const L = 40, T = 8, pw = w - L - 8, ph = h - T - 22;
  // A round y step: 1, 2 or 5 times a power of ten, about 4 lines.
  const raw = Math.max(1, top / 4), mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw);
  const ymax = Math.ceil(top / step) * step;
  const x = (sec) => L + ((sec - first) / (WINDOW_S - 1)) * pw;
  const y = (v) => T + ph - (v / ymax) * ph;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = css('--muted'); ctx.strokeStyle = '#d9dde3'; ctx.lineWidth = 1;
  ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
  for (let v = 0; v <= ymax; v += step) {
    const py = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(L, py); ctx.lineTo(L + pw, py); ctx.stroke();
    ctx.fillText(String(v), L - 5, py);
  }
  ctx.textAlign = 'center'; ctx.textBaseline = 'top';
  for (let m = 5; m >= 0; m--) {
    ctx.fillText(m ? `-${m} min` : 'now', Math.min(Math.max(x(newest - m * 60), L + 12), L + pw - 12), T + ph + 6);
  }
  ctx.lineWidth = 2; ctx.lineJoin = 'round';
  for (const [k, , dash] of SERIES) {
    ctx.strokeStyle = css(`--c-${k}`); ctx.setLineDash(dash);
    ctx.beginPath();
    for (let sec = first; sec <= newest; sec++) {
      const p = points.get(sec), v = p ? p[k] || 0 : 0;
      if (sec === first) ctx.moveTo(x(sec), y(v)); else ctx.lineTo(x(sec), y(v));
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

// Legend swatches are drawn like the chart's lines: colour and dashes.
$('legend').replaceChildren(...SERIES.map(([k, words, dash]) => {
  const svg = svgEl('svg', { width: 28, height: 10, 'aria-hidden': 'true' });
  svg.append(svgEl('line', { x1: 0, y1: 5, x2: 28, y2: 5, stroke: css(`--c-${k}`), 'stroke-width': 2.5, 'stroke-dasharray': dash.join(' ') || 'none' }));
  return el('li', {}, svg, words);
}));

new ResizeObserver(() => drawChart()).observe($('traffic-chart'));
// A zoom or a move to another screen changes the pixel ratio: redraw sharp.
(function watchRatio() {
  matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`)
    .addEventListener('change', () => { drawChart(); watchRatio(); }, { once: true });
})();

// ---- overview: layers, sites, upstreams ----
async function loadOverview() {
  try {
    const o = await api('GET', '/api/v1/overview');
    $('layers').textContent = `Event recording ${onOff(o.recording)} · flood shield ${onOff(o.flood)} · leak guard ${onOff(o.leak_guard)}`;
    if (o.generation != null) $('generation').textContent = `config generation ${o.generation}`;
    sites = o.sites || [];
    mergeSites([]);
    fill($('upstreams'), o.upstreams || [], (u) => el('tr', {}, el('td', {}, u.pool), el('td', {}, el('code', {}, u.peer)),
      el('td', {}, el('span', { class: u.healthy ? 'tag good' : 'tag bad' }, u.healthy ? 'healthy' : 'down'))), 3, 'No upstreams.');
  } catch (err) { fail($('sites-msg'), err); }
}

// Takes modes from a tick (or none), except where a switch is under way.
function mergeSites(states) {
  for (const s of sites) {
    const t = states.find((x) => x.name === s.name);
    if (held[s.name] && held[s.name].until > Date.now()) Object.assign(s, held[s.name].site);
    else if (t) { s.mode = t.mode; s.under_attack = t.under_attack; }
  }
  drawSites();
}

// Rows are rebuilt only when the sites change; a new mode rewrites two
// cells and the select, so a focused select keeps its focus.
function drawSites() {
  const tbody = $('sites'), shape = JSON.stringify(sites.map((s) => [s.name, s.hosts, s.waf, s.mode == null]));
  if (shown.sites !== shape) {
    shown.sites = shape;
    tbody.replaceChildren(...(sites.length ? sites.map(siteRow) : [el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'No sites.'))]));
  }
  for (const s of sites) {
    const row = tbody.querySelector(`tr[data-site="${CSS.escape(s.name)}"]`);
    if (!row) continue;
    row.querySelector('.site-mode').textContent = s.mode == null ? 'flood shield off' : s.mode;
    row.querySelector('.site-ua').textContent = s.under_attack == null ? '–' : s.under_attack ? 'yes' : 'no';
    const select = row.querySelector('select');
    if (select && s.mode && select.value !== s.mode) select.value = s.mode;
  }
}

function siteRow(s) {
  let control = el('span', { class: 'muted' }, 'not available');
  if (s.mode != null) {
    const id = `mode-${keyOf(s.name)}`;
    const select = el('select', { id, 'data-site': s.name }, ...['auto', 'under-attack', 'normal'].map((m) => el('option', { value: m }, m)));
    select.value = s.mode;
    select.addEventListener('change', () => setMode(s.name, select));
    control = el('span', {}, el('label', { for: id, class: 'sr' }, `Mode for ${s.name}`), select);
  }
  return el('tr', { 'data-site': s.name }, el('th', { scope: 'row' }, s.name), el('td', {}, list(s.hosts)),
    el('td', {}, s.waf), el('td', { class: 'site-mode' }), el('td', { class: 'site-ua' }), el('td', {}, control));
}

async function setMode(name, select) {
  const mode = select.value;
  held[name] = { until: Date.now() + 10000, site: { mode } };
  say($('sites-msg'), `Switching ${name} to ${mode}…`);
  try {
    const answer = await api('PUT', `/api/v1/sites/${encodeURIComponent(name)}/mode`, { mode });
    // Ticks sent before the switch may still arrive: hold the answer a moment.
    held[name] = { until: Date.now() + 1500, site: { mode: answer.mode, under_attack: answer.under_attack } };
    mergeSites([]);
    say($('sites-msg'), `Site ${name} is now in ${answer.mode} mode${answer.under_attack ? ' (under attack)' : ''}.`, 'ok');
  } catch (err) {
    delete held[name];
    const site = sites.find((x) => x.name === name);
    if (site && site.mode) select.value = site.mode;
    fail($('sites-msg'), err);
  }
}

// ---- WAF events and the "Allow this" dialog ----
async function loadWaf() {
  try {
    fill($('waf-events'), (await api('GET', '/api/v1/waf/events?window=24h&limit=100')).events || [], wafRow, 8, 'No WAF events in the last 24 hours.');
  } catch (err) { fail($('waf-msg'), err); }
}

function wafRow(ev) {
  const rid = `waf-req-${keyOf(ev.id)}`;
  return el('tr', {},
    el('td', {}, timeEl(ev.at)), el('td', {}, ev.site), el('td', {}, el('code', {}, ev.client)),
    el('td', { id: rid, class: 'req' }, el('code', {}, `${ev.method || ''} ${ev.path || ''}`)),
    el('td', {}, el('span', { class: ev.blocked ? 'tag bad' : 'tag' }, ev.blocked ? `blocked ${ev.status || ''}` : 'logged'),
      ev.score != null ? el('div', { class: 'muted nowrap' }, `score ${ev.score}`) : null),
    el('td', {}, list(ev.rules), el('div', { class: 'muted' }, list(ev.attacks))),
    el('td', {}, el('ul', { class: 'matches' }, ...(ev.matches || []).map((m) =>
      el('li', {}, `${m.rule} · ${m.target} · `, el('code', {}, m.data), m.msg ? ` · ${m.msg}` : '')))),
    el('td', {}, button('Allow this', `allow-${ev.id}`, { 'aria-describedby': rid }, (b) => propose(ev, b))));
}

function words(ex, prefix) {
  const ids = (ex.rule_ids || []).map(String);
  return `Switch off ${ids.length === 1 ? 'rule' : 'rules'} ${and(ids)}` +
    `${ex.target ? ` for ${ex.target}` : ' for every part of the request'} on paths under ${prefix} on site ${ex.site}`;
}

async function propose(ev, b) {
  opener = b.getAttribute('data-key');
  say($('waf-msg'), 'Working out the narrowest exclusion…');
  try {
    proposal = await api('POST', '/api/v1/exclusions/proposal', { event: ev.id });
    const ex = proposal.exclusion;
    $('allow-prefix').value = ex.prefix;
    $('allow-reason').value = '';
    $('allow-facts').replaceChildren(...[['Site', ex.site], ['Rules', list(ex.rule_ids)], ['Target', ex.target || 'any'],
      ['Event', `${ev.method || ''} ${ev.path || ''} at ${fmtTime(ev.at)}`]].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    $('allow-count').textContent = `Would have allowed ${proposal.would_allow} of the ${proposal.blocked} WAF blocks of the last 24 hours.`;
    allowWords();
    say($('allow-msg'), ''); say($('waf-msg'), '');
    $('allow').showModal();
    $('allow-prefix').focus();
  } catch (err) { fail($('waf-msg'), err); }
}

function allowWords() {
  if (!proposal) return;
  const ex = proposal.exclusion, prefix = $('allow-prefix').value.trim();
  $('allow-words').textContent = words(ex, prefix || ex.prefix);
  // The API counts for the proposed prefix only.
  $('allow-hint').textContent = prefix && prefix !== ex.prefix
    ? `The count below is for the proposed prefix ${ex.prefix}; a wider prefix may allow more.` : '';
}
$('allow-prefix').addEventListener('input', allowWords);
$('allow-cancel').addEventListener('click', () => $('allow').close());
$('allow').addEventListener('close', () => {
  proposal = null;
  // Back to the button that opened it (maybe redrawn meanwhile: found by key).
  const back = opener && document.querySelector(`[data-key="${CSS.escape(opener)}"]`);
  (back || $('h-waf')).focus();
});

$('allow-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!proposal) return;
  const prefix = $('allow-prefix').value.trim(), reason = $('allow-reason').value.trim();
  if (!prefix.startsWith('/')) return say($('allow-msg'), 'The path prefix must start with /.', 'err');
  if (!reason) return say($('allow-msg'), 'Say why this is safe to allow.', 'err');
  const body = Object.assign({}, proposal.exclusion, { prefix, reason });
  say($('allow-msg'), 'Adding…');
  try {
    const r = await api('POST', '/api/v1/exclusions', body);
    const done = `Exclusion added: ${words(r.exclusion || body, prefix)}. ` + (r.reloaded === false
      ? 'It was saved, but the configuration was not reloaded.'
      : `Configuration reloaded${r.generation != null ? ` (generation ${r.generation})` : ''}.`);
    $('allow').close();
    say($('waf-msg'), done, 'ok');
    refresh();
  } catch (err) { fail($('allow-msg'), err); }
});

// ---- what is refused most: client prefixes, paths and rules ----
async function loadTop() {
  try {
    const top = await api('GET', '/api/v1/top?window=1h');
    for (const name of ['clients', 'paths', 'rules']) {
      const items = top[name] || [], id = `top-${name}`;
      if (shown[id] === JSON.stringify(items)) continue;
      shown[id] = JSON.stringify(items);
      $(id).replaceChildren(...(items.length
        ? items.slice(0, 5).map((t) => el('li', {}, el('code', {}, t.key), ` ${t.count}`))
        : [el('li', { class: 'empty' }, 'None')]));
    }
  } catch (err) { fail($('status'), err); }
}

// ---- leak guard: kinds and counts only ----
async function loadLeaks() {
  try {
    const data = await api('GET', '/api/v1/leaks?window=24h'), kinds = data.kinds || [];
    if (shown.kinds !== JSON.stringify(kinds)) {
      shown.kinds = JSON.stringify(kinds);
      $('leak-kinds').replaceChildren(...(kinds.length ? kinds.map((k) =>
        el('li', { 'data-kind': k.kind }, `${k.kind}: `, el('strong', {}, k.count))) : [el('li', {}, 'Nothing found.')]));
    }
    fill($('leak-events'), data.events || [], (f) => el('tr', {},
      el('td', {}, timeEl(f.at)), el('td', {}, f.site), el('td', {}, el('code', {}, f.route)), el('td', {}, f.action),
      el('td', {}, el('code', {}, f.reference)), el('td', {}, (f.kinds || []).map((k) => `${k.kind} ${k.count}`).join(', '))),
    6, 'No findings in the last 24 hours.');
  } catch (err) { fail($('status'), err); }
}

// ---- incidents ----
async function loadIncidents() {
  try {
    const data = await api('GET', '/api/v1/incidents');
    const all = Array.isArray(data) ? data : data.incidents || [];
    fill($('incident-list'), all, incidentRow, 8, 'No incidents.');
    markCurrent();
    const open = all.find((i) => String(i.id) === String(incidentId));
    if (open && open.last_event !== incidentSeen) showIncident(incidentId, false);
  } catch (err) { fail($('status'), err); }
}

// Marks the row of the incident shown below the list.
function markCurrent() {
  for (const row of $('incident-list').rows) {
    if (incidentId != null && row.getAttribute('data-id') === String(incidentId)) row.setAttribute('aria-current', 'true');
    else row.removeAttribute('aria-current');
  }
}

const incidentRow = (i) => el('tr', { 'data-id': i.id },
  el('th', { scope: 'row', class: 'nowrap' }, i.reference), el('td', {}, i.title), el('td', {}, i.site),
  el('td', {}, i.severity), el('td', {}, i.status), el('td', {}, timeEl(i.first_event)), el('td', {}, timeEl(i.last_event)),
  el('td', {}, button('Details', `inc-${i.id}`, { 'aria-label': `Details of ${i.reference}` }, () => showIncident(i.id, true))));

async function showIncident(id, focus) {
  try {
    const d = await api('GET', `/api/v1/incidents/${encodeURIComponent(id)}`);
    // The fields may sit at the top or, as in the JSON report, under "incident".
    const inc = d.incident && typeof d.incident === 'object' ? d.incident : d;
    const tl = d.timeline || inc.timeline || [];
    const ref = d.reference || inc.reference || `INC-${inc.id != null ? inc.id : id}`;
    incidentId = id; incidentSeen = inc.last_event;
    $('incident-title').textContent = `${ref}: ${inc.title || ''}`;
    $('incident-facts').replaceChildren(...[['Site', inc.site], ['Kinds', list(inc.kinds)], ['Severity', inc.severity],
      ['Status', inc.status], ['First event', fmtTime(inc.first_event)], ['Last event', fmtTime(inc.last_event)],
      ['Requests', inc.requests], ['Blocked', inc.blocked], ['Challenged', inc.challenged], ['Limited', inc.limited],
      ['Peak', inc.peak_rps != null ? `${Math.round(inc.peak_rps)} requests/s at ${fmtTime(inc.peak_at)}` : null],
      ['Personal data left', inc.data && inc.data.left], ['Report due (72 h)', inc.deadline && fmtTime(inc.deadline)]]
      .filter(([, v]) => v != null && v !== '').flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    timelineChart(tl, ref);
    delete shown['incident-timeline'];
    fill($('incident-timeline'), tl, (p) => el('tr', {}, el('td', {}, timeEl(p.at)),
      ...['requests', 'blocked', 'challenged', 'limited', 'upstream_errors'].map((k) => el('td', { class: 'num' }, p[k] || 0))), 6, 'No points.');
    const log = (node, xs, text, empty) => node.replaceChildren(...((xs || []).length
      ? xs.map((x) => el('li', {}, timeEl(x.at), ' ', text(x))) : [el('li', { class: 'muted' }, empty)]));
    log($('incident-actions'), inc.actions, (a) => a.what, 'Nothing recorded.');
    log($('incident-decisions'), inc.decisions, (x) => `${x.by}: ${x.text}${x.told ? ` (told ${x.told})` : ''}`, 'No decisions yet.');
    // Plain links: the session cookie authenticates GETs.
    $('incident-reports').replaceChildren(...REPORTS.map((name) => el('li', {}, el('a', {
      href: `/api/v1/incidents/${encodeURIComponent(id)}/report?format=${name.toLowerCase()}`, download: true,
      'aria-label': `${name} report of ${ref}` }, name))));
    markCurrent();
    $('incident').hidden = false;
    if (focus) $('incident-title').focus();
  } catch (err) { fail($('status'), err); }
}

// A small SVG of requests (solid) and blocked requests (dashed).
function timelineChart(tl, ref) {
  const W = 600, H = 100, peak = tl.reduce((m, p) => Math.max(m, p.requests || 0), 0);
  const span = tl.length ? `From ${fmtTime(tl[0].at)} to ${fmtTime(tl[tl.length - 1].at)}, at most ${peak} requests in a point. ` : 'No points. ';
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `Timeline of ${ref}. ${span}` });
  for (const [k, colour, dash] of [['requests', '--c-upstream_errors', 'none'], ['blocked', '--c-blocked', '6 4']]) {
    svg.append(svgEl('polyline', { fill: 'none', stroke: css(colour), 'stroke-width': 2, 'stroke-dasharray': dash,
      'vector-effect': 'non-scaling-stroke', points: tl.map((p, i) =>
        `${tl.length > 1 ? (i / (tl.length - 1)) * W : 0},${H - 2 - ((p[k] || 0) / Math.max(1, peak)) * (H - 4)}`).join(' ') }));
  }
  $('incident-chart').replaceChildren(svg, el('p', { class: 'muted' }, `${span}Solid line: requests; dashed line: blocked requests.`));
}

$('decision-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (incidentId == null) return;
  const text = $('decision-text').value.trim(), by = $('decision-by').value.trim();
  if (!text || !by) return say($('decision-msg'), 'Write the decision and who made it.', 'err');
  try {
    await api('POST', `/api/v1/incidents/${encodeURIComponent(incidentId)}/decisions`, { text, by });
    $('decision-text').value = '';
    say($('decision-msg'), 'Decision recorded.', 'ok');
    incidentSeen = null; // shows it again with the new entry
    refresh();
  } catch (err) { fail($('decision-msg'), err); }
});

// ---- bans ----
async function loadBans() {
  try {
    fill($('ban-list'), (await api('GET', '/api/v1/bans')).bans || [], (b) => el('tr', {},
      el('th', { scope: 'row' }, el('code', {}, b.address)), el('td', {}, timeEl(b.until)), el('td', {}, b.level),
      el('td', {}, b.reason), el('td', {}, button('Unban', `unban-${b.address}`, { 'aria-label': `Unban ${b.address}` }, () => unban(b.address)))),
    5, 'Nobody is banned.');
  } catch (err) { fail($('bans-msg'), err); }
}

async function unban(address) {
  try {
    const r = await api('DELETE', `/api/v1/bans/${encodeURIComponent(address)}`);
    say($('bans-msg'), r.unbanned === false ? `${address} was not banned.` : `${address} is no longer banned.`, 'ok');
    $('ban-address').focus(); // its row and button are about to go
    refresh();
  } catch (err) { fail($('bans-msg'), err); }
}

$('ban-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const address = $('ban-address').value.trim(), span = $('ban-for').value.trim();
  if (!address) return say($('bans-msg'), 'Give the address to ban.', 'err');
  try {
    const r = await api('POST', '/api/v1/bans', span ? { address, for: span } : { address });
    say($('bans-msg'), `Banned ${r.address || address} until ${fmtTime(r.until)}${r.level != null ? ` (level ${r.level})` : ''}.`, 'ok');
    $('ban-address').value = '';
    refresh();
  } catch (err) { fail($('bans-msg'), err); }
});

// ---- start: resume the browser's session if it has one ----
api('GET', '/api/v1/session').then((data) => signedIn(data.csrf, false), (err) => {
  view(false);
  if (err.status !== 401) say($('signin-msg'), err.message, 'err');
  $('token').focus();
});

// Drives headless Chromium over the DevTools protocol: opens a URL, prints
// console messages and the page's text every second, stops after N seconds.
const [url, secs, port] = [process.argv[2], Number(process.argv[3] || 30), process.argv[4] || '9222'];
const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const page = list.find(t => t.type === 'page');
const ws = new WebSocket(page.webSocketDebuggerUrl);
let id = 0; const pending = new Map();
const send = (method, params = {}) => new Promise(r => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
ws.onmessage = (m) => {
  const d = JSON.parse(m.data);
  if (d.id && pending.has(d.id)) { pending.get(d.id)(d.result); pending.delete(d.id); }
  else if (d.method === 'Runtime.consoleAPICalled') console.log('console:', d.params.args.map(a => a.value).join(' '));
  else if (d.method === 'Runtime.exceptionThrown') console.log('exception:', JSON.stringify(d.params.exceptionDetails.exception?.description || d.params.exceptionDetails.text));
  else if (d.method === 'Log.entryAdded') console.log('log:', d.params.entry.level, d.params.entry.text);
};
await new Promise(r => ws.onopen = r);
await send('Runtime.enable'); await send('Log.enable'); await send('Page.enable');
await send('Page.navigate', { url });
let last = '';
for (let i = 0; i < secs; i++) {
  await new Promise(r => setTimeout(r, 1000));
  const r = await send('Runtime.evaluate', { expression: 'location.pathname + " | " + document.body.innerText.replace(/\\s+/g, " ").slice(0, 200)' });
  const v = r?.result?.value;
  if (v !== last) { console.log(`t=${i + 1}s`, v); last = v; }
  if (v && v.includes('CLEARED')) break;
}
ws.close();
process.exit(0);

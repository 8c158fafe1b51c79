// One visitor in Debian's headless Chromium, with JavaScript on, through
// whatever rampart puts in the way during a flood: the challenge (the page's
// worker solves it and reloads), the waiting room and the "very busy" page
// (both reload themselves). Nothing here clicks or reloads: the visitor only
// waits, as a patient person would.
//
// Usage: node visit.mjs URL EXPECTED_TEXT [PATH TEXT]... [options]
//   URL, EXPECTED_TEXT   the first page and a text it shows once reached;
//   PATH TEXT            further pages on the same site, visited in turn;
//   --seconds N          how long each page may take to show its text (30);
//   --load-state FILE    start with the cookies saved in FILE;
//   --save-state FILE    save the cookies to FILE once every page was reached;
//   --no-challenge       fail if any challenge page is shown.
// Prints one `step STATUS PATH TITLE` line per page the browser loaded, one
// `verify STATUS` line per solution it posted, `ok PATH` per page reached,
// `challenges N` and `cookie NAME` lines; exits non-zero when a page was not
// reached (or a challenge was shown with --no-challenge).
import { chromium } from 'playwright-core';

const positional = [];
const options = { seconds: 30, loadState: null, saveState: null, noChallenge: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  switch (argv[i]) {
    case '--seconds': options.seconds = Number(argv[++i]); break;
    case '--load-state': options.loadState = argv[++i]; break;
    case '--save-state': options.saveState = argv[++i]; break;
    case '--no-challenge': options.noChallenge = true; break;
    default: positional.push(argv[i]);
  }
}
if (positional.length < 2 || positional.length % 2 !== 0) {
  console.error('usage: node visit.mjs URL EXPECTED_TEXT [PATH TEXT]... [--seconds N] [--load-state FILE] [--save-state FILE] [--no-challenge]');
  process.exit(2);
}
const start = new URL(positional[0]);
const visits = [];
for (let i = 0; i < positional.length; i += 2) {
  visits.push({ url: new URL(positional[i], start).href, text: positional[i + 1] });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // This machine has no network beyond loopback: keep Chromium from trying.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({
  javaScriptEnabled: true,
  ...(options.loadState ? { storageState: options.loadState } : {}),
});
const page = await context.newPage();
const began = Date.now();
const at = () => ((Date.now() - began) / 1000).toFixed(1);
let challenges = 0;
// Every page the browser loaded in its main frame, and every solution it
// posted, as they happen (the log says how the visitor got through).
page.on('response', async (response) => {
  const request = response.request();
  const path = new URL(response.url()).pathname;
  if (path === '/.rampart/challenge/verify') {
    console.log(`verify ${response.status()} at ${at()}s`);
    return;
  }
  if (!request.isNavigationRequest() || response.frame() !== page.mainFrame()) return;
  const body = await response.text().catch(() => '');
  const title = (body.match(/<title>([^<]*)<\/title>/) || [, '?'])[1];
  if (title === 'Checking your connection') challenges++;
  console.log(`step ${response.status()} ${path} "${title}" at ${at()}s`);
});

// The challenge page's Content-Security-Policy forbids eval, so the text is
// read from outside the page's scripts.
async function reaches(text, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if ((await page.innerText('body').catch(() => '')).includes(text)) return;
    await page.waitForTimeout(250);
  }
  throw new Error(`never reached a page with "${text}" in ${seconds} s`);
}

let failed = false;
try {
  for (const visit of visits) {
    const path = new URL(visit.url).pathname;
    // Only the first answer is waited for here; the reloads that follow
    // (challenge, queue, busy page) are the page's own.
    await page.goto(visit.url, { waitUntil: 'commit', timeout: options.seconds * 1000 });
    await reaches(visit.text, options.seconds);
    console.log(`ok ${path} at ${at()}s`);
  }
  if (options.saveState) await context.storageState({ path: options.saveState });
} catch (e) {
  failed = true;
  console.log(`FAILED: ${e.message.split('\n')[0]}`);
  console.log(`last page: ${(await page.innerText('body').catch(() => '')).slice(0, 300).replace(/\s+/g, ' ')}`);
}
console.log(`challenges ${challenges}`);
if (options.noChallenge && challenges > 0) {
  failed = true;
  console.log('FAILED: a challenge was shown to a visitor who had cleared it before');
}
for (const cookie of await context.cookies()) console.log(`cookie ${cookie.name}`);
await browser.close();
process.exit(failed ? 1 : 0);

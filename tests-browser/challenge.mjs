// Drives Debian's headless Chromium through rampart's under-attack challenge.
// Usage: node challenge.mjs URL EXPECTED_TEXT
// Prints one line per check and exits non-zero when a check fails:
//   js:    with JavaScript, the page's Web Worker solves the proof of work and
//          the browser lands on the site;
//   nojs:  without JavaScript, the page's meta refresh waits, redeems the
//          signed wait token and lands on the site;
//   nojs-no-shortcut: without JavaScript, the site is not reached before the
//          wait (the fallback is the only way in, and it takes its time).
import { chromium } from 'playwright-core';

const [url, expected] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // This machine has no network beyond loopback: keep Chromium from trying.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
async function check(name, options, test) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  try {
    await test(page);
    console.log(`ok ${name}`);
  } catch (e) {
    failed = true;
    console.log(`FAILED ${name}: ${e.message.split('\n')[0]}`);
  } finally {
    await context.close();
  }
}
// The challenge page's Content-Security-Policy forbids eval, so the checks
// read the page's text (Playwright does that outside the page's scripts)
// rather than evaluating a function in it.
async function reaches(page, text, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    if ((await page.innerText('body').catch(() => '')).includes(text)) return;
    await page.waitForTimeout(250);
  }
  throw new Error(`never reached a page with "${text}"`);
}
await check('js', { javaScriptEnabled: true }, async (page) => {
  await page.goto(url);
  await reaches(page, expected, 30);
  const cookies = await page.context().cookies();
  if (!cookies.some((c) => c.name === 'rampart_clearance')) throw new Error('no clearance cookie');
});
await check('nojs-no-shortcut', { javaScriptEnabled: false }, async (page) => {
  await page.goto(url);
  const text = await page.innerText('body');
  if (text.includes(expected)) throw new Error('reached the site without waiting');
});
await check('nojs', { javaScriptEnabled: false }, async (page) => {
  await page.goto(url);
  await reaches(page, expected, 30);
});
await browser.close();
process.exit(failed ? 1 : 0);

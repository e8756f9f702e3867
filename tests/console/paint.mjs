// First paint of the console, measured in Debian's Chromium: the runs list
// and a run page, each loaded afresh (a new browser context) five times.
// Usage: node paint.mjs BASE RUN_ID; prints one JSON object (milliseconds).
import { chromium } from 'playwright-core';

const [base, run] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { runs_list: [], runs_counts: [], run_page: [], run_all_events: [], events: 0 };
for (let i = 0; i < 6; i++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  let t0 = Date.now();
  await page.goto(`${base}/#/runs`);
  await page.locator('table.runs tbody tr[data-run]').first().waitFor({ timeout: 30000 });
  const list = Date.now() - t0;
  await page.locator('.counts [data-count]').first().waitFor({ timeout: 30000 });
  const counts = Date.now() - t0;
  await context.close();
  const c2 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p2 = await c2.newPage();
  t0 = Date.now();
  await p2.goto(`${base}/#/runs/${run}`);
  await p2.locator('.events .ev').first().waitFor({ timeout: 30000 });
  await p2.locator('.tl .span').first().waitFor({ timeout: 30000 });
  await p2.locator('.head .badge').first().waitFor({ timeout: 30000 });
  const first = Date.now() - t0;
  // Every event fetched and the list scrollable to the last.
  await p2.waitForFunction(() => /^[\d,]+ events$/.test(document.querySelector('.events')?.parentElement.querySelector('.note')?.textContent || '')
    && !document.querySelector('.events').parentElement.querySelector('.note').dataset.loading, null, { timeout: 60000 });
  const all = Date.now() - t0;
  out.events = await p2.locator('.events').evaluate((el) => el.parentElement.querySelector('.note').textContent);
  await c2.close();
  // The first load warms the server's caches and the browser's: not counted.
  if (i === 0) continue;
  out.runs_list.push(list);
  out.runs_counts.push(counts);
  out.run_page.push(first);
  out.run_all_events.push(all);
}
await browser.close();
console.log(JSON.stringify(out));

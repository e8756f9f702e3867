// Drives the console in Debian's Chromium against a real `runway serve`
// (started by tests/console.rs, which passes its address and tokens).
// Each scenario prints `ok NAME` or `FAILED NAME: why`; the exit code is
// the number of failures. Screenshots go to $RUNWAY_SHOTS.
import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import assert from 'node:assert/strict';

const BASE = process.env.RUNWAY_BASE;
const ADMIN = process.env.RUNWAY_ADMIN_TOKEN;
const READ = process.env.RUNWAY_READ_TOKEN;
const BIN = process.env.RUNWAY_BIN;
const SHOTS = process.env.RUNWAY_SHOTS;
const ONLY = process.env.RUNWAY_CONSOLE_ONLY || '';
mkdirSync(SHOTS, { recursive: true });

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const WAIT = 20000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/** The API, as a client outside the browser. */
async function api(path, { method = 'GET', json, token = ADMIN } = {}) {
  const res = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(json ? { 'Content-Type': 'application/json' } : {}) },
    body: json ? JSON.stringify(json) : undefined,
  });
  const body = await res.json().catch(() => null);
  return { status: res.status, body };
}

async function startRun(slug, input, wait) {
  const r = await api(`/v1/workflows/${slug}/runs${wait ? `?wait=${wait}` : ''}`, { method: 'POST', json: input });
  assert.ok(r.status < 300, JSON.stringify(r.body));
  return r.body.id;
}

/** A page signed in with `token` (kept in session storage, as the console does). */
async function pageWith(token, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  if (token) await context.addInitScript((t) => sessionStorage.setItem('runway.token', t), token);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.errors = errors;
  return page;
}

const statusOf = (page) => page.locator('.head .badge').first();

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: false });
}

const scenarios = {
  async sign_in_then_start_a_slow_run_from_the_form_and_watch_it_live() {
    const page = await pageWith(null);
    await page.goto(`${BASE}/#/workflows/steps`);
    // No token yet: the console asks for one (the API answered 401).
    const dialog = page.locator('dialog.token');
    await dialog.waitFor({ timeout: WAIT });
    await dialog.locator('input').fill(ADMIN);
    await dialog.locator('button[type=submit]').click();
    await page.locator('#who [data-scope=admin]').waitFor({ timeout: WAIT });
    const input = page.locator('form.start textarea');
    const go = page.locator('form.start button[type=submit]');
    // Checked before it is sent: not JSON, then against the input schema.
    await input.fill('{"count": 5,');
    assert.ok(await go.isDisabled(), 'invalid JSON can be submitted');
    assert.match(await page.locator('form.start .error').innerText(), /Not JSON/);
    await input.fill('{"count": 6, "pause_ms": 500}');
    assert.ok(!(await go.isDisabled()));
    await page.evaluate(() => { window.__sameDocument = true; });
    await go.click();
    await page.waitForURL(/#\/runs\/run_/, { timeout: WAIT });
    // While it runs: events and the timeline arrive by themselves.
    await page.locator('.events [data-kind=custom]').first().waitFor({ timeout: WAIT });
    const status = await statusOf(page).innerText();
    assert.ok(!/completed/.test(status), `it ended before it was watched (${status})`);
    await page.locator('.tl .span[data-state=sleeping]').first().waitFor({ timeout: WAIT });
    await page.locator('.marks [data-kind=artifact_written]').first().waitFor({ timeout: WAIT });
    await shot(page, 'run-live-1280x800');
    // It completes and the page shows the output, without a reload.
    await page.locator('.head .badge[data-status=completed]').waitFor({ timeout: WAIT });
    await page.locator('pre.output').waitFor({ timeout: WAIT });
    assert.match(await page.locator('pre.output').innerText(), /"count": 6/);
    assert.equal(await page.locator('.events [data-kind=custom]').count() > 0, true);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page reloaded');
    assert.equal(await page.locator('.tl .span[data-state=running]').count() >= 6, true);
    await page.locator('[data-artifact="step-0006.txt"]').waitFor({ timeout: WAIT });
    await shot(page, 'run-1280x800');
    await page.setViewportSize(PHONE);
    await shot(page, 'run-390x844');
    assert.deepEqual(page.errors, []);
  },

  async a_waiting_run_takes_a_signal_sent_from_the_page() {
    const id = await startRun('approval', { request: 'deploy' });
    const page = await pageWith(ADMIN);
    await page.goto(`${BASE}/#/runs/${id}`);
    await page.locator('.head .badge[data-status=waiting_signal]').waitFor({ timeout: WAIT });
    assert.match(await page.locator('.facts').innerText(), /waits for signal “approve”/);
    const form = page.locator('form.signal');
    assert.equal(await form.locator('input[name=signal]').inputValue(), 'approve');
    await form.locator('textarea').fill('{"by": "console"}');
    await form.locator('button[type=submit]').click();
    await page.locator('.head .badge[data-status=completed]').waitFor({ timeout: WAIT });
    await page.locator('pre.output').waitFor({ timeout: WAIT });
    assert.match(await page.locator('pre.output').innerText(), /"by": "console"/);
    await page.locator('.events [data-kind=signal_received]').waitFor({ timeout: WAIT });
    assert.deepEqual(page.errors, []);
  },

  async an_approval_is_decided_from_the_page() {
    const id = await startRun('release', { kind: 'gate' });
    const page = await pageWith(ADMIN);
    await page.goto(`${BASE}/#/runs/${id}`);
    await page.locator('.head .badge[data-status=waiting_approval]').waitFor({ timeout: WAIT });
    const form = page.locator('form.approval[data-approval=ship]');
    await form.waitFor({ timeout: WAIT });
    await form.locator('input[name=comment]').fill('from the console');
    await form.locator('[data-action=approve]').click();
    await page.locator('.head .badge[data-status=completed]').waitFor({ timeout: WAIT });
    await page.locator('pre.output').waitFor({ timeout: WAIT });
    const out = await page.locator('pre.output').innerText();
    assert.match(out, /"approved": true/);
    assert.match(out, /"comment": "from the console"/);
    assert.match(out, /"by": "token:admin"/);
    await page.locator('.events [data-kind=approval_decided]').waitFor({ timeout: WAIT });
    assert.deepEqual(page.errors, []);
  },

  async cancel_a_sleeping_run_and_walk_a_fanout_tree_both_ways() {
    const sleeper = await startRun('sleepy', { ms: 600000 });
    const page = await pageWith(ADMIN);
    await page.goto(`${BASE}/#/runs/${sleeper}`);
    await page.locator('.head .badge[data-status=sleeping]').waitFor({ timeout: WAIT });
    const cancel = page.locator('[data-action=cancel]');
    await cancel.click();
    assert.equal(await cancel.innerText(), 'Confirm cancel');
    await cancel.click();
    await page.locator('.head .badge[data-status=cancelled]').waitFor({ timeout: WAIT });
    assert.equal(await page.locator('[data-action=cancel]').count(), 0, 'an ended run offers cancel');
    assert.equal((await api(`/v1/runs/${sleeper}`)).body.status, 'cancelled');

    // Fork it from its first event, from the page: a new run, linked back.
    await page.locator('.events .ev').first().click();
    await page.locator('[data-action=reset]').click();
    await page.waitForFunction((old) => !location.hash.includes(old), sleeper, { timeout: WAIT });
    const fork = decodeURIComponent(page.url().split('#/runs/')[1]);
    await page.locator('.head .badge[data-status=sleeping]').waitFor({ timeout: WAIT });
    const forked = (await api(`/v1/runs/${fork}`)).body;
    assert.equal(forked.trigger.kind, 'reset');
    assert.equal(forked.trigger.rerun_of, sleeper);
    await page.locator('.head a', { hasText: sleeper }).waitFor({ timeout: WAIT });
    assert.equal((await api(`/v1/runs/${fork}/cancel`, { method: 'POST' })).status, 200);

    const parent = await startRun('fanout', { names: ['Ada', 'Grace'] }, 30);
    await page.goto(`${BASE}/#/runs/${parent}`);
    const kids = page.locator('[data-child]');
    await kids.nth(1).waitFor({ timeout: WAIT });
    assert.equal(await kids.count(), 2);
    assert.equal(await kids.locator('.badge[data-status=completed]').count(), 2);
    const child = await kids.first().getAttribute('data-child');
    await kids.first().locator('a').first().click();
    await page.waitForURL(new RegExp(`#/runs/${child}$`), { timeout: WAIT });
    // The child links back to its parent.
    const back = page.locator('.facts a', { hasText: parent });
    await back.waitFor({ timeout: WAIT });
    await back.click();
    await page.waitForURL(new RegExp(`#/runs/${parent}$`), { timeout: WAIT });
    await page.locator('[data-child]').first().waitFor({ timeout: WAIT });
    assert.deepEqual(page.errors, []);
  },

  async artifacts_download_and_preview_and_html_never_runs() {
    const page_html = '<h1 id="planted">hi</h1><script>window.__pwned = 1; document.title = "pwned"</script>'
      + '<img src="x" onerror="window.__pwned = 2">';
    const id = await startRun('steps', { count: 2, page: page_html }, 30);
    const page = await pageWith(ADMIN);
    await page.goto(`${BASE}/#/runs/${id}`);
    const row = (name) => page.locator(`[data-artifact="${name}"]`);
    await row('page.html').waitFor({ timeout: WAIT });
    // A text artifact previews inline.
    await row('step-0001.txt').locator('[data-action=preview]').click();
    await page.locator('pre.preview', { hasText: 'step 1 of 2' }).waitFor({ timeout: WAIT });
    // A download gives the exact bytes.
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      row('step-0002.txt').locator('[data-action=download]').click(),
    ]);
    assert.equal(download.suggestedFilename(), 'step-0002.txt');
    assert.equal(readFileSync(await download.path(), 'utf8'), 'step 2 of 2\n');
    // HTML is shown as its source: nothing in it runs or renders.
    await row('page.html').locator('[data-action=preview]').click();
    const source = page.locator('pre[data-html-source]');
    await source.waitFor({ timeout: WAIT });
    assert.match(await source.innerText(), /<script>window.__pwned = 1/);
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.locator('#planted').count(), 0);
    assert.notEqual(await page.title(), 'pwned');
    // Opened directly, the artifact is an attachment in a sandbox: a
    // download, never a page of this origin.
    const direct = await browser.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${ADMIN}` }, acceptDownloads: true });
    const tab = await direct.newPage();
    const [raw] = await Promise.all([
      tab.waitForEvent('download', { timeout: WAIT }),
      tab.goto(`${BASE}/v1/runs/${id}/artifacts/page.html`).catch(() => null),
    ]);
    assert.equal(raw.suggestedFilename(), 'page.html');
    assert.equal(await tab.evaluate(() => window.__pwned).catch(() => undefined), undefined);
    await direct.close();
    assert.deepEqual(page.errors, []);
  },

  async a_read_token_sees_no_controls_and_the_api_refuses_them_anyway() {
    const waiting = await startRun('approval', { request: 'read-only' });
    const page = await pageWith(READ);
    await page.goto(`${BASE}/#/runs/${waiting}`);
    await page.locator('.head .badge[data-status=waiting_signal]').waitFor({ timeout: WAIT });
    await page.locator('#who [data-scope=read]').waitFor({ timeout: WAIT });
    assert.equal(await page.locator('[data-action=cancel]').count(), 0);
    assert.equal(await page.locator('form.signal').count(), 0);
    assert.equal(await page.locator('[data-action=rerun]').count(), 0);
    await page.goto(`${BASE}/#/workflows/approval`);
    await page.locator('h1', { hasText: 'approval' }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('form.start').count(), 0);
    // The same calls, made anyway with this token, are refused.
    const statuses = await page.evaluate(async ({ id, token }) => {
      const call = (path, body) => fetch(path, {
        method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body,
      }).then((r) => r.status);
      return [
        await call(`/v1/runs/${id}/cancel`),
        await call(`/v1/runs/${id}/signals/approve`, '{"by":"mallory"}'),
        await call('/v1/workflows/approval/runs', '{}'),
        await call(`/v1/runs/${id}/rerun`, '{}'),
        await call(`/v1/runs/${id}/reset?to=1`),
      ];
    }, { id: waiting, token: READ });
    assert.deepEqual(statuses, [403, 403, 403, 403, 403]);
    assert.equal((await api(`/v1/runs/${waiting}`)).body.status, 'waiting_signal');
    assert.deepEqual(page.errors, []);
  },

  async the_runs_list_updates_when_the_cli_starts_a_run() {
    const page = await pageWith(ADMIN);
    await page.goto(`${BASE}/#/runs`);
    await page.locator('table.runs tbody tr').first().waitFor({ timeout: WAIT });
    await page.locator('.counts [data-count]').first().waitFor({ timeout: WAIT });
    await page.evaluate(() => { window.__sameDocument = true; });
    const before = await page.locator('table.runs tbody tr[data-run]').count();
    const out = spawnSync(BIN, ['--server', BASE, '--token', ADMIN, 'run', 'hello', '--input', '{"name":"cli"}', '--json'], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    const id = JSON.parse(out.stdout).run_id;
    const row = page.locator(`tr[data-run="${id}"]`);
    await row.waitFor({ timeout: WAIT });
    await row.locator('.badge[data-status=completed]').waitFor({ timeout: WAIT });
    assert.equal(await page.locator('table.runs tbody tr[data-run]').first().getAttribute('data-run'), id);
    assert.ok(await page.locator('table.runs tbody tr[data-run]').count() >= Math.min(before + 1, 50));
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page reloaded');
    // Filtered to a status through its count.
    await page.locator('.counts [data-count=completed]').click();
    await page.waitForURL(/status=completed/, { timeout: WAIT });
    // The filtered view is drawn (not the one before the click).
    await page.waitForFunction(() => document.querySelector('select[name=status]')?.value === 'completed'
      && document.querySelectorAll('table.runs tbody tr[data-run]').length > 0, null, { timeout: WAIT });
    const shown = await page.locator('table.runs tbody .badge').allInnerTexts();
    assert.ok(shown.length > 0 && shown.every((s) => s === 'completed'), shown.join(','));
    await page.goto(`${BASE}/#/runs`);
    await page.locator('table.runs tbody tr[data-run]').first().waitFor({ timeout: WAIT });
    await shot(page, 'runs-1280x800');
    await page.setViewportSize(PHONE);
    await shot(page, 'runs-390x844');
    // The API reference renders from the OpenAPI document.
    await page.goto(`${BASE}/docs`);
    await page.locator('details.op code', { hasText: '/v1/runs/stream' }).waitFor({ timeout: WAIT });
    await page.setViewportSize(DESKTOP);
    await shot(page, 'docs-1280x800');
    assert.deepEqual(page.errors, []);
  },
};

let failed = 0;
for (const [name, run] of Object.entries(scenarios)) {
  if (ONLY && !name.includes(ONLY)) continue;
  const t0 = Date.now();
  try {
    await run();
    console.log(`ok ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAILED ${name}: ${e.stack || e}`);
  }
}
await browser.close();
process.exit(failed);

// Runway console: plain JavaScript over the HTTP API, no framework and no
// build step. Every value from the server is put into the page as text
// (textContent), never as markup.
'use strict';

// ---------------------------------------------------------------- helpers

const $ = (sel, root = document) => root.querySelector(sel);

/** Makes an element: h('a', {href, class, onclick}, child, ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtClock(iso) {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtDur(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ${m % 60} m`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

function fmtBytes(n) {
  if (n === undefined || n === null) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

const fmtNum = (n) => (n ?? 0).toLocaleString('en-US');
const terminal = (s) => s === 'completed' || s === 'failed' || s === 'cancelled';
const badge = (s) => h('span', { class: `badge s-${s}`, 'data-status': s }, s.replace('_', ' '));
const runLink = (id) => h('a', { href: `#/runs/${encodeURIComponent(id)}`, class: 'mono' }, id);
const pretty = (v) => JSON.stringify(v, null, 2);

function duration(run) {
  const from = run.started_at || run.created_at;
  const to = run.finished_at ? Date.parse(run.finished_at) : (terminal(run.status) ? null : Date.now());
  return to === null ? null : to - Date.parse(from);
}

function debounce(fn, ms) {
  let t = null;
  const d = () => { clearTimeout(t); t = setTimeout(fn, ms); };
  d.cancel = () => clearTimeout(t);
  return d;
}

function banner(message, bad) {
  const b = $('#banner');
  b.hidden = !message;
  b.className = bad ? 'banner bad' : 'banner';
  b.textContent = message || '';
}

// ------------------------------------------------------------- API access

const TOKEN_KEY = 'runway.token';
let token = sessionStorage.getItem(TOKEN_KEY) || '';
/** Who the credentials say we are: {kind, id, label, scopes, can, open}. */
let me = null;
/** Whether the caller holds `scope` (on some workflow: the server checks each). */
const can = (scope) => Boolean(me?.can?.[scope]);
const widest = () => ['admin', 'execute', 'approve', 'read'].find(can) || 'none';

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || `HTTP_${status}`;
  }
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra);
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/** Calls the API; throws ApiError with the envelope's code and message. */
async function api(path, opts = {}) {
  const headers = authHeaders(opts.headers);
  let body = opts.body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(path, { method: opts.method || 'GET', headers, body, signal: opts.signal });
  if (!res.ok) {
    const env = await res.json().catch(() => null);
    const err = new ApiError(res.status, env?.error?.code, env?.error?.message);
    if (res.status === 401) askToken(err.message);
    throw err;
  }
  if (opts.raw) return res;
  return res.status === 204 ? null : res.json();
}

/** A message for a failed call, 401 and 403 said as such. */
function explain(e) {
  if (e.status === 401) return `Not signed in: ${e.message}`;
  if (e.status === 403) return `Not allowed: ${e.message}`;
  return e.code ? `${e.code}: ${e.message}` : String(e.message || e);
}

/**
 * Follows an SSE endpoint with fetch (so the bearer token goes in a header),
 * reconnecting with Last-Event-ID. onEvent(kind, data, id); returns {close}.
 */
function follow(path, onEvent, lastId) {
  let closed = false;
  let ctl = null;
  let delay = 500;
  let last = lastId || '';
  async function connect() {
    ctl = new AbortController();
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (last) headers['Last-Event-ID'] = last;
    let ended = false;
    try {
      const res = await fetch(path, { headers, signal: ctl.signal });
      if (res.status === 401) { askToken('sign in again'); return; }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      delay = 500;
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) { ended = true; break; }
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let kind = 'message', data = '', id = null;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (field === 'event') kind = val;
            else if (field === 'data') data += (data ? '\n' : '') + val;
            else if (field === 'id') id = val;
          }
          if (id !== null) last = id;
          if (data && !closed) onEvent(kind, data, id);
        }
      }
    } catch (e) {
      if (closed) return;
    }
    if (closed) return;
    // A stream the server ended is done only if the caller closed it; a
    // dropped one is resumed where it stopped.
    setTimeout(connect, ended ? 200 : delay);
    delay = Math.min(delay * 2, 10000);
  }
  connect();
  return { close() { closed = true; if (ctl) ctl.abort(); } };
}

/** Fetches an artifact body (with the token) as a Blob. */
async function artifactBlob(runId, name) {
  const res = await api(`/v1/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(name)}`, { raw: true });
  return res.blob();
}

// ---------------------------------------------------------------- sign-in

function askToken(reason) {
  if ($('dialog.token')) return;
  const input = h('input', { type: 'password', placeholder: 'bearer token', autocomplete: 'off', required: true });
  const dlg = h('dialog', { class: 'token' },
    h('form', {
      method: 'dialog', class: 'stack', onsubmit: (ev) => {
        ev.preventDefault();
        token = input.value.trim();
        sessionStorage.setItem(TOKEN_KEY, token);
        dlg.close();
        dlg.remove();
        start();
      },
    },
    h('h2', { text: 'Sign in' }),
    h('p', { class: 'muted', text: `This server needs a bearer token${reason ? ` (${reason})` : ''}. It is kept in this tab only.` }),
    input,
    h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Sign in'))));
  document.body.append(dlg);
  dlg.showModal();
  input.focus();
}

function signOut() {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  start();
}

function showWho() {
  const who = $('#who');
  who.replaceChildren();
  if (!me) return;
  if (me.open) who.append('open server (loopback, no tokens)');
  else {
    who.append(h('span', { title: me.scopes.join(' ') }, `${me.label} · `, h('b', { 'data-scope': widest() }, me.scopes.join(' ') || 'no scopes')));
    if (token) who.append(h('button', { onclick: signOut }, 'Sign out'));
  }
}

// ----------------------------------------------------------------- router

let cleanups = [];
const onLeave = (fn) => cleanups.push(fn);

function route() {
  for (const fn of cleanups.splice(0)) {
    try { fn(); } catch (e) { /* a view's cleanup never blocks the next */ }
  }
  banner('');
  const main = $('#main');
  main.replaceChildren();
  const docs = location.pathname === '/docs';
  const [path, query] = (location.hash.slice(1) || '/runs').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || '');
  const section = docs ? 'docs' : parts[0] === 'workflows' ? 'workflows' : 'runs';
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('on', a.dataset.nav === section);
  const fail = (e) => main.replaceChildren(h('p', { class: 'error', text: explain(e) }));
  let view;
  if (docs) view = viewDocs(main);
  else if (parts[0] === 'runs' && parts[1]) view = viewRun(main, parts[1]);
  else if (parts[0] === 'workflows' && parts[1]) view = viewWorkflow(main, parts[1]);
  else if (parts[0] === 'workflows') view = viewWorkflows(main);
  else view = viewRuns(main, params);
  view.catch(fail);
}

async function start() {
  try {
    me = await api('/v1/whoami');
  } catch (e) {
    me = null;
    showWho();
    if (e.status !== 401) banner(explain(e), true);
    return;
  }
  showWho();
  route();
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', start);

// --------------------------------------------------------------- runs list

const PAGE = 50;
const STATUSES = ['queued', 'running', 'sleeping', 'waiting_signal', 'waiting_child', 'waiting_approval', 'cancelling',
  'completed', 'failed', 'cancelled'];

function runsHash(p) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v) q.set(k, v);
  const s = q.toString();
  return `#/runs${s ? `?${s}` : ''}`;
}

/** datetime-local value <-> RFC 3339 (the browser's time zone). */
const toLocalInput = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
const fromLocalInput = (v) => (v ? new Date(v).toISOString() : '');

async function viewRuns(main, params) {
  const filter = {
    workflow: params.get('workflow') || '', status: params.get('status') || '',
    since: params.get('since') || '', until: params.get('until') || '', cursor: params.get('cursor') || '',
  };
  const wfSelect = h('select', { name: 'workflow' }, h('option', { value: '' }, 'all workflows'));
  const stSelect = h('select', { name: 'status' }, h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filter.status }, s.replace('_', ' '))));
  const since = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(filter.since) });
  const until = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(filter.until) });
  const apply = () => {
    location.hash = runsHash({
      workflow: wfSelect.value, status: stSelect.value,
      since: fromLocalInput(since.value), until: fromLocalInput(until.value),
    });
  };
  for (const el of [wfSelect, stSelect, since, until]) el.addEventListener('change', apply);
  const counts = h('div', { class: 'counts', 'aria-label': 'runs by status' });
  const body = h('tbody');
  const pager = h('div', { class: 'pager' });
  const live = h('span', { class: 'note' });
  main.append(
    h('div', { class: 'panel' },
      h('div', { class: 'row' },
        h('h2', { style: null, text: 'Runs' }), h('span', { class: 'spacer' }), live),
      h('div', { class: 'row' },
        h('label', {}, 'Workflow', wfSelect), h('label', {}, 'Status', stSelect),
        h('label', {}, 'Created from', since), h('label', {}, 'until', until),
        h('button', { onclick: () => { location.hash = '#/runs'; } }, 'Clear')),
      counts),
    h('div', { class: 'panel scroll-x' },
      h('table', { class: 'runs' },
        h('thead', {}, h('tr', {},
          h('th', {}, 'Run'), h('th', {}, 'Workflow'), h('th', {}, 'Status'),
          h('th', { class: 'opt' }, 'Created'), h('th', { class: 'opt' }, 'Duration'), h('th', { class: 'opt' }, 'Error'))),
        body),
      pager));

  api('/v1/workflows').then((wfs) => {
    for (const w of wfs) wfSelect.append(h('option', { value: w.slug, selected: w.slug === filter.workflow }, w.slug));
  }).catch(() => {});

  const rows = new Map();
  const rowOf = (r) => {
    const cells = {
      status: h('td', {}, badge(r.status)),
      dur: h('td', { class: 'dur opt' }, fmtDur(duration(r))),
      err: h('td', { class: 'opt mono' }, r.error_code || r.error?.code || ''),
    };
    const tr = h('tr', { 'data-run': r.id },
      h('td', { class: 'id' }, runLink(r.id), r.parent ? h('span', { class: 'note', title: `child of ${r.parent}` }, ' ↳') : ''),
      h('td', {}, h('a', { href: `#/workflows/${encodeURIComponent(r.workflow)}` }, r.workflow), h('span', { class: 'note' }, ` v${r.version}`)),
      cells.status, h('td', { class: 'opt' }, fmtTime(r.created_at)), cells.dur, cells.err);
    const row = { tr, cells, run: r };
    rows.set(r.id, row);
    return row;
  };
  const update = (row, r) => {
    row.run = r;
    row.cells.status.replaceChildren(badge(r.status));
    row.cells.dur.textContent = fmtDur(duration(r));
    row.cells.err.textContent = r.error_code || r.error?.code || '';
    row.tr.classList.remove('fresh');
    void row.tr.offsetWidth;
    row.tr.classList.add('fresh');
  };

  const refreshCounts = async () => {
    const q = filter.workflow ? `?workflow=${encodeURIComponent(filter.workflow)}` : '';
    const c = await api(`/v1/runs/counts${q}`);
    counts.replaceChildren(...[
      h('button', { class: filter.status ? '' : 'on', onclick: () => { location.hash = runsHash({ ...filter, status: '', cursor: '' }); } },
        `all ${fmtNum(c.total)}`),
      STATUSES.filter((s) => c.counts[s]).map((s) => h('button', {
        class: filter.status === s ? 'on' : '', 'data-count': s,
        onclick: () => { location.hash = runsHash({ ...filter, status: s, cursor: '' }); },
      }, `${s.replace('_', ' ')} ${fmtNum(c.counts[s])}`))].flat());
  };
  // Later than the server's counts stay fresh (1 s): the answer then holds the change.
  const countsLater = debounce(() => refreshCounts().catch(() => {}), 1500);

  const load = async () => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const k of ['workflow', 'status', 'since', 'until', 'cursor']) if (filter[k]) q.set(k, filter[k]);
    const page = await api(`/v1/runs?${q}`);
    rows.clear();
    body.replaceChildren(...page.runs.map((r) => rowOf(r).tr));
    if (!page.runs.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No runs match.')));
    pager.replaceChildren(
      filter.cursor ? h('button', { onclick: () => { location.hash = runsHash({ ...filter, cursor: '' }); } }, '« Newest') : '',
      page.next_cursor ? h('button', { onclick: () => { location.hash = runsHash({ ...filter, cursor: page.next_cursor }); } }, 'Older ›') : '',
      h('span', { class: 'note' }, `${page.runs.length} shown`));
  };
  await load();
  refreshCounts().catch((e) => counts.replaceChildren(h('span', { class: 'error', text: explain(e) })));

  // The first page follows every change; older pages stay as they were.
  if (!filter.cursor && !filter.until) {
    const q = new URLSearchParams();
    if (filter.workflow) q.set('workflow', filter.workflow);
    if (filter.status) q.set('status', filter.status);
    live.textContent = '● live';
    const sinceMs = filter.since ? Date.parse(filter.since) : 0;
    const stream = follow(`/v1/runs/stream?${q}`, (kind, data) => {
      if (kind === 'reset') { load().catch(() => {}); countsLater(); return; }
      if (kind !== 'run') return;
      const r = JSON.parse(data);
      countsLater();
      const row = rows.get(r.id);
      if (filter.status && r.status !== filter.status) {
        if (row) { row.tr.remove(); rows.delete(r.id); }
        return;
      }
      if (row) return update(row, r);
      if (Date.parse(r.created_at) < sinceMs) return;
      const empty = body.querySelector('td[colspan]');
      if (empty) empty.parentElement.remove();
      const added = rowOf(r);
      added.tr.classList.add('fresh');
      // Newest first, by id (ids sort by creation time).
      const after = [...body.children].find((tr) => tr.dataset.run && tr.dataset.run < r.id);
      body.insertBefore(added.tr, after || null);
      while (body.children.length > PAGE) {
        const last = body.lastElementChild;
        rows.delete(last.dataset.run);
        last.remove();
      }
    });
    onLeave(() => stream.close());
  }
  const tick = setInterval(() => {
    for (const row of rows.values()) if (!terminal(row.run.status)) row.cells.dur.textContent = fmtDur(duration(row.run));
  }, 1000);
  onLeave(() => { clearInterval(tick); countsLater.cancel(); });
}

// ----------------------------------------------------------------- a run

/** One line about an event, for the event list. */
function summary(e) {
  switch (e.kind) {
    case 'queued': return `${e.workflow} v${e.version}`;
    case 'log': return `[${e.level}] ${e.message}`;
    case 'custom': return `${e.name} ${JSON.stringify(e.payload)}`;
    case 'program_output': return `${e.stream}: ${e.text}`;
    case 'secret_read': return e.name;
    case 'artifact_written': return `${e.name} (${e.content_type}, ${fmtBytes(e.size)})`;
    case 'budget_exceeded': return `${e.budget}: ${e.used} of ${e.limit} ${e.unit}`;
    case 'failed': return `${e.code}: ${e.message.split('\n')[0]}`;
    case 'sleeping': return `until ${fmtTime(new Date(e.until_ms).toISOString())}`;
    case 'waiting_signal': return `signal ${e.name}`;
    case 'waiting_child': return e.run;
    case 'signal_received': return `${e.name} (#${e.signal_seq})${e.by ? ` from ${e.by}` : ''}`;
    case 'retrying': return `attempt ${e.attempt} at ${fmtTime(new Date(e.at_ms).toISOString())} after ${e.code}: ${e.message.split('\n')[0]}`;
    case 'cancelled': return e.by ? `by ${e.by}` : '';
    case 'child_started': return `${e.workflow} ${e.run}`;
    case 'approval_requested': return `${e.name} (${e.approval}): ${e.prompt}`;
    case 'waiting_approval': return e.name;
    case 'approval_decided': return `${e.name}: ${JSON.stringify(e.decision.approved ?? e.decision.option ?? e.decision.options)}${e.decision.by ? ` by ${e.decision.by}` : ' (timed out)'}`;
    case 'model_call': return `${e.model}: ${e.input_tokens}→${e.output_tokens} tokens, $${e.cost_usd}, ${e.latency_ms} ms${e.error ? ` ${e.error.code}` : ''}${e.tool_calls?.length ? ` → calls ${e.tool_calls.join(', ')}` : ''}`;
    case 'tool_call': return `${e.server}/${e.tool} → ${e.error ? `${e.error.code}: ${e.error.message}` : e.outcome} (${e.duration_ms} ms)`;
    case 'http_call': return `${e.method} ${e.url} → ${e.status ?? e.error?.code ?? 'refused'} (${e.duration_ms} ms)`;
    default: return '';
  }
}

/** A virtualised list of events: only the rows in view are in the page. */
function eventList(onPick) {
  const ROW = 28;
  const events = [];
  const sizer = h('div', { class: 'sizer' });
  const box = h('div', { class: 'events', role: 'list', 'aria-label': 'events' }, sizer);
  let highlighted = 0;
  let drawn = '';
  const draw = () => {
    const first = Math.max(0, Math.floor(box.scrollTop / ROW) - 10);
    const last = Math.min(events.length, first + Math.ceil(box.clientHeight / ROW) + 20);
    const key = `${first}:${last}:${events.length}:${highlighted}`;
    if (key === drawn) return;
    drawn = key;
    sizer.style.height = `${events.length * ROW}px`;
    const out = [];
    for (let i = first; i < last; i++) {
      const e = events[i];
      const row = h('div', {
        class: e.seq === highlighted ? 'ev hl' : 'ev', role: 'listitem', 'data-seq': e.seq, 'data-kind': e.kind,
        onclick: () => { highlighted = e.seq; drawn = ''; draw(); onPick(e); },
      },
      h('span', { class: 'seq' }, e.seq), h('span', { class: 'at' }, fmtClock(e.at)),
      h('span', { class: 'kind' }, e.kind), h('span', { class: 'sum' }, summary(e)));
      row.style.top = `${i * ROW}px`;
      out.push(row);
    }
    sizer.replaceChildren(...out);
  };
  box.addEventListener('scroll', () => requestAnimationFrame(draw));
  return {
    el: box,
    events,
    add(list) {
      const atEnd = box.scrollTop + box.clientHeight >= events.length * ROW - ROW;
      for (const e of list) if (!events.length || e.seq > events[events.length - 1].seq) events.push(e);
      drawn = '';
      // Follow the tail if the reader was at it.
      if (atEnd && events.length * ROW > box.clientHeight) box.scrollTop = events.length * ROW;
      draw();
    },
    show(seq) {
      const i = events.findIndex((e) => e.seq === seq);
      if (i < 0) return;
      highlighted = seq;
      box.scrollTop = Math.max(0, i * ROW - box.clientHeight / 2);
      drawn = '';
      draw();
      onPick(events[i]);
    },
    last: () => (events.length ? events[events.length - 1].seq : 0),
  };
}

const SPAN_NAMES = {
  queued: 'queued', running: 'running', sleeping: 'sleeping', waiting_signal: 'waiting for a signal',
  waiting_child: 'waiting for a child', waiting_approval: 'waiting for an approval',
};

/** The timeline: spans as a bar, host calls as marks below it. */
function drawTimeline(box, tl, fetchedAt, onMark) {
  const t0 = Date.parse(tl.start);
  const t1 = tl.end ? Date.parse(tl.end) : Date.parse(tl.now) + (Date.now() - fetchedAt);
  const span = Math.max(1, t1 - t0);
  const x = (iso) => `${Math.min(100, Math.max(0, ((Date.parse(iso) - t0) / span) * 100))}%`;
  const bar = h('div', { class: 'tl', role: 'img', 'aria-label': 'timeline' });
  for (const s of tl.spans) {
    const to = s.to ? Date.parse(s.to) : t1;
    const el = h('div', {
      class: `span ${s.state}`, 'data-state': s.state,
      title: `${SPAN_NAMES[s.state] || s.state}${s.detail ? ` (${s.detail})` : ''}: ${fmtDur(to - Date.parse(s.from))}`,
    });
    el.style.left = x(s.from);
    el.style.width = `${Math.max(0.2, ((to - Date.parse(s.from)) / span) * 100)}%`;
    bar.append(el);
  }
  const marks = h('div', { class: 'marks' });
  for (const m of tl.marks) {
    const el = h('button', {
      class: `mark ${m.kind}${m.error ? ' error' : ''}`, 'data-kind': m.kind, 'aria-label': `${m.kind}: ${m.label}`,
      title: `+${fmtDur(Date.parse(m.at) - t0)} ${m.kind}: ${m.label}`, onclick: () => onMark(m.seq),
    });
    el.style.left = x(m.at);
    marks.append(el);
  }
  const list = h('div', { class: 'marklist' }, tl.marks.slice(-200).reverse().map((m) => h('div', {},
    h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); onMark(m.seq); } }, `+${fmtDur(Date.parse(m.at) - t0)}`),
    ` ${m.kind} `, h('span', { class: m.error ? 'error' : '' }, m.label))));
  if (tl.more_marks) list.append(h('div', { class: 'note' }, `${fmtNum(tl.more_marks)} more not shown`));
  const used = [...new Set(tl.spans.map((s) => s.state))];
  box.replaceChildren(bar, marks,
    h('div', { class: 'axis' }, h('span', {}, fmtTime(tl.start)), h('span', {}, tl.end ? fmtDur(span) : `${fmtDur(span)} so far`)),
    h('div', { class: 'legend' }, used.map((s) => h('span', {}, h('i', { class: `span ${s}` }), SPAN_NAMES[s] || s))),
    tl.marks.length ? list : h('p', { class: 'note' }, 'No host calls yet.'));
  for (const i of box.querySelectorAll('.legend i')) {
    i.style.background = getComputedStyle(bar.querySelector(`.span.${[...i.classList][1]}`) || i).backgroundColor;
  }
}

/** A tiny Markdown renderer: headings, lists, code, emphasis, links; text only. */
function markdown(text) {
  const out = h('div', { class: 'preview md' });
  const inline = (line) => {
    const frag = document.createDocumentFragment();
    const re = /(`[^`]+`|\*\*[^*]+\*\*|\*[^*]+\*|\[[^\]]+\]\([^)\s]+\))/g;
    let at = 0;
    for (const m of line.matchAll(re)) {
      frag.append(line.slice(at, m.index));
      const t = m[0];
      if (t.startsWith('`')) frag.append(h('code', {}, t.slice(1, -1)));
      else if (t.startsWith('**')) frag.append(h('strong', {}, t.slice(2, -2)));
      else if (t.startsWith('*')) frag.append(h('em', {}, t.slice(1, -1)));
      else {
        const [, label, href] = t.match(/\[([^\]]+)\]\(([^)\s]+)\)/);
        // Only web links: never javascript: or data:.
        frag.append(/^(https?:|\/|#)/i.test(href) ? h('a', { href, rel: 'noopener noreferrer', target: '_blank' }, label) : label);
      }
      at = m.index + t.length;
    }
    frag.append(line.slice(at));
    return frag;
  };
  let list = null;
  let code = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) {
      if (code) { out.append(h('pre', {}, code.join('\n'))); code = null; } else code = [];
      continue;
    }
    if (code) { code.push(line); continue; }
    const item = line.match(/^\s*[-*] (.*)/);
    if (item) {
      if (!list) { list = h('ul'); out.append(list); }
      list.append(h('li', {}, inline(item[1])));
      continue;
    }
    list = null;
    const head = line.match(/^(#{1,3}) (.*)/);
    if (head) out.append(h(`h${head[1].length}`, {}, inline(head[2])));
    else if (line.trim()) out.append(h('p', {}, inline(line)));
  }
  if (code) out.append(h('pre', {}, code.join('\n')));
  return out;
}

/** What a preview of an artifact shows: never a page of its own. */
async function preview(runId, a) {
  const ct = (a.content_type || '').toLowerCase();
  if (a.size > 2 << 20) return h('p', { class: 'note' }, 'Too large to preview; download it.');
  const blob = await artifactBlob(runId, a.name);
  if (/^image\/(png|jpeg|gif|webp|svg\+xml|avif)$/.test(ct)) {
    // As an <img>, an SVG runs no script.
    const url = URL.createObjectURL(blob);
    onLeave(() => URL.revokeObjectURL(url));
    return h('div', { class: 'preview' }, h('img', { src: url, alt: a.name }));
  }
  const text = await blob.text();
  if (ct.includes('json')) {
    try { return h('pre', { class: 'preview' }, pretty(JSON.parse(text))); } catch (e) { /* shown as text */ }
  }
  if (ct.startsWith('text/markdown') || a.name.endsWith('.md')) return markdown(text);
  if (ct.includes('html')) {
    return h('div', {}, h('p', { class: 'note' }, 'HTML is shown as its source, never rendered.'),
      h('pre', { class: 'preview', 'data-html-source': true }, text));
  }
  if (ct.startsWith('text/') || ct.includes('xml') || ct.includes('yaml') || ct.includes('toml') || ct.includes('csv')) {
    return h('pre', { class: 'preview' }, text);
  }
  return h('p', { class: 'note' }, `No preview for ${a.content_type}; download it.`);
}

async function download(runId, name) {
  const blob = await artifactBlob(runId, name);
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function trigger(run) {
  if (run.parent) return ['child of ', runLink(run.parent)];
  if (run.trigger) {
    const t = run.trigger;
    const parts = [t.kind];
    if (t.rerun_of) parts.push(' of ', runLink(t.rerun_of));
    if (t.reset_to !== undefined && t.reset_to !== null) parts.push(` after event ${t.reset_to}`);
    parts.push(' ', h('span', { class: 'note' }, `(${t.by})`));
    return parts;
  }
  const key = run.idempotency_key || '';
  if (key.startsWith('cron:')) return ['cron', key.split(':').slice(2, 3).map((i) => ` (trigger ${i})`)];
  if (key.startsWith('hook:')) return ['webhook', ` (delivery ${key.split(':').slice(2).join(':')})`];
  return ['api'];
}

async function viewRun(main, id) {
  const enc = encodeURIComponent(id);
  let run = await api(`/v1/runs/${enc}`);
  const head = h('div', { class: 'panel head' });
  const problem = h('div');
  const tlBox = h('div', { class: 'panel' }, h('h2', { text: 'Timeline' }), h('div', { class: 'timeline' }));
  const detail = h('div', { class: 'evdetail', hidden: true });
  const list = eventList((e) => {
    detail.hidden = false;
    const fork = can('execute') ? startedButton(`Reset to event ${e.seq}`, `/v1/runs/${enc}/reset?to=${e.seq}`) : '';
    detail.replaceChildren(fork, h('pre', {}, pretty(e)));
  });
  const evCount = h('span', { class: 'note' });
  const io = h('div', { class: 'grid' });
  const artifacts = h('div', { class: 'panel' }, h('h2', { text: 'Artifacts' }), h('div', { class: 'list' }));
  const usage = h('div', { class: 'panel' }, h('h2', { text: 'Usage' }), h('div'));
  const children = h('div', { class: 'panel' }, h('h2', { text: 'Children' }), h('div'));
  main.append(head, problem, tlBox,
    h('div', { class: 'panel' }, h('div', { class: 'row' }, h('h2', { text: 'Events' }), h('span', { class: 'spacer' }), evCount), list.el, detail),
    io, h('div', { class: 'grid' }, artifacts, usage), children);

  const drawHead = () => {
    const facts = [
      ['workflow', h('a', { href: `#/workflows/${encodeURIComponent(run.workflow)}` }, `${run.workflow} v${run.version}`)],
      ['trigger', h('span', {}, ...trigger(run))],
      ['created', fmtTime(run.created_at)], ['started', fmtTime(run.started_at)],
      ['ended', fmtTime(run.finished_at)], ['duration', fmtDur(duration(run))],
    ];
    if (run.attempt > 1) facts.push(['attempt', String(run.attempt)]);
    if (run.reruns && run.reruns.length) facts.push(['reruns', h('span', {}, ...run.reruns.flatMap((r, i) => [i ? ', ' : '', runLink(r)]))]);
    const wait = run.wait;
    if (wait && !terminal(run.status)) {
      facts.push(['waits for', wait.for === 'timer' ? `timer until ${fmtTime(new Date(wait.until_ms).toISOString())}`
        : wait.for === 'signal' ? `signal “${wait.name}”` : wait.for === 'child' ? runLink(wait.run)
          : wait.for === 'approval' ? `approval “${wait.name}”` : JSON.stringify(wait)]);
    }
    const actions = h('div', { class: 'actions' });
    if (can('execute') && !terminal(run.status)) actions.append(cancelButton(), signalForm());
    if (can('execute')) actions.append(startedButton('Rerun', `/v1/runs/${enc}/rerun`, {}));
    if (run.status === 'waiting_approval' && can('approve')) approvalForms(actions).catch(() => {});
    head.replaceChildren(
      h('div', {}, h('h1', { class: 'mono' }, run.id), h('div', { class: 'row' }, badge(run.status)),
        h('div', { class: 'facts' }, facts.map(([k, v]) => h('span', {}, `${k} `, h('b', {}, v))))),
      actions);
    problem.replaceChildren(run.error ? h('div', { class: 'panel' }, h('h2', { class: 'error' }, run.error.code),
      h('pre', { class: 'error-message' }, run.error.message)) : '');
    io.replaceChildren(
      h('div', { class: 'panel' }, h('h2', { text: 'Input' }), h('pre', { class: 'json input' }, pretty(run.input))),
      h('div', { class: 'panel' }, h('h2', { text: 'Output' }),
        run.output !== null && run.output !== undefined ? h('pre', { class: 'json output' }, pretty(run.output))
          : h('p', { class: 'muted' }, terminal(run.status) ? 'No output.' : 'Not ended yet.')));
    const u = run.usage || {};
    const m = u.model || {}, t = u.model_tree || {};
    usage.lastChild.replaceChildren(h('dl', { class: 'kv' },
      [['fuel', fmtNum(u.fuel)], ['run time', fmtDur(u.duration_ms)], ['peak memory', fmtBytes(u.peak_memory_bytes)],
        ['events', fmtNum(u.events)], ['output', fmtBytes(u.output_bytes)], ['artifacts', fmtBytes(u.artifact_bytes)],
        ['model calls', `${fmtNum(m.calls)} own · ${fmtNum(t.calls)} tree`],
        ['tokens', `${fmtNum((m.input_tokens || 0) + (m.output_tokens || 0))} own · ${fmtNum((t.input_tokens || 0) + (t.output_tokens || 0))} tree`],
        ['cost', `$${m.cost_usd ?? 0} own · $${t.cost_usd ?? 0} tree`]]
        .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  };

  /** A button that starts a run (rerun, reset) and opens it. */
  function startedButton(label, path, body) {
    const b = h('button', { 'data-action': label.toLowerCase().split(' ')[0] }, label);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const r = await api(path, { method: 'POST', json: body });
        location.hash = `#/runs/${encodeURIComponent(r.id)}`;
      } catch (e) { banner(explain(e), true); b.disabled = false; }
    });
    return b;
  }

  function cancelButton() {
    const b = h('button', { class: 'danger', 'data-action': 'cancel' }, 'Cancel run');
    let armed = null;
    b.addEventListener('click', async () => {
      if (!armed) {
        b.textContent = 'Confirm cancel';
        armed = setTimeout(() => { armed = null; b.textContent = 'Cancel run'; }, 4000);
        return;
      }
      clearTimeout(armed);
      b.disabled = true;
      try {
        const c = await api(`/v1/runs/${enc}/cancel`, { method: 'POST' });
        banner(`Cancel: ${c.outcome.replace('_', ' ')}`);
        refresh();
      } catch (e) { banner(explain(e), true); b.disabled = false; }
    });
    return b;
  }

  /** A form per pending approval of the run, shaped by its kind. */
  async function approvalForms(box) {
    const page = await api(`/v1/approvals?run=${enc}&status=pending`);
    for (const a of page.approvals) {
      const spec = a.spec;
      const comment = h('input', { name: 'comment', placeholder: 'comment', size: 14 });
      const problem = h('span', { class: 'error' });
      const send = async (choice) => {
        try {
          await api(`/v1/runs/${enc}/approvals/${encodeURIComponent(a.name)}`, { method: 'POST', json: { ...choice, comment: comment.value || undefined } });
          banner(`Approval “${a.name}” decided.`);
          refresh();
        } catch (e) { problem.textContent = explain(e); }
      };
      let controls;
      if (spec.kind === 'gate') {
        controls = [h('button', { class: 'primary', 'data-action': 'approve', type: 'button', onclick: () => send({ approved: true }) }, 'Approve'),
          h('button', { class: 'danger', 'data-action': 'deny', type: 'button', onclick: () => send({ approved: false }) }, 'Deny')];
      } else if (spec.kind === 'decision') {
        const pick = h('select', { name: 'option' }, spec.options.map((o) => h('option', { value: o }, o)));
        controls = [pick, h('button', { class: 'primary', type: 'button', onclick: () => send({ option: pick.value }) }, 'Decide')];
      } else {
        // A selection or a ranking: the options, in order, comma-separated.
        const list = h('input', { name: 'options', size: 18, placeholder: spec.kind === 'rank' ? 'all, best first' : `${spec.count || 1} of them` });
        controls = [list, h('button', { class: 'primary', type: 'button', onclick: () => send({ options: list.value.split(',').map((x) => x.trim()).filter(Boolean) }) }, 'Decide')];
      }
      box.append(h('form', { class: 'inline approval', 'data-approval': a.name, onsubmit: (ev) => ev.preventDefault() },
        h('label', {}, `${a.name}: ${spec.prompt}`, h('span', { class: 'note' }, spec.options?.length ? spec.options.join(' · ') : '')),
        controls, comment, problem));
    }
  }

  function signalForm() {
    const name = h('input', { name: 'signal', placeholder: 'signal name', value: run.wait?.for === 'signal' ? run.wait.name : '', size: 12, required: true });
    const data = h('textarea', { name: 'data', rows: 1, placeholder: 'JSON data' }, '{}');
    const send = h('button', { type: 'submit' }, 'Send signal');
    const check = () => {
      try { JSON.parse(data.value || 'null'); data.setCustomValidity(''); send.disabled = !name.value; } catch (e) {
        data.setCustomValidity(`not JSON: ${e.message}`); send.disabled = true;
      }
    };
    data.addEventListener('input', check);
    name.addEventListener('input', check);
    check();
    return h('form', {
      class: 'inline signal', onsubmit: async (ev) => {
        ev.preventDefault();
        send.disabled = true;
        try {
          const r = await api(`/v1/runs/${enc}/signals/${encodeURIComponent(name.value)}`, { method: 'POST', json: JSON.parse(data.value || 'null') });
          banner(`Signal “${name.value}” ${r.duplicate ? 'was already delivered' : 'sent'}.`);
          refresh();
        } catch (e) { banner(explain(e), true); }
        check();
      },
    }, h('label', {}, 'Signal', name), h('label', {}, 'Data', data), send);
  }

  let tlData = null, tlAt = 0;
  const tlDraw = () => tlData && drawTimeline(tlBox.lastChild, tlData, tlAt, (seq) => list.show(seq));
  const loadTimeline = async () => {
    tlData = await api(`/v1/runs/${enc}/timeline`);
    tlAt = Date.now();
    tlDraw();
  };
  const loadArtifacts = async () => {
    const all = await api(`/v1/runs/${enc}/artifacts`);
    const box = artifacts.lastChild;
    if (!all.length) return box.replaceChildren(h('p', { class: 'muted' }, 'None.'));
    const shown = h('div');
    box.replaceChildren(h('div', { class: 'scroll-x' }, h('table', {}, h('tbody', {}, all.map((a) => h('tr', { 'data-artifact': a.name },
      h('td', { class: 'wrap mono' }, a.name), h('td', { class: 'opt' }, a.content_type), h('td', {}, fmtBytes(a.size)),
      h('td', {},
        h('button', {
          'data-action': 'preview', onclick: async () => {
            try { shown.replaceChildren(h('h2', {}, a.name), await preview(run.id, a)); } catch (e) { shown.replaceChildren(h('p', { class: 'error' }, explain(e))); }
          },
        }, 'Preview'), ' ',
        h('button', { 'data-action': 'download', onclick: () => download(run.id, a.name).catch((e) => banner(explain(e), true)) }, 'Download'))))))), shown);
  };
  const loadChildren = async () => {
    const box = children.lastChild;
    const parent = run.parent ? h('p', {}, 'Child of ', runLink(run.parent)) : '';
    if (!run.children.length) return box.replaceChildren(parent, h('p', { class: 'muted' }, 'No child runs.'));
    let budget = 200;
    const tree = async (ids, depth) => {
      const ul = h('ul', { class: depth ? 'tree' : 'tree root' });
      for (const cid of ids.slice(0, budget)) {
        budget--;
        const c = await api(`/v1/runs/${encodeURIComponent(cid)}`).catch(() => null);
        if (!c) continue;
        const li = h('li', { 'data-child': c.id }, runLink(c.id), ' ', h('span', {}, c.workflow), ' ', badge(c.status));
        if (c.children.length && depth < 3 && budget > 0) li.append(await tree(c.children, depth + 1));
        else if (c.children.length) li.append(h('span', { class: 'note' }, ` (${c.children.length} children)`));
        ul.append(li);
      }
      return ul;
    };
    box.replaceChildren(parent, await tree(run.children, 0));
  };

  const refresh = debounce(async () => {
    try {
      run = await api(`/v1/runs/${enc}`);
      drawHead();
      await Promise.all([loadTimeline(), loadChildren()]);
    } catch (e) { banner(explain(e), true); }
  }, 250);
  const artifactsLater = debounce(() => loadArtifacts().catch(() => {}), 250);

  drawHead();
  loadTimeline().catch((e) => tlBox.lastChild.replaceChildren(h('p', { class: 'error' }, explain(e))));
  loadArtifacts().catch(() => {});
  loadChildren().catch(() => {});

  // The log: pages first (the first one paints at once), then the live tail.
  let after = 0;
  evCount.dataset.loading = '1';
  for (;;) {
    const page = await api(`/v1/runs/${enc}/events?after=${after}&limit=1000`);
    list.add(page.events);
    evCount.textContent = `${fmtNum(list.events.length)} events`;
    after = page.next_after;
    if (page.events.length < 1000) break;
  }
  delete evCount.dataset.loading;
  if (!terminal(run.status) || list.events.length === 0 || !terminal(list.events[list.events.length - 1].kind)) {
    const s = follow(`/v1/runs/${enc}/events/stream`, (kind, data) => {
      const e = JSON.parse(data);
      if (e.seq <= list.last()) return;
      list.add([e]);
      evCount.textContent = `${fmtNum(list.events.length)} events`;
      if (kind === 'artifact_written') artifactsLater();
      refresh();
      if (terminal(kind)) {
        s.close();
        artifactsLater();
      }
    }, String(list.last()));
    onLeave(() => s.close());
  }
  const tick = setInterval(() => {
    if (tlData && !tlData.end) tlDraw();
    if (!terminal(run.status)) {
      const d = head.querySelectorAll('.facts b')[5];
      if (d) d.textContent = fmtDur(duration(run));
    }
  }, 1000);
  onLeave(() => { clearInterval(tick); refresh.cancel(); artifactsLater.cancel(); });
}

// -------------------------------------------------------------- workflows

async function viewWorkflows(main) {
  const wfs = await api('/v1/workflows');
  main.append(h('div', { class: 'panel scroll-x' }, h('h2', { text: 'Workflows' }),
    wfs.length ? h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Workflow'), h('th', {}, 'Version'), h('th', { class: 'opt' }, 'Deployed'), h('th', {}, 'Description'))),
      h('tbody', {}, wfs.map((w) => h('tr', { 'data-workflow': w.slug },
        h('td', {}, h('a', { href: `#/workflows/${encodeURIComponent(w.slug)}` }, w.slug)), h('td', {}, `v${w.version}`),
        h('td', { class: 'opt' }, fmtTime(w.deployed_at)), h('td', { class: 'wrap' }, w.description || '')))))
      : h('p', { class: 'muted' }, 'Nothing deployed yet: runway deploy WORKFLOW.wasm')));
}

/** Checks `v` against the parts of JSON Schema manifests use; the first problem, or null. */
function schemaProblem(schema, v, path = 'input') {
  if (!schema || typeof schema !== 'object') return null;
  const type = Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
  const types = schema.type ? [].concat(schema.type) : null;
  if (types) {
    const ok = types.some((t) => t === type || (t === 'integer' && Number.isInteger(v)) || (t === 'number' && type === 'number'));
    if (!ok) return `${path} must be ${types.join(' or ')}`;
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) return `${path} must be one of ${JSON.stringify(schema.enum)}`;
  if (type === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) return `${path} must be at least ${schema.minimum}`;
    if (schema.maximum !== undefined && v > schema.maximum) return `${path} must be at most ${schema.maximum}`;
  }
  if (type === 'string') {
    if (schema.minLength !== undefined && v.length < schema.minLength) return `${path} must be at least ${schema.minLength} characters`;
    if (schema.maxLength !== undefined && v.length > schema.maxLength) return `${path} must be at most ${schema.maxLength} characters`;
  }
  if (type === 'object') {
    for (const k of schema.required || []) if (!(k in v)) return `${path}.${k} is required`;
    for (const [k, sub] of Object.entries(schema.properties || {})) {
      if (k in v) { const p = schemaProblem(sub, v[k], `${path}.${k}`); if (p) return p; }
    }
    if (schema.additionalProperties === false) {
      const extra = Object.keys(v).find((k) => !(k in (schema.properties || {})));
      if (extra) return `${path}.${extra} is not allowed`;
    }
  }
  if (type === 'array' && schema.items) {
    for (let i = 0; i < v.length; i++) { const p = schemaProblem(schema.items, v[i], `${path}[${i}]`); if (p) return p; }
  }
  return null;
}

async function viewWorkflow(main, slug) {
  const enc = encodeURIComponent(slug);
  const wf = await api(`/v1/workflows/${enc}`);
  const latest = wf.latest;
  const cronBox = h('div');
  const hook = wf.triggers?.webhook;
  main.append(h('div', { class: 'panel' },
    h('h1', {}, slug), h('p', { class: 'muted' }, latest.description || ''),
    h('div', { class: 'facts' }, h('span', {}, 'newest ', h('b', {}, `v${latest.version}`)),
      h('span', {}, 'deployed ', h('b', {}, fmtTime(latest.deployed_at))),
      h('span', {}, h('a', { href: runsHash({ workflow: slug }) }, 'its runs →')))));
  if (can('execute')) main.append(startForm(slug, wf.input_schema));
  main.append(h('div', { class: 'grid' },
    h('div', { class: 'panel' }, h('h2', { text: 'Triggers' }),
      hook ? h('dl', { class: 'kv' }, h('dt', {}, 'webhook'), h('dd', { class: 'mono' }, `${location.origin}/hooks/${slug}`),
        h('dt', {}, 'scheme'), h('dd', {}, hook.scheme || 'hmac')) : h('p', { class: 'muted' }, 'No webhook.'),
      cronBox),
    h('div', { class: 'panel scroll-x' }, h('h2', { text: 'Versions' }), h('table', {}, h('tbody', {},
      wf.versions.slice().reverse().map((v) => h('tr', {}, h('td', {}, `v${v.version}`), h('td', {}, fmtTime(v.deployed_at)),
        h('td', { class: 'mono opt' }, v.digest.slice(0, 16))))))),
    h('div', { class: 'panel' }, h('h2', { text: 'Manifest' }), h('pre', { class: 'json' }, latest.manifest_toml))));
  const crons = await api(`/v1/workflows/${enc}/cron`).catch(() => []);
  cronBox.replaceChildren(crons.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Cron'), h('th', {}, 'Next fire'), h('th', { class: 'opt' }, 'Last run'))),
    h('tbody', {}, crons.map((c) => h('tr', {}, h('td', { class: 'mono' }, c.schedule, c.paused ? ' (paused)' : ''),
      h('td', {}, c.paused ? '—' : fmtTime(c.next_fire)),
      h('td', { class: 'opt' }, c.last_run ? [runLink(c.last_run), ' ', c.last_run_status ? badge(c.last_run_status) : ''] : '—')))))
    : h('p', { class: 'muted' }, 'No cron schedule.'));
}

function startForm(slug, schema) {
  const input = h('textarea', { name: 'input', rows: 6, spellcheck: 'false' }, '{}');
  const problem = h('p', { class: 'error', 'aria-live': 'polite' });
  const go = h('button', { class: 'primary', type: 'submit' }, 'Start run');
  const check = () => {
    let v;
    try { v = JSON.parse(input.value); } catch (e) { problem.textContent = `Not JSON: ${e.message}`; go.disabled = true; return null; }
    const p = schemaProblem(schema, v);
    problem.textContent = p || '';
    go.disabled = Boolean(p);
    return p ? null : v;
  };
  input.addEventListener('input', check);
  check();
  return h('form', {
    class: 'panel start', onsubmit: async (ev) => {
      ev.preventDefault();
      const v = check();
      if (v === null) return;
      go.disabled = true;
      try {
        const r = await api(`/v1/workflows/${encodeURIComponent(slug)}/runs`, { method: 'POST', json: v });
        location.hash = `#/runs/${encodeURIComponent(r.id)}`;
      } catch (e) { problem.textContent = explain(e); go.disabled = false; }
    },
  }, h('h2', { text: 'Start a run' }),
  schema ? h('details', {}, h('summary', { class: 'note' }, 'input schema'), h('pre', { class: 'json' }, pretty(schema))) : '',
  input, problem, go);
}

// ---------------------------------------------------------- API reference

async function viewDocs(main) {
  const res = await fetch('/v1/openapi.json');
  const doc = await res.json();
  const refName = (s) => (s?.$ref ? s.$ref.split('/').pop() : s?.type === 'array' && s.items ? `${refName(s.items)}[]` : s?.type || '');
  main.append(h('div', { class: 'panel' }, h('h1', {}, `${doc.info?.title || 'API'} ${doc.info?.version || ''}`),
    h('p', {}, doc.info?.description || ''),
    h('p', { class: 'note' }, 'Send a bearer token as Authorization: Bearer TOKEN (none needed on a loopback server without tokens). The document itself: ',
      h('a', { href: '/v1/openapi.json' }, '/v1/openapi.json'), '.')));
  const byTag = new Map();
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    for (const [verb, op] of Object.entries(ops)) {
      const tag = op.tags?.[0] || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, verb, op });
    }
  }
  for (const [tag, ops] of byTag) {
    main.append(h('div', { class: 'panel' }, h('h2', {}, tag), ops.map(({ path, verb, op }) => h('details', { class: 'op' },
      h('summary', {}, h('span', { class: `verb ${verb}` }, verb.toUpperCase()), h('code', {}, path),
        h('span', { class: 'muted' }, (op.summary || op.description || '').split('\n')[0])),
      op.description ? h('p', {}, op.description) : '',
      op.parameters?.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Parameter'), h('th', {}, 'In'), h('th', {}, 'Type'), h('th', {}, ''))),
        h('tbody', {}, op.parameters.map((p) => h('tr', {}, h('td', { class: 'mono' }, p.name, p.required ? ' *' : ''), h('td', {}, p.in),
          h('td', { class: 'mono' }, refName(p.schema)), h('td', { class: 'wrap' }, p.description || ''))))) : '',
      op.requestBody ? h('p', {}, 'Body: ', Object.entries(op.requestBody.content || {}).map(([ct, c]) => h('code', {}, `${ct} ${refName(c.schema)} `))) : '',
      h('ul', {}, Object.entries(op.responses || {}).map(([code, r]) => h('li', {}, h('b', {}, code), ` ${r.description || ''} `,
        Object.entries(r.content || {}).map(([ct, c]) => h('code', {}, `${ct} ${refName(c.schema)}`)))))))));
  }
  const schemas = doc.components?.schemas || {};
  main.append(h('div', { class: 'panel' }, h('h2', {}, 'Schemas'), Object.entries(schemas).map(([name, s]) => h('details', { class: 'op' },
    h('summary', {}, h('code', {}, name), h('span', { class: 'muted' }, (s.description || '').split('\n')[0])),
    s.properties ? h('table', {}, h('tbody', {}, Object.entries(s.properties).map(([k, p]) => h('tr', {},
      h('td', { class: 'mono' }, k, (s.required || []).includes(k) ? ' *' : ''), h('td', { class: 'mono' }, refName(p) || (p.oneOf ? 'one of' : '')),
      h('td', { class: 'wrap' }, p.description || ''))))) : h('pre', { class: 'json' }, pretty(s))))));
}

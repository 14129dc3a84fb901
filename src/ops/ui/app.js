// jetsaga dashboard: a single-page app over the ops JSON API (SPEC §5).
// Hash routes: "#/" (the saga list, filters in the hash's query) and
// "#/saga/<id>" (one saga: swimlane, state-at-seq slider, event log,
// operator verbs). Every text from the API goes in as a text node or an
// attribute value (see `h`), never as markup.
'use strict';

(() => {
  const REFRESH_MS = 2000;
  const PAGE_SIZE = 50;
  const TOKEN_KEY = 'jetsaga.opsToken';
  const STATUSES = ['all', 'running', 'compensating', 'stuck', 'completed', 'compensated', 'aborted'];
  const VERBS = {
    retry: { label: 'Retry', intro: 'Retry the step this saga is stuck on (attempt numbers go on counting).' },
    compensate: { label: 'Compensate', intro: 'Undo the finished steps, last first.' },
    abort: { label: 'Abort', intro: 'Stop the saga where it is. Nothing is undone.' },
  };

  const view = document.getElementById('view');
  const live = document.getElementById('live');

  // ---- small helpers ----------------------------------------------------------

  /** An element: attributes (on* = listeners), then children (strings become text). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'class') el.className = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function badge(status, testid) {
    return h('span', { class: `badge status-${status}`, 'data-testid': testid || 'status-badge', 'data-status': status }, status);
  }

  function shortId(id) {
    return id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
  }

  const pad = (n) => String(n).padStart(2, '0');

  /** "2024-05-01 12:03:04" in local time (with ms for events), the ISO instant in the tooltip. */
  function time(iso, ms) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${ms ? `.${String(d.getMilliseconds()).padStart(3, '0')}` : ''}`;
    return h('time', { datetime: iso, title: iso }, text);
  }

  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  class HttpError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.error)) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  // In strict mode (serve --auth strict) reads need a token too: the one
  // kept for this tab is sent with every read, and a 401 asks for it once.
  let askedForToken = false;

  async function api(path, options) {
    const headers = { accept: 'application/json' };
    const kept = token();
    if (kept) headers.authorization = `Bearer ${kept}`;
    const response = await fetch(path, { headers, ...options });
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (response.status === 401 && !askedForToken) {
      askedForToken = true;
      const given = window.prompt('This jetsaga needs a token to show sagas (the read-only or the operator token):');
      if (given) {
        keepToken(given.trim());
        askedForToken = false;
        return api(path, options);
      }
    }
    if (!response.ok) throw new HttpError(response.status, body);
    return body;
  }

  function replace(el, ...children) {
    el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  }

  function flash(ok) {
    live.className = ok ? 'live ok' : 'live down';
    live.title = ok ? `refreshed ${new Date().toLocaleTimeString()}` : 'cannot reach jetsaga';
  }

  // ---- routing and refresh ----------------------------------------------------

  // One page at a time: a new route bumps the generation, and every answer
  // or timer of an older page is dropped.
  let generation = 0;
  let timer = null;

  function schedule(gen, tick) {
    clearTimeout(timer);
    const run = async () => {
      if (gen !== generation) return;
      try {
        await tick();
        flash(true);
      } catch (e) {
        flash(false);
      }
      if (gen === generation) timer = setTimeout(run, REFRESH_MS);
    };
    run();
  }

  function route() {
    generation += 1;
    clearTimeout(timer);
    const hash = location.hash || '#/';
    const saga = hash.match(/^#\/saga\/([^/?]+)/);
    if (saga) sagaPage(decodeURIComponent(saga[1]), generation);
    else listPage(new URLSearchParams(hash.split('?')[1] || ''), generation);
  }

  document.getElementById('search').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = document.getElementById('search-id');
    const id = input.value.trim();
    if (id) {
      input.value = '';
      location.hash = `#/saga/${encodeURIComponent(id)}`;
    }
  });

  // ---- the list ---------------------------------------------------------------

  function listPage(params, gen) {
    const state = {
      status: STATUSES.includes(params.get('status')) ? params.get('status') : 'all',
      type: params.get('saga_type') || '',
      cursors: [], // the cursors of the pages before this one
      cursor: null,
    };
    document.title = 'jetsaga · sagas';
    const body = h('tbody', { 'data-testid': 'saga-rows' });
    const pager = h('div', { class: 'pager' });
    const note = h('p', { class: 'muted', role: 'status' });
    const error = h('p', { class: 'error', role: 'alert', hidden: true });

    const keepInHash = () => {
      const q = new URLSearchParams();
      if (state.status !== 'all') q.set('status', state.status);
      if (state.type) q.set('saga_type', state.type);
      const text = q.toString();
      history.replaceState(null, '', text ? `#/?${text}` : '#/');
    };
    const refresh = () => schedule(gen, load);

    const filters = h('div', { class: 'filters', role: 'group', 'aria-label': 'Status' },
      STATUSES.map((s) => h('button', {
        type: 'button',
        class: `filter status-${s}`,
        'aria-pressed': String(s === state.status),
        'data-testid': `filter-${s}`,
        onclick: (event) => {
          state.status = s;
          state.cursors = [];
          state.cursor = null;
          for (const b of filters.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b === event.currentTarget));
          keepInHash();
          refresh();
        },
      }, s)));

    let typing = null;
    const typeInput = h('input', {
      id: 'type-filter', type: 'search', value: state.type, placeholder: 'e.g. trip_booking', autocomplete: 'off',
      spellcheck: 'false', 'data-testid': 'type-filter',
      oninput: (event) => {
        clearTimeout(typing);
        typing = setTimeout(() => {
          state.type = event.target.value.trim();
          state.cursors = [];
          state.cursor = null;
          keepInHash();
          refresh();
        }, 300);
      },
    });

    async function load() {
      const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (state.status !== 'all') q.set('status', state.status);
      if (state.type) q.set('saga_type', state.type);
      if (state.cursor) q.set('cursor', state.cursor);
      let page;
      try {
        page = await api(`/sagas?${q}`);
      } catch (e) {
        if (gen !== generation) return;
        error.hidden = false;
        replace(error, `Could not load sagas: ${e.message}`);
        throw e;
      }
      if (gen !== generation) return;
      error.hidden = true;
      replace(body, page.sagas.map(row));
      if (page.sagas.length === 0) {
        replace(body, h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No sagas match.')));
      }
      const pageNo = state.cursors.length + 1;
      replace(note, `Page ${pageNo} · ${page.sagas.length} saga${page.sagas.length === 1 ? '' : 's'} · refreshes every ${REFRESH_MS / 1000} s`);
      replace(pager,
        h('button', {
          type: 'button', disabled: state.cursors.length === 0, 'data-testid': 'prev-page',
          onclick: () => { state.cursor = state.cursors.pop() || null; refresh(); },
        }, '← Previous page'),
        h('button', {
          type: 'button', disabled: !page.next_cursor, 'data-testid': 'next-page',
          onclick: () => { state.cursors.push(state.cursor); state.cursor = page.next_cursor; refresh(); },
        }, 'Next page →'));
    }

    replace(view,
      h('section', { class: 'panel', 'aria-labelledby': 'list-title' },
        h('div', { class: 'panel-head' },
          h('h1', { id: 'list-title' }, 'Sagas'),
          h('div', { class: 'type-filter' }, h('label', { for: 'type-filter' }, 'Saga type'), typeInput)),
        filters,
        error,
        h('div', { class: 'table-wrap' },
          h('table', { class: 'sagas', 'data-testid': 'saga-table' },
            h('caption', { class: 'visually-hidden' }, 'Sagas, newest last'),
            h('thead', {}, h('tr', {},
              ['Saga id', 'Type', 'Version', 'Status', 'Current step', 'Started', 'Updated'].map((c) => h('th', { scope: 'col' }, c)))),
            body)),
        h('div', { class: 'below-table' }, note, pager)));
    refresh();
  }

  function row(s) {
    const href = `#/saga/${encodeURIComponent(s.saga_id)}`;
    return h('tr', {
      class: 'clickable', 'data-testid': 'saga-row', 'data-saga-id': s.saga_id, 'data-status': s.status,
      onclick: (event) => { if (!event.target.closest('a')) location.hash = href; },
    },
    h('td', { class: 'mono' }, h('a', { href, title: s.saga_id, 'aria-label': `saga ${s.saga_id}` }, shortId(s.saga_id))),
    h('td', {}, s.saga_type),
    h('td', { class: 'num' }, `v${s.version}`),
    h('td', {}, badge(s.status, 'row-status')),
    h('td', { class: 'mono' }, s.current_step || '–'),
    h('td', {}, time(s.started_at)),
    h('td', {}, time(s.updated_at), h('span', { class: 'muted small' }, ` ${ago(s.updated_at)}`)));
  }

  // ---- one saga ---------------------------------------------------------------

  function sagaPage(id, gen) {
    document.title = `jetsaga · ${shortId(id)}`;
    const head = h('div', { class: 'saga-head' });
    const message = h('p', { class: 'result', role: 'status', 'data-testid': 'operator-result' });
    const lanes = h('div', { class: 'swimlane', 'data-testid': 'swimlane' });
    const events = h('tbody', {});
    const slider = h('input', {
      type: 'range', id: 'at-seq', min: 1, max: 1, value: 1, step: 1, 'data-testid': 'state-slider',
      'aria-describedby': 'at-seq-value',
    });
    const sliderValue = h('output', { id: 'at-seq-value', for: 'at-seq' });
    const atState = h('div', { class: 'at-state', 'data-testid': 'state-at-seq', 'aria-live': 'polite' });
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    let lastSeq = 0;
    let follow = true; // the slider stays on the newest event until moved

    const buttons = Object.entries(VERBS).map(([verb, { label }]) => h('button', {
      type: 'button', class: `verb verb-${verb}`, 'data-testid': `${verb}-button`,
      onclick: () => operate(id, verb, message, () => schedule(gen, load)),
    }, label));

    let sliding = null;
    slider.addEventListener('input', () => {
      follow = Number(slider.value) >= lastSeq;
      replace(sliderValue, `seq ${slider.value} of ${lastSeq}`);
      markSeq();
      clearTimeout(sliding);
      sliding = setTimeout(loadAt, 120);
    });

    function markSeq() {
      const at = Number(slider.value);
      for (const el of lanes.querySelectorAll('[data-seq]')) el.classList.toggle('later', Number(el.dataset.seq) > at);
      for (const tr of events.querySelectorAll('tr')) tr.classList.toggle('current', Number(tr.dataset.seq) === at);
    }

    async function loadAt() {
      const at = Number(slider.value);
      try {
        const state = await api(`/sagas/${encodeURIComponent(id)}/state?at_seq=${at}`);
        if (gen !== generation || Number(slider.value) !== at) return;
        replace(atState,
          h('p', {}, 'At seq ', h('strong', {}, String(at)), ' the saga was ', badge(state.status, 'state-status'),
            state.current_step ? [' on step ', h('code', {}, state.current_step)] : null),
          h('ol', { class: 'step-states' }, state.steps.map((s) => h('li', {},
            h('span', { class: 'step-name' }, s.name), badge(s.status, 'state-step-status'),
            s.attempts ? h('span', { class: 'muted small' }, ` ${s.attempts} attempt${s.attempts === 1 ? '' : 's'}`) : null))));
      } catch (e) {
        if (gen === generation) replace(atState, h('p', { class: 'error' }, `Could not load the state at seq ${at}: ${e.message}`));
      }
    }

    async function load() {
      let d;
      try {
        d = await api(`/sagas/${encodeURIComponent(id)}`);
      } catch (e) {
        if (gen !== generation) return;
        error.hidden = false;
        replace(error, e.status === 404 ? `No saga with id ${id}.` : `Could not load the saga: ${e.message}`);
        throw e;
      }
      if (gen !== generation) return;
      error.hidden = true;
      const grew = d.events.length !== lastSeq;
      lastSeq = d.events.length ? d.events[d.events.length - 1].seq : 1;
      renderHead(head, d, buttons);
      if (grew || !lanes.firstChild) {
        replace(lanes, swimlane(d));
        replace(events, d.events.map(eventRow));
      }
      slider.max = String(lastSeq);
      if (follow) slider.value = String(lastSeq);
      replace(sliderValue, `seq ${slider.value} of ${lastSeq}`);
      markSeq();
      if (grew || !atState.firstChild) await loadAt();
    }

    replace(view,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, '← All sagas')),
      error,
      h('section', { class: 'panel', 'aria-label': 'Saga' }, head, h('div', { class: 'verbs' }, buttons, message)),
      h('section', { class: 'panel', 'aria-labelledby': 'lanes-title' },
        h('h2', { id: 'lanes-title' }, 'Steps'),
        legend(),
        h('div', { class: 'lanes-wrap' }, lanes)),
      h('section', { class: 'panel', 'aria-labelledby': 'time-title' },
        h('h2', { id: 'time-title' }, 'State at a past event'),
        h('div', { class: 'slider' }, h('label', { for: 'at-seq' }, 'Event seq'), slider, sliderValue),
        atState),
      h('section', { class: 'panel', 'aria-labelledby': 'log-title' },
        h('h2', { id: 'log-title' }, 'Event log'),
        h('div', { class: 'table-wrap' },
          h('table', { class: 'events', 'data-testid': 'event-table' },
            h('caption', { class: 'visually-hidden' }, 'Every event of this saga, oldest first'),
            h('thead', {}, h('tr', {}, ['Seq', 'Type', 'At', 'Data'].map((c) => h('th', { scope: 'col' }, c)))),
            events))));
    view.focus({ preventScroll: true });
    schedule(gen, load);
  }

  function renderHead(head, d, buttons) {
    document.title = `jetsaga · ${d.saga_type} ${shortId(d.saga_id)} · ${d.status}`;
    replace(head,
      h('div', { class: 'title-row' },
        h('h1', {}, h('span', { class: 'saga-type' }, d.saga_type), ' ', h('span', { class: 'muted' }, `v${d.version}`)),
        badge(d.status)),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', {}, 'Saga id'), h('dd', { class: 'mono', 'data-testid': 'saga-id' }, d.saga_id)),
        h('div', {}, h('dt', {}, 'Current step'), h('dd', { class: 'mono' }, d.current_step || '–')),
        h('div', {}, h('dt', {}, 'Started'), h('dd', {}, time(d.started_at))),
        h('div', {}, h('dt', {}, 'Updated'), h('dd', {}, time(d.updated_at), ` (${ago(d.updated_at)})`)),
        d.reason ? h('div', { class: 'wide' }, h('dt', {}, 'Last reason'), h('dd', { 'data-testid': 'saga-reason' }, d.reason)) : null));
    const terminal = ['completed', 'compensated', 'aborted'].includes(d.status);
    for (const b of buttons) b.disabled = terminal;
  }

  // ---- the swimlane -----------------------------------------------------------

  const OUTCOME_TEXT = { sent: 'waiting', ok: 'ok', failed: 'failed', attempt_failed: 'failed, retrying', timed_out: 'timed out', stuck: 'stuck' };

  /** Attempts per step from the log: {kind, attempt, from, to, outcome, ...}. */
  function attempts(events) {
    const byKey = new Map();
    const perStep = new Map();
    const sagaMarks = [];
    const key = (d) => `${d.step}|${d.kind}|${d.attempt}`;
    for (const e of events) {
      const d = e.data || {};
      const a = d.step !== undefined ? byKey.get(key(d)) : undefined;
      switch (e.type) {
        case 'command_sent': {
          const block = { step: d.step, kind: d.kind, attempt: d.attempt, from: e.seq, to: null, at: e.at, outcome: 'sent', notes: [] };
          byKey.set(key(d), block);
          if (!perStep.has(d.step)) perStep.set(d.step, []);
          perStep.get(d.step).push(block);
          break;
        }
        case 'step_succeeded': if (a) Object.assign(a, { to: e.seq, outcome: 'ok', end: e.at }); break;
        case 'step_failed': if (a) Object.assign(a, { to: e.seq, outcome: 'failed', end: e.at, error: d.error }); break;
        case 'attempt_failed': if (a) Object.assign(a, { to: e.seq, outcome: 'attempt_failed', end: e.at, error: d.error }); break;
        case 'attempt_timed_out': if (a) Object.assign(a, { to: e.seq, outcome: 'timed_out', end: e.at }); break;
        case 'deadline_extended': if (a) a.notes.push(`deadline extended at seq ${e.seq}`); break;
        case 'retry_scheduled': {
          const prev = byKey.get(`${d.step}|${d.kind}|${d.attempt - 1}`);
          if (prev) prev.notes.push(`retry ${d.attempt} scheduled at seq ${e.seq}`);
          break;
        }
        case 'saga_stuck': {
          const open = (perStep.get(d.step) || []).filter((b) => b.kind === d.kind).pop();
          if (open) open.notes.push(`saga stuck at seq ${e.seq}: ${d.reason}`);
          sagaMarks.push({ seq: e.seq, type: e.type, label: 'stuck', detail: d.reason });
          break;
        }
        case 'saga_started': sagaMarks.push({ seq: e.seq, type: e.type, label: 'started' }); break;
        case 'compensation_started': sagaMarks.push({ seq: e.seq, type: e.type, label: 'compensating', detail: d.reason }); break;
        case 'operator_intervened': sagaMarks.push({ seq: e.seq, type: e.type, label: d.verb, detail: `operator ${d.verb}: ${d.reason}` }); break;
        case 'saga_completed': sagaMarks.push({ seq: e.seq, type: e.type, label: 'completed' }); break;
        case 'saga_compensated': sagaMarks.push({ seq: e.seq, type: e.type, label: 'compensated' }); break;
        case 'saga_aborted': sagaMarks.push({ seq: e.seq, type: e.type, label: 'aborted', detail: d.reason }); break;
        case 'input_ignored': sagaMarks.push({ seq: e.seq, type: e.type, label: 'ignored', detail: `${d.input}: ${d.reason}` }); break;
        default: break;
      }
    }
    return { perStep, sagaMarks };
  }

  function swimlane(d) {
    const last = d.events.length ? d.events[d.events.length - 1].seq : 1;
    const { perStep, sagaMarks } = attempts(d.events);
    const columns = `var(--lane-label) repeat(${last}, minmax(var(--seq-col), 1fr))`;
    const lane = (label, status, items, extra) => {
      const el = h('div', { class: `lane ${extra || ''}`, role: 'listitem' },
        h('div', { class: 'lane-label' }, label, status ? badge(status, 'lane-status') : null), items);
      el.style.gridTemplateColumns = columns;
      return el;
    };
    const place = (el, from, to) => {
      el.style.gridColumn = `${from + 1} / ${to + 2}`;
      return el;
    };

    const axis = lane(h('span', { class: 'muted small' }, 'seq →'), null,
      d.events.map((e) => place(h('div', { class: 'tick', title: e.type }, String(e.seq)), e.seq, e.seq)), 'axis');
    const saga = lane('saga', null, sagaMarks.map((m) => place(h('div', {
      class: `mark mark-${m.type}`, 'data-seq': m.seq, tabindex: 0,
      title: `seq ${m.seq}: ${m.label}${m.detail ? ` — ${m.detail}` : ''}`,
      'aria-label': `seq ${m.seq}: ${m.label}${m.detail ? `, ${m.detail}` : ''}`,
    }, m.label), m.seq, m.seq)), 'saga-lane');

    const steps = d.steps.map((s) => lane(h('span', { class: 'step-name' }, s.name), s.status,
      (perStep.get(s.name) || []).map((b) => {
        const to = b.to || last;
        const what = `${b.kind} attempt ${b.attempt}: ${OUTCOME_TEXT[b.outcome]}`;
        const when = `sent at seq ${b.from} (${b.at})${b.to ? `, ended at seq ${b.to} (${b.end})` : ''}`;
        const info = [what, when, b.error ? `error: ${b.error}` : null, ...b.notes].filter(Boolean).join('\n');
        return place(h('div', {
          class: `block kind-${b.kind} outcome-${b.outcome}`, 'data-seq': b.from, tabindex: 0,
          'data-testid': 'attempt-block', title: info, 'aria-label': info,
        },
        h('span', { class: 'block-kind' }, b.kind === 'compensation' ? '↶' : '→'),
        h('span', { class: 'block-attempt' }, `#${b.attempt}`),
        h('span', { class: 'block-outcome' }, OUTCOME_TEXT[b.outcome])), b.from, to);
      })));
    return h('div', { role: 'list', 'aria-label': 'Attempts per step, by event seq' }, axis, saga, steps);
  }

  function legend() {
    const item = (cls, text) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), text);
    return h('ul', { class: 'legend', 'aria-label': 'Legend' },
      item('outcome-ok', 'ok'), item('outcome-sent', 'waiting for a reply'), item('outcome-attempt_failed', 'failed'),
      item('outcome-timed_out', 'timed out'), item('kind-compensation', '↶ compensation'));
  }

  function eventRow(e) {
    const data = e.data && Object.keys(e.data).length ? JSON.stringify(e.data) : '';
    return h('tr', { 'data-seq': e.seq, class: `ev-${e.type}` },
      h('td', { class: 'num' }, String(e.seq)),
      h('td', {}, h('span', { class: `ev-type ev-${e.type}` }, e.type)),
      h('td', { class: 'nowrap' }, time(e.at, true)),
      h('td', { class: 'data' }, h('code', {}, data)));
  }

  // ---- operator verbs -----------------------------------------------------------

  const dialog = document.getElementById('operator');
  const form = document.getElementById('operator-form');
  const reasonInput = document.getElementById('operator-reason');
  const tokenInput = document.getElementById('operator-token');
  const tokenField = document.getElementById('operator-token-field');
  const dialogError = document.getElementById('operator-error');
  let pending = null;

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
  }
  function keepToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage off: ask every time */ }
  }

  /** Opens the form; resolves to {reason, token} or null when cancelled. */
  function ask(verb, reason, problem) {
    const { label, intro } = VERBS[verb];
    replace(document.getElementById('operator-title'), `${label} this saga`);
    replace(document.getElementById('operator-intro'), intro);
    replace(document.getElementById('operator-submit'), label);
    dialogError.hidden = !problem;
    replace(dialogError, problem || '');
    reasonInput.value = reason || '';
    const needToken = !token();
    tokenField.hidden = !needToken;
    tokenInput.required = needToken;
    tokenInput.value = '';
    dialog.showModal();
    (reason && needToken ? tokenInput : reasonInput).focus();
    return new Promise((resolve) => { pending = resolve; });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!reasonInput.value.trim()) { reasonInput.focus(); return; }
    if (!tokenField.hidden) keepToken(tokenInput.value);
    dialog.close();
    if (pending) pending({ reason: reasonInput.value.trim() });
    pending = null;
  });
  const cancel = () => { if (pending) pending(null); pending = null; };
  document.getElementById('operator-cancel').addEventListener('click', () => { dialog.close(); cancel(); });
  dialog.addEventListener('cancel', cancel);

  async function operate(id, verb, message, refresh) {
    let problem = null;
    let reason = '';
    for (;;) {
      const answer = await ask(verb, reason, problem);
      if (!answer) return;
      reason = answer.reason;
      message.className = 'result';
      replace(message, `${VERBS[verb].label}: sending…`);
      let response;
      try {
        response = await fetch(`/sagas/${encodeURIComponent(id)}/${verb}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token() || ''}` },
          body: JSON.stringify({ reason }),
        });
      } catch (e) {
        message.className = 'result bad';
        replace(message, `${VERBS[verb].label}: could not reach jetsaga (${e.message})`);
        return;
      }
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      if (response.status === 401) {
        keepToken(null);
        problem = `The ops token was refused${body && body.detail ? `: ${body.detail}` : ''}. Enter it again.`;
        message.className = 'result bad';
        replace(message, `${VERBS[verb].label}: unauthorized`);
        continue;
      }
      if (response.status === 202) {
        message.className = 'result good';
        replace(message, `${VERBS[verb].label}: accepted`);
      } else {
        message.className = 'result bad';
        replace(message, `${VERBS[verb].label}: ${(body && (body.detail || body.error)) || `HTTP ${response.status}`}`);
      }
      refresh();
      return;
    }
  }

  // ---- start ------------------------------------------------------------------

  document.getElementById('noscript').remove();
  window.addEventListener('hashchange', route);
  route();
})();

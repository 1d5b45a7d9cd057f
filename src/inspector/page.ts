import { createHash } from 'node:crypto';

/**
 * The inspector page: one HTML document with its CSS and JS inline, so it needs nothing but this
 * server. It fetches /machines.json, draws each chart as nested boxes, then follows /events.
 *
 * Test hooks: charts carry data-machine ("daemon" | "session" | "runner"; a session's runner chart
 * is nested in its session's), sessions and runners data-session-id and
 * data-status; state boxes data-state (dot path), data-active="true" when active and
 * data-visited="true" once they have been; the event list is #events.
 */

const STYLE = `
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1f2328; background: #f6f8fa; }
header { display: flex; align-items: center; gap: 16px; padding: 8px 16px; background: #24292f; color: #fff; }
header h1 { font-size: 15px; margin: 0; font-weight: 600; }
header .spacer { flex: 1; }
header label { font-size: 12px; cursor: pointer; }
#conn { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #6e7781; }
body[data-connected='true'] #conn { background: #1f883d; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 360px; gap: 16px; padding: 16px; align-items: start; }
h2 { font-size: 13px; margin: 0 0 8px; display: flex; gap: 8px; align-items: center; }
.chart { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 12px; margin-bottom: 16px; }
.chart .badge { font-size: 11px; font-weight: 500; padding: 1px 8px; border-radius: 10px; background: #eaeef2; }
.chart[data-status='active'] .badge.status { background: #dafbe1; color: #1a7f37; }
.chart[data-status='done'] .badge.status { background: #ddf4ff; color: #0969da; }
.chart[data-status='error'] .badge.status, .chart[data-status='stopped'] .badge.status { background: #ffebe9; color: #cf222e; }
.chart .current { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; color: #57606a; font-weight: 400; }
.chart.finished { opacity: 0.8; }
.chart.nested { margin: 10px 0 0; background: #f6f8fa; }
#sessions-list { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 0 16px; }
.children { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.state { border: 1.5px solid #8c959f; border-radius: 8px; background: #fff; min-width: 96px; transition: background 0.2s, border-color 0.2s; }
.state > .head { padding: 3px 8px; font-weight: 600; border-radius: 6px 6px 0 0; display: flex; gap: 6px; align-items: baseline; flex-wrap: wrap; }
.state > .head .tag { font-size: 10px; font-weight: 400; color: #57606a; }
.state.initial > .head .name::before { content: '\\2192  '; color: #8c959f; }
.state[data-type='final'] { border-style: double; border-width: 4px; }
.state > .on { list-style: none; margin: 0; padding: 2px 8px 4px; font: 11px ui-monospace, SFMono-Regular, Menlo, monospace; color: #57606a; border-top: 1px solid #eaeef2; }
.state > .children { padding: 6px 8px 8px; }
body.no-transitions .state > .on { display: none; }
.state[data-visited='true'] { border-color: #4ac26b; }
.state.active { border-color: #1a7f37; background: #dafbe1; }
.state.active > .head { background: #1f883d; color: #fff; }
.state.active > .head .tag { color: #dafbe1; }
#no-sessions { color: #57606a; margin: 0 0 16px; }
aside { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 12px; position: sticky; top: 16px; }
#events { list-style: none; margin: 0; padding: 0; max-height: calc(100vh - 110px); overflow: auto; font: 11.5px ui-monospace, SFMono-Regular, Menlo, monospace; }
#events li { padding: 3px 2px; border-bottom: 1px solid #eaeef2; display: grid; grid-template-columns: auto 1fr; gap: 0 8px; }
#events time { color: #8c959f; }
#events .target { color: #0969da; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#events code { grid-column: 1 / 3; font-weight: 600; word-break: break-all; }
#events .source { grid-column: 1 / 3; color: #57606a; word-break: break-all; }
`;

// Plain JS for the browser; no template literals inside so it can live in this one.
const SCRIPT = String.raw`
(() => {
  'use strict';
  const MAX_EVENTS = 200;
  const MAX_FINISHED = 12;
  const sessionsEl = document.getElementById('sessions-list');
  const noSessionsEl = document.getElementById('no-sessions');
  const eventsEl = document.getElementById('events');
  const connEl = document.getElementById('conn');
  let machines;
  let daemonChart;
  /** Session charts by actor id. */
  const charts = new Map();

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v);
    }
    node.append(...children);
    return node;
  }

  function transitionLabel(t) {
    let text = t.event;
    if (t.guard) text += ' [' + t.guard + ']';
    return text + (t.targets.length > 0 ? ' \u2192 ' + t.targets.join(', ') : ' \u21ba');
  }

  function stateBox(state, bySource) {
    const box = h('div', { class: 'state', 'data-state': state.path, 'data-type': state.type });
    const head = h('div', { class: 'head', title: state.description }, h('span', { class: 'name', text: state.key }));
    if (state.type === 'final') head.append(h('span', { class: 'tag', text: 'final' }));
    for (const src of state.invokes) head.append(h('span', { class: 'tag', text: 'invokes ' + src }));
    box.append(head);
    const own = bySource.get(state.path) || [];
    if (own.length > 0) box.append(h('ul', { class: 'on' }, ...own.map((t) => h('li', { text: transitionLabel(t) }))));
    if (state.states.length > 0) box.append(childBoxes(state, bySource));
    return box;
  }

  function childBoxes(state, bySource) {
    return h('div', { class: 'children' }, ...state.states.map((child) => {
      const box = stateBox(child, bySource);
      if (child.key === state.initial) box.classList.add('initial');
      return box;
    }));
  }

  function chart(kind, title, attrs) {
    const def = machines[kind];
    const bySource = new Map();
    for (const t of def.transitions) {
      if (!bySource.has(t.source)) bySource.set(t.source, []);
      bySource.get(t.source).push(t);
    }
    const section = h('section', Object.assign({ class: 'chart', 'data-machine': kind, 'data-status': 'waiting' }, attrs),
      h('h2', {}, h('span', { class: 'title', text: title }), h('span', { class: 'badge status', text: 'waiting' }),
        h('span', { class: 'current' })));
    section.append(childBoxes(def.root, bySource));
    return section;
  }

  function activePaths(value, prefix, out) {
    if (typeof value === 'string') {
      out.add(prefix + value);
      return out;
    }
    for (const [key, child] of Object.entries(value)) {
      out.add(prefix + key);
      activePaths(child, prefix + key + '.', out);
    }
    return out;
  }

  function leafText(value) {
    return [...activePaths(value, '', new Set())].filter((p, _, all) => !all.some((q) => q.startsWith(p + '.'))).join(', ');
  }

  function sessionChart(msg) {
    const id = msg.sessionId || msg.actorId;
    const key = 'session:' + id;
    let section = charts.get(key);
    if (!section) {
      section = chart('session', 'session ' + id, { 'data-session-id': id, 'data-chart-key': key });
      charts.set(key, section);
      sessionsEl.prepend(section);
      noSessionsEl.hidden = true;
    }
    return section;
  }

  /** A session's runner is drawn inside the session's chart (which its first snapshot may precede). */
  function runnerChart(msg) {
    const id = msg.sessionId || msg.actorId;
    const key = 'runner:' + id;
    let section = charts.get(key);
    if (!section) {
      section = chart('runner', 'runner of session ' + id, { 'data-session-id': id, 'data-chart-key': key });
      section.classList.add('nested');
      charts.set(key, section);
      sessionChart(msg).append(section);
    }
    return section;
  }

  function applySnapshot(msg) {
    const section =
      msg.machine === 'daemon' ? daemonChart : msg.machine === 'runner' ? runnerChart(msg) : sessionChart(msg);
    section.setAttribute('data-actor-id', msg.actorId);
    const active = activePaths(msg.value, '', new Set());
    // A session's chart holds its runner's: only this chart's own boxes follow this snapshot.
    for (const box of [...section.querySelectorAll('[data-state]')].filter((b) => b.closest('.chart') === section)) {
      const on = active.has(box.dataset.state);
      box.classList.toggle('active', on);
      if (on) {
        box.dataset.active = 'true';
        box.dataset.visited = 'true';
      } else {
        delete box.dataset.active;
      }
    }
    section.dataset.status = msg.status;
    section.querySelector('.badge.status').textContent = msg.status;
    section.querySelector('.current').textContent = leafText(msg.value);
    section.classList.toggle('finished', msg.status !== 'active');
    if (msg.machine !== 'daemon' && msg.status !== 'active') pruneFinished();
  }

  function pruneFinished() {
    const finished = [...sessionsEl.querySelectorAll(':scope > .chart.finished')];
    for (const old of finished.slice(MAX_FINISHED)) {
      for (const gone of [old, ...old.querySelectorAll('.chart')]) charts.delete(gone.getAttribute('data-chart-key'));
      old.remove();
    }
  }

  function clock(ms) {
    const d = new Date(ms);
    const pad = (n, w) => String(n).padStart(w || 2, '0');
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
  }

  function addEvent(msg) {
    const target = msg.machine === 'daemon' ? 'daemon' : msg.sessionId || msg.actorId;
    const li = h('li', { 'data-event': msg.event, 'data-target': target },
      h('time', { text: clock(msg.at) }),
      h('span', { class: 'target', text: msg.machine === 'daemon' ? 'daemon' : msg.machine + ' ' + target }),
      h('code', { text: msg.event }),
      h('span', { class: 'source', text: msg.source === null ? 'from outside (socket)' : 'from ' + msg.source }));
    eventsEl.prepend(li);
    while (eventsEl.children.length > MAX_EVENTS) eventsEl.lastElementChild.remove();
  }

  function reset() {
    for (const section of charts.values()) section.remove();
    charts.clear();
    noSessionsEl.hidden = false;
    eventsEl.textContent = '';
  }

  function setConnected(connected, text) {
    document.body.dataset.connected = String(connected);
    connEl.textContent = text;
  }

  function connect() {
    const source = new EventSource('/events');
    source.onopen = () => setConnected(true, 'live');
    // EventSource retries by itself, so a restarted daemon on the same port is picked up again.
    source.onerror = () => setConnected(false, source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting\u2026');
    source.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.kind === 'reset') reset();
      else if (msg.kind === 'snapshot') applySnapshot(msg);
      else if (msg.kind === 'event') addEvent(msg);
    };
  }

  document.getElementById('show-transitions').addEventListener('change', (e) => {
    document.body.classList.toggle('no-transitions', !e.target.checked);
  });

  fetch('/machines.json')
    .then((response) => {
      if (!response.ok) throw new Error('GET /machines.json: ' + response.status);
      return response.json();
    })
    .then((json) => {
      machines = json;
      daemonChart = chart('daemon', 'daemon', {});
      document.getElementById('daemon').replaceChildren(daemonChart);
      connect();
    })
    .catch((error) => setConnected(false, String(error)));
})();
`;

const BODY = `
<header>
  <h1>agentd inspector</h1>
  <span id="conn">connecting\u2026</span>
  <span class="spacer"></span>
  <label><input type="checkbox" id="show-transitions" checked> transitions</label>
</header>
<main>
  <div>
    <div id="daemon"></div>
    <div id="sessions">
      <p id="no-sessions">No session yet: run <code>agentd trigger AGENT</code>.</p>
      <div id="sessions-list"></div>
    </div>
  </div>
  <aside>
    <h2>Events <span class="badge">newest first</span></h2>
    <ol id="events"></ol>
  </aside>
</main>
`;

export interface InspectorPage {
  html: string;
  /** Content-Security-Policy allowing exactly the inline script and style, and requests to this origin. */
  csp: string;
}

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

export function inspectorPage(): InspectorPage {
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agentd inspector</title>
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}

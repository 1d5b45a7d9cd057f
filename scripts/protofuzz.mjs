#!/usr/bin/env node
// A by-hand fuzzer of the daemon's two client interfaces (the Unix socket's NDJSON protocol and the HTTP
// API) against a real daemon of its own: `node scripts/protofuzz.mjs` (needs `npm run build`). It starts
// a daemon in a temp dir with the HTTP API on a loopback port, drains its local host (accepted triggers
// only queue; they are cancelled at the end), sends generated and mutated requests, and checks after
// every batch: the daemon is ready, its RSS bounded, every request got exactly one reply, every error
// names its field without `undefined`, `[object Object]`, a stack or an internal path, the connection
// stays in sync, and `status` keeps its shape (no prototype pollution). Prints findings and a count.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const TOKEN = 'fuzz-admin-7c6b5a4d3e2f1a0b';
const IMAGE = process.env.PROTOFUZZ_IMAGE ?? 'localhost/agentd-base:bookworm';
const findings = [];
let cases = 0;
const finding = (what, detail) => {
  findings.push({ what, detail });
  console.log(`FINDING ${what}: ${String(detail).slice(0, 400)}`);
};

// ---------- the daemon ----------
// PROTOFUZZ_DUMP only prints cases: no daemon, no temp dir.
const dir = process.env.PROTOFUZZ_DUMP ? tmpdir() : mkdtempSync(join(tmpdir(), 'protofuzz-'));
const socketPath = join(dir, 'run', 'agentd.sock');
const config = `daemon:
  socket: ${socketPath}
  state_dir: ${join(dir, 'state')}
  stop_grace: 2s
  max_sessions: 1
  http:
    listen: 127.0.0.1:0
    body_limit: 1m
    tokens:
      - name: fuzz
        source: env:PROTOFUZZ_TOKEN
        scopes: [admin]
agents:
  - name: demo
    image: ${IMAGE}
    command: ["true"]
    repo: git://127.0.0.1:1/none.git
`;
if (!process.env.PROTOFUZZ_DUMP) writeFileSync(join(dir, 'agentd.yaml'), config);
if (process.env.PROTOFUZZ_DUMP) {
  const [from, to] = process.env.PROTOFUZZ_DUMP.split(':').map(Number);
  setImmediate(() => {
    for (const c of [...socketCases()].slice(from, to)) process.stdout.write(`${encode(c)}\n`);
    process.exit(0);
  });
}
const child = process.env.PROTOFUZZ_DUMP
  ? undefined
  : spawn(
      process.execPath,
      [join(ROOT, 'dist/cli/index.js'), 'start', '--config', join(dir, 'agentd.yaml')],
      {
        env: { ...process.env, PROTOFUZZ_TOKEN: TOKEN },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
let log = '';
child?.stdout.on('data', (d) => {
  log += d;
});
child?.stderr.on('data', (d) => {
  log += d;
});
const pid = child?.pid;
const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

async function until(test, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = test();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; log:\n${log.slice(-2000)}`);
}

// ---------- a socket client ----------
class Client {
  constructor(socket) {
    this.socket = socket;
    this.replies = [];
    this.buffer = '';
    this.closed = false;
    socket.on('data', (chunk) => {
      this.buffer += chunk.toString('utf8');
      for (let nl = this.buffer.indexOf('\n'); nl !== -1; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        try {
          this.replies.push(JSON.parse(line));
        } catch {
          this.replies.push({ type: 'unparseable', line: line.slice(0, 200) });
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }
  static open() {
    return new Promise((res, rej) => {
      const s = connect(socketPath);
      s.once('connect', () => res(new Client(s)));
      s.once('error', rej);
    });
  }
  write(data) {
    return new Promise((res) => {
      if (this.closed) return res();
      this.socket.write(data, () => res());
    });
  }
  async waitId(id, ms = 10000) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (this.replies.some((r) => r.id === id)) return this.replies.filter((r) => r.id === id);
      if (this.closed) return [];
      await new Promise((r) => setTimeout(r, 5));
    }
    return [];
  }
  async settle(ms = 150) {
    await new Promise((r) => setTimeout(r, ms));
  }
  take() {
    const all = this.replies;
    this.replies = [];
    return all;
  }
  close() {
    this.socket.destroy();
  }
}

// ---------- what an error reply must be ----------
const BAD_TEXT = [
  /undefined/,
  /\[object Object\]/,
  /\bat .*\(.*:\d+:\d+\)/,
  /node_modules/,
  /\/work\//,
  /\bsrc\//,
  /dist\//,
  /NaN/,
  /Invalid input/,
];
function checkError(where, reply) {
  const text = JSON.stringify(reply);
  for (const bad of BAD_TEXT) if (bad.test(text)) finding(`${where}: error text matches ${bad}`, text);
  if (text.length > 20000) finding(`${where}: error reply of ${text.length} characters`, text.slice(0, 300));
  const paths = (reply.problems ?? []).map((p) => p.path);
  if (new Set(paths).size !== paths.length) finding(`${where}: two problems for one field`, text);
  if (reply.code === 'bad_request') {
    if (!Array.isArray(reply.problems) || reply.problems.length === 0)
      finding(`${where}: bad_request without problems`, text);
  }
}

// ---------- socket cases ----------
const SID = '0123456789abcdef';
const TEMPLATES = {
  hello: { type: 'hello', client: 'fuzz' },
  trigger: {
    type: 'trigger',
    agent: 'demo',
    repo: 'git://127.0.0.1:1/none.git',
    workUnit: 'w',
    timeout: '10s',
    key: 'k1',
    follow: false,
    output: true,
    heartbeat: false,
    request: 'aGk=',
    inputs: [{ name: 'a', data: 'aGk=' }],
  },
  status: { type: 'status' },
  show: { type: 'show', sessionId: SID },
  wait: { type: 'wait', sessionId: SID, heartbeat: false },
  history: { type: 'history', agent: 'demo', outcome: 'succeeded', workUnit: 'w', since: '2h', limit: 5 },
  agents: { type: 'agents' },
  cancel: { type: 'cancel', sessionId: SID },
  logs: { type: 'logs', sessionId: SID, follow: false, after: 0, heartbeat: false },
  event: { type: 'event', event: { type: 'cancel', sessionId: SID } },
  eventTrigger: { type: 'event', event: { type: 'trigger', agent: 'nope', timeout: '5s' } },
  hosts: { type: 'hosts' },
  drain: { type: 'drain', host: 'nohost' },
  undrain: { type: 'undrain', host: 'nohost' },
};
const HUGE = 'x'.repeat(2 * 1024 * 1024);
let deep = 0;
for (let i = 0; i < 3000; i++) deep = [deep];
let deepObj = {};
for (let i = 0; i < 3000; i++) deepObj = { a: deepObj };
const BAD_VALUES = [
  ['null', null],
  ['true', true],
  ['zero', 0],
  ['negative', -1],
  ['fraction', 1.5],
  ['huge number', 1e308],
  ['max safe+', 2 ** 60],
  ['empty', ''],
  ['space', ' '],
  ['long', 'y'.repeat(5000)],
  ['huge', HUGE],
  ['array', []],
  ['array of objects', [{}, { a: 1 }]],
  ['object', {}],
  ['proto object', JSON.parse('{"__proto__":{"polluted":"yes"}}')],
  ['deep array', deep],
  ['deep object', deepObj],
  ['lone surrogate', '\ud800'],
  ['controls', 'a\u0000b\u001b[31mc\r\nd'],
  ['bom', '\ufeffdemo'],
  ['numeric string', '5'],
  ['traversal', '../../../etc/passwd'],
  ['format chars', '%s%n{0}$' + '{x}'],
];
const RAW_NUMBERS = ['1e400', '-1e400', '-0', '1E2', '0.0000001', '123456789012345678901234567890'];

function* socketCases() {
  for (const [name, template] of Object.entries(TEMPLATES)) {
    for (const v of [2, 1]) {
      const fields = Object.keys(template);
      for (const field of [...fields, 'v', 'id']) {
        for (const [label, value] of BAD_VALUES) {
          const msg = { v, ...template, [field]: value };
          if (field === 'type' && label === 'null') continue;
          yield { label: `${name} v${v} ${field}=${label}`, msg };
        }
        for (const raw of RAW_NUMBERS)
          yield {
            label: `${name} v${v} ${field}=${raw}`,
            raw: { base: { v, ...template }, field, text: raw },
          };
      }
      // Nested fields of event and inputs.
      if (template.event) {
        for (const k of Object.keys(template.event))
          for (const [label, value] of BAD_VALUES)
            yield {
              label: `${name} event.${k}=${label}`,
              msg: { v, ...template, event: { ...template.event, [k]: value } },
            };
      }
      if (template.inputs) {
        for (const k of ['name', 'data'])
          for (const [label, value] of BAD_VALUES)
            yield {
              label: `${name} inputs.0.${k}=${label}`,
              msg: { v, ...template, inputs: [{ ...template.inputs[0], [k]: value }] },
            };
      }
      for (const key of [
        '__proto__',
        'constructor',
        'prototype',
        'toString',
        'hasOwnProperty',
        'k'.repeat(5000),
        '',
        'v ',
        'ID',
      ]) {
        yield {
          label: `${name} v${v} unknown ${key.slice(0, 20)}`,
          raw: { base: { v, ...template }, field: key, text: '{"polluted":"yes","isAdmin":true}' },
        };
      }
      // Duplicate keys: refused, naming the key (src/protocol/json-keys.ts); JSON.parse alone kept the last.
      yield {
        label: `${name} dup type`,
        text: `{"v":${v},"type":"status","type":${JSON.stringify(name === 'eventTrigger' ? 'event' : template.type)}}`,
      };
      yield { label: `${name} dup v`, text: `{"v":"x","v":${v},"type":"status"}` };
    }
  }
}

function encode(c) {
  if (c.text) return c.text;
  if (c.raw) {
    // The field once, with the raw number in place of its value: a field given twice is refused as such.
    const { [c.raw.field]: _, ...rest } = c.raw.base;
    const base = JSON.stringify(rest);
    return `${base.slice(0, -1)}${base === '{}' ? '' : ','}${JSON.stringify(c.raw.field)}:${c.raw.text}}`;
  }
  return JSON.stringify(c.msg);
}

/** Whether a case would stop the daemon or undo the drain, which the fuzzer must not do. */
function harmful(line) {
  return /"type":"shutdown"/.test(line) || (/"undrain"/.test(line) && /"host":"local"/.test(line));
}

async function runSocketBatch(client, batch) {
  let n = 0;
  const sent = [];
  for (const c of batch) {
    let line = encode(c);
    if (harmful(line)) continue;
    const id = `f${cases}`;
    // Put our own id in whenever the case did not fuzz the id.
    try {
      const obj = JSON.parse(line);
      if (obj && typeof obj === 'object' && !Array.isArray(obj) && !Object.hasOwn(obj, 'id')) {
        line = `{"id":${JSON.stringify(id)},${line.slice(1)}`;
      }
    } catch {
      line = `{"id":${JSON.stringify(id)},${line.slice(1)}`;
    }
    cases++;
    n++;
    sent.push({ c, id, line });
    await client.write(`${line}\n`);
  }
  // A marker after the batch: replies come in order, so once it is answered every case was.
  const marker = `mk${cases}`;
  await client.write(`${JSON.stringify({ v: 2, id: marker, type: 'hello' })}\n`);
  if ((await client.waitId(marker, 60000)).length !== 1)
    finding(`socket batch at ${cases}: marker unanswered`, client.closed ? 'closed' : 'open');
  for (const s of sent) {
    const replies = client.replies.filter((r) => r.id === s.id);
    const fuzzedId = !s.line.startsWith(`{"id":"${s.id}"`);
    // A trigger with a request or input files is answered once they are on disk: maybe after the marker.
    if (replies.length === 0 && !fuzzedId) replies.push(...(await client.waitId(s.id, 15000)));
    if (replies.length === 0) {
      if (!fuzzedId) finding(`socket ${s.c.label}: no reply`, s.line.slice(0, 200));
    } else {
      const nonStream = replies.filter(
        (r) => !['output', 'phase', 'outcome', 'heartbeat', 'state'].includes(r.type),
      );
      if (nonStream.length !== 1)
        finding(`socket ${s.c.label}: ${nonStream.length} replies`, JSON.stringify(nonStream).slice(0, 300));
    }
  }
  // Replies without an id: one per case whose id was fuzzed or whose line was no request.
  const unmatched = client.replies.filter((r) => r.id === undefined && r.type === 'error').length;
  const fuzzed = sent.filter((s) => !s.line.startsWith(`{"id":"${s.id}"`)).length;
  if (unmatched > fuzzed)
    finding(
      `socket batch at ${cases}: ${unmatched} replies without id for ${fuzzed} cases with a fuzzed id`,
      '',
    );
  for (const r of client.replies)
    if (r.type === 'error')
      checkError(`socket reply to ${sent.find((s) => s.id === r.id)?.c.label ?? 'a fuzzed id'}`, r);
  await client.settle(50);
  for (const r of client.take()) if (r.type === 'error') checkError('socket (unmatched)', r);
  return n;
}

let statusShape;
async function healthCheck(client, where) {
  const id = `hc${cases}`;
  await client.write(`${JSON.stringify({ v: 2, id, type: 'hello' })}\n`);
  const [hello] = await client.waitId(id, 15000);
  if (hello?.state !== 'ready') finding(`${where}: hello not ready / out of sync`, JSON.stringify(hello));
  const sid = `st${cases}`;
  await client.write(`${JSON.stringify({ v: 2, id: sid, type: 'status' })}\n`);
  const [status] = await client.waitId(sid, 15000);
  const shape = status
    ? Object.keys(status)
        .filter((k) => !['id'].includes(k))
        .sort()
        .join(',')
    : 'none';
  statusShape ??= shape;
  if (shape !== statusShape) finding(`${where}: status shape changed`, `${statusShape} -> ${shape}`);
  if (status && ('polluted' in status || 'isAdmin' in status))
    finding(`${where}: polluted status`, JSON.stringify(status).slice(0, 300));
  client.take();
  const rss = rssKb();
  if (rss > 600_000) finding(`${where}: RSS ${rss} kB`, '');
  return rss;
}

// ---------- framing cases ----------
async function framing() {
  const valid = (id) => `{"v":2,"id":"${id}","type":"hello"}`;
  const c = await Client.open();
  const cases0 = cases;
  // BOM, CRLF, blank lines, control characters around a valid line.
  const variants = {
    bom: `\ufeff${valid('bom')}\n`,
    crlf: `${valid('crlf')}\r\n`,
    blank: `\n\n\r\n${valid('blank')}\n`,
    ws: `  \t${valid('ws')}  \n`,
    nul: `${valid('nul')}\u0000\n`,
    ls: `${valid('ls')}\u2028\n`,
  };
  for (const [name, text] of Object.entries(variants)) {
    cases++;
    await c.write(text);
    const replies = await c.waitId(name, 3000);
    const got = replies[0] ?? c.replies.at(-1);
    console.log(`framing ${name}: ${JSON.stringify(got)?.slice(0, 200)}`);
    if (got?.type === 'error') checkError(`framing ${name}`, got);
    c.take();
  }
  // Invalid UTF-8 inside a string and as a whole line.
  for (const [name, bytes] of [
    [
      'invalid utf8 in string',
      Buffer.concat([
        Buffer.from('{"v":2,"id":"u1","type":"hello","client":"'),
        Buffer.from([0xff, 0xfe, 0xc0, 0x80]),
        Buffer.from('"}\n'),
      ]),
    ],
    ['invalid utf8 line', Buffer.from([0xff, 0xfe, 0xfd, 0x0a])],
    [
      'overlong nul',
      Buffer.concat([
        Buffer.from('{"v":2,"id":"u3","type":"hello","client":"'),
        Buffer.from([0xc0, 0x80]),
        Buffer.from('"}\n'),
      ]),
    ],
    // Its newline is followed by a NUL byte: a newline of one byte ends that line too.
    ['utf16 line', Buffer.concat([Buffer.from(`${valid('u4')}\n`, 'utf16le'), Buffer.from('\n')])],
  ]) {
    cases++;
    await c.write(bytes);
    await c.settle(150);
    const got = c.take();
    console.log(`framing ${name}: ${JSON.stringify(got).slice(0, 200)}`);
    for (const r of got) if (r.type === 'error') checkError(`framing ${name}`, r);
  }
  // A request split at every byte.
  const line = `{"v":2,"id":"split","type":"history","limit":3,"agent":"démo✓"}\n`;
  const bytes = Buffer.from(line);
  for (let i = 0; i < bytes.length; i++) {
    await c.write(bytes.subarray(i, i + 1));
    await new Promise((r) => setImmediate(r));
  }
  cases++;
  const split = await c.waitId('split', 5000);
  if (split.length !== 1) finding('framing split at every byte', JSON.stringify(split));
  c.take();
  // Every split point of a multi-byte character, one request each.
  for (let i = 1; i < bytes.length; i++) {
    const id = `sp${i}`;
    const b = Buffer.from(line.replace('"split"', `"${id}"`));
    await c.write(b.subarray(0, i));
    await new Promise((r) => setTimeout(r, 1));
    await c.write(b.subarray(i));
    cases++;
  }
  await c.settle(500);
  const splitReplies = c.take();
  const byId = new Map();
  for (const r of splitReplies) byId.set(r.id, (byId.get(r.id) ?? 0) + 1);
  for (let i = 1; i < bytes.length; i++)
    if (byId.get(`sp${i}`) !== 1) finding(`framing split at ${i}`, `${byId.get(`sp${i}`)} replies`);
  for (const r of splitReplies)
    if (r.type !== 'history') finding('framing split reply', JSON.stringify(r).slice(0, 200));
  // Many in one write.
  let many = '';
  for (let i = 0; i < 2000; i++) many += `{"v":2,"id":"m${i}","type":"${i % 3 ? 'hello' : 'agents'}"}\n`;
  await c.write(many);
  cases += 2000;
  const end = Date.now() + 20000;
  while (Date.now() < end && c.replies.filter((r) => String(r.id).startsWith('m')).length < 2000)
    await c.settle(50);
  const got = c.take().filter((r) => String(r.id).startsWith('m'));
  if (got.length !== 2000) finding('many in one write', `${got.length} of 2000 replies`);
  const order = got.map((r) => Number(String(r.id).slice(1)));
  if (order.some((v, i) => v !== i)) finding('many in one write: out of order', order.slice(0, 20).join(','));
  // A line of 17 MiB: line_too_long, and the connection still usable.
  cases++;
  await c.write(`{"v":2,"id":"big","type":"hello","client":"${'z'.repeat(17 * 1024 * 1024)}"}\n`);
  await c.write(`${valid('afterbig')}\n`);
  const after = await c.waitId('afterbig', 20000);
  const big = c.take();
  console.log(`framing 17 MiB: ${JSON.stringify(big.map((r) => [r.id, r.type, r.code]))}`);
  if (after.length !== 1) finding('framing: no reply after a 17 MiB line', JSON.stringify(big).slice(0, 300));
  await healthCheck(c, 'after framing');
  c.close();
  return cases - cases0;
}

// ---------- HTTP ----------
let base;
const PATHS = [
  '/healthz',
  '/readyz',
  '/metrics',
  '/v1/status',
  '/v1/agents',
  '/v1/sessions',
  `/v1/sessions/${SID}`,
  `/v1/sessions/${SID}/log`,
  `/v1/sessions/${SID}/cancel`,
  '/v1/reload',
  '/v1',
  '/',
  '/v1/sessions/',
  '/v1/sessions/..%2F..%2Fetc%2Fpasswd/log',
  '/v1/sessions/../../etc/passwd',
  `/v1/sessions/%30123456789abcdef`,
  `/v1/sessions/${SID.toUpperCase()}`,
  '/v1//status',
  '/V1/STATUS',
  '/v1/status/',
  '/v1/status?x=1&x=2',
  `/v1/sessions/${SID}/log/extra`,
  '/%ff%fe',
  '/v1/sessions/%00',
  '/v1/sessions/__proto__',
  '/v1/sessions/constructor/log',
];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'FOO'];

function rawHttp(text, ms = 5000) {
  const url = new URL(base);
  return new Promise((res) => {
    const s = connect(Number(url.port), url.hostname);
    let out = '';
    s.on('data', (d) => {
      out += d.toString('latin1');
    });
    const done = () => res(out);
    s.on('error', done);
    s.on('close', done);
    s.setTimeout(ms, () => s.destroy());
    s.write(text);
  });
}

function parseResponses(text) {
  const out = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) break;
    const head = rest.slice(0, headEnd);
    const status = Number(head.slice(9, 12));
    let body = '';
    const cl = /content-length: (\d+)/i.exec(head);
    rest = rest.slice(headEnd + 4);
    if (cl) {
      body = rest.slice(0, Number(cl[1]));
      rest = rest.slice(Number(cl[1]));
    } else if (/transfer-encoding: chunked/i.test(head)) {
      for (;;) {
        const nl = rest.indexOf('\r\n');
        const size = Number.parseInt(rest.slice(0, nl), 16);
        rest = rest.slice(nl + 2);
        if (!size) {
          rest = rest.slice(2);
          break;
        }
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
      }
    } else {
      body = rest;
      rest = '';
    }
    out.push({ status, head, body });
  }
  return out;
}

function checkHttp(where, r) {
  if (r.status >= 500 && r.status !== 503) finding(`http ${where}: ${r.status}`, r.body.slice(0, 300));
  if (r.status >= 400 && r.body) {
    let body;
    try {
      body = JSON.parse(r.body);
    } catch {
      if (!/^HTTP/.test(r.head) || r.status !== 400 || r.body.length > 0)
        finding(`http ${where}: non-JSON error ${r.status}`, r.body.slice(0, 200));
      return;
    }
    checkError(`http ${where}`, body);
  }
}

async function http(method, path, { headers = {}, body, token = true } = {}) {
  const h = { ...(token ? { authorization: `Bearer ${TOKEN}` } : {}), ...headers };
  cases++;
  const res = await fetch(`${base}${path}`, {
    method,
    headers: h,
    body,
    signal: AbortSignal.timeout(10000),
  }).catch((e) => ({ error: e }));
  if (res.error) return { status: 0, head: '', body: String(res.error?.cause ?? res.error) };
  let text = '';
  if (method !== 'HEAD') {
    // A log stream of a live session never ends: read at most 1 s.
    const reader = res.body.getReader();
    const end = Date.now() + 1000;
    const dec = new TextDecoder();
    while (Date.now() < end) {
      const { done, value } = await Promise.race([
        reader.read(),
        new Promise((r) => setTimeout(() => r({ done: true, cut: true }), 1000)),
      ]);
      if (done) break;
      text += dec.decode(value);
    }
    reader.cancel().catch(() => {});
  }
  return { status: res.status, head: [...res.headers].join('\n'), body: text };
}

async function httpFuzz() {
  const c0 = cases;
  for (const path of PATHS) {
    for (const method of METHODS) {
      for (const token of [true, false]) {
        if (method === 'POST' && path.startsWith('/v1/reload')) continue;
        const r = await http(method, path, {
          token,
          headers: method === 'POST' ? { 'content-type': 'application/json' } : {},
          body: method === 'POST' || method === 'PUT' ? '{}' : undefined,
        });
        checkHttp(`${method} ${path}${token ? '' : ' (no token)'}`, r);
      }
    }
  }
  // POST /v1/sessions: each field given each bad value.
  const template = {
    agent: 'demo',
    repo: 'git://127.0.0.1:1/none.git',
    workUnit: 'w',
    timeout: '10s',
    key: 'k1',
    request: 'hi',
    inputs: [{ name: 'a', data: 'aGk=' }],
  };
  for (const field of Object.keys(template)) {
    for (const [label, value] of BAD_VALUES) {
      if (label === 'huge') continue; // over body_limit: tested below
      const r = await http('POST', '/v1/sessions', {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...template, [field]: value }),
      });
      checkHttp(`POST /v1/sessions ${field}=${label}`, r);
    }
  }
  for (const key of ['__proto__', 'constructor', 'prototype', 'k'.repeat(3000)]) {
    const body = `{"agent":"nope",${JSON.stringify(key)}:{"polluted":"yes"}}`;
    const r = await http('POST', '/v1/sessions', { headers: { 'content-type': 'application/json' }, body });
    checkHttp(`POST /v1/sessions unknown ${key.slice(0, 20)}`, r);
  }
  for (const body of [
    '',
    'null',
    '[]',
    '"x"',
    '1e400',
    '{',
    '\ufeff{"agent":"nope"}',
    '{"agent":"nope","agent":"demo2"}',
    'x'.repeat(2 * 1024 * 1024),
  ]) {
    const r = await http('POST', '/v1/sessions', { headers: { 'content-type': 'application/json' }, body });
    checkHttp(`POST /v1/sessions body ${JSON.stringify(body.slice(0, 20))}`, r);
  }
  for (const ct of [
    'text/plain',
    'application/jsonx',
    'application/json; charset=latin1',
    'APPLICATION/JSON',
    'application/json, text/plain',
    '',
    'application/x-www-form-urlencoded',
    '\u00e9',
  ]) {
    const r = await http('POST', '/v1/sessions', {
      headers: ct === '\u00e9' ? {} : { 'content-type': ct },
      body: '{"agent":"nope"}',
    });
    checkHttp(`POST /v1/sessions content-type ${ct}`, r);
  }
  // Query strings.
  const queries = [
    'limit=abc',
    'limit=0',
    'limit=-1',
    'limit=1.5',
    'limit=1e3',
    'limit=1001',
    'limit=',
    'limit=0x10',
    'limit=%20',
    'limit=Infinity',
    'limit=NaN',
    'limit=5&limit=abc',
    'limit=abc&limit=5',
    'agent=',
    'agent=%ff',
    'agent=%',
    'agent=%E2%9C',
    'outcome=nope',
    'since=nope',
    'since=99999999999d',
    'workUnit=%00',
    'workUnit=a%0Ab',
    '__proto__=1',
    'constructor=1',
    'a[b]=1',
    'agent[]=x',
    'x'.repeat(5000),
    `agent=${'a'.repeat(100000)}`,
    'limit=10&&&&=&=',
    'since=2h&since=3h',
  ];
  for (const q of queries) {
    const r = await http('GET', `/v1/sessions?${q}`);
    checkHttp(`GET /v1/sessions?${q.slice(0, 40)}`, r);
  }
  for (const q of [
    'after=abc',
    'after=-1',
    'after=1.5',
    'after=',
    'after=%20',
    'after=0x10',
    'follow=yes',
    'follow=false&follow=true',
    'format=xml',
    'format=',
    'after=1e400',
    'after=99999999999999999999',
    '__proto__=x',
  ]) {
    const r = await http('GET', `/v1/sessions/${SID}/log?${q}`);
    checkHttp(`GET log?${q}`, r);
  }
  // Raw requests: bad Content-Length, chunked bodies, absurd headers.
  const host = new URL(base).host;
  const auth = `Authorization: Bearer ${TOKEN}\r\n`;
  const raws = {
    'cl too small': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{"agent":"nope"}`,
    'cl negative': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: -5\r\n\r\n{}`,
    'cl huge': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: 99999999999999999999\r\n\r\n{}`,
    'cl twice': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`,
    'cl and chunked': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    chunked: `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\n{\r\n${'f'}\r\n"agent":"nope"}\r\n0\r\n\r\n`,
    'chunked bad size': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    'chunked huge size': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}\r\n`,
    'header 100k': `GET /v1/status HTTP/1.1\r\nHost: ${host}\r\n${auth}X-Big: ${'a'.repeat(100000)}\r\n\r\n`,
    'many headers': `GET /v1/status HTTP/1.1\r\nHost: ${host}\r\n${auth}${'X-A: b\r\n'.repeat(3000)}\r\n`,
    'auth twice': `GET /v1/status HTTP/1.1\r\nHost: ${host}\r\n${auth}${auth}Connection: close\r\n\r\n`,
    'auth lower bearer': `GET /v1/status HTTP/1.1\r\nHost: ${host}\r\nAuthorization: bearer ${TOKEN}\r\nConnection: close\r\n\r\n`,
    'no host': `GET /v1/status HTTP/1.1\r\n${auth}Connection: close\r\n\r\n`,
    'host evil': `GET /readyz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`,
    'host twice': `GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`,
    'absolute uri': `GET http://evil.example/v1/status HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`,
    asterisk: `OPTIONS * HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    'http/1.0': `GET /v1/status HTTP/1.0\r\n${auth}\r\n`,
    'http/0.9': 'GET /v1/status\r\n\r\n',
    'bare lf': `GET /v1/status HTTP/1.1\nHost: ${host}\n${auth.replace('\r', '')}Connection: close\n\n`,
    'pipelined 6': `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`.repeat(6),
    'header obs-fold': `GET /v1/status HTTP/1.1\r\nHost: ${host}\r\n${auth}X-A: b\r\n c\r\nConnection: close\r\n\r\n`,
    'nul in path': `GET /v1/sessions/\u0000 HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`,
    'utf8 path': `GET /v1/sessions/é✓ HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`,
    'long path': `GET /${'a'.repeat(60000)} HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`,
    'idempotency header bad': `POST /v1/sessions HTTP/1.1\r\nHost: ${host}\r\n${auth}Idempotency-Key: a b\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{"agent":"nope"}`,
    'last-event-id junk': `GET /v1/sessions/${SID}/log?format=sse HTTP/1.1\r\nHost: ${host}\r\n${auth}Last-Event-ID: -1e400\r\nConnection: close\r\n\r\n`,
  };
  for (const [name, text] of Object.entries(raws)) {
    cases++;
    const out = await rawHttp(text, 3000);
    const responses = parseResponses(out);
    console.log(
      `http raw ${name}: ${responses.map((r) => r.status).join(',') || JSON.stringify(out.slice(0, 80))}`,
    );
    for (const r of responses) checkHttp(`raw ${name}`, r);
  }
  return cases - c0;
}

// ---------- main ----------
if (!process.env.PROTOFUZZ_DUMP)
  try {
    base = await until(
      () => /"event":"http.listening"[^\n]*"address":"([^"]+)"/.exec(log)?.[1],
      60000,
      'the HTTP API',
    );
    const c = await Client.open();
    await c.write('{"v":2,"id":"drain","type":"drain","host":"local"}\n');
    console.log('drain:', JSON.stringify((await c.waitId('drain'))[0]));
    const rss0 = await healthCheck(c, 'start');
    console.log(`daemon pid ${pid}, RSS ${rss0} kB, HTTP ${base}`);
    const all = [...socketCases()];
    console.log(`${all.length} socket cases`);
    let maxRss = rss0;
    for (let i = 0; i < all.length; i += 200) {
      await runSocketBatch(c, all.slice(i, i + 200));
      maxRss = Math.max(maxRss, await healthCheck(c, `socket batch ${i / 200}`));
    }
    console.log(`socket cases done: ${cases}, max RSS ${maxRss} kB`);
    console.log(`framing cases: ${await framing()}`);
    console.log(`http cases: ${await httpFuzz()}`);
    maxRss = Math.max(maxRss, await healthCheck(c, 'after http'));
    // Cancel what the fuzz queued.
    await c.write('{"v":2,"id":"st-end","type":"status"}\n');
    const [st] = await c.waitId('st-end');
    for (const q of st?.queued ?? [])
      await c.write(`${JSON.stringify({ v: 2, type: 'cancel', sessionId: q.id })}\n`);
    console.log(`queued sessions cancelled: ${st?.queued?.length ?? 0}`);
    console.log(`TOTAL ${cases} cases, ${findings.length} findings, max RSS ${maxRss} kB`);
    c.close();
  } catch (error) {
    console.log('FUZZER ERROR', error);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    for (const line of log.split('\n'))
      if (/"level":(50|60)/.test(line)) console.log('DAEMON ERROR LOG', line.slice(0, 600));
    if (!process.env.PROTOFUZZ_KEEP) rmSync(dir, { recursive: true, force: true });
  }

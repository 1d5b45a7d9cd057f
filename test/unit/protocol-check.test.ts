/** How the daemon reads a request line: every error path with its code, its problems and its id. */
import { describe, expect, it } from 'vitest';
import { check } from '../../src/protocol/dispatch.js';
import { MAX_PROBLEMS } from '../../src/protocol/problems.js';

function failure(line: string) {
  const result = check(line);
  if (result.ok) throw new Error(`${line} was accepted`);
  return result;
}

describe('check: requests', () => {
  it('accepts a request of either version, and hello without one', () => {
    expect(check('{"v":1,"type":"status"}')).toEqual({ ok: true, request: { v: 1, type: 'status' } });
    expect(check('{"v":2,"type":"status","id":"s"}')).toEqual({
      ok: true,
      request: { v: 2, type: 'status', id: 's' },
    });
    expect(check('{"type":"hello"}')).toEqual({ ok: true, request: { type: 'hello' } });
    expect(check('{"v":2,"type":"trigger","agent":"a","key":"gh-1/x:y"}').ok).toBe(true);
  });

  it('bad_json for a line that is not JSON; bad_request for JSON that is not an object', () => {
    expect(failure('not json')).toMatchObject({ code: 'bad_json', head: {}, problems: [] });
    for (const line of ['[1,2]', '"x"', 'null', '3']) {
      expect(failure(line)).toMatchObject({
        code: 'bad_request',
        head: {},
        problems: [{ path: '', message: 'a request is a JSON object' }],
      });
    }
  });

  it('names a UTF-8 byte order mark before the JSON, and UTF-16, with the fix, instead of "not valid JSON"', () => {
    const bom = failure(`\uFEFF{"v":2,"type":"status","id":"s"}`);
    expect(bom).toMatchObject({ code: 'bad_json', head: {}, problems: [] });
    expect(bom.message).toMatch(/^the line starts with a UTF-8 byte order mark \(bytes EF BB BF, U\+FEFF\)/);
    expect(bom.message).toContain('send the JSON without it');
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"type":"hello"}', 'utf16le')]);
    expect(failure(utf16.toString('utf8')).message).toMatch(
      /^the line holds NUL bytes: it looks like UTF-16/,
    );
    expect(failure(Buffer.from('{"type":"hello"}', 'utf16le').toString('utf8')).message).toMatch(/UTF-16/);
    // Any other line that is not JSON is told as before.
    expect(failure('not json').message).toBe('the line is not valid JSON');
    expect(failure('{"a":"\u0000"').message).toBe('the line is not valid JSON');
  });

  it('lists every problem, unknown fields one by one', () => {
    const line = JSON.stringify({
      v: 2,
      id: 'r1',
      type: 'trigger',
      agent: 42,
      follow: 'yes',
      a: 1,
      b: 2,
      c: 3,
      d: 4,
      e: 5,
    });
    const result = failure(line);
    expect(result.code).toBe('bad_request');
    expect(result.head).toEqual({ v: 2, id: 'r1' });
    expect(result.problems.map((p) => p.path)).toEqual(['agent', 'follow', 'a', 'b', 'c', 'd', 'e']);
    expect(result.problems[2]?.message).toMatch(/^unknown field/);
  });

  it('refuses a work unit with a control character, naming the field (a NUL cannot reach the agent)', () => {
    for (const workUnit of ['\u0000', 'issue-7\n', 'a\u001b[31mred', 'tab\there', 'c1\u009b']) {
      const result = failure(JSON.stringify({ v: 2, type: 'trigger', agent: 'a', workUnit }));
      expect(result.code).toBe('bad_request');
      expect(result.problems).toEqual([
        {
          path: 'workUnit',
          message: 'a work unit is text without control characters (no newline, tab, escape or NUL)',
        },
      ]);
    }
    expect(
      check(JSON.stringify({ v: 2, type: 'trigger', agent: 'a', workUnit: 'issue 7 – ünïcode' })).ok,
    ).toBe(true);
  });

  it('caps a flood of problems and says how many more', () => {
    const fields = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`f${i}`, i]));
    const result = failure(JSON.stringify({ v: 2, type: 'status', ...fields }));
    expect(result.problems).toHaveLength(MAX_PROBLEMS + 1);
    expect(result.problems.at(-1)).toEqual({ path: '', message: 'and 150 more problem(s)' });
  });

  it('names the request types for an unknown type, and a missing v', () => {
    expect(failure('{"v":2,"type":"reboot"}').problems).toEqual([
      {
        path: 'type',
        message: expect.stringMatching(/^unknown type; one of hello, trigger, status, cancel/),
      },
    ]);
    expect(failure('{"type":"status"}').problems).toEqual([{ path: 'v', message: 'required: one of 1, 2' }]);
  });

  it('unsupported_version for a version the daemon does not speak, with the ones it does', () => {
    for (const v of [3, 0, '2', null]) {
      const result = failure(JSON.stringify({ v, id: 'x', type: 'hello' }));
      expect(result).toMatchObject({
        code: 'unsupported_version',
        head: { id: 'x' },
        extra: { supported: [1, 2] },
      });
      expect(result.head.v).toBeUndefined();
    }
  });

  it('echoes an id only when it is valid: non-empty, at most 128 characters, a string', () => {
    for (const id of ['', 'x'.repeat(129), 42, { a: 1 }]) {
      const result = failure(JSON.stringify({ v: 2, id, type: 'status' }));
      expect(result.code).toBe('bad_request');
      expect(result.head, JSON.stringify(id)).toEqual({ v: 2 });
      expect(result.problems.map((p) => p.path)).toEqual(['id']);
    }
    expect(failure(JSON.stringify({ v: 2, id: 'x'.repeat(128), type: 'nope' })).head.id).toBe(
      'x'.repeat(128),
    );
  });

  it('a request type newer than the version named is a bad_request', () => {
    expect(failure('{"v":1,"type":"history"}').problems).toEqual([
      { path: 'type', message: 'history needs protocol version 2 or later' },
    ]);
    expect(check('{"v":2,"type":"history","agent":"a","outcome":"failed","since":"2h","limit":5}').ok).toBe(
      true,
    );
    expect(
      failure('{"v":2,"type":"history","since":"yesterday","limit":0}').problems.map((p) => p.path),
    ).toEqual(['since', 'limit']);
  });

  it('says what limit and after take, whatever was wrong with them', () => {
    const limit = { path: 'limit', message: 'a whole number from 1 to 1000' };
    // 1e308 is no safe integer and over 1000: one problem still.
    for (const value of ['1.5', '0', '1001', '"5"', '1e400', 'null', '1e308', '1152921504606846976'])
      expect(failure(`{"v":2,"type":"history","limit":${value}}`).problems, value).toEqual([limit]);
    const after = { path: 'after', message: "a line's seq: a whole number, 0 or more" };
    for (const value of ['-1', '0.5', '"3"', '1e400', '-1e308'])
      expect(
        failure(`{"v":2,"type":"logs","sessionId":"0123456789abcdef","after":${value}}`).problems,
        value,
      ).toEqual([after]);
  });

  it('gives a field of the wrong type one problem, not also a length zod checked on an array', () => {
    expect(failure('{"v":2,"type":"history","agent":[],"since":[],"workUnit":[]}').problems).toEqual([
      { path: 'agent', message: 'expected string, received array' },
      { path: 'workUnit', message: 'expected string, received array' },
      { path: 'since', message: 'expected string, received array' },
    ]);
    expect(
      failure('{"v":2,"type":"trigger","agent":"a","inputs":[{"name":[],"data":"aGk="}]}').problems,
    ).toEqual([{ path: 'inputs.0.name', message: 'expected string, received array' }]);
  });

  it('gives a since out of its bounds one problem, in words, not also "is neither a time nor a duration"', () => {
    expect(failure('{"v":2,"type":"history","since":""}').problems).toEqual([
      {
        path: 'since',
        message: 'is empty; give a time (2026-11-26) or a duration back from now (2h), or leave it out',
      },
    ]);
    expect(failure(`{"v":2,"type":"history","since":"${'y'.repeat(5000)}"}`).problems).toEqual([
      { path: 'since', message: 'has 5000 characters; a time or a duration has at most 64' },
    ]);
  });

  it('words the bounds of a client name, an input file name and the number of input files', () => {
    const inputs = (list: unknown[]) =>
      `{"v":2,"type":"trigger","agent":"a","inputs":${JSON.stringify(list)}}`;
    expect(failure(`{"v":2,"type":"hello","client":"${'c'.repeat(200)}"}`).problems).toEqual([
      { path: 'client', message: "has 200 characters; a client's name has at most 128" },
    ]);
    expect(
      failure(
        inputs([
          { name: '', data: '' },
          { name: 'n'.repeat(130), data: '' },
        ]),
      ).problems,
    ).toEqual([
      {
        path: 'inputs.0.name',
        message: 'is empty; name the file as the agent is to see it in /agentd/input',
      },
      { path: 'inputs.1.name', message: "has 130 characters; an input file's name has at most 128" },
    ]);
    const many = Array.from({ length: 65 }, (_, i) => ({ name: `f${i}`, data: '' }));
    expect(failure(inputs(many)).problems).toEqual([{ path: 'inputs', message: 'at most 64 input files' }]);
  });
});

describe('check: repeated keys, depth, fields and bytes that are not UTF-8', () => {
  it('refuses a key given twice, naming its path, instead of acting on the last value', () => {
    const result = failure('{"v":2,"id":"r","type":"trigger","agent":"a","agent":"b"}');
    expect(result).toMatchObject({ code: 'bad_request', head: { v: 2, id: 'r' } });
    expect(result.problems).toEqual([
      { path: 'agent', message: expect.stringMatching(/^given more than once/) },
    ]);
    expect(result.problems[0]?.message).toContain('give each field once');
    // A repeated type would have made a status request a trigger.
    expect(
      failure('{"v":2,"type":"status","type":"trigger","agent":"a"}').problems.map((p) => p.path),
    ).toEqual(['type']);
    // Nested, escaped, and with the request's other problems.
    expect(
      failure('{"v":2,"type":"event","event":{"type":"cancel","type":"shutdown"}}').problems.map(
        (p) => p.path,
      ),
    ).toEqual(['event.type']);
    expect(
      failure(
        '{"v":2,"type":"trigger","agent":"a","inputs":[{"name":"x","data":"","n\\u0061me":"y"}],"bogus":1}',
      ).problems.map((p) => p.path),
    ).toEqual(['inputs.0.name', 'bogus']);
  });

  it('gives a repeated field its one problem, not also one of the value JSON.parse kept', () => {
    expect(failure('{"v":2,"type":"hello","client":"c","type":1e400}').problems.map((p) => p.path)).toEqual([
      'type',
    ]);
    expect(
      failure(
        '{"v":2,"type":"event","event":{"type":"cancel"},"event":{"type":"x","y":1},"z":1}',
      ).problems.map((p) => p.path),
    ).toEqual(['event', 'z']);
  });

  it('does not echo an id given twice: the client could match the reply to neither', () => {
    const result = failure('{"v":2,"id":"a","type":"status","id":"b"}');
    expect(result.head).toEqual({ v: 2 });
    expect(result.problems.map((p) => p.path)).toEqual(['id']);
  });

  it('shortens a long repeated key as it does an unknown one', () => {
    const key = 'k'.repeat(10_000);
    const result = failure(`{"v":2,"type":"status","${key}":1,"${key}":2}`);
    expect(result.problems[0]?.path).toBe(`${'k'.repeat(64)}... (10000 characters)`);
  });

  it('refuses a line nested too deep or with too many fields before JSON.parse reads it', () => {
    const deep = failure(`{"v":2,"id":"d","type":"status","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    // The id read before the bound is repeated: a client matching replies by id is not left waiting.
    expect(deep).toMatchObject({ code: 'bad_request', head: { v: 2, id: 'd' } });
    expect(deep.problems).toEqual([
      { path: '', message: expect.stringMatching(/^the request nests objects and arrays more than 32 deep/) },
    ]);
    const fields = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, 0]));
    expect(failure(JSON.stringify({ v: 2, type: 'status', ...fields })).problems).toEqual([
      { path: '', message: expect.stringMatching(/^the request holds more than 4096 fields in all/) },
    ]);
    // Flat and keyless, but 5.6 million objects in 16 MiB: 12 s of the event loop and 1.1 GB.
    const objects = failure(`{"v":2,"id":"o","type":"status","x":[${'{},'.repeat(100_000)}{}]}`);
    expect(objects).toMatchObject({ code: 'bad_request', head: { v: 2, id: 'o' } });
    expect(objects.problems).toEqual([
      {
        path: '',
        message: expect.stringMatching(/^the request holds more than 4096 objects and arrays in all/),
      },
    ]);
  });

  it('refuses a line that is not UTF-8, naming the byte, with the id when the line has one', () => {
    const bytes = Buffer.concat([
      Buffer.from('{"v":2,"id":"w","type":"trigger","agent":"a","workUnit":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}'),
    ]);
    const result = check(bytes.toString('utf8'), 61);
    expect(result).toMatchObject({ ok: false, code: 'bad_json', head: { v: 2, id: 'w' }, problems: [] });
    if (result.ok) throw new Error('accepted');
    expect(result.message).toBe(
      'the line holds bytes that are not UTF-8 (Latin-1 or another encoding?), the first at byte 61 of the line; send the request encoded in UTF-8',
    );
    // UTF-16 (not UTF-8 either) keeps its own words.
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"type":"hello"}', 'utf16le')]);
    expect(failure2(utf16.toString('utf8'), 0).message).toMatch(
      /^the line holds NUL bytes: it looks like UTF-16/,
    );
    // Not JSON as well: no id.
    expect(failure2('\uFFFD{', 0).head).toEqual({});
  });
});

function failure2(line: string, notUtf8At: number) {
  const result = check(line, notUtf8At);
  if (result.ok) throw new Error(`${line} was accepted`);
  return result;
}

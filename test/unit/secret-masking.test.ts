import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fileHoldsAny } from '../../src/adapters/output-archive.js';
import { outputSearch } from '../../src/runner/actors.js';
import { createMasker, MASK } from '../../src/runner/mask.js';
import { formsOf } from '../../src/runner/mask-forms.js';
import { SecretValue } from '../../src/secret-value.js';
import { fastest } from '../helpers/fastest.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

/** What the output reader hands the masker: UTF-8-decoded lines, split at \n, \r\n and lone \r. */
function printed(bytes: Buffer): string[] {
  return bytes.toString('utf8').split(/\r\n|\r|\n/);
}

/** The base64 of a value after 0, 1 or 2 other bytes, without the characters that carry theirs. */
function base64Cores(bytes: Buffer): string[] {
  return [0, 1, 2].map((offset) =>
    Buffer.concat([Buffer.alloc(offset), bytes])
      .toString('base64')
      .slice(Math.ceil((offset * 8) / 6), Math.floor(((offset + bytes.length) * 8) / 6)),
  );
}

/** A value's base64 inside base64: the cores of each of its cores, and of its JSON escapings that differ. */
function twiceEncoded(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: everything that is ASCII stays.
  const ascii = json.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const inner = [
    ...base64Cores(Buffer.from(value)),
    ...new Set([json, ascii].filter((text) => text !== value)),
  ];
  return inner.flatMap((text) => base64Cores(Buffer.from(text)).filter((core) => core.length >= 8));
}

const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  'MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu',
  '-----END PRIVATE KEY-----',
].join('\n');

describe('masking what agents really print', () => {
  it('masks a multi-line value line by line, as echo and cat print it', () => {
    const mask = createMasker([`${PEM}\n`]);
    const out = printed(Buffer.from(`key:\n${PEM}\ndone\n`)).map(mask);
    expect(out).toEqual(['key:', MASK, MASK, MASK, MASK, 'done', '']);
  });

  it('masks a value read with CRLF line endings, with or without its \\r', () => {
    const value = 'line-one-secret\r\nline-two-secret';
    const mask = createMasker([value]);
    for (const line of [
      ...printed(Buffer.from(`${value}\r\n`)),
      'line-one-secret\r',
      'x=line-two-secret\ry',
    ]) {
      expect(mask(line)).not.toMatch(/line-(one|two)-secret/);
    }
  });

  it('masks a value with a trailing newline wherever it is printed without it', () => {
    const mask = createMasker(['s3cr3t-with-newline\n']);
    expect(mask('token=s3cr3t-with-newline;')).toBe(`token=${MASK};`);
    expect(mask('s3cr3t-with-newline')).toBe(MASK);
  });

  it('masks a value with & < > and quotes as HTML/XML entities and with its quotes doubled (YAML, SQL, CSV)', () => {
    const value = `p&ss'w"rd<Secret>42`;
    const mask = createMasker([value]);
    for (const line of [
      // Python's html.escape, lodash / Ruby / .NET, Go's html and markupsafe, XML attributes, PHP.
      '<td>p&amp;ss&#x27;w&quot;rd&lt;Secret&gt;42</td>',
      '<td>p&amp;ss&#39;w&quot;rd&lt;Secret&gt;42</td>',
      '<td>p&amp;ss&#39;w&#34;rd&lt;Secret&gt;42</td>',
      '<key value="p&amp;ss&apos;w&quot;rd&lt;Secret&gt;42"/>',
      '<td>p&amp;ss&#039;w&quot;rd&lt;Secret&gt;42</td>',
      // XML text (quotes as they are), PHP's htmlspecialchars before 8.1 (`'` as it is).
      `<key>p&amp;ss'w"rd&lt;Secret&gt;42</key>`,
      `<td>p&amp;ss'w&quot;rd&lt;Secret&gt;42</td>`,
      // A YAML single-quoted scalar, an SQL string, a CSV field.
      `token: 'p&ss''w"rd<Secret>42'`,
      `INSERT INTO t VALUES ('p&ss''w"rd<Secret>42');`,
      `name,"p&ss'w""rd<Secret>42",x`,
    ]) {
      const masked = mask(line);
      expect(masked, line).toContain(MASK);
      expect(masked, line).not.toContain('Secret');
    }
  });

  it('gives a value without & < > or quotes the forms it had before HTML/XML and doubled quotes', () => {
    // The forms the code before them made, in order (no entity, no doubled quote), and base64 in base64.
    expect(formsOf('S3cr3t/Val+ue$42 x\\y')).toEqual([
      'S3cr3t/Val+ue$42 x\\y',
      'S3cr3t/Val+ue$42 x\\y',
      'S3cr3t/Val+ue$42 x\\y',
      'S3cr3t/Val+ue$42 x\\\\y',
      'S3cr3t\\/Val+ue$42 x\\\\y',
      'S3cr3t/Val+ue$42 x\\\\y',
      'S3cr3t/Val+ue$42 x\\\\y',
      'S3cr3t/Val+ue\\$42 x\\\\y',
      'S3cr3t/Val+ue$42 x\\\\y',
      'UzNjcjN0L1ZhbCt1ZSQ0MiB4XHk=',
      'UzNjcjN0L1ZhbCt1ZSQ0MiB4XHk',
      'UzNjcjN0L1ZhbCt1ZSQ0MiB4XH',
      'MzY3IzdC9WYWwrdWUkNDIgeFx5',
      'TM2NyM3QvVmFsK3VlJDQyIHhce',
      // Base64 of JSON holding its base64 (the cores of each core's base64) or its JSON escaping (`\\`).
      ...twiceEncoded('S3cr3t/Val+ue$42 x\\y'),
      '5333637233742f56616c2b756524343220785c79',
      '5333637233742F56616C2B756524343220785C79',
      'S3cr3t%2FVal%2Bue%2442%20x%5Cy',
      'S3cr3t%2fVal%2bue%2442%20x%5cy',
      'S3cr3t%2FVal%2Bue%2442+x%5Cy',
      'S3cr3t%2fVal%2bue%2442+x%5cy',
      'S3cr3t%2FVal%2Bue%2442%20x%5Cy',
      'S3cr3t%2fVal%2bue%2442%20x%5cy',
      'S3cr3t%2FVal%2Bue%2442+x%5Cy',
      'S3cr3t%2fVal%2bue%2442+x%5cy',
    ]);
    // A multi-line value with non-ASCII, a tab and spaces around it (escaped forms, its lines, its
    // variants): its 62 forms as the code before made them, by their SHA-256, and only base64 in base64
    // and the other escapes of non-ASCII (PyYAML's `\xE4`, Java's `\u00E4`, XML's `&#228;`) besides.
    const value = ' pässwörd\tSecret-1\nline-2 ';
    const twice = new Set([value, value.trim()].flatMap(twiceEncoded));
    const all = formsOf(value);
    const escapes = /\\(x|u00)[0-9A-F]*[A-F]|&#\d+;/;
    const forms = all.filter((form) => !twice.has(form) && !escapes.test(form));
    expect(all.filter((form) => escapes.test(form))).toEqual([
      ' p\\u00E4ssw\\u00F6rd\\tSecret-1\\nline-2 ',
      ' p&#228;ssw&#246;rd\tSecret-1\nline-2 ',
      'p\\u00E4ssw\\u00F6rd\\tSecret-1\\nline-2',
      'p&#228;ssw&#246;rd\tSecret-1\nline-2',
      ' p\\xE4ssw\\xF6rd\\tSecret-1\\nline-2 ',
      'p\\xE4ssw\\xF6rd\\tSecret-1\\nline-2',
    ]);
    expect(all.length - forms.length).toBe(6 + twice.size);
    expect(forms).toHaveLength(62);
    expect(createHash('sha256').update(JSON.stringify(forms)).digest('hex')).toBe(
      '16ee029060abba67395e3cd43f847f60083315df88f07034d4da7d6c8215480c',
    );
  });

  it('finds a value in the output archive as HTML entities and with its quotes doubled', async () => {
    const dir = makeTempDir('agentd-unit-mask-markup-');
    const file = join(dir, 'out.tar');
    const { needles, masking } = await outputSearch([new SecretValue(`p&ss'w"rd<Secret>42`)]);
    for (const text of ['<td>p&amp;ss&#39;w&quot;rd&lt;Secret&gt;42</td>', `k: 'p&ss''w"rd<Secret>42'`]) {
      writeFileSync(file, `header\0\0\0${text}\n`);
      expect((await fileHoldsAny(file, needles, undefined, masking))?.held, text).toBe(true);
    }
    writeFileSync(file, 'header\0\0\0nothing here\n');
    expect((await fileHoldsAny(file, needles, undefined, masking))?.held).toBe(false);
  });

  it('masks each line of a multi-line value in HTML or XML entities and with its quotes doubled (an HTML report of a .env file)', () => {
    const value = `DB_PASSWORD="p&ss<Zq7Xw9Kp>"\nAPI_KEY='k3y"Zq7Xw9Kp'\n`;
    const mask = createMasker([value]);
    for (const line of [
      // Python's html.escape of the file (or of each line), XML text.
      'DB_PASSWORD=&quot;p&amp;ss&lt;Zq7Xw9Kp&gt;&quot;',
      'API_KEY=&#x27;k3y&quot;Zq7Xw9Kp&#x27;',
      'DB_PASSWORD="p&amp;ss&lt;Zq7Xw9Kp&gt;"',
      // yaml.dump of the file (a single-quoted scalar keeps its newlines), a CSV field.
      `  API_KEY=''k3y"Zq7Xw9Kp''`,
      `"DB_PASSWORD=""p&ss<Zq7Xw9Kp>""`,
      `API_KEY='k3y""Zq7Xw9Kp'`,
    ]) {
      expect(mask(line), line).not.toContain('Zq7Xw9Kp');
    }
  });

  it('masks the JSON escaping of a value with a quote in HTML entities (a JSON dump in an HTML report)', () => {
    const mask = createMasker([`Ab&cd'ef"gh<ij>Zq7Xw9Kp`]);
    // Python's html.escape(json.dumps({"token": value})).
    const line = '{&quot;token&quot;: &quot;Ab&amp;cd&#x27;ef\\&quot;gh&lt;ij&gt;Zq7Xw9Kp&quot;}';
    expect(mask(line)).toBe(`{&quot;token&quot;: &quot;${MASK}&quot;}`);
  });

  it('finds each line of a multi-line value in HTML entities in the output archive, not the lines every JSON file has', async () => {
    const dir = makeTempDir('agentd-unit-mask-lines-');
    const file = join(dir, 'report.html');
    const env = `DB_PASSWORD="p&ss<Zq7Xw9Kp>"\nAPI_KEY='k3y"Zq7Xw9Kp'\n`;
    const account = JSON.stringify(
      { type: 'service_account', private_key_id: 'a1b2c3d4e5f6a7b8c9d0e1f2', client_email: 'x@y.example' },
      null,
      2,
    );
    const { needles, masking } = await outputSearch([new SecretValue(env), new SecretValue(account)]);
    writeFileSync(file, '<pre>\nAPI_KEY=&#x27;k3y&quot;Zq7Xw9Kp&#x27;\n</pre>\n');
    expect((await fileHoldsAny(file, needles, undefined, masking))?.held).toBe(true);
    // Another service account's file in an HTML page: its lines are in every such file.
    writeFileSync(file, '<pre>\n  &quot;type&quot;: &quot;service_account&quot;,\n</pre>\n');
    expect((await fileHoldsAny(file, needles, undefined, masking))?.held).toBe(false);
  });

  it('makes no HTML/XML entity or doubled-quote forms of a value that is not UTF-8 (no escaper of text prints it so)', () => {
    // 128 KB of random bytes has every one of & < > " ': each such form was 128-256 KB of every masker.
    const value = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`a&b<c>d"e'f-Secret`)]);
    const forms = formsOf(value);
    expect(forms.filter((form) => /&amp;|&lt;|&gt;|&quot;|d""e|e''f/.test(form))).toEqual([]);
    // Its other forms are still made: as it is read (U+FFFD), as Latin-1, JSON-escaped, in base64.
    expect(forms).toContain(value.toString('utf8'));
    expect(forms).toContain(value.toString('latin1'));
    expect(forms).toContain(value.toString('base64'));
  });

  it('makes none of the forms only text is printed in of a part of a binary value (read as UTF-8, with U+FFFD)', () => {
    // What partsOf takes of 128 KB of random bytes: 32 `key=value` lines of a thousand characters each.
    const part = `\ufffd\ufffdA&b<c>d"e'f\u00e9-Secret-${'x'.repeat(40)}`;
    const forms = formsOf(part);
    // No entities, doubled quotes, XML character references, PyYAML or upper-case `\u` escapes...
    expect(forms.filter((form) => /&amp;|&lt;|&#\d+;|d""e|e''f|\\u00E9|\\xE9/.test(form))).toEqual([]);
    // ... nor base64 in base64.
    const twice = new Set(twiceEncoded(part));
    expect(twice.size).toBeGreaterThan(0);
    expect(forms.filter((form) => twice.has(form))).toEqual([]);
    expect(forms).toContain(part);
    expect(forms).toContain(Buffer.from(part).toString('base64'));
  });

  it('masks a value with non-ASCII or control characters as PyYAML, Java and ElementTree escape it (\\xE4, \\u03A9, \\U0001F511, \\e, &#228;)', () => {
    const unicode = 'pässwörd-Ωmega-密码-Zq7Xw9Kp';
    const emoji = 's3cr3t-\u{1F511}-Zq7Xw9Kp';
    const mask = createMasker([unicode, emoji, 'ab\tcd\x1b-Zq7Xw9Kp', 'pässwörd\x07-Zq7Xw9Kp']);
    for (const line of [
      // yaml.dump / yaml.safe_dump (allow_unicode=False, the default).
      'k: "p\\xE4ssw\\xF6rd-\\u03A9mega-\\u5BC6\\u7801-Zq7Xw9Kp"',
      'k: "s3cr3t-\\U0001F511-Zq7Xw9Kp"',
      'k: "ab\\tcd\\e-Zq7Xw9Kp"',
      'k: "p\\xE4ssw\\xF6rd\\a-Zq7Xw9Kp"',
      // yaml.dump(allow_unicode=True) of a value with a control character.
      'k: "pässwörd\\a-Zq7Xw9Kp"',
      // Jackson with ESCAPE_NON_ASCII, Java's Properties.store (upper-case hex, surrogate pairs).
      '{"k":"p\\u00E4ssw\\u00F6rd-\\u03A9mega-\\u5BC6\\u7801-Zq7Xw9Kp"}',
      '{"k":"s3cr3t-\\uD83D\\uDD11-Zq7Xw9Kp"}',
      // ElementTree's tostring and write (US-ASCII unless told): character references.
      '<cfg password="p&#228;ssw&#246;rd-&#937;mega-&#23494;&#30721;-Zq7Xw9Kp" />',
      '<cfg>s3cr3t-&#128273;-Zq7Xw9Kp</cfg>',
    ]) {
      expect(mask(line), line).not.toContain('Zq7Xw9Kp');
    }
  });

  it('masks base64 of a JSON document holding the value in base64 or JSON-escaped (a Kubernetes .dockerconfigjson)', () => {
    const token = 'ghp_abcdef0123456789Zq7Xw9Kp';
    const quoted = `Ab&cd'ef"gh<ij>Zq7Xw9Kp`;
    const unicode = 'pässwörd-Ωmega-密码-Zq7Xw9Kp';
    const mask = createMasker([token, quoted, unicode]);
    for (const [line, document] of [
      // base64 of {"auths": {"ghcr.io": {"auth": base64("bot:" + token)}}}: kubectl get secret -o jsonpath.
      [
        'eyJhdXRocyI6IHsiZ2hjci5pbyI6IHsiYXV0aCI6ICJZbTkwT21kb2NGOWhZbU5rWldZd01USXpORFUyTnpnNVduRTNXSGM1UzNBPSJ9fX0=',
        2,
      ],
      // base64 of Python's json.dumps({"token": value}): `\\"`, and `\\u00e4` for what is not ASCII.
      ['eyJ0b2tlbiI6ICJBYiZjZCdlZlwiZ2g8aWo+WnE3WHc5S3AifQ==', 1],
      ['eyJ0b2tlbiI6ICJwXHUwMGU0c3N3XHUwMGY2cmQtXHUwM2E5bWVnYS1cdTViYzZcdTc4MDEtWnE3WHc5S3AifQ==', 1],
    ] as const) {
      const masked = mask(line);
      expect(masked, line).toContain(MASK);
      // What is left in clear decodes (once or twice) to no part of the value.
      let clear = masked
        .split(MASK)
        .map((part) =>
          Buffer.from(part.slice(0, part.length - (part.length % 4)), 'base64').toString('latin1'),
        );
      if (document === 2)
        clear = clear
          .flatMap((text) => text.match(/[A-Za-z0-9+/]{8,}/g) ?? [])
          .map((run) => Buffer.from(run, 'base64').toString('latin1'));
      expect(clear.join('|'), line).not.toMatch(/Zq7X|w9Kp|abcdef01|Ab&cd|ssw/);
    }
  });

  it('finds base64 of a JSON document holding the value in base64 in the output archive', async () => {
    const dir = makeTempDir('agentd-unit-mask-twice-');
    const file = join(dir, 'secret.yaml');
    const { needles, masking } = await outputSearch([new SecretValue('ghp_abcdef0123456789Zq7Xw9Kp')]);
    writeFileSync(
      file,
      'data:\n  .dockerconfigjson: eyJhdXRocyI6IHsiZ2hjci5pbyI6IHsiYXV0aCI6ICJZbTkwT21kb2NGOWhZbU5rWldZd01USXpORFUyTnpnNVduRTNXSGM1UzNBPSJ9fX0=\n',
    );
    expect((await fileHoldsAny(file, needles, undefined, masking))?.held).toBe(true);
  });

  it('masks a value with spaces or tabs around it wherever it is printed without them (echo $V, .strip())', () => {
    // A file pasted with a trailing space and tab, a variable with a leading space: word splitting,
    // `.strip()`, `.trim()` and `read` drop them, and what was printed was the rest, in clear.
    for (const value of [
      'S3cr3t-with-space-around \t',
      ' S3cr3t-with-space-around',
      '\tS3cr3t-with-space-around \n',
    ]) {
      const mask = createMasker([value]);
      for (const line of [
        'token: S3cr3t-with-space-around',
        '{"token":"S3cr3t-with-space-around"}',
        Buffer.from('S3cr3t-with-space-around').toString('base64'),
        Buffer.from('S3cr3t-with-space-around').toString('hex'),
      ]) {
        const masked = mask(line);
        expect(masked, `${JSON.stringify(value)} in ${line}`).toContain(MASK);
        expect(masked).not.toMatch(/S3cr3t|UzNjcjN0|533363723374/);
      }
    }
  });

  it('finds a value with spaces around it in the output archive without them (echo $V > /agentd/out/f)', async () => {
    const dir = makeTempDir('agentd-unit-mask-space-');
    const file = join(dir, 'out.tar');
    const { needles, masking } = await outputSearch([new SecretValue('S3cr3t-with-space-around \t')]);
    writeFileSync(file, 'header\0\0\0S3cr3t-with-space-around\n');
    expect((await fileHoldsAny(file, needles, undefined, masking))?.held).toBe(true);
    writeFileSync(file, `header\0\0\0${Buffer.from('S3cr3t-with-space-around').toString('base64')}\n`);
    expect((await fileHoldsAny(file, needles, undefined, masking))?.held).toBe(true);
    writeFileSync(file, 'header\0\0\0nothing here\n');
    expect((await fileHoldsAny(file, needles, undefined, masking))?.held).toBe(false);
  });

  it('masks Latin-1 bytes as they arrive in UTF-8-decoded output, and as UTF-8 after conversion', () => {
    const latin1 = Buffer.from('pässwörd-Ä1', 'latin1');
    const mask = createMasker([latin1]);
    // Printed raw: the reader decodes the invalid bytes to U+FFFD, the same way the masker does.
    const [raw] = printed(Buffer.concat([Buffer.from('pw='), latin1, Buffer.from('\n')]));
    expect(mask(raw ?? '')).toBe(`pw=${MASK}`);
    // Converted by the agent (iconv -f latin1 -t utf-8).
    expect(mask('pw=pässwörd-Ä1')).toBe(`pw=${MASK}`);
  });

  it('masks base64 (padded or not), URL-encoding (either hex case) and JSON escaping', () => {
    const value = 'a/b+c d?e=f\ng"h';
    const mask = createMasker([value]);
    const b64 = Buffer.from(value).toString('base64');
    const url = encodeURIComponent(value);
    for (const form of [
      b64,
      b64.replace(/=+$/, ''),
      url,
      url.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()),
      JSON.stringify(value).slice(1, -1),
    ]) {
      expect(mask(`[${form}]`), form).toBe(`[${MASK}]`);
    }
    expect(mask(JSON.stringify({ token: value }))).toBe(`{"token":"${MASK}"}`);
  });

  it('masks hex of the value in either case, also inside the hex of a longer text (xxd -p, .hex())', () => {
    const value = 'ghp_Hex4Secret9Value';
    const mask = createMasker([`${value}\n`]);
    const hex = Buffer.from(value).toString('hex');
    for (const form of [hex, hex.toUpperCase(), Buffer.from(`${value}\n`).toString('hex')]) {
      expect(mask(`[${form}]`), form).toBe(`[${MASK}]`);
    }
    // `printf 'TOKEN=%s' "$T" | xxd -p`: the value's bytes start on a byte boundary of the longer hex.
    expect(mask(Buffer.from(`TOKEN=${value};`).toString('hex'))).toBe(
      `${Buffer.from('TOKEN=').toString('hex')}${MASK}${Buffer.from(';').toString('hex')}`,
    );
  });

  /** Every run of base64 characters in the text, decoded at each of the 4 alignments: what a reader gets back. */
  function decodedRuns(text: string): Buffer[] {
    return (text.match(/[A-Za-z0-9+/]{4,}/g) ?? []).flatMap((run) =>
      [0, 1, 2, 3].map((shift) => Buffer.from(run.slice(shift), 'base64')),
    );
  }

  it('masks base64 of the value inside longer base64: after any prefix, before any suffix (HTTP Basic auth)', () => {
    const value = 'sk-ant-api03-x7Fq2LmN9pR4sT8vW1yZ3bC6dE0gH5jK2nP7rU4wX9zA1cD6fG3hJ8kL5mN0qS2t';
    const mask = createMasker([value]);
    for (let prefix = 0; prefix < 8; prefix++) {
      for (let suffix = 0; suffix < 4; suffix++) {
        const bytes = Buffer.concat([
          Buffer.from('user:xyz'.slice(0, prefix)),
          Buffer.from(value),
          Buffer.from('\n!?'.slice(0, suffix)),
        ]);
        const line = `Authorization: Basic ${bytes.toString('base64')}`;
        const out = mask(line);
        expect(out, `prefix ${prefix} suffix ${suffix}`).toContain(MASK);
        for (const decoded of decodedRuns(out)) expect(decoded.includes(value.slice(0, 12))).toBe(false);
      }
    }
    // What `echo "$TOKEN" | base64 -w0` prints: the value and a newline.
    const echoed = mask(Buffer.from(`${value}\n`).toString('base64'));
    expect(echoed.startsWith(MASK)).toBe(true);
    for (const decoded of decodedRuns(echoed)) expect(decoded.includes(value.slice(0, 12))).toBe(false);
  });

  it("masks URL-safe base64 (a JWT, urlsafe_b64encode, 'base64url'): alone, with or without padding, inside a longer text", () => {
    // Values whose standard base64 has `+` or `/` (a `~`, `?` or `>` at a third byte; raw key bytes),
    // which the URL-safe alphabet prints as `-` and `_`.
    const values = ['pa~s?w>rd~Secret?Value~x', Buffer.from('fbff3e7f00fffeef8a', 'hex')];
    for (const value of values) {
      const bytes = Buffer.from(value);
      const mask = createMasker([value]);
      const urlSafe = bytes.toString('base64url');
      expect(urlSafe).toMatch(/[-_]/);
      const padding = '='.repeat((4 - (urlSafe.length % 4)) % 4);
      expect(mask(`token=${urlSafe};`)).toBe(`token=${MASK};`);
      expect(mask(`token=${urlSafe}${padding};`)).toBe(`token=${MASK}${padding};`);
      for (let prefix = 0; prefix < 3; prefix++) {
        // A JWT's payload: the value after any number of bytes of JSON.
        const payload = Buffer.concat([Buffer.from('{"k":"'.slice(0, prefix + 4)), bytes, Buffer.from('"}')]);
        const out = mask(`eyJhbGciOiJIUzI1NiJ9.${payload.toString('base64url')}.sig`);
        expect(out, `prefix ${prefix}`).toContain(MASK);
        for (const run of out.match(/[A-Za-z0-9_-]{4,}/g) ?? [])
          for (const shift of [0, 1, 2, 3])
            expect(Buffer.from(run.slice(shift), 'base64url').includes(bytes.subarray(0, 6))).toBe(false);
      }
    }
  });

  it('masks each line of base64 wrapped at 76 (base64) or 64 (openssl base64) columns', () => {
    const value = `ghp_${'Z8xY7wV6uT5sR4qP3oN2mL1kJ0iH9gF8eD7cB6aA5zY4xW3vU2tS1rQ0pO9nM8lK7jI6hG5fE4'}`;
    const mask = createMasker([value]);
    for (const width of [76, 64]) {
      for (const text of [value, `${value}\n`, `x${value}`, `xy${value}\n`]) {
        const encoded = Buffer.from(text).toString('base64');
        const lines = encoded.match(new RegExp(`.{1,${width}}`, 'g')) ?? [];
        expect(lines.length).toBeGreaterThan(1);
        const out = lines.map(mask);
        // Joined back, what is left decodes to no long part of the value.
        for (const decoded of decodedRuns(out.join('')))
          expect(decoded.includes(value.slice(0, 12))).toBe(false);
        for (const line of out) expect(line, `${width} ${JSON.stringify(text)}`).toContain(MASK);
      }
    }
  });

  it('masks URL encoding as RFC 3986 (Python quote, curl --data-urlencode) and form encoding (space as +)', () => {
    const mask = createMasker(['hunter2!Passw0rd', "my secret pass(1)'*"]);
    expect(mask('postgres://app:hunter2%21Passw0rd@db/app')).toBe(`postgres://app:${MASK}@db/app`);
    expect(mask('pw=hunter2%21Passw0rd')).toBe(`pw=${MASK}`);
    expect(mask('pw=hunter2!Passw0rd')).toBe(`pw=${MASK}`);
    for (const form of [
      'my+secret+pass%281%29%27%2A',
      'my%20secret%20pass%281%29%27%2A',
      'my+secret+pass%281%29%27%2a',
      "my%20secret%20pass(1)'*",
    ]) {
      expect(mask(`q=${form}&x=1`), form).toBe(`q=${MASK}&x=1`);
    }
  });

  it('masks no part of an encoding shorter than 8 characters', () => {
    const mask = createMasker(['abcd']);
    // The base64 core of "abcd" is "YWJjZ" (5 characters): base64 of other text that starts the same stays.
    expect(mask('YWJjZGVm')).toBe('YWJjZGVm');
    expect(mask('YWJjZA==')).toBe(MASK);
  });

  it('hides overlapping values whole, where masking one first would leave the rest of the other', () => {
    const mask = createMasker(['abcdefgh1234', '1234wxyz5678']);
    // Either one masked first breaks the match of the other.
    expect(mask('>abcdefgh1234wxyz5678<')).toBe(`>${MASK}<`);
    expect(mask('1234wxyz5678 abcdefgh1234')).toBe(`${MASK} ${MASK}`);
    // A value repeated with overlap, and twice in a row (a mask each).
    const repeated = createMasker(['zzzz']);
    expect(repeated('zzzzzz!')).toBe(`${MASK}!`);
    expect(createMasker(['tok-1234'])('tok-1234tok-1234')).toBe(`${MASK}${MASK}`);
  });

  it('masks a value inside a longer text whose base64 is wrapped, wherever the wrap falls (base64 .env)', () => {
    const token = 'ghp_0123456789abcdefghijABCDEFGHIJ012345';
    const mask = createMasker([token]);
    const encoded = (text: string) => Buffer.from(text).toString('base64');
    // Every 8 characters of the token's base64 at each of its 3 alignments: none may stay visible.
    const pieces = [0, 1, 2].flatMap((offset) => {
      const core = encoded('\0'.repeat(offset) + token).slice(Math.ceil((offset * 8) / 6), -4);
      return Array.from({ length: core.length - 7 }, (_, i) => core.slice(i, i + 8));
    });
    for (const width of [76, 64]) {
      for (let before = 0; before < 80; before++) {
        const file = `${'#'.repeat(before)}\nTOKEN=${token}\nOTHER=1\n${'x'.repeat(50)}\n`;
        const lines = encoded(file).match(new RegExp(`.{1,${width}}`, 'g')) ?? [];
        const shown = lines.map(mask).join('\n');
        const visible = pieces.filter((piece) => shown.includes(piece));
        expect(visible, `${width} columns, ${before} bytes before`).toEqual([]);
      }
    }
    // Lines of base64 that are not the value's stay as they are.
    const other = encoded('x'.repeat(200)).slice(0, 76);
    expect(mask(other)).toBe(other);
  });

  it('masks URL encoding of any choice of characters: Python quote keeps /, WHATWG userinfo keeps +', () => {
    const token = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
    const mask = createMasker([token]);
    for (const userinfo of [
      'wJalrXUtnFEMI/K7MDENG%2BbPxRfiCYEXAMPLEKEY', // urllib.parse.quote
      'wJalrXUtnFEMI%2FK7MDENG+bPxRfiCYEXAMPLEKEY', // new URL().password, Go url.UserPassword
      'wJalrXUtnFEMI%2fK7MDENG%2bbPxRfiCYEXAMPLEKEY', // lower-case hex
      '%77JalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', // an encoder that encodes a letter
    ]) {
      expect(mask(`https://x-access-token:${userinfo}@github.com/o/r.git`), userinfo).toBe(
        `https://x-access-token:${MASK}@github.com/o/r.git`,
      );
    }
    // Form encoding in part: a space as + where other characters stay.
    const spaced = createMasker(['correct horse/battery staple']);
    expect(spaced('q=correct+horse/battery+staple&x=1')).toBe(`q=${MASK}&x=1`);
    // A value with a literal + is still found where + is not a space.
    expect(mask(`${token}%20`)).toBe(`${MASK}%20`);
    // Non-ASCII: the escapes of its UTF-8 bytes, one run per character.
    const accented = createMasker(['pässwörd-1234']);
    expect(accented('u=p%C3%A4ssw%C3%B6rd-1234;')).toBe(`u=${MASK};`);
  });

  it('masks values printed with escapes and quoting: JSON \\/ and \\u, shell, repr', () => {
    const token = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
    expect(createMasker([token])(`{"secret":"${token.replaceAll('/', '\\/')}"}`)).toBe(
      `{"secret":"${MASK}"}`,
    );
    const password = `p@ss'w0rd!\\x$HOME"q\`b+/=`;
    const mask = createMasker([password]);
    for (const printed of [
      `+ : 'p@ss'\\''w0rd!\\x$HOME"q\`b+/='`, // bash set -x
      `'p@ss'"'"'w0rd!\\x$HOME"q\`b+/='`, // Python shlex.quote
      `'p@ss\\'w0rd!\\\\x$HOME"q\`b+/='`, // Python repr, Node inspect
      `declare -- X="p@ss'w0rd!\\\\x\\$HOME\\"q\\\`b+/="`, // declare -p
    ]) {
      expect(mask(printed), printed).not.toMatch(/w0rd|HOME|ss'|q`b/);
    }
    // Python's json.dumps escapes what is not ASCII.
    expect(createMasker(['naïve-secret-ü'])('{"k": "na\\u00efve-secret-\\u00fc"}')).toBe(`{"k": "${MASK}"}`);
    // Go's json.Marshal escapes <, > and & (and U+2028, U+2029), and leaves other non-ASCII as it is.
    expect(createMasker(['p&ss<w0rd>-ü\u2028x'])('{"k":"p\\u0026ss\\u003cw0rd\\u003e-ü\\u2028x"}')).toBe(
      `{"k":"${MASK}"}`,
    );
  });

  it('masks printf %q of a value with any punctuation, and takes such lines one by one', () => {
    // As bash 5.2's printf %q prints each value.
    for (const [value, printed] of [
      ['Secr3tValue!MoreSecretText', 'Secr3tValue\\!MoreSecretText'],
      [
        'a&b(c)d*e,f;g<h>i?j[k]l^m{n|o}p-1',
        'a\\&b\\(c\\)d\\*e\\,f\\;g\\<h\\>i\\?j\\[k\\]l\\^m\\{n\\|o\\}p-1',
      ],
      [`p@ss'w0rd"x$y z`, `p@ss\\'w0rd\\"x\\$y\\ z`],
      [`tok'en"value-123`, `tok\\'en\\"value-123`],
      ['back\\slash!and~more', 'back\\\\slash\\!and~more'],
    ] as const) {
      const mask = createMasker([value]);
      expect(mask(`export X=${printed}; echo`), printed).toBe(`export X=${MASK}; echo`);
      // Whole lines at once would pass it by: the line is masked on its own.
      expect(mask.needsLines(Buffer.from(`ok\nX=${printed}\n`)), printed).toBe(true);
      // A line of the value's .env file, printed so on its own.
      expect(createMasker([`A=1\nX=${value}\n`])(`X=${printed}`), printed).toBe(MASK);
    }
    // Where printf %q prints what quotedForms has, or no backslash at all, lines stay as they are:
    // JSON's \" and \\ in every block would each cost a view.
    const plain = createMasker(['plain-token-1234567890', 'only"quote$and`tick', "only'quote"]);
    expect(plain.needsLines(Buffer.from('{"log":"say \\"hi\\" \\\\ \\(x\\)"}\n'))).toBe(false);
    expect(plain('only\\"quote\\$and\\`tick only\\\'quote')).toBe(`${MASK} ${MASK}`);
    // Nor does a line with `\!` or `\(` not between the letters of a value (a regular expression).
    const bang = createMasker(['Secr3tValue!MoreSecretText', 'x(1)y-token-value']);
    expect(bang.needsLines(Buffer.from('echo hi\\! \\(a\\|b\\)\n'))).toBe(false);
    // Backslashes elsewhere in a line with a value's sign stay.
    expect(createMasker(['Secr3tValue!More'])('a\\!b \\"Secr3tValue\\!More\\"')).toBe(`a\\!b \\"${MASK}\\"`);
  });

  it("masks bash's ANSI-C quoting $'...' of a value with control characters or non-ASCII (printf %q, declare -p, @Q, set -x)", () => {
    // As bash 5.2 prints each value, in C.UTF-8 and (non-ASCII in octal) in the C locale.
    for (const [value, printed] of [
      [`Ab12'Cd34"Ef56\\Gh78\nIj90`, `$'Ab12\\'Cd34"Ef56\\\\Gh78\\nIj90'`],
      ["Ab12\tCd34'Ef56", "$'Ab12\\tCd34\\'Ef56'"],
      ['Ab12\x1bCd34\x01Ef56\x7fGh78', "$'Ab12\\ECd34\\001Ef56\\177Gh78'"],
      ['Ab12\x07\x08\x0b\x0cCd34', "$'Ab12\\a\\b\\v\\fCd34'"],
      ['pässwörd-Ä1x', "$'p\\303\\244ssw\\303\\266rd-\\303\\2041x'"],
      ['Ab12\u0085Cd34\u00a0Ef', "$'Ab12\\302\\205Cd34\u00a0Ef'"],
      [Buffer.from('caf\xe9-Ab12Cd34', 'latin1'), "$'caf\\351-Ab12Cd34'"],
      ['Ab12\'Cd\r\nEf56"Gh', `$'Ab12\\'Cd\\r\\nEf56"Gh'`],
    ] as const) {
      const mask = createMasker([value]);
      for (const line of [`declare -x X=${printed}`, `+ : ${printed}`, `${printed}; echo`]) {
        expect(mask(line), line).toBe(line.replace(printed.slice(2, -1), MASK));
      }
      // Inside a longer printed value (`printf %q "user:$PASS"`), and ending in a newline (read from a
      // file).
      expect(mask(`$'user:${printed.slice(2)}`)).toBe(`$'user:${MASK}'`);
      const file = createMasker([Buffer.concat([Buffer.from(value), Buffer.from('\n')])]);
      expect(file(`${printed.slice(0, -1)}\\n'`)).toBe(`$'${MASK}'`);
    }
    // set -x prints a newline as it is: each line of the value, its quotes quoted.
    const multi = createMasker([`Ab12'Cd34"Ef56\\Gh78\nIj90`]);
    expect(multi(`+ : 'Ab12'\\''Cd34"Ef56\\Gh78`)).toBe(`+ : '${MASK}`);
    expect(multi(`x='Ab12'"'"'Cd34"Ef56\\Gh78`)).toBe(`x='${MASK}`);
    // A PEM key as printf %q prints it (one line), with its trailing newline.
    const pem = createMasker([`${PEM}\n`]);
    expect(pem(`KEY=$'${PEM.replaceAll('\n', '\\n')}\\n'`)).toBe(`KEY=$'${MASK}'`);
  });

  it('masks a value with control characters or non-ASCII as Python, Node, Go and coreutils quote it', () => {
    const value = `Ab12'Cd34"Ef56\\Gh78\x1b\nIj90\u0085é`;
    const mask = createMasker([value]);
    for (const printed of [
      `'Ab12\\'Cd34"Ef56\\\\Gh78\\x1b\\nIj90\\x85é'`, // Python repr
      `b'Ab12\\'Cd34"Ef56\\\\Gh78\\x1b\\nIj90\\xc2\\x85\\xc3\\xa9'`, // Python repr of bytes
      '`Ab12\'Cd34"Ef56\\\\Gh78\\x1B\\nIj90\\x85é`', // Node inspect (console.log({ k }))
      `"Ab12'Cd34\\"Ef56\\\\Gh78\\x1b\\nIj90\\u0085é"`, // Go %q
      `'Ab12'\\''Cd34"Ef56\\Gh78'$'\\033\\n''Ij90'$'\\302\\205''é'`, // ls, cat: 'NAME': No such file
    ]) {
      expect(mask(`k: ${printed}`), printed).toBe(
        `k: ${printed[0] === 'b' ? 'b' : ''}${printed.at(-1)}${MASK}${printed.at(-1)}`,
      );
    }
    // Python in double quotes: a value with a quote and an ESC.
    expect(createMasker(["Ab12\x1bCd34'Ef56"])(`{'k': "Ab12\\x1bCd34'Ef56"}`)).toBe(`{'k': "${MASK}"}`);
    // Node in backticks: a value with both quotes and a backslash, and no control character.
    expect(createMasker([`Ab12'Cd34"Ef56\\Gh`])('{ k: `Ab12\'Cd34"Ef56\\\\Gh` }')).toBe(`{ k: \`${MASK}\` }`);
  });

  it('masks printf %q and ANSI-C quoting with colours woven in (grep --color=always, a highlighter)', () => {
    const mask = createMasker(['Secr3tValue!MoreSecretText', 'Ab12\tCd34\x1bEf56']);
    // grep --color=always Value over a line of printf %q output; a highlighter colouring the escape.
    expect(mask('X=Secr3t\x1b[01;31m\x1b[KValue\x1b[m\x1b[K\\!MoreSecretText; y')).toBe(`X=${MASK}; y`);
    expect(mask('X=Secr3tValue\x1b[35m\\!\x1b[0mMoreSecretText')).toBe(`X=${MASK}`);
    expect(mask("X=$'Ab12\x1b[35m\\t\x1b[0mCd34\x1b[35m\\E\x1b[0mEf56'")).toBe(`X=$'${MASK}'`);
    // Colours and backslashes elsewhere stay.
    expect(mask('\x1b[1ma\\!b\x1b[0m Secr3tValue\\!MoreSecretText')).toBe(`\x1b[1ma\\!b\x1b[0m ${MASK}`);
  });

  it('leaves ordinary lines with ANSI-C quoting, repr and escapes of other text alone', () => {
    const mask = createMasker([
      `Ab12'Cd34"Ef56\\Gh78\nIj90`,
      'Ab12\tCd34\x1bEf56',
      'pässwörd-Ä1x',
      `${PEM}\n`,
      'Secr3tValue!MoreSecretText',
    ]);
    for (const line of [
      "IFS=$'\\n\\t'; printf '%s\\n' \"$x\"; echo $'\\E[1mbold\\E[0m'",
      "declare -- PS1=$'\\\\u@\\\\h:\\\\w\\\\$ '",
      '{"msg":"line one\\nline two\\t\\"quoted\\" \\\\ \\u001b[0m","n":1}',
      "/^(?:\\\\n|\\\\t|[\\\\x00-\\\\x1f]|\\\\'|\\\\303)+$/",
      "print(repr('tab\\there\\n')) -> 'tab\\there\\n'",
      "b'\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR'",
      "ls: cannot access 'a'$'\\n''b': No such file or directory",
      '\x1b[1;32m✓\x1b[0m tests passed \\! \\(1\\)',
    ]) {
      expect(mask(line), line).toBe(line);
    }
  });

  it('masks a value with terminal escape sequences inside it (grep --color=always)', () => {
    const token = 'ghp_0123456789abcdefghijABCDEFGHIJ012345';
    const mask = createMasker([token]);
    const colored = `config: \x1b[01;31m\x1b[Kghp_\x1b[m\x1b[K0123456789abcdefghijABCDEFGHIJ012345 end`;
    expect(mask(colored)).toBe(`config: \x1b[01;31m\x1b[K${MASK} end`);
    // An OSC hyperlink around it.
    expect(mask(`\x1b]8;;https://x\x07${token}\x1b]8;;\x07`)).not.toContain('0123456789');
    expect(mask('plain \x1b[1mbold\x1b[0m text')).toBe('plain \x1b[1mbold\x1b[0m text');
    // `tput sgr0` (xterm, ncurses) ends a colour with `\e(B\e[m`: a charset escape inside the value too.
    const sgr0 = '\x1b(B\x1b[m';
    expect(mask(`${'\x1b[1m'}ghp_${sgr0}0123456789abcdefghij${'\x1b[1m'}ABCDEFGHIJ012345${sgr0} end`)).toBe(
      `\x1b[1m${MASK}${sgr0} end`,
    );
  });

  it('masks the parts of a structured credential printed on their own: JSON strings, key = value lines', () => {
    const pem = `${PEM}\n`;
    const account = JSON.stringify(
      {
        type: 'service_account',
        private_key_id: 'a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2',
        private_key: pem,
        token_uri: 'https://oauth2.googleapis.com/token',
      },
      null,
      2,
    );
    const mask = createMasker([account]);
    // jq -r .private_key prints the key's lines; jq .private_key one JSON string.
    for (const line of printed(Buffer.from(pem))) if (line.length >= 16) expect(mask(line)).toBe(MASK);
    expect(mask(JSON.stringify(pem))).toBe(`"${MASK}"`);
    expect(mask('id a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2')).toBe(`id ${MASK}`);
    // Short strings and URLs are not secrets of their own.
    expect(mask('service_account at https://oauth2.googleapis.com/token')).toBe(
      'service_account at https://oauth2.googleapis.com/token',
    );
    const aws = createMasker([
      '[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n',
    ]);
    expect(aws('export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY')).toBe(
      `export AWS_SECRET_ACCESS_KEY=${MASK}`,
    );
    const npmrc = createMasker(['//registry.npmjs.org/:_authToken=npm_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8']);
    expect(npmrc('Authorization: Bearer npm_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8')).toBe(
      `Authorization: Bearer ${MASK}`,
    );
  });

  it('masks a 64 KiB line of a hundred thousand overlapping matches, in a view too, without throwing', () => {
    for (const [values, line] of [
      [['aaaa', 'aaaaa', 'aaaaaa'], `\x1b[m${'a'.repeat(65530)}`],
      [['aaaa\naaaaa\naaaaaa'], `%41${'a'.repeat(65530)}`],
      [['a a a a'], 'a+'.repeat(32768)],
    ] as const) {
      const masked = createMasker(values)(line);
      expect(masked).not.toContain('aaaa');
    }
  });

  it('masks lines with a long value’s thousands of forms in one pass of each line', () => {
    // A 100 KB value has about 12,000 forms (the lines of its wrapped base64): a search each cost every
    // line of output 200 µs (colourful output, which is masked line by line, at 0.4 MB/s).
    let seed = 11;
    const value = Buffer.from(
      Array.from({ length: 75_000 }, () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return (seed >>> 16) & 0xff;
      }),
    ).toString('base64');
    const mask = createMasker([value]);
    expect(mask.forms.length).toBeGreaterThan(10_000);
    const line = '\x1b[32m✓\x1b[0m compiled src/some/module.ts in 12 ms (cache hit)';
    // Against a token's masker in the same run (the fastest of five each): some 10x (a hashed look-up
    // per position); a search per form was over 1,000x.
    const token = createMasker(['sk-test-1234567890abcdef']);
    const lines = (masker: (text: string) => string) => () => {
      for (let i = 0; i < 10_000; i++)
        if (masker(line) !== line) throw new Error('masked a line without a form');
    };
    expect(fastest(lines(mask), 5) / fastest(lines(token), 5)).toBeLessThan(60);
    // Each form is still found: a line of its wrapped base64, its whole, and overlapping ones.
    const wrapped = Buffer.from(value)
      .toString('base64')
      .slice(76 * 300, 76 * 301);
    expect(mask(`> ${wrapped}`)).toBe(`> ${MASK}`);
    expect(mask(`token=${value};`)).toBe(`token=${MASK};`);
    expect(mask(`${wrapped.slice(0, 40)}${wrapped}`)).toBe(`${wrapped.slice(0, 40)}${MASK}`);
  });

  it('leaves short values and ordinary text alone', () => {
    const mask = createMasker(['abc', '', 'x\ny', 'long-enough-value']);
    expect(mask('abc x y ok')).toBe('abc x y ok');
    expect(mask('the long-enough-value here')).toBe(`the ${MASK} here`);
  });
});

describe('masking a session of many long credentials', () => {
  // Each long value has thousands of forms: 40 of 32 KB (1.3 MB, within what a command's environment
  // holds) came to some 140,000, and a Math.max(...forms) ended the session error, "Maximum call stack
  // size exceeded", before its container was made.
  it('builds a masker whatever the number of forms, and masks each value', () => {
    const values = Array.from({ length: 40 }, (_, i) => Buffer.from(randomText(i, 32_000)));
    const mask = createMasker(values);
    expect(mask.forms.length).toBeGreaterThan(130_000);
    expect(mask(`token=${values[37]?.toString()} end`)).toBe(`token=${MASK} end`);
  });
});

/** Letters and digits from a fixed generator: many distinct forms, the same in every run. */
function randomText(seedOf: number, length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let seed = (seedOf + 1) * 0x9e3779b9;
  let text = '';
  for (let i = 0; i < length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    text += alphabet[(seed >>> 16) % alphabet.length];
  }
  return text;
}

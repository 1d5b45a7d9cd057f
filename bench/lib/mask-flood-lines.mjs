// Credentials of the three kinds a session is commonly given (a PEM key, a JSON service account file
// holding it, a token), and 60 KB output lines that make their masker work hardest per byte, next to
// random printable text (bench/mask-flood.mjs, test/reliability/hostile-output-masking.test.ts).
import { generateKeyPairSync, randomBytes } from 'node:crypto';

export const LINE_BYTES = 60 * 1024;

export function credentials() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const json = JSON.stringify(
    {
      type: 'service_account',
      project_id: 'flood-project-1234',
      private_key_id: randomBytes(20).toString('hex'),
      private_key: pem,
      client_email: 'flood@flood-project-1234.iam.gserviceaccount.com',
      client_id: '123456789012345678901',
    },
    null,
    2,
  );
  const token = `ghp_${randomBytes(27).toString('base64').replace(/[+/]/g, 'x').slice(0, 36)}`;
  return [pem, json, token];
}

// Flat, as a line decoded from the output's bytes is (a repeated string is a tree of pieces, slow to
// read a character at a time).
const fill = (unit) =>
  Buffer.from(unit.repeat(Math.ceil(LINE_BYTES / unit.length)).slice(0, LINE_BYTES)).toString();

/**
 * Lines by name. `forms`: the masker's forms, longest first; the worst cases repeat the starts of them
 * (where a search of them compares most) woven with what makes each view of a line differ from it:
 * percent escapes, escape sequences, `printf %q`'s backslashes, `+`, JSON's backslashes.
 */
export function floodLines(values, forms) {
  const token = values[2];
  const starts = [...new Set(forms.map((form) => form.slice(0, 12)))];
  let r = 0;
  const random = Buffer.alloc(LINE_BYTES);
  const bytes = randomBytes(LINE_BYTES);
  for (const b of bytes) random[r++] = 0x20 + (b % 95);
  return {
    random: random.toString('latin1'),
    base64: randomBytes((LINE_BYTES * 3) / 4).toString('base64'),
    'red-team': fill(`%41%42${token.slice(0, 5)}`),
    percent: fill(`%41%42${token.slice(0, 12)}%2B`),
    escapes: fill(`\x1b[1m${token.slice(0, 8)}\x1b[m%41\\!+`),
    backslash: fill(`\\n\\"${token.slice(0, 6)}\\ \\!`),
    starts: fill(starts.map((s, i) => `${s}${['%41', '\x1b[m', '\\!', '+', '\\n'][i % 5]}`).join('')),
    'pem-lines': fill(`${values[0].split('\n')[1].slice(0, 40)}%2F\\n`),
  };
}

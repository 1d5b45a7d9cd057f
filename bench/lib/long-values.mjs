// Long credential values of the kinds the masking benchmarks measure (bench/mask-build.mjs,
// bench/mask-turns.mjs): 128 KB each of random bytes, base64, a PEM key, and a JSON service account
// file holding a PEM key.
import { randomBytes } from 'node:crypto';

export const SIZE = 128 * 1024;

const pem = () => {
  const base64 = randomBytes(Math.floor((((SIZE - 80) * 3) / 4) * (64 / 65))).toString('base64');
  return Buffer.from(
    `-----BEGIN PRIVATE KEY-----\n${base64.match(/.{1,64}/g).join('\n')}\n-----END PRIVATE KEY-----\n`,
  );
};

/** Makers of one value of each kind, by name. */
export const kinds = {
  random: () => randomBytes(SIZE),
  base64: () => Buffer.from(randomBytes((SIZE * 3) / 4).toString('base64')),
  pem,
  json: () =>
    Buffer.from(
      JSON.stringify(
        {
          type: 'service_account',
          project_id: 'bench-project-1234',
          private_key_id: randomBytes(20).toString('hex'),
          private_key: pem().toString(),
          client_email: 'bench@bench-project-1234.iam.gserviceaccount.com',
        },
        null,
        2,
      ),
    ),
};

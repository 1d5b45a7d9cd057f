import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { errorMessage } from '../errors.js';
import { kindOf } from '../file-kind.js';

/** What is wrong with daemon.http.tls, naming the setting and the file, and the fix. */
export interface TlsProblem {
  message: string;
  fix: string;
}

/**
 * The certificate and key of daemon.http.tls, read and parsed as the server parses them
 * (tls.createSecureContext), or what is wrong with them. Each file is parsed alone first so that a bad
 * one is blamed on its own setting, not on the listen address the server would have failed to open.
 */
export function loadTls(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } | TlsProblem {
  const read = (path: string, key: 'cert' | 'key'): Buffer | TlsProblem => {
    let fd: number | undefined;
    try {
      // O_NONBLOCK: a FIFO in its place is refused at once. A blocking open waited for a writer, and
      // held the event loop meanwhile: the starting daemon answered nothing and took no SIGTERM.
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      const stat = fstatSync(fd);
      if (!stat.isFile()) {
        return {
          message: `${path} (daemon.http.tls.${key}) is ${kindOf(stat)}, not a regular file`,
          fix: `Point daemon.http.tls.${key} at the PEM file itself`,
        };
      }
      return readFileSync(fd);
    } catch (error) {
      return {
        message: `cannot read ${path} (daemon.http.tls.${key}): ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`,
        fix: "Check the path and that the daemon's user can read it",
      };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  };
  const cert = read(tls.cert, 'cert');
  if (!Buffer.isBuffer(cert)) return cert;
  const key = read(tls.key, 'key');
  if (!Buffer.isBuffer(key)) return key;
  // OpenSSL's reason (e.g. "PEM routines::no start line") names neither file nor content.
  const parses = (options: { cert?: Buffer; key?: Buffer }): string | undefined => {
    try {
      createSecureContext(options);
      return undefined;
    } catch (error) {
      return errorMessage(error);
    }
  };
  const badCert = parses({ cert });
  if (badCert !== undefined) {
    return {
      message: `${tls.cert} (daemon.http.tls.cert) is not a PEM certificate: ${badCert}`,
      fix: 'Point daemon.http.tls.cert at the PEM certificate (chain), the file that begins -----BEGIN CERTIFICATE-----',
    };
  }
  const badKey = parses({ key });
  if (badKey !== undefined) {
    return {
      message: `${tls.key} (daemon.http.tls.key) is not a PEM private key: ${badKey}`,
      fix: "Point daemon.http.tls.key at the certificate's unencrypted PEM private key, the file that begins -----BEGIN PRIVATE KEY----- (or -----BEGIN EC/RSA PRIVATE KEY-----)",
    };
  }
  const mismatch = parses({ cert, key });
  if (mismatch !== undefined) {
    return {
      message: `${tls.key} (daemon.http.tls.key) is not the key of the certificate ${tls.cert} (daemon.http.tls.cert): ${mismatch}`,
      fix: 'Give daemon.http.tls.key the private key the certificate was made for (or daemon.http.tls.cert the certificate of that key)',
    };
  }
  return { cert, key };
}

// A private CA and a server certificate it signed for 127.0.0.1 (subjectAltName IP:127.0.0.1, plus any
// other addresses asked for), made with Debian's openssl in a folder the caller owns: what a registry
// behind a company's own CA presents.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificates {
  /** The CA certificate (PEM): what NODE_EXTRA_CA_CERTS names. */
  ca: string;
  /** The server certificate (PEM) and its key. */
  certificate: string;
  key: string;
}

export async function makeCertificates(
  dir: string,
  options: { ips?: readonly string[] } = {},
): Promise<TestCertificates> {
  const ips = ['127.0.0.1', ...(options.ips ?? [])];
  const path = (name: string): string => join(dir, name);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    path('ca.key'),
    '-out',
    path('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Publisher Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    path('server.key'),
    '-out',
    path('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  await writeFile(
    path('server.ext'),
    [
      `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}`,
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    path('server.csr'),
    '-CA',
    path('ca.pem'),
    '-CAkey',
    path('ca.key'),
    '-set_serial',
    '1',
    '-days',
    '2',
    '-extfile',
    path('server.ext'),
    '-out',
    path('server.pem'),
  ]);
  return { ca: path('ca.pem'), certificate: path('server.pem'), key: path('server.key') };
}

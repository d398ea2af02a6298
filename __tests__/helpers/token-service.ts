// A Bearer token service for a real token-auth docker-registry (as token.test.ts writes its own): signs
// RS256 JWTs with a key whose certificate the registry trusts, for the scopes asked, after checking Basic
// credentials. Serves plain HTTP, or HTTPS with a given certificate (a realm on a private CA).
import { execFile } from 'node:child_process';
import { createSign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface TokenServiceOptions {
  /** A folder for the signing key and its certificate. */
  dir: string;
  service: string;
  issuer: string;
  creds: { username: string; password: string };
  tls?: { certificate: string; key: string };
}

export interface RunningTokenService {
  /** `http(s)://127.0.0.1:PORT/token` */
  realm: string;
  /** The certificate the registry trusts (its `rootcertbundle`). */
  rootCertBundle: string;
  /** Every token request's scopes, in order. */
  requests: string[][];
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export async function startTokenService(options: TokenServiceOptions): Promise<RunningTokenService> {
  const keyFile = join(options.dir, 'token-signing.key');
  const certFile = join(options.dir, 'token-signing.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    '/CN=test-token-issuer',
  ]);
  const key = await readFile(keyFile, 'utf8');
  const certDer = (await readFile(certFile, 'utf8')).replace(/-----[^-]+-----|\s/g, '');
  const requests: string[][] = [];
  const expected = `Basic ${Buffer.from(`${options.creds.username}:${options.creds.password}`).toString('base64')}`;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    requests.push(scopes);
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"details":"incorrect username or password"}');
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop() ?? '';
      return { type: type ?? '', name: rest.join(':'), actions: actions.split(',') };
    });
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }));
    const claims = b64url(
      JSON.stringify({
        iss: options.issuer,
        sub: options.creds.username,
        aud: options.service,
        exp: now + 300,
        nbf: now - 5,
        iat: now,
        jti: String(Math.random()),
        access,
      }),
    );
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `${header}.${claims}.${b64url(signature)}`, expires_in: 300 }));
  };

  const server = options.tls
    ? createHttpsServer(
        { cert: await readFile(options.tls.certificate), key: await readFile(options.tls.key) },
        handle,
      )
    : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/token`,
    rootCertBundle: certFile,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

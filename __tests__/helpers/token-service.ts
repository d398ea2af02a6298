// A token service for a real docker-registry configured with `auth: token`: node:http on 127.0.0.1 checks
// Basic credentials and signs RS256 JWTs with a key whose certificate (made by openssl) the registry trusts.
// `mode` says how it answers (field name, expires_in) and how long the registry will accept its tokens.
import { execFileSync } from 'node:child_process';
import { createSign } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RegistryOptions } from './registry';

export interface TokenRequest {
  service: string | null;
  scopes: string[];
  authorization: string | undefined;
}

export interface TokenServiceMode {
  field: 'token' | 'access_token';
  /** `expires_in` in the answer; undefined leaves it out (clients then assume 60 s). */
  expiresIn: number | undefined;
  /**
   * How long the registry accepts a token, in seconds; default: `expiresIn`, else 60. Shorter than `expiresIn`
   * makes a token the registry refuses before the client thinks it expired (revoked, or a clock ahead).
   */
  validFor?: number;
}

/**
 * distribution accepts a token up to 60 s past its `exp` (registry/auth/token: `Leeway = 60 * time.Second`),
 * so a token meant to die after `validFor` seconds is stamped with an `exp` that much earlier.
 */
export const REGISTRY_LEEWAY_SECONDS = 60;

export interface TokenService {
  /** `http://127.0.0.1:PORT/token` */
  realm: string;
  service: string;
  issuer: string;
  /** What startRegistry needs to trust this service. */
  registryOptions: NonNullable<RegistryOptions['token']>;
  requests: TokenRequest[];
  mode: TokenServiceMode;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export async function startTokenService(options: {
  credentials: { username: string; password: string };
  service?: string;
  issuer?: string;
  /** Serve HTTPS with this certificate and key (a realm on a private CA); default plain HTTP. */
  tls?: { certificate: string; key: string };
}): Promise<TokenService> {
  const service = options.service ?? 'test-registry';
  const issuer = options.issuer ?? 'test-issuer';
  const dir = await mkdtemp(join(tmpdir(), 'token-service-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=test-token-issuer',
    ],
    { stdio: 'ignore' },
  );
  const key = await readFile(join(dir, 'key.pem'), 'utf8');
  const certDer = (await readFile(join(dir, 'cert.pem'), 'utf8')).replace(/-----[^-]+-----|\s/g, '');
  const mode: TokenServiceMode = { field: 'token', expiresIn: undefined };
  const requests: TokenRequest[] = [];

  const sign = (access: { type: string; name: string; actions: string[] }[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const exp =
      mode.validFor !== undefined
        ? now + mode.validFor - REGISTRY_LEEWAY_SECONDS
        : now + (mode.expiresIn ?? 60);
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }));
    const claims = b64url(
      JSON.stringify({
        iss: issuer,
        sub: options.credentials.username,
        aud: service,
        exp,
        nbf: now - 5,
        iat: now,
        jti: String(Math.random()),
        access,
      }),
    );
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key);
    return `${header}.${claims}.${b64url(signature)}`;
  };

  const expected = `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const request: TokenRequest = {
      service: url.searchParams.get('service'),
      scopes: url.searchParams.getAll('scope'),
      authorization: req.headers.authorization,
    };
    requests.push(request);
    if (request.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"details":"incorrect username or password"}');
      return;
    }
    const access = request.scopes.map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop() ?? '';
      return { type: type ?? '', name: rest.join(':'), actions: actions.split(',') };
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        [mode.field]: sign(access),
        ...(mode.expiresIn !== undefined ? { expires_in: mode.expiresIn } : {}),
      }),
    );
  };
  const server = options.tls
    ? createHttpsServer(
        { cert: await readFile(options.tls.certificate), key: await readFile(options.tls.key) },
        handle,
      )
    : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const realm = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  return {
    realm,
    service,
    issuer,
    registryOptions: { realm, service, issuer, rootCertBundle: join(dir, 'cert.pem') },
    requests,
    mode,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

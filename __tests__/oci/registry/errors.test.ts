// Bad input and bad registries: each ends as one clear PublishError that names the operation and the
// reference, and never carries a password.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesBlob } from '../../../src/oci/blob';
import { createRegistryStore } from '../../../src/oci/registry';
import { resolveCredentials } from '../../../src/oci/registry/credentials';
import { parseChallenge } from '../../../src/oci/registry/auth';
import { describeRegistryAnswer } from '../../../src/oci/registry/errors';
import { planUpload, profileFor } from '../../../src/oci/registry/profiles';
import { parseRetryAfter } from '../../../src/oci/registry/retry';
import { serializeJson } from '../../../src/oci/types';
import { isPublishError, PublishError } from '../../../src/util/errors';
import { memoryLogger } from '../../../src/util/logger';
import { freePort, startRegistry } from '../../helpers/registry';
import type { RunningRegistry } from '../../helpers/registry';
import { FAST_RETRY } from './fixtures';

async function failure(promise: Promise<unknown>): Promise<PublishError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isPublishError(error)).toBe(true);
  return error as PublishError;
}

const blob = bytesBlob(new TextEncoder().encode('{"commandLine":"console=ttyS0"}'), 'config');
const manifest = serializeJson('application/vnd.oci.image.manifest.v1+json', { schemaVersion: 2 });

describe('clear errors', () => {
  let basic: RunningRegistry;
  let garbage: Server;
  let garbageHost: string;
  const creds = { username: 'dave', password: 'Corr3ct-Horse-Battery' };

  beforeAll(async () => {
    basic = await startRegistry({ htpasswd: creds });
    garbage = createServer((req, res) => {
      req.resume();
      if (req.url?.includes('/manifests/') && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
        return res.end('\u0000\u0001 this is not json {{{');
      }
      res.writeHead(req.method === 'PUT' ? 400 : 502, { 'content-type': 'text/html' });
      res.end(
        req.method === 'HEAD'
          ? undefined
          : '<html><body><h1>Bad Gateway</h1>\u0000\u00ff nginx</body></html>',
      );
    });
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
    garbageHost = `127.0.0.1:${(garbage.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await basic?.stop();
    await new Promise<void>((resolve) => (garbage ? garbage.close(() => resolve()) : resolve()));
  });

  it('an unreachable registry: one error after the retries', async () => {
    const port = await freePort();
    const logger = memoryLogger();
    const store = createRegistryStore({ registry: `127.0.0.1:${port}`, logger, retry: FAST_RETRY });
    const error = await failure(store.repository('foo').pushBlob(blob));
    expect(error.message).toBe(
      `checking blob ${blob.digest.slice(0, 19)} in 127.0.0.1:${port}/foo: cannot reach the registry 127.0.0.1:${port}: connection refused (ECONNREFUSED)`,
    );
    expect(error.hint).toMatch(/reachable/);
    expect(logger.lines.filter((l) => l.includes('retrying'))).toHaveLength(FAST_RETRY.attempts - 1);
    await store.close();
  });

  it('wrong Basic credentials, and none at all', async () => {
    const wrong = createRegistryStore({
      registry: basic.host,
      credentials: { username: 'dave', password: 'Wr0ng-Pa55word' },
      logger: memoryLogger(),
      retry: FAST_RETRY,
    });
    const error = await failure(wrong.repository('foo').pushManifest(manifest, ['1.0']));
    expect(error.message).toBe(
      `pushing manifest ${basic.host}/foo:1.0: the registry ${basic.host} refused the credentials of user "dave" (wrong username or password)`,
    );
    expect(`${error.message} ${error.hint}`).not.toContain('Wr0ng-Pa55word');
    await wrong.close();

    const emptyConfig = await mkdtemp(join(tmpdir(), 'docker-config-'));
    const none = createRegistryStore({
      registry: basic.host,
      dockerConfig: emptyConfig,
      logger: memoryLogger(),
      retry: FAST_RETRY,
    });
    const missing = await failure(none.repository('foo').resolveTag('1.0'));
    expect(missing.message).toBe(
      `resolving ${basic.host}/foo:1.0: the registry ${basic.host} requires credentials and none were found`,
    );
    await none.close();
    await rm(emptyConfig, { recursive: true, force: true });
  });

  it('a registry answering garbage', async () => {
    const store = createRegistryStore({ registry: garbageHost, logger: memoryLogger(), retry: FAST_RETRY });
    const repo = store.repository('foo');
    const put = await failure(repo.pushManifest(manifest, ['1.0']));
    expect(put.message).toBe(
      `pushing manifest ${garbageHost}/foo:1.0: HTTP 400 Bad Request: Bad Gateway nginx`,
    );
    const head = await failure(repo.pushBlob(blob));
    expect(head.message).toBe(
      `checking blob ${blob.digest.slice(0, 19)} in ${garbageHost}/foo: HTTP 502 Bad Gateway`,
    );
    const get = await failure(repo.getManifest('1.0'));
    expect(get.message).toBe(
      `reading manifest ${garbageHost}/foo:1.0: the registry sent something that is not JSON`,
    );
    await store.close();
  });

  it('speaks TLS to a non-loopback registry unless insecure: true', async () => {
    const ip = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    if (!ip) return; // no non-loopback interface on this machine
    const plain = createServer((req, res) => {
      req.resume();
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
    });
    await new Promise<void>((resolve) => plain.listen(0, ip, resolve));
    try {
      const host = `${ip}:${(plain.address() as AddressInfo).port}`;
      const tls = createRegistryStore({ registry: host, logger: memoryLogger(), retry: { attempts: 1 } });
      const error = await failure(tls.repository('foo').resolveTag('x'));
      // A TLS handshake against a plain HTTP server fails: proof that https was used.
      expect(error.message).toMatch(
        new RegExp(
          `^resolving ${host.replace(/\./g, '\\.')}/foo:x: TLS with ${host.replace(/\./g, '\\.')} failed \\(ERR_SSL_`,
        ),
      );
      expect(error.hint).toMatch(/plain HTTP/);
      await tls.close();
      const insecure = createRegistryStore({
        registry: host,
        insecure: true,
        logger: memoryLogger(),
        retry: { attempts: 1 },
      });
      expect(await insecure.repository('foo').resolveTag('x')).toBeUndefined();
      await insecure.close();
    } finally {
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});

describe('pieces', () => {
  it('parses registry error documents and tolerates garbage', () => {
    expect(
      describeRegistryAnswer(
        403,
        'Forbidden',
        '{"errors":[{"code":"DENIED","message":"permission_denied: write_package"}]}',
      ),
    ).toBe('denied: permission_denied: write_package');
    expect(
      describeRegistryAnswer(
        404,
        'Not Found',
        '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":"tag 1.0"}]}',
      ),
    ).toBe('manifest_unknown: manifest unknown (tag 1.0)');
    expect(describeRegistryAnswer(500, 'Internal Server Error', '{"errors": 5')).toBe(
      'HTTP 500 Internal Server Error: {"errors": 5',
    );
    expect(describeRegistryAnswer(502, '', '')).toBe('HTTP 502');
  });

  it('parses Bearer challenges and Retry-After', () => {
    expect(
      parseChallenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"'),
    ).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:a/b:pull' },
    });
    expect(parseChallenge('Basic realm="x"')?.scheme).toBe('basic');
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter(new Date(Date.now() + 3000).toUTCString())).toBeGreaterThan(1000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('plans uploads from the one profile table', () => {
    const MiB = 1024 * 1024;
    expect(planUpload(profileFor('ghcr.io'), 500 * MiB)).toEqual({ mode: 'monolithic' });
    expect(planUpload(profileFor('ghcr.io'), 500 * MiB, 64 * MiB)).toEqual({
      mode: 'chunked',
      chunkSize: 4 * MiB,
    });
    expect(planUpload(profileFor('123.dkr.ecr.eu-west-1.amazonaws.com'), 50 * MiB, MiB)).toEqual({
      mode: 'chunked',
      chunkSize: 5_000_000,
    });
    expect(planUpload(profileFor('europe-docker.pkg.dev'), 50 * MiB, MiB)).toEqual({ mode: 'monolithic' });
    expect(planUpload(profileFor('gcr.io'), 50 * MiB, MiB)).toEqual({ mode: 'monolithic' });
    expect(planUpload(profileFor('quay.io'), 21_000_000_000).mode).toBe('chunked');
    expect(planUpload(profileFor('quay.io'), 19_000_000_000)).toEqual({ mode: 'monolithic' });
    expect(planUpload(profileFor('127.0.0.1:5000'), 10 * MiB)).toEqual({ mode: 'monolithic' });
  });

  it('finds credentials through a docker credential helper (credHelpers, then credsStore)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cred-helper-'));
    const oldPath = process.env.PATH;
    try {
      await writeFile(
        join(dir, 'docker-credential-fake'),
        '#!/bin/sh\nread host\nif [ "$host" = "ghcr.io" ]; then echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"bot\\",\\"Secret\\":\\"ghp_helperSecret\\"}"; else echo "credentials not found in native keychain"; exit 1; fi\n',
      );
      await chmod(join(dir, 'docker-credential-fake'), 0o755);
      process.env.PATH = `${dir}:${oldPath}`;
      await writeFile(join(dir, 'config.json'), JSON.stringify({ credHelpers: { 'ghcr.io': 'fake' } }));
      const logger = memoryLogger();
      expect(await resolveCredentials('ghcr.io', { dockerConfig: dir, logger })).toEqual({
        username: 'bot',
        password: 'ghp_helperSecret',
      });
      await writeFile(
        join(dir, 'config.json'),
        JSON.stringify({ credsStore: 'fake', auths: { 'quay.io': {} } }),
      );
      expect(await resolveCredentials('ghcr.io', { dockerConfig: dir, logger })).toEqual({
        username: 'bot',
        password: 'ghp_helperSecret',
      });
      expect(await resolveCredentials('quay.io', { dockerConfig: dir, logger })).toBeUndefined();
      // Explicit credentials win over the config.
      expect(
        await resolveCredentials('ghcr.io', {
          dockerConfig: dir,
          logger,
          credentials: { username: 'u', password: 'p' },
        }),
      ).toEqual({ username: 'u', password: 'p' });
      expect(logger.lines.join('\n')).not.toContain('ghp_helperSecret');
    } finally {
      process.env.PATH = oldPath;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

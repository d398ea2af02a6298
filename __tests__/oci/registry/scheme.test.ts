// How the registry client picks its scheme, against real docker-registry processes: HTTPS first on
// loopback (and for insecure registries), plain HTTP only when the registry does not speak TLS at all,
// decided once per client; a certificate from a private CA works once the CA is trusted and is a clear
// error, never a silent downgrade, while it is not. In this process the CA is trusted with
// tls.setDefaultCACertificates (what NODE_EXTRA_CA_CERTS does at start-up; the action tests use that).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryStore } from '../../../src/oci/registry';
import type { Repository } from '../../../src/oci/store';
import { PublishError } from '../../../src/util/errors';
import { memoryLogger } from '../../../src/util/logger';
import { makeCertificates, type TestCertificates } from '../../helpers/certificates';
import { startRegistry, type RunningRegistry } from '../../helpers/registry';
import { skopeoInspectRaw } from '../../helpers/skopeo';
import { startTokenService, type TokenService } from '../../helpers/token-service';
import { FAST_RETRY, makeTestImage, type TestImage } from './fixtures';

const CREDS = { username: 'tls-user', password: 'Tls-Pa55word-b81f' };
const nonLoopbackIp = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

let dir: string;
let certs: TestCertificates;
let image: TestImage;
let plain: RunningRegistry;
let secure: RunningRegistry;
let tokenService: TokenService;
let tokenRegistry: RunningRegistry;
let remoteSecure: RunningRegistry | undefined;
const defaultCAs = tls.getCACertificates('default');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'registry-scheme-'));
  certs = await makeCertificates(dir, nonLoopbackIp ? { ips: [nonLoopbackIp] } : {});
  const serverTls = { ...certs };
  tokenService = await startTokenService({
    service: 'tls-registry',
    issuer: 'tls-issuer',
    credentials: CREDS,
    tls: serverTls,
  });
  [image, plain, secure, tokenRegistry, remoteSecure] = await Promise.all([
    makeTestImage(512 * 1024),
    startRegistry(),
    startRegistry({ tls: serverTls }),
    startRegistry({
      tls: serverTls,
      token: tokenService.registryOptions,
    }),
    nonLoopbackIp ? startRegistry({ tls: serverTls, address: nonLoopbackIp }) : undefined,
  ]);
}, 60_000);

afterAll(async () => {
  tls.setDefaultCACertificates(defaultCAs);
  await Promise.allSettled([
    plain?.stop(),
    secure?.stop(),
    tokenRegistry?.stop(),
    remoteSecure?.stop(),
    tokenService?.stop(),
    image?.cleanup(),
  ]);
  await rm(dir, { recursive: true, force: true });
});

async function pushImage(repo: Repository, tag: string): Promise<void> {
  await Promise.all(image.blobs.map((b) => repo.pushBlob(b)));
  for (const a of image.arches) await repo.pushManifest(a.manifest, [`${tag}-${a.arch}`]);
  await repo.pushManifest(image.index, [tag]);
}

async function failure(promise: Promise<unknown>): Promise<PublishError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PublishError);
  return error as PublishError;
}

const schemeLines = (lines: string[]): string[] =>
  lines.filter((l) => /speaks HTTPS|does not speak TLS/.test(l));

describe('the registry scheme: HTTPS first, plain HTTP only for a registry without TLS', () => {
  it('a plain-HTTP registry on 127.0.0.1 is reached over plain HTTP, decided once per client', async () => {
    const logger = memoryLogger();
    const store = createRegistryStore({
      registry: plain.host,
      logger,
      retry: FAST_RETRY,
      chunkSize: 256 * 1024,
    });
    try {
      await pushImage(store.repository('scheme/plain'), '1.0');
      const access = await store.blobAccess('scheme/plain', image.blobs[0]!.digest);
      expect(access.url).toBe(`http://${plain.host}/v2/scheme/plain/blobs/${image.blobs[0]!.digest}`);
      // Dozens of requests (chunked uploads, manifests), one decision.
      const lines = schemeLines(logger.lines);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^debug: ${plain.host} does not speak TLS \\(ERR_SSL_WRONG_VERSION_NUMBER, checked in [0-9.]+ ms\\)`,
        ),
      );
      const probeMs = Number(/checked in ([0-9.]+) ms/.exec(lines[0]!)![1]);
      console.log(`HTTPS probe of a plain-HTTP loopback registry: ${probeMs} ms`);
      expect(probeMs).toBeLessThan(1000);
    } finally {
      await store.close();
    }
    expect((await skopeoInspectRaw(`docker://${plain.host}/scheme/plain:1.0`)).digest).toBe(
      image.index.digest,
    );
  });

  it('an untrusted certificate on loopback is one clear error naming NODE_EXTRA_CA_CERTS, never a downgrade to HTTP', async () => {
    const logger = memoryLogger();
    const store = createRegistryStore({ registry: secure.host, logger, retry: FAST_RETRY });
    try {
      const error = await failure(store.repository('scheme/untrusted').resolveTag('1.0'));
      // Were it downgraded, the registry would have answered 400 "Client sent an HTTP request to an HTTPS server".
      expect(error.message).toBe(
        `resolving ${secure.host}/scheme/untrusted:1.0: TLS with ${secure.host} failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
      );
      expect(error.hint).toBe(
        'the registry certificate is not trusted: fix it, or add its CA with NODE_EXTRA_CA_CERTS',
      );
      expect(schemeLines(logger.lines)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('with the private CA trusted, a TLS registry on 127.0.0.1 needs no flag: pushed over HTTPS, read back by skopeo', async () => {
    tls.setDefaultCACertificates([...defaultCAs, await readFile(certs.ca, 'utf8')]);
    const logger = memoryLogger();
    // Chunked: every PATCH follows the upload Location the registry hands out, which must stay https.
    const store = createRegistryStore({
      registry: secure.host,
      logger,
      retry: FAST_RETRY,
      chunkSize: 256 * 1024,
    });
    try {
      await pushImage(store.repository('scheme/secure'), '1.0');
      const access = await store.blobAccess('scheme/secure', image.blobs[0]!.digest);
      expect(access.url).toBe(`https://${secure.host}/v2/scheme/secure/blobs/${image.blobs[0]!.digest}`);
      const lines = schemeLines(logger.lines);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^debug: ${secure.host} speaks HTTPS \\(checked in [0-9.]+ ms\\)$`),
      );
    } finally {
      await store.close();
    }
    // skopeo (tls-verify off) reads it over HTTPS: the registry speaks nothing else.
    expect((await skopeoInspectRaw(`docker://${secure.host}/scheme/secure:1.0`)).digest).toBe(
      image.index.digest,
    );
  });

  it('a certificate for another name is an error too, also on loopback (localhost vs IP:127.0.0.1)', async () => {
    const host = `localhost:${secure.port}`;
    const store = createRegistryStore({ registry: host, logger: memoryLogger(), retry: FAST_RETRY });
    try {
      const error = await failure(store.repository('scheme/secure').resolveTag('1.0'));
      expect(error.message).toBe(
        `resolving ${host}/scheme/secure:1.0: TLS with ${host} failed (ERR_TLS_CERT_ALTNAME_INVALID)`,
      );
      expect(error.hint).toMatch(/NODE_EXTRA_CA_CERTS/);
    } finally {
      await store.close();
    }
  });

  it('a token realm on HTTPS (same private CA) with a TLS token-auth registry: one token, the image pushed', async () => {
    const before = tokenService.requests.length;
    const logger = memoryLogger();
    const store = createRegistryStore({
      registry: tokenRegistry.host,
      credentials: CREDS,
      logger,
      retry: FAST_RETRY,
    });
    try {
      await pushImage(store.repository('scheme/token'), '1.0');
      expect(store.tokenRequests).toBe(1);
    } finally {
      await store.close();
    }
    expect(tokenService.requests.slice(before).map((r) => r.scopes)).toEqual([
      ['repository:scheme/token:pull,push'],
    ]);
    expect(logger.lines.join('\n')).not.toContain(CREDS.password);
    const read = await skopeoInspectRaw(`docker://${tokenRegistry.host}/scheme/token:1.0`, { creds: CREDS });
    expect(read.digest).toBe(image.index.digest);
  });

  it.runIf(nonLoopbackIp !== undefined)(
    'insecure on a non-loopback registry still tries HTTPS first, and uses it when the registry speaks it',
    async () => {
      const logger = memoryLogger();
      const store = createRegistryStore({
        registry: remoteSecure!.host,
        insecure: true,
        logger,
        retry: FAST_RETRY,
      });
      try {
        await pushImage(store.repository('scheme/insecure'), '1.0');
        const access = await store.blobAccess('scheme/insecure', image.blobs[0]!.digest);
        expect(access.url.startsWith(`https://${remoteSecure!.host}/`)).toBe(true);
        expect(schemeLines(logger.lines)).toHaveLength(1);
      } finally {
        await store.close();
      }
    },
  );
});

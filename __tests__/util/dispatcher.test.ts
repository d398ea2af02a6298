// The one place outgoing connections are made: proxy variables read and checked, undici's routing
// (EnvHttpProxyAgent) checked against our own account of it through a real tinyproxy's log, and the
// proxy's failures (refused credentials, no credentials, unreachable, a host it cannot reach) named as
// the proxy's, without its password, through the registry client.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryStore } from '../../src/oci/registry';
import {
  createDispatcher,
  describeProxies,
  proxyFor,
  proxySecrets,
  proxySettings,
} from '../../src/util/dispatcher';
import { PublishError } from '../../src/util/errors';
import { memoryLogger } from '../../src/util/logger';
import { freePort, startRegistry, type RunningRegistry } from '../helpers/registry';
import { startTinyproxy, type RunningTinyproxy } from '../helpers/tinyproxy';

const PROXY_USER = 'proxyuser';
const PROXY_PASSWORD = 'Pr0xy-Secret-9d2e';

describe('proxy settings from the environment', () => {
  it('reads the lowercase form first, falls back to HTTP_PROXY for https, and accepts a bare host:port', () => {
    const s = proxySettings({
      http_proxy: 'proxy.lower:3128',
      HTTP_PROXY: 'http://proxy.upper:3128',
      NO_PROXY: 'localhost,.corp',
    });
    expect(s.http?.url.href).toBe('http://proxy.lower:3128/');
    expect(s.http?.variable).toBe('http_proxy');
    expect(s.https).toBe(s.http);
    expect(s.noProxy).toBe('localhost,.corp');
    expect(proxySettings({ HTTPS_PROXY: 'https://p:8443', https_proxy: '' })).toEqual({ noProxy: '' });
    expect(proxySettings({})).toEqual({ noProxy: '' });
  });

  it('refuses a value that is no http(s) URL, naming the variable and hiding the password', () => {
    const bad = [
      [
        { HTTPS_PROXY: 'socks5://user:hunter22@p:1080' },
        /^HTTPS_PROXY names an unsupported proxy "socks5:\/\/p:1080"/,
      ],
      [
        { https_proxy: 'http://user:hunter22@[::1' },
        /^https_proxy is not a proxy URL: "http:\/\/\*\*\*@\[::1"$/,
      ],
    ] as const;
    for (const [env, message] of bad) {
      let error: unknown;
      try {
        proxySettings(env);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PublishError);
      expect((error as PublishError).message).toMatch(message);
      expect(`${(error as PublishError).message} ${(error as PublishError).hint}`).not.toContain('hunter22');
    }
  });

  it('describes the proxies for the log without credentials, and lists the secrets to mask', () => {
    const s = proxySettings({ HTTPS_PROXY: 'http://me:p%40ss@proxy:3128', NO_PROXY: '127.0.0.2' });
    expect(describeProxies(s)).toBe(
      'proxy for https: http://proxy:3128 (HTTPS_PROXY); for http: direct; not for 127.0.0.2 (NO_PROXY)',
    );
    expect(proxySecrets(s).sort()).toEqual(
      ['p%40ss', 'p@ss', Buffer.from('me:p@ss').toString('base64')].sort(),
    );
    expect(describeProxies(proxySettings({}))).toBeUndefined();
  });
});

describe('through a real proxy (tinyproxy)', () => {
  let proxy: RunningTinyproxy;
  let authProxy: RunningTinyproxy;
  let registry: RunningRegistry;
  const servers: Server[] = [];
  /** `http://127.0.0.1:P`, `http://127.0.0.2:Q`: two hosts to route. */
  const origins: string[] = [];

  beforeAll(async () => {
    [proxy, authProxy, registry] = await Promise.all([
      startTinyproxy(),
      startTinyproxy({ basicAuth: { user: PROXY_USER, password: PROXY_PASSWORD } }),
      startRegistry(),
    ]);
    for (const host of ['127.0.0.1', '127.0.0.2']) {
      const server = createServer((_req, res) => res.end('ok'));
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      servers.push(server);
      origins.push(`http://${host}:${(server.address() as AddressInfo).port}`);
    }
  });
  afterAll(async () => {
    await Promise.allSettled([proxy?.stop(), authProxy?.stop(), registry?.stop()]);
    for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('routes as proxyFor says for every NO_PROXY form (tinyproxy logs what it carried)', async () => {
    const [one, two] = origins as [string, string];
    const onePort = new URL(one).port;
    const targets = [one, two, `http://localhost:${onePort}`];
    const noProxies = [
      '',
      '127.0.0.2',
      `127.0.0.1:${onePort}`,
      '127.0.0.1:1',
      'localhost',
      '.0.0.2',
      '*',
      ' *.example.com , 127.0.0.2 ',
    ];
    let checked = 0;
    for (const noProxy of noProxies) {
      const settings = proxySettings({ HTTP_PROXY: proxy.url, NO_PROXY: noProxy });
      const dispatcher = createDispatcher({}, settings);
      try {
        for (const target of targets) {
          const before = (await proxy.requests()).length;
          const res = await request(`${target}/`, { dispatcher });
          expect(await res.body.text()).toBe('ok');
          const carried = (await proxy.requests()).slice(before);
          const expected = proxyFor(target, settings) !== undefined;
          // Every request through the proxy is a tunnel to the host and port asked for.
          expect(carried, `${target} with NO_PROXY="${noProxy}"`).toEqual(
            expected ? [{ method: 'CONNECT', target: new URL(target).host }] : [],
          );
          checked++;
        }
      } finally {
        await dispatcher.close();
      }
    }
    expect(checked).toBe(noProxies.length * targets.length);
    // Spot checks of the rules themselves (curl's and undici's): loopback is proxied unless named.
    const s = (noProxy: string) => proxySettings({ HTTP_PROXY: proxy.url, NO_PROXY: noProxy });
    expect(proxyFor(one, s(''))).toBeDefined();
    expect(proxyFor(two, s('127.0.0.2'))).toBeUndefined();
    expect(proxyFor(one, s('127.0.0.1:1'))).toBeDefined();
    expect(proxyFor('http://ghcr.io/', s('.io'))).toBeUndefined();
    expect(proxyFor('http://a.example.com/', s('*.example.com'))).toBeUndefined();
    expect(proxyFor('http://example.com/', s('*.example.com'))).toBeDefined();
  });

  describe('the registry client names the proxy when it fails, never its password', () => {
    const saved = { ...process.env };
    afterEach(() => {
      for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'])
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
    });

    async function resolveThrough(
      proxyUrl: string,
      host = registry.host,
    ): Promise<{ error: PublishError; lines: string[] }> {
      process.env.HTTP_PROXY = proxyUrl;
      process.env.HTTPS_PROXY = proxyUrl;
      process.env.NO_PROXY = '';
      const logger = memoryLogger();
      const store = createRegistryStore({
        registry: host,
        logger,
        retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 },
      });
      try {
        const error = await store
          .repository('net/test')
          .resolveTag('1.0')
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(error).toBeInstanceOf(PublishError);
        return { error: error as PublishError, lines: logger.lines };
      } finally {
        await store.close();
      }
    }

    const everything = (r: { error: PublishError; lines: string[] }): string =>
      [r.error.message, r.error.hint ?? '', ...r.lines].join('\n');

    it('works through the proxy with the right credentials (sanity)', async () => {
      process.env.HTTP_PROXY = `http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${authProxy.port}`;
      process.env.HTTPS_PROXY = process.env.HTTP_PROXY;
      process.env.NO_PROXY = '';
      const before = (await authProxy.requests()).length;
      const store = createRegistryStore({ registry: registry.host, logger: memoryLogger() });
      try {
        expect(await store.repository('net/test').resolveTag('1.0')).toBeUndefined();
      } finally {
        await store.close();
      }
      const carried = (await authProxy.requests()).slice(before);
      // The HTTPS probe and the plain-HTTP requests after it, all tunnelled to the registry.
      expect(carried.length).toBeGreaterThanOrEqual(2);
      expect(carried.every((r) => r.method === 'CONNECT' && r.target === registry.host)).toBe(true);
    });

    it('refused credentials', async () => {
      const r = await resolveThrough(
        `http://${PROXY_USER}:wrong-${PROXY_PASSWORD}@127.0.0.1:${authProxy.port}`,
      );
      expect(r.error.message).toBe(
        `resolving ${registry.host}/net/test:1.0: the proxy http://127.0.0.1:${authProxy.port} refused the credentials in HTTPS_PROXY (HTTP 401) when asked for ${registry.host}`,
      );
      expect(r.error.hint).toBe('check the user and password in HTTPS_PROXY');
      expect(everything(r)).not.toContain(PROXY_PASSWORD);
    });

    it('no credentials where the proxy wants them (407)', async () => {
      const r = await resolveThrough(`http://127.0.0.1:${authProxy.port}`);
      expect(r.error.message).toBe(
        `resolving ${registry.host}/net/test:1.0: the proxy http://127.0.0.1:${authProxy.port} refused to work without credentials; none are in HTTPS_PROXY (HTTP 407) when asked for ${registry.host}`,
      );
      expect(r.error.hint).toMatch(/^put the proxy's user and password in HTTPS_PROXY/);
    });

    it('an unreachable proxy (retried, then named)', async () => {
      const port = await freePort();
      const r = await resolveThrough(`http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${port}`);
      expect(r.error.message).toBe(
        `resolving ${registry.host}/net/test:1.0: cannot reach the proxy http://127.0.0.1:${port} (connection refused, ECONNREFUSED) to connect to ${registry.host}`,
      );
      expect(r.error.hint).toBe(
        'check HTTPS_PROXY, and that the proxy runs and is reachable from this machine',
      );
      expect(r.lines.some((l) => l.startsWith('warning:') && l.includes('cannot reach the proxy'))).toBe(
        true,
      );
      expect(everything(r)).not.toContain(PROXY_PASSWORD);
    });

    it('a host the proxy cannot reach', async () => {
      const host = `127.0.0.1:${await freePort()}`;
      const r = await resolveThrough(proxy.url, host);
      expect(r.error.message).toBe(
        `resolving ${host}/net/test:1.0: the proxy ${proxy.url} could not connect to ${host} (HTTP 500)`,
      );
    });
  });
});

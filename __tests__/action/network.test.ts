// Where users run it: the bundled action behind a real HTTP proxy (tinyproxy, with Basic auth) and
// against a real TLS docker-registry whose certificate comes from a private CA. Which hosts the traffic
// reached through the proxy is read from the proxy's own log.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorLines, runAction, type ActionRun } from '../helpers/action';
import { makeCertificates, type TestCertificates } from '../helpers/certificates';
import { freePort, startRegistry, type RunningRegistry } from '../helpers/registry';
import {
  SAMPLE_VERSION as VERSION,
  startSampleEnvironment,
  type SampleEnvironment,
} from '../helpers/sample-env';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { startTinyproxy, type ProxyRequest, type RunningTinyproxy } from '../helpers/tinyproxy';

const PROXY_USER = 'runner';
const PROXY_PASSWORD = 'Pr0xy-Pa55-4c1d9e';

let world: SampleEnvironment;
let proxy: RunningTinyproxy;
let certs: TestCertificates;
let secure: RunningRegistry;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'action-network-'));
  certs = await makeCertificates(dir);
  [world, proxy, secure] = await Promise.all([
    startSampleEnvironment(),
    startTinyproxy({ basicAuth: { user: PROXY_USER, password: PROXY_PASSWORD } }),
    startRegistry({ tls: certs }),
  ]);
});
afterAll(async () => {
  await Promise.allSettled([world?.stop(), proxy?.stop(), secure?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

const proxyUrl = (password = PROXY_PASSWORD): string =>
  `http://${PROXY_USER}:${password}@127.0.0.1:${proxy.port}`;
const apiHost = (): string => new URL(world.github.apiUrl).host;
const downloadHost = (): string => new URL(world.github.downloadUrl).host;

/** Everything the action wrote, minus the `::add-mask::` lines through which the runner learns what to mask. */
function written(run: ActionRun): string {
  return [run.stdout, run.stderr, run.summary, JSON.stringify(run.outputs)]
    .join('\n')
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n');
}

/** Runs the action and returns what the proxy carried meanwhile. */
async function runThroughProxy(
  inputs: Record<string, string>,
  env: Record<string, string>,
): Promise<{ run: ActionRun; carried: ProxyRequest[] }> {
  const before = (await proxy.requests()).length;
  const run = await runAction(
    { 'uki-builder': 'native', ...inputs },
    { env: { GITHUB_API_URL: world.github.apiUrl, ...env } },
  );
  return { run, carried: (await proxy.requests()).slice(before) };
}

const targets = (carried: ProxyRequest[]): string[] => [...new Set(carried.map((r) => r.target))].sort();

describe('behind a proxy', () => {
  it('publishes with API, downloads and registry all through an authenticating proxy; its password printed nowhere', async () => {
    const downloadsBefore = world.downloads().length;
    const { run, carried } = await runThroughProxy(
      { registry: world.registry.host, namespace: 'via-proxy' },
      // Both spellings: the lowercase one carries the plain-HTTP test servers, the other the HTTPS probe.
      { http_proxy: proxyUrl(), HTTPS_PROXY: proxyUrl(), NO_PROXY: '' },
    );
    expect(errorLines(run), run.stdout.slice(-3000)).toEqual([]);
    expect(run.code).toBe(0);
    expect(run.outputs.tags!.split('\n')).toHaveLength(15);
    // The proxy's log: the API (release lookup and asset URLs), the download host the assets redirect
    // to, and the registry, each through a tunnel; nothing else.
    expect(carried.every((r) => r.method === 'CONNECT')).toBe(true);
    expect(targets(carried)).toEqual([apiHost(), downloadHost(), world.registry.host].sort());
    // Every asset download went through those tunnels (kept alive and reused: fewer tunnels than downloads).
    expect(world.downloads().length - downloadsBefore).toBeGreaterThanOrEqual(8);
    expect(run.stdout).toContain(
      `proxy for https: http://127.0.0.1:${proxy.port} (HTTPS_PROXY); for http: http://127.0.0.1:${proxy.port} (http_proxy)`,
    );
    // The runner is told to mask the password; nothing else carries it.
    expect(run.stdout).toContain(`::add-mask::${PROXY_PASSWORD}`);
    expect(written(run)).not.toContain(PROXY_PASSWORD);
    const tag = `${world.registry.host}/via-proxy/gardenlinux/gardener:${VERSION}`;
    expect((await skopeoInspectRaw(`docker://${tag}`)).digest).toBe(JSON.parse(run.outputs.digests!)[tag]);
  });

  it('keeps a host listed in NO_PROXY off the proxy: downloads go direct, the rest through it', async () => {
    const downloadsBefore = world.downloads().length;
    const { run, carried } = await runThroughProxy(
      { registry: world.registry.host, namespace: 'no-proxy-downloads' },
      { HTTP_PROXY: proxyUrl(), HTTPS_PROXY: proxyUrl(), NO_PROXY: '127.0.0.2' },
    );
    expect(errorLines(run), run.stdout.slice(-3000)).toEqual([]);
    expect(world.downloads().length).toBeGreaterThan(downloadsBefore);
    expect(targets(carried)).toEqual([apiHost(), world.registry.host].sort());
  });

  it('a proxy that refuses the credentials: one clear error naming the proxy, the password nowhere', async () => {
    const wrong = `Wr0ng-${PROXY_PASSWORD}`;
    const { run, carried } = await runThroughProxy(
      { registry: world.registry.host, namespace: 'refused' },
      { HTTP_PROXY: proxyUrl(wrong), HTTPS_PROXY: proxyUrl(wrong) },
    );
    expect(run.code).toBe(1);
    expect(errorLines(run)).toEqual([
      `::error::listing releases of gardenlinux/gardenlinux failed: GitHub API GET /repos/gardenlinux/gardenlinux/releases: the proxy http://127.0.0.1:${proxy.port} refused the credentials in HTTP_PROXY (HTTP 401) when asked for ${apiHost()}%0Acheck the user and password in HTTP_PROXY`,
    ]);
    // Refused at once: a refusal is not retried.
    expect(carried).toEqual([{ method: 'CONNECT', target: apiHost() }]);
    expect(written(run)).not.toContain(wrong);
    expect(written(run)).not.toContain(PROXY_PASSWORD);
    expect(run.stderr).toBe('');
  });

  it('an unreachable proxy: one clear error naming it, after the usual retries', async () => {
    const port = await freePort();
    const dead = `http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${port}`;
    const run = await runAction(
      { 'uki-builder': 'native', registry: world.registry.host, namespace: 'unreachable' },
      { env: { GITHUB_API_URL: world.github.apiUrl, HTTPS_PROXY: dead, HTTP_PROXY: dead } },
    );
    expect(run.code).toBe(1);
    expect(errorLines(run)).toEqual([
      `::error::listing releases of gardenlinux/gardenlinux failed: GitHub API GET /repos/gardenlinux/gardenlinux/releases: cannot reach the proxy http://127.0.0.1:${port} (connection refused, ECONNREFUSED) to connect to ${apiHost()}%0Acheck HTTP_PROXY, and that the proxy runs and is reachable from this machine`,
    ]);
    expect(written(run)).not.toContain(PROXY_PASSWORD);
  }, 60_000);

  it('a proxy variable that is no http(s) URL: one clear error before any request', async () => {
    const before = world.github.requests.length;
    const run = await runAction(
      { registry: world.registry.host },
      {
        env: {
          GITHUB_API_URL: world.github.apiUrl,
          HTTPS_PROXY: `socks4://${PROXY_USER}:${PROXY_PASSWORD}@proxy:1080`,
        },
      },
    );
    expect(run.code).toBe(1);
    expect(errorLines(run)).toEqual([
      '::error::HTTPS_PROXY names an unsupported proxy "socks4://proxy:1080": only http:// and https:// proxies are supported%0Agive it as http://host:port (or http://user:password@host:port), or unset HTTPS_PROXY',
    ]);
    expect(world.github.requests.length).toBe(before);
    expect(written(run)).not.toContain(PROXY_PASSWORD);
  });
});

describe('a TLS registry on 127.0.0.1 with a private CA', () => {
  async function tagsOf(repository: string): Promise<string[]> {
    const dispatcher = new Agent({ connect: { ca: await readFile(certs.ca, 'utf8') } });
    try {
      const res = await request(`${secure.url}/v2/${repository}/tags/list`, { dispatcher });
      const body = (await res.body.json()) as { tags?: string[] | null };
      return res.statusCode === 200 ? (body.tags ?? []) : [];
    } finally {
      await dispatcher.close();
    }
  }

  it('without the CA: one clear certificate error naming NODE_EXTRA_CA_CERTS, no downgrade to HTTP, no tag', async () => {
    const run = await runAction(
      { 'uki-builder': 'native', registry: secure.host, namespace: 'untrusted' },
      { env: { GITHUB_API_URL: world.github.apiUrl } },
    );
    expect(run.code).toBe(1);
    const errors = errorLines(run);
    expect(errors).toHaveLength(1);
    // Were it downgraded, the registry's answer would be a 400 "Client sent an HTTP request to an HTTPS server".
    expect(errors[0]).toMatch(
      new RegExp(
        `TLS with ${secure.host.replace(/\./g, '\\.')} failed \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\)%0Athe registry certificate is not trusted: fix it, or add its CA with NODE_EXTRA_CA_CERTS$`,
      ),
    );
    expect(await tagsOf('untrusted/gardenlinux')).toEqual([]);
  });

  it('with NODE_EXTRA_CA_CERTS, and through the proxy: published over HTTPS with no flag', async () => {
    const { run, carried } = await runThroughProxy(
      { registry: secure.host, namespace: 'private-ca' },
      { NODE_EXTRA_CA_CERTS: certs.ca, HTTP_PROXY: proxyUrl(), HTTPS_PROXY: proxyUrl() },
    );
    expect(errorLines(run), run.stdout.slice(-3000)).toEqual([]);
    expect(run.outputs.tags!.split('\n')).toHaveLength(15);
    expect(targets(carried)).toContain(secure.host);
    // skopeo reads the tags back over HTTPS (the registry speaks nothing else).
    const digests = JSON.parse(run.outputs.digests!) as Record<string, string>;
    const tag = `${secure.host}/private-ca/gardenlinux:${VERSION}`;
    expect((await skopeoInspectRaw(`docker://${tag}`)).digest).toBe(digests[tag]);
    // The version's tags, and the attachments' fallback tags of its two arch images.
    const tags = await tagsOf('private-ca/gardenlinux');
    expect(tags.filter((t) => !t.startsWith('sha256-')).sort()).toEqual(
      [VERSION, `${VERSION}-metal`, `${VERSION}-metal-amd64`, `${VERSION}-metal-arm64`].sort(),
    );
    expect(tags.filter((t) => t.startsWith('sha256-')).sort()).toEqual(
      [`${VERSION}-metal-amd64`, `${VERSION}-metal-arm64`]
        .map((t) => `sha256-${digests[`${secure.host}/private-ca/gardenlinux:${t}`]!.slice(7)}`)
        .sort(),
    );
  });
});

// Secrets: the registry password (raw and inside its Basic header) and the GitHub token never appear in
// anything the action writes (stdout, stderr, outputs, job summary), also when a request fails and a
// hostile server echoes them back in its error; and no Authorization header reaches a host it was not
// issued for: redirects go to a second loopback address (127.0.0.2), which records what it received.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRun } from '../helpers/action';
import type { ProxyHook } from '../oci/registry/proxy';
import { CREDS, GITHUB_TOKEN, publishThroughProxies, startWorld, type World } from './world';

const BASIC = Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64');
const SECRETS = [CREDS.password, GITHUB_TOKEN, BASIC];

/** Everything the action wrote, minus the `::add-mask::` lines through which the runner learns what to mask. */
function written(run: ActionRun): string {
  return [run.stdout, run.stderr, run.summary, JSON.stringify(run.outputs)]
    .join('\n')
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n');
}

describe('secrets never leak', () => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(async () => {
    await world?.stop();
  });

  const echo = (status: number, what: string): ProxyHook => {
    return (r) => ({
      kind: 'respond',
      status,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        errors: [{ code: 'DENIED', message: `${what}: you sent ${r.headers.authorization ?? '(nothing)'}` }],
        message: `${what}: you sent ${r.headers.authorization ?? '(nothing)'}`,
      }),
    });
  };

  const FAILING: [string, Partial<Record<'registry' | 'api' | 'download', ProxyHook>>][] = [
    [
      'a registry refusing manifest pushes, echoing the Authorization header',
      {
        registry: (r) =>
          r.method === 'PUT' && r.url.includes('/manifests/') ? echo(403, 'denied')(r, 0) : undefined,
      },
    ],
    ['the GitHub API answering 401, echoing the token', { api: echo(401, 'Bad credentials') }],
    [
      'the asset download answering 403, echoing the token',
      { api: (r) => (r.url.includes('/releases/assets/') ? echo(403, 'Forbidden')(r, 0) : undefined) },
    ],
    ['the GitHub API answering 404, echoing the token', { api: echo(404, 'Not Found') }],
  ];

  it('a successful publication prints no secret, and no Authorization reaches 127.0.0.2', async () => {
    // Manifest look-ups redirect to the second loopback host (a CDN, say): credentials stay behind. That host
    // answers 404, so the attachments' fallback tags (which must be read back after writing) are left alone.
    const cdn = `http://${world.downloadProxy.host}`;
    world.registryProxy.hook = (r) =>
      r.method === 'GET' &&
      r.url.includes('/manifests/') &&
      !r.url.includes('/manifests/sha256-') &&
      r.headers.authorization
        ? { kind: 'respond', status: 307, headers: { location: `${cdn}/cdn${r.url}` } }
        : undefined;
    const before = world.downloadProxy.requests.length;
    try {
      const run = await publishThroughProxies(world, 'secrets-ok');
      expect(run.code, run.stdout.slice(-2000)).toBe(0);
      for (const secret of SECRETS) expect(written(run)).not.toContain(secret);
    } finally {
      world.registryProxy.hook = undefined;
    }
    const second = world.downloadProxy.requests.slice(before);
    expect(second.some((r) => r.url.startsWith('/cdn/'))).toBe(true); // registry redirects arrived
    expect(second.some((r) => r.url.startsWith('/dl/'))).toBe(true); // asset downloads arrived
    expect(second.filter((r) => r.headers.authorization !== undefined).map((r) => r.url)).toEqual([]);
    // ...while the hosts they were issued for did get them.
    expect(world.registryProxy.requests.some((r) => r.headers.authorization === `Basic ${BASIC}`)).toBe(true);
    expect(
      world.apiProxy.requests.some(
        (r) =>
          r.headers.authorization === `token ${GITHUB_TOKEN}` ||
          r.headers.authorization === `Bearer ${GITHUB_TOKEN}`,
      ),
    ).toBe(true);
  });

  it.each(FAILING)('%s: one error, no secret in it', async (what, hooks) => {
    world.registryProxy.hook = hooks.registry;
    world.apiProxy.hook = hooks.api;
    try {
      const run = await publishThroughProxies(
        world,
        `secrets-${what
          .replace(/[^a-z]+/gi, '')
          .toLowerCase()
          .slice(0, 16)}`,
      );
      expect(run.code).toBe(1);
      const errors = run.stdout.split('\n').filter((l) => l.startsWith('::error::'));
      expect(errors).toHaveLength(1);
      for (const secret of SECRETS) expect(written(run)).not.toContain(secret);
    } finally {
      world.registryProxy.hook = undefined;
      world.apiProxy.hook = undefined;
    }
  });
});

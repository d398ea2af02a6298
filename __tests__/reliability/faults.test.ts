// Fault injection against the bundled action: seeded faults from the proxies in front of the real
// registry, the GitHub API stand-in and its download host. After every faulty run: it completed with
// every tag read back by skopeo at the reported digest, or failed with one clear error; no tag names
// missing content; and a clean re-run completes, uploading exactly the blob bytes that were missing.
// RELIABILITY_RUNS=N runs N seeds per scenario (default 1); RELIABILITY_RESULTS=file records tallies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyAction, ProxyHook, RecordedRequest } from '../oci/registry/proxy';
import { publishThroughProxies, runScenario, scenarioTimeout, startWorld, type World } from './world';

/** Seeds per scenario in CI (RELIABILITY_RUNS sets it for a recording). */
const CI_RUNS = 1;

interface Hooks {
  registry?: ProxyHook;
  api?: ProxyHook;
  download?: ProxyHook;
}

const isUpload = (r: RecordedRequest): boolean =>
  (r.method === 'PUT' || r.method === 'PATCH') && r.url.includes('/blobs/uploads/');

function httpError(rand: () => number): ProxyAction {
  const pick = Math.floor(rand() * 6);
  switch (pick) {
    case 0:
      return { kind: 'respond', status: 500, body: 'internal error' };
    case 1:
      return { kind: 'respond', status: 502, body: '<html>bad gateway</html>' };
    case 2:
      return { kind: 'respond', status: 503, body: 'upstream overloaded' };
    case 3:
      return {
        kind: 'respond',
        status: 429,
        headers: { 'retry-after': rand() < 0.7 ? '0' : '1', 'content-type': 'application/json' },
        body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
      };
    default:
      return {
        kind: 'respond',
        status: 403,
        headers: { 'content-type': 'application/json' },
        body: '{"errors":[{"code":"DENIED","message":"You have exceeded a secondary rate limit"}]}',
      };
  }
}

/** Each scenario turns a seeded PRNG into proxy hooks. */
const SCENARIOS: [string, (rand: () => number) => Hooks][] = [
  [
    'HTTP 500/502/503, 429 Retry-After, 403 secondary rate limit',
    (rand) => {
      const hook: ProxyHook = () => (rand() < 0.12 ? httpError(rand) : undefined);
      return {
        registry: hook,
        api: hook,
        download: () => (rand() < 0.15 ? { kind: 'respond', status: 503, body: 'slow down' } : undefined),
      };
    },
  ],
  [
    'connection reset mid blob upload',
    (rand) => ({
      registry: (r) =>
        isUpload(r) && rand() < 0.35
          ? { kind: 'cut-request', afterBytes: Math.floor(rand() * 4_000_000) }
          : undefined,
    }),
  ],
  [
    'download reset or truncated at a random byte',
    (rand) => ({
      download: (r) =>
        r.method === 'GET' && rand() < 0.5
          ? { kind: 'cut-response', afterBytes: Math.floor(rand() * 400_000) }
          : undefined,
      // The registry's answers (manifests, HEADs) are cut too.
      registry: (r) =>
        r.method === 'GET' && rand() < 0.2
          ? { kind: 'cut-response', afterBytes: Math.floor(rand() * 200) }
          : undefined,
    }),
  ],
  [
    'stalled answers (1.5 s of silence, then reset)',
    (rand) => {
      const stall = (): ProxyAction => ({ kind: 'stall', afterBytes: Math.floor(rand() * 2000), ms: 1500 });
      return {
        registry: (r) => (r.method !== 'PUT' && rand() < 0.06 ? stall() : undefined),
        api: () => (rand() < 0.1 ? stall() : undefined),
        download: () => (rand() < 0.3 ? stall() : undefined),
      };
    },
  ],
  [
    'BLOB_UPLOAD_UNKNOWN on PATCH/PUT',
    (rand) => ({
      registry: (r) =>
        isUpload(r) && rand() < 0.35
          ? {
              kind: 'respond',
              status: 404,
              headers: { 'content-type': 'application/json' },
              body: '{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}',
            }
          : undefined,
    }),
  ],
  [
    'answer lost after the registry acted (PUT/POST forwarded, then dropped)',
    (rand) => ({
      registry: (r) =>
        (r.method === 'PUT' || r.method === 'POST') && rand() < 0.25
          ? { kind: 'forward-then-drop' }
          : undefined,
    }),
  ],
];

describe('the action under injected network faults', () => {
  let world: World;

  beforeAll(async () => {
    world = await startWorld();
  }, 180_000);
  afterAll(async () => {
    await world?.stop();
  });

  it.each(SCENARIOS)(
    '%s',
    async (scenario, makeHooks) => {
      const { problems, tally } = await runScenario(world, {
        scenario,
        slug: scenario
          .replace(/[^a-z0-9]+/gi, '')
          .toLowerCase()
          .slice(0, 12),
        ciRuns: CI_RUNS,
        faulty: async (_seed, namespace, rand) => {
          const hooks = makeHooks(rand);
          world.registryProxy.hook = hooks.registry;
          world.apiProxy.hook = hooks.api;
          world.downloadProxy.hook = hooks.download;
          return { run: await publishThroughProxies(world, namespace) };
        },
      });
      expect(problems).toEqual([]);
      expect(tally.corrupted).toBe(0);
      expect(tally.unclean).toBe(0);
    },
    scenarioTimeout(CI_RUNS, 40),
  );
});

// Bearer tokens that expire during a long upload: the registry is a real docker-registry with `auth: token`,
// its tokens come from the token service of the test helpers and live a seeded 1 to 4 seconds, while the
// registry proxy slows uploads to a seeded 1.5 to 6 MB/s, so every run outlives many tokens and some uploads
// outlive the token they started with. The token service tells the truth about that (`expires_in`), leaves it
// out (clients assume 60 s) or claims an hour: then only the registry's 401 `invalid_token` says the token
// died. distribution accepts a token up to 60 s past its `exp`; the service stamps `exp` that much earlier.
// Then the invariant of every scenario: every tag names complete content, a clean re-run uploads exactly
// what is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishThroughProxies, runScenario, scenarioTimeout, startWorld, type World } from './world';

const CI_RUNS = 1;

describe('registry tokens expiring during long uploads', () => {
  let world: World;
  let refused = 0;
  let tokensIssued = 0;

  beforeAll(async () => {
    world = await startWorld({ auth: 'token' });
  }, 180_000);
  afterAll(async () => {
    await world?.stop();
  });

  it(
    'every tag names complete content and the re-run uploads exactly what is missing',
    async () => {
      const tokens = world.tokens!;
      const { problems, tally } = await runScenario(world, {
        scenario: 'registry token expiring during long uploads',
        slug: 'tokenexpiry',
        ciRuns: CI_RUNS,
        faulty: async (_seed, namespace, rand) => {
          const validFor = 1 + Math.floor(rand() * 4);
          const claim = rand();
          const expiresIn = claim < 0.34 ? validFor : claim < 0.67 ? undefined : 3600;
          const bytesPerSecond = Math.round(1_500_000 + rand() * 4_500_000);
          tokens.mode.validFor = validFor;
          tokens.mode.expiresIn = expiresIn;
          world.registryProxy.hook = (r) =>
            r.method === 'PUT' || r.method === 'PATCH'
              ? { kind: 'throttle', bytesPerSecond, direction: 'request' }
              : undefined;
          const issuedBefore = tokens.requests.length;
          const requestsBefore = world.registryProxy.requests.length;
          const run = await publishThroughProxies(world, namespace, { timeoutMs: 300_000 }).finally(() => {
            // Back to ordinary tokens before the verdict: skopeo's own 1 s token could die between its requests.
            tokens.mode.validFor = undefined;
            tokens.mode.expiresIn = undefined;
          });
          tokensIssued += tokens.requests.length - issuedBefore;
          // A Bearer token the registry refused: it died before the client thought it would.
          refused += world.registryProxy.requests
            .slice(requestsBefore)
            .filter((r) => r.status === 401 && /^Bearer /.test(String(r.headers.authorization))).length;
          return {
            run,
            point: `tokens live ${validFor}s, expires_in ${expiresIn ?? 'absent'}, uploads at ${(bytesPerSecond / 1e6).toFixed(1)} MB/s`,
          };
        },
        figures: () => ({ tokensIssued, expiredTokensRefused: refused }),
      });
      expect(problems).toEqual([]);
      expect(tally.corrupted).toBe(0);
      expect(tally.unclean).toBe(0);
      // The scenario did what it says: tokens died under the client, and it got new ones.
      expect(tokensIssued).toBeGreaterThan(tally.runs * 2);
    },
    scenarioTimeout(CI_RUNS, 90),
  );
});

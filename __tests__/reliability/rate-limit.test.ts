// GitHub's primary rate limit, through the action: the API stand-in runs out of quota after a seeded number of
// requests (somewhere within a run, or at once) and refuses the rest as GitHub does (403 or 429 with
// `x-ratelimit-remaining: 0` and `x-ratelimit-reset`) until a reset that is either seconds away (the action
// waits, says so, and completes) or minutes to hours away (the action fails at once with one message naming
// the reset in UTC, and, for a run without a token, that a token raises the limit). Runs with and without a
// token. Then the invariant of every scenario: every tag names complete content, a clean re-run uploads
// exactly what is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utcTime } from '../../src/gardenlinux/rate-limit';
import { publishThroughProxies, runScenario, scenarioTimeout, startWorld, type World } from './world';

const CI_RUNS = 2;

describe("GitHub's primary rate limit", () => {
  let world: World;
  let apiRequestsPerRun = 0;
  const figures = { waited: 0, failedAtOnce: 0, notReached: 0, maxSecondsToFail: 0 };

  beforeAll(async () => {
    world = await startWorld();
    apiRequestsPerRun = world.github.requests.filter((r) => !r.host.startsWith('127.0.0.2')).length;
  }, 180_000);
  afterAll(async () => {
    await world?.stop();
  });

  it(
    'waits for a near reset, fails at once with when to retry for a far one, and the re-run completes',
    async () => {
      expect(apiRequestsPerRun).toBeGreaterThan(4);
      const { problems, tally } = await runScenario(world, {
        scenario: 'GitHub API primary rate limit (403/429, x-ratelimit-remaining: 0)',
        slug: 'ratelimit',
        ciRuns: CI_RUNS,
        faulty: async (_seed, namespace, rand) => {
          const anonymous = rand() < 0.5;
          const status = rand() < 0.6 ? (403 as const) : (429 as const);
          // The quota runs out after 0 to all of a run's API requests (all: it is not reached).
          const remaining = Math.floor(rand() * (apiRequestsPerRun + 1));
          const near = rand() < 0.6;
          const resetIn = near ? 1 + Math.floor(rand() * 8) : 300 + Math.floor(rand() * 7000);
          const reset = Math.floor(Date.now() / 1000) + resetIn;
          const limit = anonymous ? 60 : 5000;
          world.github.rateLimit = { limit, remaining, reset, status };
          const refusedBefore = world.github.rateLimited;
          const started = Date.now();
          const run = await publishThroughProxies(world, namespace, { anonymous });
          const seconds = (Date.now() - started) / 1000;
          const refused = world.github.rateLimited - refusedBefore;
          const point = `${anonymous ? 'no token' : 'token'}, ${status} after ${remaining} of ~${apiRequestsPerRun} API requests, reset in ${resetIn}s`;
          const own: string[] = [];
          const log = run.stdout;
          const error = log.split('\n').find((l) => l.startsWith('::error::')) ?? '';
          if (refused === 0) {
            figures.notReached++;
          } else if (near) {
            figures.waited++;
            if (run.code !== 0) own.push(`the reset was ${resetIn}s away but the run failed: ${error}`);
            if (!/rate limit is used up .*; it resets at .* UTC, waiting \d+\.\ds for it/.test(log))
              own.push('the run did not say that it waits for the rate limit, and how long');
          } else {
            figures.failedAtOnce++;
            figures.maxSecondsToFail = Math.max(figures.maxSecondsToFail, Math.round(seconds * 10) / 10);
            if (run.code === 0) own.push('the quota was used up for an hour but the run completed');
            if (!error.includes(`it resets at ${utcTime(reset * 1000)}`))
              own.push(`the error does not name the reset ${utcTime(reset * 1000)}: ${error}`);
            if (anonymous !== /github-token/.test(error))
              own.push(
                `the token hint is ${anonymous ? 'missing from a run without' : 'in a run with'} a token: ${error}`,
              );
            // At once: no backoff retries against an empty quota (each download in flight is refused once).
            if (refused > 3) own.push(`${refused} requests were refused: the action kept asking`);
          }
          return { run, point, problems: own };
        },
        between: async () => {
          world.github.rateLimit = undefined;
        },
        figures: () => figures,
      });
      expect(problems).toEqual([]);
      expect(tally.corrupted).toBe(0);
      expect(tally.unclean).toBe(0);
    },
    scenarioTimeout(CI_RUNS, 40),
  );
});

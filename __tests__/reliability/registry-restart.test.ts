// The registry restarted in the middle of a run: the real docker-registry process is stopped (SIGTERM, its
// own shutdown, or SIGKILL, a crash) at a seeded moment (the K-th request the registry proxy sees, or a
// seeded delay), its port stays closed for a seeded time, and it starts again on the same storage and port.
// Requests meanwhile are refused or cut. Most outages are shorter than the client's retries (about 4 to 8 s
// of backoff per request); some are longer, so a run may also fail, but only cleanly. Then the invariant of
// every scenario: every tag names complete content, a clean re-run uploads exactly what is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishThroughProxies, runScenario, scenarioTimeout, startWorld, type World } from './world';

const CI_RUNS = 1;

describe('the registry restarted in the middle of a run', () => {
  let world: World;
  let requestsPerRun = 0;
  let restarts = 0;
  let maxDownMs = 0;

  beforeAll(async () => {
    world = await startWorld();
    requestsPerRun = world.registryProxy.requests.length;
  }, 180_000);
  afterAll(async () => {
    await world?.stop();
  });

  it(
    'every tag names complete content and the re-run uploads exactly what is missing',
    async () => {
      expect(requestsPerRun).toBeGreaterThan(20);
      const { problems, tally } = await runScenario(world, {
        scenario: 'registry restarted mid-run',
        slug: 'restart',
        ciRuns: CI_RUNS,
        faulty: async (_seed, namespace, rand) => {
          const byRequest = rand() < 0.7;
          const at = 1 + Math.floor(rand() * requestsPerRun);
          const afterMs = 200 + Math.floor(rand() * 3000);
          const signal = rand() < 0.7 ? ('SIGTERM' as const) : ('SIGKILL' as const);
          // Mostly short outages the retries ride out, some longer than they last.
          const downMs = rand() < 0.8 ? 200 + Math.floor(rand() * 2800) : 6000 + Math.floor(rand() * 4000);
          let restart: Promise<void> | undefined;
          let ended = false;
          const go = (): void => {
            if (!ended) restart ??= world.registry.restart({ signal, downMs });
          };
          let timer: NodeJS.Timeout | undefined;
          const run = await publishThroughProxies(world, namespace, {
            onSpawn: () => {
              if (byRequest) {
                const before = world.registryProxy.requests.length;
                world.registryProxy.hook = () => {
                  if (world.registryProxy.requests.length - before >= at) go();
                  return undefined;
                };
              } else {
                timer = setTimeout(go, afterMs);
              }
            },
          });
          ended = true;
          clearTimeout(timer);
          // The registry must be back before the run is judged (a run may finish before the restart does).
          const happened = restart !== undefined;
          await restart;
          if (happened) {
            restarts++;
            maxDownMs = Math.max(maxDownMs, downMs);
          }
          return {
            run,
            point: `${signal} at ${byRequest ? `request ${at} of ~${requestsPerRun}` : `${afterMs} ms`}, down ${downMs} ms${happened ? '' : ' (the run ended first)'}`,
          };
        },
        figures: () => ({ restarts, maxDownMs }),
      });
      expect(problems).toEqual([]);
      expect(tally.corrupted).toBe(0);
      expect(tally.unclean).toBe(0);
    },
    scenarioTimeout(CI_RUNS, 60),
  );
});

// The process killed (SIGKILL: no cleanup, no handlers) at a random point of a run, then run again:
// after the kill no tag names missing content, no child process (xz) outlives it, and the re-run completes
// the publication uploading exactly the blob bytes that were missing. The kill point is the K-th request the
// registry proxy sees (K seeded, over the whole run), or a seeded delay during download/unpack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishThroughProxies, runScenario, scenarioTimeout, startWorld, type World } from './world';

const CI_RUNS = 2;

describe('the action killed mid-run (SIGKILL), then run again', () => {
  let world: World;
  let requestsPerRun = 0;

  beforeAll(async () => {
    world = await startWorld();
    // The baseline publication went through the proxy: that many registry requests make a whole run.
    requestsPerRun = world.registryProxy.requests.length;
  }, 180_000);
  afterAll(async () => {
    await world?.stop();
  });

  it(
    'never leaves a tag naming missing content; the re-run finishes and uploads only what is missing',
    async () => {
      expect(requestsPerRun).toBeGreaterThan(20);
      const { problems, tally } = await runScenario(world, {
        scenario: 'SIGKILL at a random request or moment, then re-run',
        slug: 'sigkill',
        ciRuns: CI_RUNS,
        faulty: async (_seed, namespace, rand) => {
          const byRequest = rand() < 0.75;
          const killAt = 1 + Math.floor(rand() * requestsPerRun);
          const killAfterMs = 100 + Math.floor(rand() * 2500);
          let killed = false;
          const run = await publishThroughProxies(world, namespace, {
            killed: () => killed,
            onSpawn: (child) => {
              const kill = (): void => {
                if (killed) return;
                killed = child.kill('SIGKILL');
              };
              if (byRequest) {
                const before = world.registryProxy.requests.length;
                world.registryProxy.hook = () => {
                  if (world.registryProxy.requests.length - before >= killAt) kill();
                  return undefined;
                };
              } else {
                setTimeout(kill, killAfterMs).unref();
              }
            },
          });
          const point = byRequest ? `request ${killAt} of ~${requestsPerRun}` : `${killAfterMs} ms`;
          // A kill after the last request lets the run finish: that counts as completed. So does a kill that
          // came as the action was exiting on its own: the signal reached a process that had already finished
          // (exit 0), and the verdict then checks it like any completed run.
          return { run, killed: killed && run.code !== 0, point };
        },
      });
      expect(problems).toEqual([]);
      expect(tally.corrupted).toBe(0);
      expect(tally.unclean).toBe(0);
    },
    scenarioTimeout(CI_RUNS, 40),
  );
});

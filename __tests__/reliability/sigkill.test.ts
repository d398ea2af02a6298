// The process killed (SIGKILL: no cleanup, no handlers) at a random point of a run, then run again:
// after the kill no tag names missing content, and the re-run completes the publication uploading
// exactly the blob bytes that were missing. The kill point is the K-th request the registry proxy
// sees (K seeded, over the whole run), or a seeded delay during download/unpack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bytesUploaded,
  judge,
  missingBytes,
  prng,
  publishThroughProxies,
  recordTally,
  relativeBlobs,
  runCount,
  seeds,
  startWorld,
  walkRegistry,
  type ScenarioTally,
  type World,
} from './world';

describe('the action killed mid-run (SIGKILL), then run again', () => {
  let world: World;
  let baseline: Map<string, Map<string, number>>;
  let requestsPerRun = 0;

  beforeAll(async () => {
    world = await startWorld();
    const run = await publishThroughProxies(world, 'baseline');
    expect(run.code, run.stdout).toBe(0);
    requestsPerRun = world.registryProxy.requests.length;
    baseline = relativeBlobs(await walkRegistry(world, 'baseline'), 'baseline');
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('never leaves a tag naming missing content; the re-run finishes and uploads only what is missing', async () => {
    const started = performance.now();
    const tally: ScenarioTally = {
      scenario: 'SIGKILL at a random request or moment, then re-run',
      runs: 0,
      completed: 0,
      failedCleanly: 0,
      unclean: 0,
      corrupted: 0,
      reuploaded: 0,
      missingBefore: 0,
      seconds: 0,
      errors: [],
    };
    const problems: string[] = [];
    expect(requestsPerRun).toBeGreaterThan(10);
    for (const seed of seeds(runCount(4))) {
      const rand = prng(seed);
      const namespace = `sigkill-s${seed}`;
      const byRequest = rand() < 0.75;
      const killAt = 1 + Math.floor(rand() * requestsPerRun);
      const killAfterMs = 100 + Math.floor(rand() * 1500);
      let killed = false;
      const run = await publishThroughProxies(world, namespace, {
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
      world.registryProxy.hook = undefined;
      const point = byRequest ? `request ${killAt} of ~${requestsPerRun}` : `${killAfterMs} ms`;
      tally.runs++;
      // A kill after the last request lets the run finish: that counts as completed.
      const verdict = await judge(world, namespace, run);
      if (killed && run.code === 0) problems.push(`seed ${seed}: killed at ${point} but exited 0`);
      if (verdict.outcome === 'completed') tally.completed++;
      else if (killed)
        tally.failedCleanly++; // no message is possible after SIGKILL; the re-run must heal it
      else tally.unclean++;
      if (verdict.corrupted) {
        tally.corrupted++;
        problems.push(
          ...verdict.problems
            .filter((p) => p.startsWith('missing'))
            .map((p) => `seed ${seed} (${point}): ${p}`),
        );
      }

      const missing = await missingBytes(world, namespace, baseline);
      const rerun = await publishThroughProxies(world, namespace);
      const again = await judge(world, namespace, rerun);
      if (again.outcome !== 'completed' || again.corrupted) {
        problems.push(...again.problems.map((p) => `seed ${seed} (${point}) re-run: ${p}`));
      }
      const uploaded = bytesUploaded(rerun);
      if (uploaded !== missing) {
        problems.push(
          `seed ${seed} (${point}) re-run: uploaded ${uploaded} blob bytes, ${missing} were missing`,
        );
      }
      tally.reuploaded += uploaded;
      tally.missingBefore += missing;
    }
    tally.seconds = Math.round((performance.now() - started) / 100) / 10;
    await recordTally(tally);
    console.log(`[reliability] ${JSON.stringify(tally)}`);
    expect(problems).toEqual([]);
    expect(tally.corrupted).toBe(0);
  });
});

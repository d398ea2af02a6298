// A cancelled workflow, as GitHub's runner cancels a step (actions/runner, src/Runner.Sdk/ProcessInvoker.cs,
// CancelAndKillProcessTree): SIGINT to the action's process, 7.5 s to exit, then SIGTERM, 2.5 s more, then
// Process.Kill() (SIGKILL) of that process alone: whatever it started and left running is not killed. Here the
// first signal is SIGINT or SIGTERM (seeded), sent while QEMU boots an image (boot-test under TCG, real kernels
// and initrds), while `xz` decompresses an archive (downloads slowed so it runs a while), at the K-th registry
// request, or after a seeded delay (the kind cycles with the seed); the runner's escalation follows when the action has not exited.
// After every run: it exited on the first signal, with one clear error and no stack trace; no process of its
// group (xz, QEMU) is left; its TMPDIR is empty (temporary files removed); no tag was written if the signal
// came before the first tag; then the invariant of every scenario: every tag names complete content, a clean
// re-run uploads exactly what is missing.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  processesInGroup,
  publishThroughProxies,
  runScenario,
  scenarioTimeout,
  startWorld,
  walkRegistry,
  type World,
} from './world';

const CI_RUNS = 2;
/** ProcessInvoker's _sigintTimeout and _sigtermTimeout. */
const SIGINT_GRACE_MS = 7500;
const SIGTERM_GRACE_MS = 2500;

const MOMENTS = ['boot', 'xz', 'request', 'time'] as const;
type Moment = (typeof MOMENTS)[number];

describe('a cancelled workflow (SIGINT or SIGTERM, then the runner escalates)', () => {
  let world: World;
  let requestsPerRun = 0;
  const figures = {
    cancelledDuringXz: 0,
    cancelledDuringBoot: 0,
    cancelledOtherwise: 0,
    escalations: 0,
    maxExitMs: 0,
  };

  beforeAll(async () => {
    world = await startWorld({ bootable: true });
    requestsPerRun = world.registryProxy.requests.length;
  }, 300_000);
  afterAll(async () => {
    await world?.stop();
  });

  /** Resolves when a process of `pgid` matches `pattern` (polled), or undefined when `stop()` says so. */
  async function waitForChild(
    pgid: () => number,
    pattern: RegExp,
    stop: () => boolean,
  ): Promise<string | undefined> {
    while (!stop()) {
      const found = (await processesInGroup(pgid())).find((p) => pattern.test(p));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 25));
    }
    return undefined;
  }

  it(
    'exits on the first signal, leaves no process, no temporary file and no tag; the re-run completes',
    async () => {
      const { problems, tally } = await runScenario(world, {
        scenario: 'cancelled workflow (SIGINT/SIGTERM, runner escalation to SIGKILL)',
        slug: 'cancel',
        ciRuns: CI_RUNS,
        faulty: async (seed, namespace, rand) => {
          // The kind of moment cycles with the seed, so CI's two seeds cancel a boot and an xz.
          const moment = MOMENTS[(seed - 1) % MOMENTS.length] as Moment;
          const first = rand() < 0.5 ? ('SIGINT' as const) : ('SIGTERM' as const);
          const delayMs = Math.floor(rand() * (moment === 'boot' ? 6000 : moment === 'xz' ? 400 : 15000));
          const at = 1 + Math.floor(rand() * requestsPerRun);
          const throttle = 1_000_000 + Math.floor(rand() * 2_000_000);

          let child: ChildProcess | undefined;
          let exited = false;
          let exitAt = 0;
          let signalledAt = 0;
          let firstTagAt = 0;
          let escalated = '';
          let seen = '';
          const signal = (): void => {
            if (signalledAt || exited || !child) return;
            signalledAt = performance.now();
            child.kill(first);
            // The runner's escalation, only when the action ignores the signal.
            setTimeout(() => {
              if (exited) return;
              escalated = 'SIGTERM';
              child?.kill('SIGTERM');
              setTimeout(() => {
                if (exited) return;
                escalated = 'SIGKILL';
                child?.kill('SIGKILL');
              }, SIGTERM_GRACE_MS);
            }, SIGINT_GRACE_MS);
          };
          const byRequest = moment === 'request';
          let requests = 0;
          world.registryProxy.hook = (r) => {
            if (r.method === 'PUT' && r.url.includes('/manifests/') && !firstTagAt)
              firstTagAt = performance.now();
            if (byRequest && ++requests === at) signal();
            return undefined;
          };
          if (moment === 'xz') {
            world.downloadProxy.hook = () => ({
              kind: 'throttle',
              bytesPerSecond: throttle,
              direction: 'response',
            });
          }
          const run = await publishThroughProxies(world, namespace, {
            inputs: { 'boot-test': 'native', 'boot-test-accel': 'tcg', 'boot-test-timeout': '600' },
            timeoutMs: 600_000,
            killed: () => escalated === 'SIGKILL',
            onSpawn: (c) => {
              child = c;
              c.once('exit', () => {
                exited = true;
                exitAt = performance.now();
              });
              if (moment === 'time') setTimeout(signal, delayMs);
              if (moment === 'xz' || moment === 'boot') {
                const pattern = moment === 'xz' ? /^\d+ xz -dc/ : /qemu-system-/;
                void waitForChild(
                  () => c.pid ?? 0,
                  pattern,
                  () => exited,
                ).then((found) => {
                  if (!found) return;
                  seen = found;
                  setTimeout(signal, delayMs);
                });
              }
            },
          });
          const own: string[] = [];
          const point = `${first} ${moment === 'request' ? `at request ${at}` : moment === 'time' ? `after ${delayMs} ms` : `${delayMs} ms into ${moment}`}${signalledAt ? '' : ' (the run ended first)'}`;
          if (signalledAt) {
            const exitMs = Math.round(exitAt - signalledAt);
            figures.maxExitMs = Math.max(figures.maxExitMs, exitMs);
            if (moment === 'xz' && seen) figures.cancelledDuringXz++;
            else if (moment === 'boot' && seen) figures.cancelledDuringBoot++;
            else figures.cancelledOtherwise++;
            if (escalated) {
              figures.escalations++;
              own.push(`did not exit within ${SIGINT_GRACE_MS} ms of ${first}: the runner sent ${escalated}`);
            }
            if (signalledAt < (firstTagAt || Infinity)) {
              const tags = (await walkRegistry(world, namespace)).tags.size;
              if (tags > 0) own.push(`cancelled before the first tag, yet ${tags} tags were written`);
            }
            if (run.code === 0 && signalledAt < (firstTagAt || Infinity))
              own.push('cancelled before the first tag, yet exited 0');
          }
          return { run, point, problems: own };
        },
        figures: () => figures,
      });
      expect(problems).toEqual([]);
      expect(tally.corrupted).toBe(0);
      expect(tally.unclean).toBe(0);
    },
    scenarioTimeout(CI_RUNS, 120),
  );
});

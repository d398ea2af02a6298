// Scale-out: one job per flavor (select-flavors) and a final assemble-only job give the same images,
// tag for tag and digest for digest, as one job publishing everything.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FLAVORS, flavorKey } from '../../src/pipeline/flavors';
import { errorLines, runAction } from '../helpers/action';
import {
  SAMPLE_VERSION as VERSION,
  startSampleEnvironment,
  type SampleEnvironment,
} from '../helpers/sample-env';
import { skopeoInspectRaw } from '../helpers/skopeo';

let world: SampleEnvironment;
beforeAll(async () => {
  world = await startSampleEnvironment();
});
afterAll(async () => {
  await world?.stop();
});

const inputs = (extra: Record<string, string>): Record<string, string> => ({
  registry: world.registry.host,
  'uki-builder': 'native',
  version: VERSION,
  ...extra,
});
const env = (): Record<string, string> => ({ GITHUB_API_URL: world.github.apiUrl });
const digestsOf = (outputs: Record<string, string>, namespace: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries(JSON.parse(outputs.digests!) as Record<string, string>).map(([ref, d]) => [
      ref.replace(`/${namespace}/`, '/NS/'),
      d,
    ]),
  );

describe('one job per flavor, then an assembling job', () => {
  it('publishes the same tags and digests as a single job', async () => {
    const single = await runAction(inputs({ namespace: 'single' }), { env: env() });
    expect(errorLines(single)).toEqual([]);

    for (const flavor of DEFAULT_FLAVORS) {
      const job = await runAction(inputs({ namespace: 'matrix', 'select-flavors': flavorKey(flavor) }), {
        env: env(),
      });
      expect(errorLines(job)).toEqual([]);
      const tags = job.outputs.tags!.split('\n');
      // Two arch images and the variant index; the combined index waits for the assembling job.
      expect(tags).toHaveLength(3);
      expect(tags.some((t) => t.endsWith(`:${VERSION}`))).toBe(false);
    }

    const downloadsBefore = world.downloads().length;
    const combine = await runAction(inputs({ namespace: 'matrix', 'assemble-only': 'true' }), { env: env() });
    expect(errorLines(combine)).toEqual([]);
    expect(combine.outputs.published).toBe('true');
    expect(world.downloads().length).toBe(downloadsBefore);
    expect(digestsOf(combine.outputs, 'matrix')).toEqual(digestsOf(single.outputs, 'single'));

    const combined = await skopeoInspectRaw(
      `docker://${world.registry.host}/matrix/gardenlinux/gardener:${VERSION}`,
    );
    expect(JSON.parse(combined.bytes.toString()).manifests).toHaveLength(4);
  });

  it('refuses to assemble before every flavor job has published', async () => {
    const job = await runAction(
      inputs({ namespace: 'partial', 'select-flavors': 'gardenlinux/gardener:kvm' }),
      { env: env() },
    );
    expect(errorLines(job)).toEqual([]);
    const combine = await runAction(inputs({ namespace: 'partial', 'assemble-only': 'true' }), {
      env: env(),
    });
    expect(combine.code).toBe(1);
    const errors = errorLines(combine);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /cannot assemble the indexes: .*partial\/gardenlinux\/gardener:2150\.1\.0-metal-amd64.* not published yet/,
    );
    // Nothing names content that is missing: the combined index was not written.
    await expect(
      skopeoInspectRaw(`docker://${world.registry.host}/partial/gardenlinux/gardener:${VERSION}`),
    ).rejects.toThrow();
  });
});

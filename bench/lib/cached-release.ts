// The benches' generated releases take minutes to make (xz of GBs): each is kept in `dir` with a marker naming
// the parameters it was made from (`key`), and made again only when they change.
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  generateSampleRelease,
  type SampleRelease,
  type SampleReleaseOptions,
} from '../../src/sample/release';

export async function cachedSampleRelease(
  dir: string,
  key: string,
  options: () => Promise<Omit<SampleReleaseOptions, 'dir'>>,
): Promise<SampleRelease> {
  const marker = join(dir, 'release.json');
  if (existsSync(marker)) {
    const cached = JSON.parse(await readFile(marker, 'utf8')) as { key: string; release: SampleRelease };
    if (cached.key === key) return cached.release;
  }
  await rm(dir, { recursive: true, force: true });
  const started = performance.now();
  console.log(`generating the release in ${dir} (once; cached by its parameters) ...`);
  const release = await generateSampleRelease({ ...(await options()), dir });
  console.log(`generated in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  await writeFile(marker, JSON.stringify({ key, release }));
  return release;
}

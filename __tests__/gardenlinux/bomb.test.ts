// An xz bomb that stays under the member and total size limits is stopped by its expansion ratio,
// before it fills the disk; an ordinary archive passes the same (tightened) limits.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackFlavorArchive } from '../../src/gardenlinux';
import { generateSampleRelease } from '../../src/sample/release';
import { memoryLogger } from '../../src/util/logger';

const run = promisify(execFile);
let work: string;
const tight = { maxExpansion: 100, expansionAfterBytes: 8 * 1024 * 1024 };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'bomb-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the expansion limit', () => {
  it('refuses a tiny archive of zeros (not a sparse member) and leaves nothing behind', async () => {
    const base = 'kvm-gardener_prod-amd64-2150.1.0-abcdef12';
    const src = join(work, 'src');
    await mkdir(src);
    // 256 MiB of real zero bytes in the tar stream (no -S), a few tens of KiB once compressed.
    await writeFile(join(src, `${base}.raw`), '');
    await truncate(join(src, `${base}.raw`), 256 * 1024 * 1024);
    const archive = join(work, `${base}.tar.xz`);
    await run('bash', ['-c', `tar -C ${src} -cf - ${base}.raw | xz -0 -T1 > ${archive}`]);
    const out = join(work, 'out-bomb');
    await expect(
      unpackFlavorArchive({
        archive,
        kind: 'kvm',
        arch: 'amd64',
        dir: out,
        logger: memoryLogger(),
        limits: tight,
      }),
    ).rejects.toThrow(/decompresses to more than 100 times its size .* refusing \(xz bomb\?\)/);
    expect(await readdir(out).catch(() => [])).toEqual([]);
  });

  it('lets an ordinary archive through the same limits', async () => {
    const release = await generateSampleRelease({
      dir: join(work, 'gen'),
      version: '2150.1.0',
      commit8: 'abcdef12',
      flavors: [{ asset: 'baremetal_pxe', kind: 'metal' }],
      arches: ['amd64'],
      layout: 'folder',
      sizes: { squashfs: 16 * 1024 * 1024 },
    });
    const asset = release.assets.find((a) => !a.companion)!;
    const artifacts = await unpackFlavorArchive({
      archive: asset.path,
      kind: 'metal',
      arch: 'amd64',
      dir: join(work, 'out-ok'),
      logger: memoryLogger(),
      limits: tight,
    });
    expect(artifacts.files.squashfs?.digest).toBe(asset.expected?.squashfs?.digest);
  });
});

// The unpacker on archives on disk (the manual-build path), and tar damage that only a careful
// reader notices: a member longer than its header says, a tar cut short inside a valid xz stream.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack as tarPack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackFlavorArchive } from '../../src/gardenlinux';
import { generateSampleRelease, type SampleAsset } from '../../src/sample/release';
import { PublishError } from '../../src/util/errors';
import { memoryLogger } from '../../src/util/logger';

let root: string;
let kvm: SampleAsset;
let metal: SampleAsset;
const base = 'kvm-gardener_prod-amd64-2150.5.0-12345678';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gl-unpack-'));
  const r = await generateSampleRelease({
    dir: join(root, 'gen'),
    version: '2150.5.0',
    commit8: '12345678',
    layout: 'dot-slash',
    arches: ['amd64'],
    flavors: [
      { asset: 'kvm-gardener_prod', kind: 'kvm' },
      { asset: 'baremetal_pxe', kind: 'metal' },
    ],
  });
  kvm = r.assets.find((a) => a.kind === 'kvm')!;
  metal = r.assets.find((a) => a.kind === 'metal')!;
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function tarOf(entries: { name: string; data: Buffer }[]): Promise<Buffer> {
  const pack = tarPack();
  for (const e of entries) pack.entry({ name: e.name, size: e.data.length, mtime: new Date(0) }, e.data);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function expectFailure(archive: Buffer, message: RegExp): Promise<void> {
  const file = join(root, `${base}.tar.xz`);
  await writeFile(file, execFileSync('xz', ['-c', '-0'], { input: archive }));
  const dir = join(root, 'out-bad');
  const error = await unpackFlavorArchive({
    archive: file,
    kind: 'kvm',
    arch: 'amd64',
    dir,
    logger: memoryLogger(),
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PublishError);
  expect((error as Error).message).toMatch(message);
  expect(await readdir(dir).catch(() => [])).toEqual([]);
}

describe('unpackFlavorArchive', () => {
  it('unpacks an asset file on disk and reports its digest', async () => {
    const a = await unpackFlavorArchive({
      archive: kvm.path,
      kind: 'kvm',
      arch: 'amd64',
      dir: join(root, 'out-kvm'),
      logger: memoryLogger(),
    });
    expect(a.archive.digest).toBe(kvm.digest);
    expect(a.files.raw?.digest).toBe(kvm.expected?.raw?.digest);
    const m = await unpackFlavorArchive({
      archive: metal.path,
      kind: 'metal',
      arch: 'amd64',
      dir: join(root, 'out-metal'),
      logger: memoryLogger(),
    });
    expect(m.files.efiStub?.digest).toBe(metal.expected?.efiStub?.digest);
    expect(m.cmdline).toBe(metal.expected?.cmdline);
  });

  it('checks an expected digest and keeps nothing on a mismatch', async () => {
    const dir = join(root, 'out-digest');
    await expect(
      unpackFlavorArchive({
        archive: kvm.path,
        kind: 'kvm',
        arch: 'amd64',
        dir,
        logger: memoryLogger(),
        expectedDigest: `sha256:${'1'.repeat(64)}`,
      }),
    ).rejects.toThrow(/digest mismatch/);
    expect(await readdir(dir).catch(() => [])).toEqual([]);
  });

  it('stops at once when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new PublishError('cancelled'));
    const dir = join(root, 'out-abort');
    await expect(
      unpackFlavorArchive({
        archive: kvm.path,
        kind: 'kvm',
        arch: 'amd64',
        dir,
        logger: memoryLogger(),
        signal: controller.signal,
      }),
    ).rejects.toThrow();
    expect(await readdir(dir).catch(() => [])).toEqual([]);
  });

  it('refuses a member longer than its header says', async () => {
    const tar = await tarOf([
      { name: `${base}.raw`, data: Buffer.alloc(2048, 0x78) },
      { name: `${base}.release`, data: Buffer.from('ID=x\n') },
    ]);
    // Claim 10 bytes: the reader then meets data where the next header should be.
    tar.write('00000000012\0', 124, 'latin1');
    tar.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tar[i] as number;
    tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await expectFailure(tar, /corrupt tar header/);
  });

  it('refuses a tar cut short inside a valid xz stream', async () => {
    const tar = await tarOf([{ name: `${base}.raw`, data: Buffer.alloc(100_000, 1) }]);
    await expectFailure(tar.subarray(0, 40_000), /unexpected end of archive/);
  });

  it('refuses a missing file clearly', async () => {
    await expect(
      unpackFlavorArchive({
        archive: join(root, 'nope-amd64-1.1-00000000.tar.xz'),
        kind: 'kvm',
        arch: 'amd64',
        dir: join(root, 'x'),
        logger: memoryLogger(),
      }),
    ).rejects.toThrow(/no such file/);
  });
});

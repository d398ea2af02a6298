// initrd-uki against the real tools: xz -d must read what we compress, cpio -idv must unpack what we frame, and
// our cpio bytes must equal GNU cpio's own (--reproducible, root-owned, mtime 0).
import { execFileSync } from 'node:child_process';
import {
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
  copyFileSync,
  mkdirSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEmbeddedInitrd } from '../../src/boot';
import { readExactly } from '../../src/boot/initrd';
import { PublishError } from '../../src/util/errors';
import { requireCommand } from '../helpers/real-tools';

let dir: string;
let squashfs: string;
let initrd: string;

beforeAll(() => {
  requireCommand('mksquashfs', 'squashfs-tools');
  requireCommand('cpio', 'cpio');
  requireCommand('xz', 'xz-utils');
  dir = mkdtempSync(join(tmpdir(), 'boot-initrd-'));
  const root = join(dir, 'root');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'os-release'), 'ID=gardenlinux\n');
  // Incompressible content, so the squashfs is a few hundred KB like a (scaled-down) real one, and an odd size
  // is not guaranteed: mksquashfs pads to 4 KiB, so the cpio data padding is tested by the initrd below instead.
  writeFileSync(join(root, 'blob'), randomBytes(300_000));
  squashfs = join(dir, 'root.squashfs');
  execFileSync(
    'mksquashfs',
    [root, squashfs, '-noappend', '-all-root', '-mkfs-time', '0', '-quiet', '-no-progress'],
    { stdio: 'ignore' },
  );
  // A stand-in initrd: a real newc archive of 1001 bytes (not a multiple of 4), gzip-compressed like a release's.
  const initrdRoot = join(dir, 'initrd-root');
  mkdirSync(initrdRoot);
  writeFileSync(join(initrdRoot, 'init'), 'x'.repeat(1001));
  const cpio = execFileSync('sh', ['-c', 'echo init | cpio -H newc -o --quiet | gzip -n'], {
    cwd: initrdRoot,
  });
  initrd = join(dir, 'initrd');
  writeFileSync(initrd, cpio);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('buildEmbeddedInitrd', () => {
  it('writes the initrd unchanged, then an xz (crc32) stream of a newc cpio that real xz and cpio unpack to the squashfs', async () => {
    const out = join(dir, 'initrd-uki');
    const result = await buildEmbeddedInitrd({ initrd, squashfs, output: out });
    const bytes = readFileSync(out);
    const original = readFileSync(initrd);
    expect(result.size).toBe(bytes.length);
    expect(bytes.subarray(0, original.length).equals(original)).toBe(true);

    const xzPart = join(dir, 'appended.xz');
    writeFileSync(xzPart, bytes.subarray(original.length));
    const list = execFileSync('xz', ['--robot', '--list', xzPart], { encoding: 'utf8' });
    expect(list).toMatch(/^file\t1\t1\t.*\tCRC32\t/m); // one stream, one block (small input), CRC32 check
    const cpio = execFileSync('xz', ['-d', '-c', xzPart], { maxBuffer: 64 * 1024 * 1024 });

    const unpacked = join(dir, 'unpacked');
    mkdirSync(unpacked);
    const listing = execFileSync('sh', ['-c', 'cpio -idv 2>&1'], {
      cwd: unpacked,
      input: cpio,
      encoding: 'utf8',
    });
    expect(listing.split('\n')[0]).toBe('root.squashfs');
    expect(readFileSync(join(unpacked, 'root.squashfs')).equals(readFileSync(squashfs))).toBe(true);

    // Byte-for-byte what GNU cpio writes for the same file when told to be reproducible.
    const reference = join(dir, 'reference');
    mkdirSync(reference);
    copyFileSync(squashfs, join(reference, 'root.squashfs'));
    execFileSync('chmod', ['0644', join(reference, 'root.squashfs')]);
    utimesSync(join(reference, 'root.squashfs'), 0, 0);
    const gnu = execFileSync(
      'sh',
      ['-c', 'echo root.squashfs | cpio -H newc -o --reproducible -R 0:0 --quiet'],
      {
        cwd: reference,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    expect(cpio.length % 512).toBe(0);
    expect(cpio.equals(gnu)).toBe(true);
  });

  it('is deterministic: the same inputs give the same bytes, whatever the thread count', async () => {
    const a = await buildEmbeddedInitrd({ initrd, squashfs, output: join(dir, 'a') });
    const b = await buildEmbeddedInitrd({ initrd, squashfs, output: join(dir, 'b') });
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.digest).toBe(a.digest);
    // Small blocks so several threads really share the work: liblzma's multi-threaded output must not depend on
    // how many there are, or a runner's CPU count would change the digest.
    const two = await buildEmbeddedInitrd({
      initrd,
      squashfs,
      output: join(dir, 't2'),
      xz: { blockSize: 64 * 1024, threads: 2 },
    });
    const three = await buildEmbeddedInitrd({
      initrd,
      squashfs,
      output: join(dir, 't3'),
      xz: { blockSize: 64 * 1024, threads: 3 },
    });
    expect(three.digest).toBe(two.digest);
    const xzPart = join(dir, 't2.xz');
    writeFileSync(xzPart, readFileSync(two.path).subarray(readFileSync(initrd).length));
    const blocks = Number(
      execFileSync('xz', ['--robot', '--list', xzPart], { encoding: 'utf8' }).match(
        /^file\t1\t(\d+)\t/m,
      )?.[1],
    );
    expect(blocks).toBeGreaterThan(3);
  });

  it('names a missing initrd or squashfs, and refuses a file that is not a squashfs', async () => {
    await expect(
      buildEmbeddedInitrd({ initrd: join(dir, 'nope'), squashfs, output: join(dir, 'x') }),
    ).rejects.toThrow(new PublishError(`initrd not found: ${join(dir, 'nope')}`));
    await expect(
      buildEmbeddedInitrd({ initrd, squashfs: join(dir, 'nope.sq'), output: join(dir, 'x') }),
    ).rejects.toThrow(/squashfs not found: .*nope\.sq/);
    const err = await buildEmbeddedInitrd({ initrd, squashfs: initrd, output: join(dir, 'x') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PublishError);
    expect((err as Error).message).toMatch(/not a squashfs image/);
  });

  it('stops when aborted and leaves no output behind', async () => {
    const controller = new AbortController();
    controller.abort(new PublishError('cancelled'));
    await expect(
      buildEmbeddedInitrd({ initrd, squashfs, output: join(dir, 'aborted'), signal: controller.signal }),
    ).rejects.toThrow('cancelled');
    expect(() => readFileSync(join(dir, 'aborted'))).toThrow();
  });
});

describe('readExactly', () => {
  const collect = async (size: number, reuse: boolean): Promise<Buffer> => {
    const parts: Buffer[] = [];
    // Copies, as a consumer that is done with each chunk before the next (what reuse requires).
    for await (const chunk of readExactly(initrd, size, 'initrd', undefined, reuse))
      parts.push(Buffer.from(chunk));
    return Buffer.concat(parts);
  };

  it('gives the file, with a fresh buffer per chunk or one reused buffer', async () => {
    const whole = readFileSync(initrd);
    expect((await collect(whole.length, false)).equals(whole)).toBe(true);
    expect((await collect(whole.length, true)).equals(whole)).toBe(true);
  });

  it('fails when the file is shorter or longer than announced', async () => {
    const size = readFileSync(initrd).length;
    await expect(collect(size + 1, true)).rejects.toThrow(
      /changed while it was read \(expected \d+ bytes, read \d+\)/,
    );
    await expect(collect(size - 1, true)).rejects.toThrow(
      /changed while it was read \(expected \d+ bytes, read more\)/,
    );
  });
});

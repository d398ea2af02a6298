import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoalescingWriter, WRITE_BUFFER_SIZE, writeFileAtomic } from '../../src/util/files';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'files-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Splits `bytes` into pieces of pseudo-random sizes (some larger than the writer's buffer). */
function* pieces(bytes: Buffer, seed: number): Generator<Buffer> {
  let state = seed;
  for (let at = 0; at < bytes.length;) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const n = Math.min(bytes.length - at, 1 + (state % (WRITE_BUFFER_SIZE + WRITE_BUFFER_SIZE / 2)));
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

describe('CoalescingWriter', () => {
  it('writes contiguous pieces of any size byte for byte, however they are split', async () => {
    const content = randomBytes(5 * WRITE_BUFFER_SIZE + 12345);
    for (const seed of [1, 2, 3]) {
      const path = join(dir, `contiguous-${seed}`);
      const handle = await open(path, 'w');
      const writer = new CoalescingWriter(handle);
      let position = 0;
      for (const piece of pieces(content, seed)) {
        await writer.write(piece, position);
        position += piece.length;
      }
      await writer.close();
      await handle.close();
      expect(sha(await readFile(path))).toBe(sha(content));
    }
  });

  it('puts data after a gap where it belongs and leaves the gap as zeros', async () => {
    const path = join(dir, 'gaps');
    const handle = await open(path, 'w');
    const writer = new CoalescingWriter(handle);
    const a = randomBytes(3000);
    const b = randomBytes(WRITE_BUFFER_SIZE + 7);
    await writer.write(a, 0);
    await writer.write(b, 10_000); // not contiguous: a is flushed first
    await writer.write(a, 10_000 + b.length); // contiguous with b
    await writer.close();
    await handle.close();
    const expected = Buffer.alloc(10_000 + b.length + a.length);
    a.copy(expected, 0);
    b.copy(expected, 10_000);
    a.copy(expected, 10_000 + b.length);
    expect(sha(await readFile(path))).toBe(sha(expected));
  });

  it('reports a failed write instead of losing it', async () => {
    const path = join(dir, 'fails');
    await writeFile(path, '');
    const handle = await open(path, 'r'); // read-only: every write fails with EBADF
    const writer = new CoalescingWriter(handle);
    await expect(
      (async () => {
        await writer.write(randomBytes(3 * WRITE_BUFFER_SIZE), 0);
        await writer.close();
      })(),
    ).rejects.toMatchObject({ code: 'EBADF' });
    await handle.close();
  });
});

describe('writeFileAtomic', () => {
  it('hashes what it writes and renames into place', async () => {
    const content = randomBytes(2 * WRITE_BUFFER_SIZE + 99);
    const path = join(dir, 'atomic');
    const file = await writeFileAtomic(path, pieces(content, 7));
    expect(file).toEqual({ path, digest: sha(content), size: content.length });
    expect(sha(await readFile(path))).toBe(sha(content));
  });

  it('leaves nothing behind when the source fails or the digest is wrong', async () => {
    const sub = await mkdtemp(join(dir, 'fail-'));
    async function* failing(): AsyncGenerator<Buffer> {
      yield randomBytes(WRITE_BUFFER_SIZE * 2);
      throw new Error('source broke');
    }
    await expect(writeFileAtomic(join(sub, 'x'), failing())).rejects.toThrow('source broke');
    await expect(
      writeFileAtomic(join(sub, 'y'), [Buffer.from('abc')], { expectedDigest: sha(Buffer.from('abd')) }),
    ).rejects.toThrow(/digest mismatch/);
    const controller = new AbortController();
    async function* aborting(): AsyncGenerator<Buffer> {
      yield Buffer.from('first');
      controller.abort(new Error('stop now'));
      yield Buffer.from('second');
    }
    await expect(writeFileAtomic(join(sub, 'z'), aborting(), { signal: controller.signal })).rejects.toThrow(
      'stop now',
    );
    expect(await readdir(sub)).toEqual([]);
  });
});

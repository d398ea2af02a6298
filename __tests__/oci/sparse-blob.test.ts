// sparseFileBlob must send exactly the file's bytes (data ranges read, holes as zeros), from any offset, and
// the sparse writer must report the ranges it wrote.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSparseFileAtomic } from '../../src/gardenlinux/tar/sparse';
import { sparseFileBlob } from '../../src/oci/blob';

const dir = mkdtempSync(join(tmpdir(), 'sparse-blob-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function read(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('sparseFileBlob', () => {
  it('gives the file content from any start, reading only the data extents', async () => {
    const size = 5 * 1024 * 1024 + 123;
    const path = join(dir, 'disk.raw');
    const fh = await open(path, 'w');
    const a = randomBytes(70_000);
    const b = randomBytes(1_500_000);
    await fh.write(a, 0, a.length, 4096);
    await fh.write(b, 0, b.length, 3 * 1024 * 1024);
    await fh.truncate(size);
    await fh.close();
    const extents = [
      { offset: 4096, length: a.length },
      { offset: 3 * 1024 * 1024, length: b.length },
    ];
    const whole = readFileSync(path);
    for (const start of [0, 1, 4096, 50_000, 74_096, 3 * 1024 * 1024 + 7, size - 1, size]) {
      const got = await read(sparseFileBlob(path, 'sha256:x', size, extents).open(start));
      expect(got.equals(whole.subarray(start))).toBe(true);
    }
  });

  it('the sparse writer reports the ranges it wrote; holes are left out', async () => {
    const data = randomBytes(200_000);
    const zeros = Buffer.alloc(3 * 65536);
    async function* body(): AsyncGenerator<Buffer> {
      yield data.subarray(0, 65536);
      yield zeros;
      yield data.subarray(65536);
    }
    const size = 65536 + zeros.length + (data.length - 65536) + 1_000_000;
    const file = await writeSparseFileAtomic(join(dir, 'written.raw'), body(), { size });
    expect(file.dataExtents).toEqual([
      { offset: 0, length: 65536 },
      { offset: 65536 + zeros.length, length: data.length - 65536 },
    ]);
    const got = await read(sparseFileBlob(file.path, file.digest, size, file.dataExtents!).open(0));
    expect(got.equals(readFileSync(file.path))).toBe(true);
  });
});

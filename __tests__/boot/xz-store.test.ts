// The stored-chunk .xz writer against the real xz: it must test clean, decompress to the input, carry a CRC32
// check, split into blocks at the block size, and give the same bytes however the input arrives.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { xzStore, xzStoredSize } from '../../src/boot/xz-store';
import { requireCommand } from '../helpers/real-tools';

requireCommand('xz', 'xz-utils');
const dir = mkdtempSync(join(tmpdir(), 'xz-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `xz --robot --list` wants a file. */
function list(xz: Buffer, name: string): string {
  writeFileSync(join(dir, name), xz);
  return execFileSync('xz', ['--robot', '--list', join(dir, name)], { encoding: 'utf8' });
}

async function collect(input: Buffer[], blockSize?: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  async function* source(): AsyncGenerator<Buffer> {
    yield* input;
  }
  // Copies: a piece is only valid until the next one is requested.
  for await (const b of xzStore(source(), blockSize ? { blockSize } : {})) parts.push(Buffer.from(b));
  return Buffer.concat(parts);
}

function splitAt(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('xzStore', () => {
  const data = randomBytes(3 * 1024 * 1024 + 12345);

  it('writes an .xz stream (CRC32) that xz tests clean and decompresses to the input', async () => {
    const xz = await collect([data]);
    execFileSync('xz', ['-t'], { input: xz });
    expect(execFileSync('xz', ['-dc'], { input: xz, maxBuffer: 64 * 1024 * 1024 }).equals(data)).toBe(true);
    const listing = list(xz, 'one.xz');
    expect(listing).toMatch(/^file\t1\t1\t.*\tCRC32\t/m);
    // Stored chunks: 3 bytes of framing per 64 KiB, plus headers, index and footer.
    expect(xz.length - data.length).toBeLessThan(256 + 3 * Math.ceil(data.length / 65536));
  });

  it('cuts blocks at the block size and gives the same bytes however the input is split', async () => {
    const whole = await collect([data], 100_000);
    const pieces = await collect(splitAt(data, [1, 70_000, 1024 * 1024, 65_536, 7]), 100_000);
    expect(pieces.equals(whole)).toBe(true);
    expect(execFileSync('xz', ['-dc'], { input: whole, maxBuffer: 64 * 1024 * 1024 }).equals(data)).toBe(
      true,
    );
    const listing = list(whole, 'blocks.xz');
    expect(Number(/^file\t1\t(\d+)\t/m.exec(listing)?.[1])).toBe(Math.ceil(data.length / 100_000));
  });

  it('writes a valid empty stream', async () => {
    const xz = await collect([]);
    expect(execFileSync('xz', ['-dc'], { input: xz }).length).toBe(0);
  });

  it('knows its output length in advance, for every input length and block size', async () => {
    const sizes = [0, 1, 65_535, 65_536, 65_537, 99_999, 100_000, 100_001, 300_000, 1024 * 1024 + 3];
    for (const blockSize of [65_536, 100_000, 8 * 1024 * 1024]) {
      for (const n of sizes) {
        const xz = await collect([data.subarray(0, n)], blockSize);
        expect({ n, blockSize, size: xzStoredSize(n, blockSize) }).toEqual({ n, blockSize, size: xz.length });
      }
    }
    // Past 127 blocks the index's block count takes two varint bytes.
    const many = await collect([data.subarray(0, 200 * 1024)], 1024);
    expect(xzStoredSize(200 * 1024, 1024)).toBe(many.length);
  });
});

// Files are written under a temporary name in the target folder and renamed into place when complete,
// so a crash never leaves a half-written file under its final name; each is hashed while it is written.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface HashedFile {
  path: string;
  /** `sha256:<hex>` */
  digest: string;
  size: number;
  /** A sparse file's written ranges (ascending); the rest are holes that read as zeros. */
  dataExtents?: { offset: number; length: number }[];
}

/** A pass-through stream that hashes (sha256) and counts what flows through it. */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;

  override _transform(
    chunk: Buffer,
    _enc: BufferEncoding,
    callback: (e?: Error | null, d?: Buffer) => void,
  ): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  /** Valid once the stream has ended. */
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
}

/**
 * Streams `source` into `path` atomically (temp file + rename), hashing on the way.
 * `expectedDigest`, when given, is checked before the rename: a mismatch leaves nothing behind.
 */
export async function writeFileAtomic(
  path: string,
  source: Readable | AsyncIterable<Uint8Array>,
  options: { expectedDigest?: string; signal?: AbortSignal; onData?: (bytes: number) => void } = {},
): Promise<HashedFile> {
  await mkdir(dirname(path), { recursive: true });
  const temp = temporaryPathFor(path);
  const hasher = new HashingStream();
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | Transform)[] = [source as Readable, hasher];
  if (options.onData) {
    const onData = options.onData;
    hasher.on('data', (c: Buffer) => onData(c.length));
  }
  try {
    await pipeline(
      ...(stages as [Readable, Transform]),
      createWriteStream(temp),
      options.signal ? { signal: options.signal } : {},
    );
    const digest = hasher.digest();
    if (options.expectedDigest && options.expectedDigest !== digest) {
      throw new DigestMismatchError(path, options.expectedDigest, digest);
    }
    await rename(temp, path);
    return { path, digest, size: hasher.size };
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

export class DigestMismatchError extends Error {
  override readonly name = 'DigestMismatchError';
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`digest mismatch for ${what}: expected ${expected}, got ${actual}`);
  }
}

/** Hashes a file already on disk. Only for inputs that did not arrive through a hashing writer. */
export async function hashFile(path: string): Promise<HashedFile> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { path, digest: `sha256:${hash.digest('hex')}`, size };
}

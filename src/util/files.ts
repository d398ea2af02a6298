// Files are written under a temporary name in the target folder and renamed into place when complete,
// so a crash never leaves a half-written file under its final name; each is hashed while it is written.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { PublishError } from './errors';
import { dirname, basename, join } from 'node:path';
import type { Readable } from 'node:stream';

export interface HashedFile {
  path: string;
  /** `sha256:<hex>` */
  digest: string;
  size: number;
  /** A sparse file's written ranges (ascending); the rest are holes that read as zeros. */
  dataExtents?: { offset: number; length: number }[];
}

/**
 * A full disk while writing `path`, as one error a person can act on: the folder, what was written, and what
 * the file needs. Other errors pass through unchanged.
 */
export function noSpaceError(error: unknown, path: string, written: number, needed?: number): unknown {
  if ((error as NodeJS.ErrnoException | undefined)?.code !== 'ENOSPC') return error;
  // Written rounds down and needed rounds up, in KiB below a MiB: a small file (a sparse disk's data, a UKI)
  // read "stopped after 0.5 MiB of the 0.5 MiB it needs".
  const size = (n: number, round: (x: number) => number): string =>
    n < 2 ** 20 ? `${round(n / 1024)} KiB` : `${(round((n / 2 ** 20) * 10) / 10).toFixed(1)} MiB`;
  return new PublishError(
    `no space left in ${dirname(path)}: writing ${basename(path)} stopped after ${size(written, Math.floor)}${needed !== undefined ? ` of the ${size(needed, Math.ceil)} it needs` : ''}; its partial file was removed`,
    {
      cause: error,
      hint: 'Free space there, or give a work folder on a larger disk (the CLI: --work-dir; the action: TMPDIR or RUNNER_TEMP), and run again: what was uploaded is reused.',
    },
  );
}

const ZERO_BLOCK = Buffer.alloc(1024 * 1024);

/** True when every byte is zero (compared against a zero buffer, one memcmp per MiB). */
export function isAllZero(buf: Uint8Array): boolean {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let off = 0; off < view.length; off += ZERO_BLOCK.length) {
    const n = Math.min(ZERO_BLOCK.length, view.length - off);
    if (!view.subarray(off, off + n).equals(ZERO_BLOCK.subarray(0, n))) return false;
  }
  return true;
}

export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
}

/**
 * Bytes per write call. Each asynchronous write is a round trip through libuv's thread pool, which costs
 * tens of microseconds here (measured: 1 GiB in 64 KiB writes took 0.94 s of CPU, in 1 MiB writes 0.28 s,
 * in 4 MiB writes 2.4 s), while the pieces arriving from a decompressor or a tar body are 16-64 KiB. So
 * pieces are copied into 1 MiB buffers and written a buffer at a time.
 */
export const WRITE_BUFFER_SIZE = 1024 * 1024;

/**
 * Positional writes gathered into two reused 1 MiB buffers: one fills while the other is being written, so
 * copying and writing overlap, and no buffer is allocated per write (nothing for the GC to collect).
 * Contiguous writes are merged; a write elsewhere (past a hole) flushes first. Call `close()` to flush.
 */
export class CoalescingWriter {
  private readonly buffers = [Buffer.allocUnsafe(WRITE_BUFFER_SIZE), Buffer.allocUnsafe(WRITE_BUFFER_SIZE)];
  private current = 0;
  private fill = 0;
  /** File position of the current buffer's first byte. */
  private start = 0;
  private inFlight: Promise<void> = Promise.resolve();
  /** Bytes the file system has accepted (what a full disk's error reports; the buffers hold more). */
  written = 0;
  /** The file position just past the last accepted byte. */
  reached = 0;

  constructor(private readonly handle: FileHandle) {}

  /** Copies `data` for writing at `position`; resolves once it can take more (not when it is on disk). */
  async write(data: Uint8Array, position: number): Promise<void> {
    if (this.fill > 0 && position !== this.start + this.fill) await this.flush();
    if (this.fill === 0) this.start = position;
    for (let offset = 0; offset < data.length;) {
      const n = Math.min(WRITE_BUFFER_SIZE - this.fill, data.length - offset);
      (this.buffers[this.current] as Buffer).set(data.subarray(offset, offset + n), this.fill);
      this.fill += n;
      offset += n;
      if (this.fill === WRITE_BUFFER_SIZE) await this.flush();
    }
  }

  /** Writes everything gathered so far and waits until it is written. */
  async close(): Promise<void> {
    await this.flush();
    await this.inFlight;
  }

  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    // The other buffer's write must be done before that buffer is filled again (right after this swap).
    await this.inFlight;
    const buffer = this.buffers[this.current] as Buffer;
    const length = this.fill;
    const position = this.start;
    this.inFlight = writeAll(this.handle, buffer, length, position, (n, end) => {
      this.written += n;
      this.reached = Math.max(this.reached, end);
    });
    // Failures surface at the next flush or close; until then nobody awaits it, which must not count as unhandled.
    this.inFlight.catch(() => {});
    this.current ^= 1;
    this.fill = 0;
    this.start = position + length;
  }
}

async function writeAll(
  handle: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
  accepted: (bytes: number, end: number) => void,
): Promise<void> {
  for (let written = 0; written < length;) {
    const n = (await handle.write(buffer, written, length - written, position + written)).bytesWritten;
    written += n;
    accepted(n, position + written);
  }
}

/**
 * Streams `source` into `path` atomically (temp file + rename), hashing on the way.
 * `expectedDigest`, when given, is checked before the rename: a mismatch leaves nothing behind.
 */
export async function writeFileAtomic(
  path: string,
  source: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: {
    expectedDigest?: string;
    signal?: AbortSignal;
    onData?: (bytes: number) => void;
    /** The file's size when known (a tar member's): named in the error when the disk fills up. */
    expectedSize?: number;
    /** All-zero pieces stay holes (a disk image's gigabytes of zeros take no space). */
    keepHoles?: boolean;
  } = {},
): Promise<HashedFile> {
  const { signal } = options;
  await mkdir(dirname(path), { recursive: true });
  const temp = temporaryPathFor(path);
  const hash = createHash('sha256');
  let size = 0;
  let handle: FileHandle | undefined;
  let writer: CoalescingWriter | undefined;
  // A stream source stops at once on abort (a generator stops at its next piece, as its producer sees the signal).
  const onAbort = (): void => {
    if (isReadable(source)) source.destroy(signal?.reason as Error);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    handle = await open(temp, 'wx');
    writer = new CoalescingWriter(handle);
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      signal?.throwIfAborted();
      hash.update(chunk);
      if (!options.keepHoles || !isAllZero(chunk)) await writer.write(chunk, size);
      size += chunk.length;
      options.onData?.(chunk.length);
    }
    await writer.close();
    if (options.keepHoles) await handle.truncate(size);
    await handle.close();
    handle = undefined;
    const digest = `sha256:${hash.digest('hex')}`;
    if (options.expectedDigest && options.expectedDigest !== digest) {
      throw new DigestMismatchError(path, options.expectedDigest, digest);
    }
    await rename(temp, path);
    return { path, digest, size };
  } catch (error) {
    await handle?.close().catch(() => {});
    if (isReadable(source)) source.destroy();
    await rm(temp, { force: true });
    // What reached the disk, not what was handed to the writer's buffers.
    throw noSpaceError(error, path, writer?.reached ?? 0, options.expectedSize);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

function isReadable(source: unknown): source is Readable {
  return typeof (source as Readable | null)?.destroy === 'function';
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
/**
 * Hashes a file in one read. With `extents`, also notes where its data is (64 KiB blocks that are not all
 * zero): a disk image's data extents, so it can be stored and uploaded with its holes.
 */
export async function hashFile(
  path: string,
  signal?: AbortSignal,
  options: { extents?: boolean } = {},
): Promise<HashedFile> {
  const hash = createHash('sha256');
  const extents: { offset: number; length: number }[] = [];
  const BLOCK = 64 * 1024;
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(signal ? { signal } : {}) });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    for (let off = 0; options.extents && off < chunk.length; off += BLOCK) {
      const block = chunk.subarray(off, off + BLOCK);
      if (isAllZero(block)) continue;
      const at = size + off;
      const last = extents[extents.length - 1];
      if (last && last.offset + last.length === at) last.length += block.length;
      else extents.push({ offset: at, length: block.length });
    }
    size += chunk.length;
  }
  return {
    path,
    digest: `sha256:${hash.digest('hex')}`,
    size,
    ...(options.extents ? { dataExtents: extents } : {}),
  };
}

/** The size of an input that must be a regular file; a missing or odd one is a clear error naming `what`. */
export async function regularFileSize(path: string, what: string): Promise<number> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new PublishError(`${what} ${path} is not a regular file`);
    return info.size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new PublishError(`${what} not found: ${path}`, { cause: error });
    throw error;
  }
}

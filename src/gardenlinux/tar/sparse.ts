// Writes a disk image so that its holes stay holes: data goes in with positional writes, zero
// stretches are skipped (the file is sized with ftruncate at the end), and the sha256 is computed
// on the way over the logical content, holes included, so the file is never read back.
import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { PublishError } from '../../util/errors';
import { temporaryPathFor, type HashedFile } from '../../util/files';
import type { SparseSegment } from './reader';

const ZEROS = Buffer.alloc(1024 * 1024);
/** Zero runs shorter than this are written: tiny holes do not pay for the extra syscalls. */
const HOLE_GRANULE = 256 * 1024;

function isAllZero(buf: Buffer): boolean {
  // Compare against a zero buffer in one memcmp instead of a byte loop.
  for (let off = 0; off < buf.length; off += ZEROS.length) {
    const n = Math.min(ZEROS.length, buf.length - off);
    if (!buf.subarray(off, off + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

export interface SparseWriteOptions {
  /** Logical file size. */
  size: number;
  /** Where the stored bytes go; absent for a plain member (all bytes in order, zero runs become holes). */
  segments?: SparseSegment[];
  signal?: AbortSignal;
  onData?: (bytes: number) => void;
}

/** Streams `body` into `path` atomically (temp + rename), keeping holes; returns the digest of the logical content. */
export async function writeSparseFileAtomic(path: string, body: AsyncIterable<Buffer>, options: SparseWriteOptions): Promise<HashedFile> {
  const temp = temporaryPathFor(path);
  const hash = createHash('sha256');
  const fh = await open(temp, 'wx');
  let logical = 0; // bytes hashed so far (the position in the logical file)
  const hashZeros = (upTo: number): void => {
    while (logical < upTo) {
      const n = Math.min(ZEROS.length, upTo - logical);
      hash.update(ZEROS.subarray(0, n));
      logical += n;
    }
  };
  try {
    const segments = options.segments ?? [{ offset: 0, size: options.size }];
    let segIndex = 0;
    let segLeft = segments[0]?.size ?? 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // Collects data into granules so zero detection sees aligned, reasonably big pieces.
    const flush = async (force: boolean): Promise<void> => {
      while (pendingBytes >= HOLE_GRANULE || (force && pendingBytes > 0)) {
        const n = Math.min(HOLE_GRANULE, pendingBytes);
        const joined = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
        const piece = joined.subarray(0, n);
        const rest = joined.subarray(n);
        pending = rest.length ? [rest] : [];
        pendingBytes -= n;
        const at = logical;
        hash.update(piece);
        logical += n;
        if (!isAllZero(piece)) {
          let written = 0;
          while (written < n) written += (await fh.write(piece, written, n - written, at + written)).bytesWritten;
        }
      }
    };
    for await (const chunk of body) {
      if (options.signal?.aborted) throw options.signal.reason;
      let c = chunk;
      while (c.length > 0) {
        while (segLeft === 0) {
          segIndex++;
          if (segIndex >= segments.length) throw new PublishError(`${path}: more data than the sparse map describes`);
          segLeft = (segments[segIndex] as SparseSegment).size;
        }
        const seg = segments[segIndex] as SparseSegment;
        const segStart = seg.offset + (seg.size - segLeft);
        if (pendingBytes === 0 && logical < segStart) hashZeros(segStart);
        else if (logical + pendingBytes < segStart) {
          await flush(true);
          hashZeros(segStart);
        }
        const take = Math.min(segLeft, c.length);
        pending.push(c.subarray(0, take));
        pendingBytes += take;
        segLeft -= take;
        c = c.subarray(take);
        options.onData?.(take);
        await flush(false);
      }
    }
    await flush(true);
    hashZeros(options.size);
    await fh.truncate(options.size);
    await fh.close();
    await rename(temp, path);
    return { path, digest: `sha256:${hash.digest('hex')}`, size: options.size };
  } catch (error) {
    await fh.close().catch(() => {});
    await rm(temp, { force: true });
    throw error;
  }
}

// Writes a disk image so that its holes stay holes: data goes in with positional writes, zero
// stretches are skipped (the file is sized with ftruncate at the end), and the sha256 is computed
// on the way over the logical content, holes included, so the file is never read back.
import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { PublishError } from '../../util/errors';
import {
  CoalescingWriter,
  isAllZero,
  noSpaceError,
  temporaryPathFor,
  type HashedFile,
} from '../../util/files';
import type { SparseSegment } from './reader';

const ZEROS = Buffer.alloc(1024 * 1024);

export interface SparseWriteOptions {
  /** Logical file size. */
  size: number;
  /** Where the stored bytes go; absent for a plain member (all bytes in order, zero runs become holes). */
  segments?: SparseSegment[];
  signal?: AbortSignal;
  onData?: (bytes: number) => void;
}

/** Streams `body` into `path` atomically (temp + rename), keeping holes; returns the digest of the logical content. */
export async function writeSparseFileAtomic(
  path: string,
  body: AsyncIterable<Buffer>,
  options: SparseWriteOptions,
): Promise<HashedFile> {
  const temp = temporaryPathFor(path);
  const hash = createHash('sha256');
  const fh = await open(temp, 'wx');
  const writer = new CoalescingWriter(fh);
  let logical = 0; // bytes hashed so far (the position in the logical file)
  // Where data was written: the upload reads only these and sends zeros for the rest without reading the
  // holes back (gigabytes of a disk image).
  const extents: { offset: number; length: number }[] = [];
  // A hole of gigabytes takes a second or more to hash: yield to the event loop every few MiB so
  // the other downloads and decompressors running beside this one keep flowing meanwhile.
  const hashZeros = async (upTo: number): Promise<void> => {
    let sinceYield = 0;
    while (logical < upTo) {
      const n = Math.min(ZEROS.length, upTo - logical);
      hash.update(ZEROS.subarray(0, n));
      logical += n;
      sinceYield += n;
      if (sinceYield >= 16 * 1024 * 1024) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  };
  try {
    const segments = options.segments ?? [{ offset: 0, size: options.size }];
    let segIndex = 0;
    let segLeft = segments[0]?.size ?? 0;
    // Each piece is written where it belongs unless it is all zeros: then it stays a hole. Pieces are the
    // decompressor's chunks (64 KiB); the writer gathers contiguous ones into 1 MiB writes.
    for await (const chunk of body) {
      if (options.signal?.aborted) throw options.signal.reason;
      let c = chunk;
      while (c.length > 0) {
        while (segLeft === 0) {
          segIndex++;
          if (segIndex >= segments.length)
            throw new PublishError(`${path}: more data than the sparse map describes`);
          segLeft = (segments[segIndex] as SparseSegment).size;
        }
        const seg = segments[segIndex] as SparseSegment;
        const at = seg.offset + (seg.size - segLeft);
        if (logical < at) await hashZeros(at);
        const take = Math.min(segLeft, c.length);
        const piece = c.subarray(0, take);
        hash.update(piece);
        logical += take;
        if (!isAllZero(piece)) {
          await writer.write(piece, at);
          const last = extents[extents.length - 1];
          if (last && last.offset + last.length === at) last.length += take;
          else extents.push({ offset: at, length: take });
        }
        segLeft -= take;
        c = c.subarray(take);
        options.onData?.(take);
      }
    }
    await hashZeros(options.size);
    await writer.close();
    await fh.truncate(options.size);
    await fh.close();
    await rename(temp, path);
    return { path, digest: `sha256:${hash.digest('hex')}`, size: options.size, dataExtents: extents };
  } catch (error) {
    await fh.close().catch(() => {});
    await rm(temp, { force: true });
    // Holes take no space: what the file needs is its data.
    const data = (options.segments ?? [{ offset: 0, size: options.size }]).reduce(
      (n, seg) => n + seg.size,
      0,
    );
    // What reached the disk, not what was handed to the writer's buffers.
    throw noSpaceError(error, path, writer.written, data);
  }
}

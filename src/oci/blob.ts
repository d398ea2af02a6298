// A blob to store: its digest and size are known before it is sent, and its bytes can be opened
// again (from the file, or from memory) whenever a retry needs to replay them.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { sha256Digest } from './digest';

export interface Blob {
  readonly digest: string;
  readonly size: number;
  /** A fresh stream of the bytes from `start` (default 0) to the end. */
  open(start?: number): Readable;
  /** For logs: the file it comes from, or a short description. */
  readonly label: string;
  /** Mostly holes (a disk image): a store writing it to disk keeps the zeros as holes. */
  readonly sparse?: boolean;
}

export function fileBlob(path: string, digest: string, size: number, label = path): Blob {
  return {
    digest,
    size,
    label,
    open: (start = 0) =>
      size === 0 ? Readable.from([]) : createReadStream(path, { start, highWaterMark: 1024 * 1024 }),
  };
}

const ZEROS = Buffer.alloc(1024 * 1024);

/**
 * A sparse file (a disk image of a few GB, mostly holes) whose data ranges are known: only those are read,
 * the holes are sent from one shared zero buffer, so gigabytes of zeros are neither read back nor allocated.
 */
export function sparseFileBlob(
  path: string,
  digest: string,
  size: number,
  extents: readonly { offset: number; length: number }[],
  label = path,
): Blob {
  return {
    digest,
    size,
    label,
    sparse: true,
    open: (start = 0) => Readable.from(sparseBytes(path, size, extents, start), { objectMode: false }),
  };
}

function* zeros(length: number): Generator<Buffer> {
  for (let left = length; left > 0; left -= ZEROS.length)
    yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
}

async function* sparseBytes(
  path: string,
  size: number,
  extents: readonly { offset: number; length: number }[],
  start: number,
): AsyncGenerator<Buffer> {
  let position = start;
  for (const extent of extents) {
    const end = Math.min(size, extent.offset + extent.length);
    if (end <= position) continue;
    if (extent.offset > position) {
      yield* zeros(extent.offset - position);
      position = extent.offset;
    }
    for await (const chunk of createReadStream(path, {
      start: position,
      end: end - 1,
      highWaterMark: 1024 * 1024,
    }))
      yield chunk as Buffer;
    position = end;
  }
  if (position < size) yield* zeros(size - position);
}

export function bytesBlob(bytes: Uint8Array, label = 'bytes'): Blob {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    digest: sha256Digest(bytes),
    size: bytes.byteLength,
    label,
    open: (start = 0) => Readable.from(start >= buffer.length ? [] : [buffer.subarray(start)]),
  };
}

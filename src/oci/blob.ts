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

export function bytesBlob(bytes: Uint8Array, label = 'bytes'): Blob {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    digest: sha256Digest(bytes),
    size: bytes.byteLength,
    label,
    open: (start = 0) => Readable.from(start >= buffer.length ? [] : [buffer.subarray(start)]),
  };
}

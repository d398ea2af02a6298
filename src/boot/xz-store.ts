// An .xz stream whose LZMA2 chunks are all "uncompressed" chunks: a valid xz file (xz -d, the kernel's
// initramfs unpacker and every other LZMA2 decoder read it) written at memcpy speed.
// Why: the payload of initrd-uki is root.squashfs, whose blocks are compressed already. liblzma gains
// almost nothing on it (see xz.ts) but still runs its match finder and range coder over every byte, at
// 10-20 MB/s per core: for six metal images of a few hundred MB that was most of the pipeline's CPU time
// (docs/BENCHMARKS.md). Stored chunks cost one copy and a CRC32.
// Format: https://tukaani.org/xz/xz-file-format.txt (stream header, blocks, index, footer) and LZMA2's chunk
// control bytes (0x01: uncompressed chunk with dictionary reset, 0x02: uncompressed chunk, 0x00: end).
import { crc32 } from 'node:zlib';
import { XZ_DEFAULT_BLOCK_SIZE } from './xz';

/** LZMA2 caps an uncompressed chunk at 64 KiB. */
const CHUNK = 64 * 1024;
/** Stream flags: check type CRC32 (0x01), what the kernel's XZ decoder checks. */
const STREAM_FLAGS = Buffer.from([0x00, 0x01]);
const MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
/**
 * LZMA2 dictionary-size property 12 = 256 KiB (what `xz -0` declares). Stored chunks never reference the
 * dictionary, so this only bounds what a decoder allocates.
 */
const DICT_PROP = 12;

function u32le(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

/** xz's variable-length integer (7 bits per byte, little-endian, high bit = more). */
function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/** Block header: size, flags (one filter, no optional sizes), LZMA2 filter flags, padding, CRC32. */
function blockHeader(): Buffer {
  const body = Buffer.from([0x00, 0x00, 0x21, 0x01, DICT_PROP]);
  const padded = Buffer.concat([body, pad4(body.length)]);
  padded[0] = (padded.length + 4) / 4 - 1;
  return Buffer.concat([padded, u32le(crc32(padded))]);
}

function streamHeader(): Buffer {
  return Buffer.concat([MAGIC, STREAM_FLAGS, u32le(crc32(STREAM_FLAGS))]);
}

function indexAndFooter(records: { unpadded: number; uncompressed: number }[]): Buffer {
  const parts = [Buffer.from([0x00]), varint(records.length)];
  for (const r of records) parts.push(varint(r.unpadded), varint(r.uncompressed));
  const body = Buffer.concat(parts);
  const index = Buffer.concat([body, pad4(body.length)]);
  const withCrc = Buffer.concat([index, u32le(crc32(index))]);
  const backward = Buffer.concat([u32le(withCrc.length / 4 - 1), STREAM_FLAGS]);
  return Buffer.concat([withCrc, u32le(crc32(backward)), backward, Buffer.from('YZ', 'latin1')]);
}

/**
 * The exact length of `xzStore`'s output for `inputSize` bytes, without producing it: a UKI's section table
 * needs the `.initrd` size before its bytes are streamed into the file.
 */
export function xzStoredSize(inputSize: number, blockSize = XZ_DEFAULT_BLOCK_SIZE): number {
  if (!Number.isSafeInteger(inputSize) || inputSize < 0) throw new RangeError(`xz input size ${inputSize}`);
  const header = blockHeader().length;
  const records: { unpadded: number; uncompressed: number }[] = [];
  for (let left = inputSize; left > 0; left -= Math.min(left, blockSize)) {
    const inBlock = Math.min(left, blockSize);
    // Every 64 KiB chunk carries a 3-byte control header; the block ends with a 0x00 byte.
    const compressed = inBlock + 3 * Math.ceil(inBlock / CHUNK) + 1;
    records.push({ unpadded: header + compressed + 4, uncompressed: inBlock });
  }
  const blocks = records.reduce((n, r) => n + r.unpadded - 4 + pad4(r.unpadded - 4).length + 4, 0);
  return streamHeader().length + blocks + indexAndFooter(records).length;
}

export interface XzStoreOptions {
  /** Uncompressed bytes per xz block, as `xz --block-size` (default 8 MiB, the same layout xz.ts uses). */
  blockSize?: number;
}

/**
 * Frames `input` as an .xz stream (CRC32 check) of stored LZMA2 chunks. Deterministic: the bytes depend only
 * on the input and the block size, never on how the input is split. Output pieces are views of the input
 * where possible (no copy): each is valid until the next one is requested, and the input chunk likewise only
 * needs to stay valid until the next input chunk is pulled.
 */
export async function* xzStore(
  input: AsyncIterable<Uint8Array>,
  options: XzStoreOptions = {},
): AsyncGenerator<Buffer> {
  const blockSize = options.blockSize ?? XZ_DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`xz block size ${blockSize}`);
  const header = blockHeader();
  const records: { unpadded: number; uncompressed: number }[] = [];
  let inBlock = 0; // uncompressed bytes in the open block
  let compressed = 0; // LZMA2 bytes of the open block
  let check = 0; // CRC32 of the open block's uncompressed bytes
  // Chunk k of a block covers its bytes [k * CHUNK, (k + 1) * CHUNK) (the last one of a block may be shorter):
  // so the layout depends on the bytes only. A chunk split across input pieces is gathered here (a copy).
  const carry = Buffer.allocUnsafe(CHUNK);
  let carried = 0;
  const chunkLength = (): number => Math.min(CHUNK, blockSize - inBlock);

  function* chunk(data: Buffer): Generator<Buffer> {
    if (inBlock === 0) yield header;
    // 0x01: uncompressed chunk resetting the dictionary (a block's first), 0x02: uncompressed chunk.
    yield Buffer.from([inBlock === 0 ? 0x01 : 0x02, (data.length - 1) >> 8, (data.length - 1) & 0xff]);
    yield data;
    compressed += 3 + data.length;
    inBlock += data.length;
    check = crc32(data, check);
    if (inBlock === blockSize) yield closeBlock();
  }
  function closeBlock(): Buffer {
    compressed += 1; // the 0x00 end-of-LZMA2 marker
    const unpadded = header.length + compressed + 4;
    const tail = Buffer.concat([Buffer.from([0x00]), pad4(header.length + compressed), u32le(check)]);
    records.push({ unpadded, uncompressed: inBlock });
    inBlock = 0;
    compressed = 0;
    check = 0;
    return tail;
  }

  yield streamHeader();
  for await (const piece of input) {
    let data = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    if (carried > 0) {
      const n = Math.min(chunkLength() - carried, data.length);
      data.copy(carry, carried, 0, n);
      carried += n;
      data = data.subarray(n);
      if (carried < chunkLength()) continue;
      yield* chunk(carry.subarray(0, carried));
      carried = 0;
    }
    while (data.length >= chunkLength()) {
      const n = chunkLength();
      yield* chunk(data.subarray(0, n));
      data = data.subarray(n);
    }
    if (data.length > 0) {
      data.copy(carry, 0);
      carried = data.length;
    }
  }
  if (carried > 0) yield* chunk(carry.subarray(0, carried));
  if (inBlock > 0) yield closeBlock();
  yield indexAndFooter(records);
}

// The kernel's `uname -r` for the UKI's .uname section, found the way ukify 254 finds it (Uname.scrape), so the
// native builder writes the same section: first the x86 real-mode header's kernel_version pointer, else a search
// for "Linux version X (" in the (decompressed) image. ukify's middle step (`readelf --notes`) only applies to
// ELF vmlinux files, which cannot be booted from a UKI, so it is left out.
import { createReadStream } from 'node:fs';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import type { Readable } from 'node:stream';
import { openForReading } from './pe';

/** ukify's Uname.VERSION_PATTERN, anchored at the start like Python's re.match. `.` excludes only "\n" there. */
const X86_VERSION = /^([a-z0-9._-]+) \([^ )]+\) #[^\n]*/;
/** ukify's TEXT_PATTERN `Linux version (?P<version>\d\.\S+) \(` on bytes: \S is [^ \t\n\r\f\v] for bytes. */
const TEXT_VERSION = /Linux version ([0-9]\.[^ \t\n\r\f\v]+) \(/;
/** Bytes of context kept between chunks while searching; a version string is far shorter. */
const OVERLAP = 4096;

export type UnameResult =
  { version: string; source: 'x86-header' | 'text' } | { version: undefined; reason: string };

export async function kernelVersionOf(kernel: string, signal?: AbortSignal): Promise<UnameResult> {
  const handle = await openForReading(kernel, 'kernel');
  let head: Buffer;
  let size: number;
  try {
    size = (await handle.stat()).size;
    head = Buffer.alloc(Math.min(size, 0x10000));
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  const x86 = scrapeX86(head);
  if (x86) return { version: x86, source: 'x86-header' };

  const source = decompressedView(kernel, head, size, signal);
  if (typeof source === 'string') return { version: undefined, reason: source };
  const found = await searchText(source);
  return found
    ? { version: found, source: 'text' }
    : { version: undefined, reason: 'no "Linux version" string found' };
}

function scrapeX86(head: Buffer): string | undefined {
  if (head.length < 0x210 || head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  const start = 0x200 + head.readUInt16LE(0x20e);
  if (start >= head.length) return undefined;
  let text = head.subarray(start, start + 128);
  const nul = text.indexOf(0);
  if (nul >= 0) text = text.subarray(0, nul);
  let decoded: string;
  try {
    decoded = new TextDecoder('utf-8', { fatal: true }).decode(text);
  } catch {
    return undefined; // Python's decode() raises UnicodeDecodeError, a ValueError: ukify moves on
  }
  return X86_VERSION.exec(decoded)?.[1];
}

/** ukify's maybe_decompress, as a stream; a string says why the image cannot be searched. */
function decompressedView(
  kernel: string,
  head: Buffer,
  size: number,
  signal?: AbortSignal,
): Readable | string {
  const read = (start = 0, end?: number): Readable =>
    createReadStream(kernel, {
      start,
      ...(end === undefined ? {} : { end }),
      highWaterMark: 1024 * 1024,
      ...(signal ? { signal } : {}),
    });
  const magic = head.subarray(0, 4);
  if (magic.toString('latin1') === '\x7fELF') return read();
  if (magic.subarray(0, 2).toString('latin1') === 'MZ') {
    if (head.toString('latin1', 4, 8) === 'zimg' && head.length >= 0x1e) {
      // EFI zboot image: payload offset and size at 0x08/0x0c, compression name at 0x18.
      const start = head.readInt32LE(8);
      const length = head.readInt32LE(0x0c);
      const type = head.toString('latin1', 0x18, 0x1e);
      if (type.startsWith('gzip')) return read(start, start + length - 1).pipe(createGunzip());
      if (type.startsWith('zstd')) return read(start, start + length - 1).pipe(createZstdDecompress());
      return `zboot payload compressed with ${type.replace(/\0.*$/s, '')}, not supported`;
    }
    return read(8); // an uncompressed arm64/riscv64 Image: ukify searches it from offset 8
  }
  if (magic[0] === 0x1f && magic[1] === 0x8b) return read().pipe(createGunzip());
  if (magic.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return read().pipe(createZstdDecompress());
  void size;
  return `unknown kernel image format (starts with ${magic.toString('hex')})`;
}

async function searchText(source: Readable): Promise<string | undefined> {
  let carry = '';
  try {
    for await (const chunk of source) {
      // latin1 keeps one char per byte, so the byte-oriented regex of ukify applies unchanged.
      const text = carry + (chunk as Buffer).toString('latin1');
      const match = TEXT_VERSION.exec(text);
      if (match) {
        const bytes = Buffer.from(match[1] ?? '', 'latin1');
        try {
          return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        } catch {
          return undefined;
        }
      }
      carry = text.slice(-OVERLAP);
    }
    return undefined;
  } finally {
    source.destroy();
  }
}

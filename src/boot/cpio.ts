// The newc ("070701") cpio format the kernel's initramfs unpacker reads, written the way
// `cpio -H newc -o --reproducible -R 0:0` writes it, so a test can compare our bytes with GNU cpio's.
// Every field that would carry machine state is fixed: inode 0 (GNU cpio's --renumber-inodes starts there;
// the kernel only looks at inode numbers for hard links, i.e. nlink > 1), device numbers 0, uid/gid 0
// (root owns the squashfs after unpacking), mtime 0 (no wall clock: same inputs, same bytes), nlink 1.

const MAGIC = '070701';
/** GNU cpio writes in 512-byte blocks and pads the archive's end to a whole block. */
export const CPIO_BLOCK = 512;
export const TRAILER_NAME = 'TRAILER!!!';

export interface NewcEntry {
  name: string;
  mode: number;
  size: number;
  ino?: number;
  uid?: number;
  gid?: number;
  nlink?: number;
  mtime?: number;
}

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`cpio newc field out of range: ${value}`);
  }
  // GNU cpio writes uppercase hex digits.
  return value.toString(16).toUpperCase().padStart(8, '0');
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

/** The 110-byte header plus the NUL-terminated name, padded to a multiple of 4 (the data starts aligned). */
export function newcHeader(entry: NewcEntry): Buffer {
  const name = Buffer.from(`${entry.name}\0`, 'utf8');
  const fields = [
    entry.ino ?? 0,
    entry.mode,
    entry.uid ?? 0,
    entry.gid ?? 0,
    entry.nlink ?? 1,
    entry.mtime ?? 0,
    entry.size, // newc sizes are 32 bits: a file of 4 GiB or more cannot go in (checked by hex8)
    0, // devmajor
    0, // devminor
    0, // rdevmajor
    0, // rdevminor
    name.length,
    0, // check: only used by the "070702" crc format
  ];
  const header = Buffer.from(MAGIC + fields.map(hex8).join(''), 'latin1');
  return Buffer.concat([header, name, Buffer.alloc(pad4(header.length + name.length))]);
}

/** Zero bytes that follow `size` bytes of file data so the next header starts 4-aligned. */
export function newcDataPadding(size: number): Buffer {
  return Buffer.alloc(pad4(size));
}

/**
 * The end of an archive: the TRAILER!!! entry, then zeros up to the next multiple of CPIO_BLOCK counting from
 * the archive's first byte (`written` bytes so far), as GNU cpio does.
 */
export function newcTrailer(written: number): Buffer {
  const trailer = newcHeader({ name: TRAILER_NAME, mode: 0, size: 0, nlink: 1 });
  const end = written + trailer.length;
  return Buffer.concat([trailer, Buffer.alloc((CPIO_BLOCK - (end % CPIO_BLOCK)) % CPIO_BLOCK)]);
}

/** The largest file one newc entry can hold (its size field is 8 hex digits). */
export const NEWC_MAX_FILE_SIZE = 0xffffffff;

// `initrd-uki`: the release's initrd followed by an xz-compressed newc cpio archive holding `root.squashfs`.
// The kernel unpacks concatenated initramfs archives in order, so the squashfs lands at /root.squashfs, where
// Garden Linux's live boot module looks for it (DOMAIN.md 1.4): the UKI boots without fetching a root image.
// Everything is streamed: the squashfs (hundreds of MB) goes file -> cpio framing -> xz framing -> hashing writer.
import { PublishError, throwIfAborted } from '../util/errors';
import { regularFileSize, writeFileAtomic, type HashedFile } from '../util/files';
import { NEWC_MAX_FILE_SIZE, newcDataPadding, newcHeader, newcTrailer } from './cpio';
import { openForReading } from './pe';
import { xzCompress, type XzOptions } from './xz';
import { xzStore, xzStoredSize } from './xz-store';
import { XZ_DEFAULT_BLOCK_SIZE } from './xz';

export interface EmbeddedInitrdOptions {
  /** The release's initrd, copied unchanged as the prefix. */
  initrd: string;
  /** The root squashfs, stored in the appended archive as `root.squashfs`. */
  squashfs: string;
  output: string;
  signal?: AbortSignal;
  /**
   * How the appended cpio is put into its .xz stream. `store` (default): stored LZMA2 chunks (xz-store.ts), because
   * the squashfs inside is compressed already and liblzma would spend seconds per hundred MB to gain next to
   * nothing; `compress`: the `xz` binary with `xz` below.
   */
  compression?: 'store' | 'compress';
  /** Block size (both modes) and the `xz` binary's tuning (compress); chosen for speed and determinism. */
  xz?: Omit<XzOptions, 'signal'>;
}

/** The name the live boot module looks for at the initramfs root. */
export const EMBEDDED_SQUASHFS_NAME = 'root.squashfs';
/** Regular file, rw-r--r--, what `cpio -o` records for a squashfs unpacked from the release tarball. */
const SQUASHFS_MODE = 0o100644;
const CHUNK = 1024 * 1024;

/** Bytes that can be produced again and again, of a length known before the first byte. */
export interface SizedSource {
  readonly size: number;
  /** A fresh pass over the bytes; fails when an input file changed meanwhile. */
  open(): AsyncGenerator<Buffer>;
  /** For errors and logs. */
  readonly label: string;
}

/**
 * initrd-uki as a stream of known length (stored chunks only): the native UKI builder writes it straight into
 * its `.initrd` section, so the few hundred MB never exist as a file of their own.
 */
export async function embeddedInitrdSource(
  options: Omit<EmbeddedInitrdOptions, 'output' | 'compression'>,
): Promise<SizedSource> {
  const { signal } = options;
  throwIfAborted(signal);
  const { initrdSize, squashfsSize } = await checkEmbeddedInputs(options);
  const blockSize = options.xz?.blockSize ?? XZ_DEFAULT_BLOCK_SIZE;
  const cpioSize = cpioSizeOf(squashfsSize);
  return {
    size: initrdSize + xzStoredSize(cpioSize, blockSize),
    label: `initrd-uki (${options.initrd} + ${options.squashfs})`,
    async *open() {
      // Both consumers (the UKI writer, writeFileAtomic) hash and copy each chunk before asking for the next.
      yield* readExactly(options.initrd, initrdSize, 'initrd', signal, true);
      yield* xzStore(cpioOfSquashfs(options.squashfs, squashfsSize, signal, true), { blockSize });
    },
  };
}

export async function buildEmbeddedInitrd(options: EmbeddedInitrdOptions): Promise<HashedFile> {
  const { signal } = options;
  throwIfAborted(signal);
  if ((options.compression ?? 'store') === 'store') {
    const source = await embeddedInitrdSource(options);
    return writeFileAtomic(options.output, source.open(), signal ? { signal } : {});
  }
  const { initrdSize, squashfsSize } = await checkEmbeddedInputs(options);
  async function* output(): AsyncGenerator<Buffer> {
    yield* readExactly(options.initrd, initrdSize, 'initrd', signal);
    yield* xzCompress(cpioOfSquashfs(options.squashfs, squashfsSize, signal), {
      ...options.xz,
      ...(signal ? { signal } : {}),
    });
  }
  return writeFileAtomic(options.output, output(), signal ? { signal } : {});
}

async function checkEmbeddedInputs(
  options: Pick<EmbeddedInitrdOptions, 'initrd' | 'squashfs'>,
): Promise<{ initrdSize: number; squashfsSize: number }> {
  const initrdSize = await regularFileSize(options.initrd, 'initrd');
  const squashfsSize = await regularFileSize(options.squashfs, 'squashfs');
  if (squashfsSize > NEWC_MAX_FILE_SIZE) {
    throw new PublishError(
      `squashfs ${options.squashfs} is ${squashfsSize} bytes; a newc cpio entry holds at most ${NEWC_MAX_FILE_SIZE}`,
    );
  }
  await checkSquashfsMagic(options.squashfs);
  return { initrdSize, squashfsSize };
}

function cpioHeader(squashfsSize: number): Buffer {
  return newcHeader({ name: EMBEDDED_SQUASHFS_NAME, mode: SQUASHFS_MODE, size: squashfsSize });
}

function cpioSizeOf(squashfsSize: number): number {
  const framed = cpioHeader(squashfsSize).length + squashfsSize + newcDataPadding(squashfsSize).length;
  return framed + newcTrailer(framed).length;
}

async function* cpioOfSquashfs(
  path: string,
  size: number,
  signal?: AbortSignal,
  reuse = false,
): AsyncGenerator<Buffer> {
  const header = cpioHeader(size);
  yield header;
  yield* readExactly(path, size, 'squashfs', signal, reuse);
  const padding = newcDataPadding(size);
  yield padding;
  yield newcTrailer(header.length + size + padding.length);
}

async function checkSquashfsMagic(path: string): Promise<void> {
  const handle = await openForReading(path, 'squashfs');
  try {
    const magic = Buffer.alloc(4);
    await handle.read(magic, 0, 4, 0);
    // "hsqs": squashfs 4 superblock, little-endian. Anything else would not mount at boot: fail now, not then.
    if (magic.toString('latin1') !== 'hsqs') {
      throw new PublishError(`${path} is not a squashfs image (no "hsqs" magic)`, {
        hint: "expected the root.squashfs from the release's <base>.pxe.tar.gz",
      });
    }
  } finally {
    await handle.close();
  }
}

/**
 * Streams a file, failing when it does not hold exactly `size` bytes: the cpio header announced that size
 * before the data, so a file changing underneath would silently corrupt the archive.
 * `reuse`: every chunk is a view of one buffer, read into again for the next chunk (no allocation per MiB,
 * nothing for the GC): only for consumers that are done with a chunk when they ask for the next one (hashing
 * and copying writers, xzStore), never for one that queues chunks (a child's stdin).
 */
export async function* readExactly(
  path: string,
  size: number,
  what: string,
  signal?: AbortSignal,
  reuse = false,
): AsyncGenerator<Buffer> {
  const handle = await openForReading(path, what);
  let seen = 0;
  try {
    let buffer = Buffer.allocUnsafe(CHUNK);
    while (true) {
      throwIfAborted(signal);
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, seen);
      if (bytesRead === 0) break;
      seen += bytesRead;
      if (seen > size) break;
      yield buffer.subarray(0, bytesRead);
      if (!reuse) buffer = Buffer.allocUnsafe(CHUNK);
    }
  } finally {
    await handle.close();
  }
  if (seen !== size) {
    throw new PublishError(
      `${what} ${path} changed while it was read (expected ${size} bytes, read ${seen > size ? 'more' : seen})`,
    );
  }
}

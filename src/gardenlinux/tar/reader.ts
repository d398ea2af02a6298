// A streaming tar reader: ustar, GNU (long names, old-GNU sparse 'S') and PAX (long names, sizes,
// GNU sparse 0.0/0.1/1.0). tar-stream has no sparse support, and a `.raw` written by `tar -S` comes
// out wrong without it, so the parser is ours. It never touches the file system: callers decide
// what to write, which keeps "nothing outside the target folder" a property of one small function.
import { posix } from 'node:path';
import { PublishError } from '../../util/errors';
import { ByteReader } from './bytes';

const BLOCK = 512;

export interface SparseSegment {
  offset: number;
  size: number;
}

export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** Normalised relative path (no `./` prefix, no trailing slash). */
  name: string;
  type: EntryType;
  typeflag: string;
  linkname?: string;
  /** Bytes stored in the archive for this member (for sparse members: the data segments only). */
  storedSize: number;
  /** The file's logical size (equals storedSize except for sparse members). */
  size: number;
  /** Present for sparse members: where the stored bytes go; the rest is holes. */
  sparse?: SparseSegment[];
  mode: number;
}

export interface TarLimits {
  /** Members over all nested archives of one fetch. */
  maxMembers: number;
  /** Sum of the logical sizes of all members, over all nested archives. */
  maxBytes: number;
  /** Logical size of one member (a sparse header can claim petabytes of holes). */
  maxFileBytes: number;
  /**
   * Decompressed bytes per compressed byte, checked once `expansionAfterBytes` are out: an xz bomb
   * (zeros compress about 7000:1) is stopped long before it fills the disk, while real archives,
   * whose holes are sparse maps rather than zeros in the stream, stay far below it.
   */
  maxExpansion: number;
  expansionAfterBytes: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = {
  maxMembers: 1_000_000,
  maxBytes: 256 * 1024 ** 3,
  maxFileBytes: 64 * 1024 ** 3,
  maxExpansion: 1000,
  expansionAfterBytes: 1024 ** 3,
};

/** Counts members and bytes across the nested archives of one download (archive-bomb guard). */
export class Budget {
  members = 0;
  bytes = 0;
  constructor(readonly limits: TarLimits) {}

  charge(label: string, entry: TarEntry): void {
    this.members++;
    this.bytes += entry.size;
    if (this.members > this.limits.maxMembers) {
      throw new PublishError(
        `${label}: more than ${this.limits.maxMembers} members, refusing (archive bomb?)`,
      );
    }
    if (entry.size > this.limits.maxFileBytes) {
      throw new PublishError(
        `${label}: member ${entry.name} claims ${entry.size} bytes, over the limit of ${this.limits.maxFileBytes}`,
      );
    }
    if (this.bytes > this.limits.maxBytes) {
      throw new PublishError(
        `${label}: members add up to more than ${this.limits.maxBytes} bytes, refusing (archive bomb?)`,
      );
    }
  }
}

export class UnsafeMemberError extends PublishError {}

/**
 * Normalises a member name and refuses any that could land outside the extraction folder:
 * absolute paths and `..` components.
 */
export function safeMemberPath(raw: string, label: string): string {
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw)) {
    throw new UnsafeMemberError(`${label}: refusing absolute member path ${JSON.stringify(raw)}`);
  }
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) {
    throw new UnsafeMemberError(`${label}: refusing member path with '..': ${JSON.stringify(raw)}`);
  }
  return parts.join('/');
}

/** Symlink targets must stay inside the archive root (we never create links, but such a member is hostile). */
function checkLinkTarget(entry: TarEntry, label: string): void {
  const target = entry.linkname ?? '';
  if (entry.type === 'hardlink') {
    safeMemberPath(target, label);
    return;
  }
  const resolved = posix.normalize(posix.join(posix.dirname(entry.name || '.'), target));
  if (target.startsWith('/') || resolved === '..' || resolved.startsWith('../')) {
    throw new UnsafeMemberError(
      `${label}: refusing link ${entry.name} -> ${target} pointing outside the archive`,
    );
  }
}

function cString(buf: Buffer, start: number, end: number): string {
  const slice = buf.subarray(start, end);
  const nul = slice.indexOf(0);
  return (nul < 0 ? slice : slice.subarray(0, nul)).toString('utf8');
}

/** Octal, or GNU base-256 (high bit set) for values beyond 8 GiB. */
function parseNumber(buf: Buffer, start: number, end: number, label: string): number {
  const field = buf.subarray(start, end);
  if ((field[0] ?? 0) & 0x80) {
    let v = BigInt((field[0] ?? 0) & 0x7f);
    for (let i = 1; i < field.length; i++) v = (v << 8n) | BigInt(field[i] ?? 0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PublishError(`${label}: number field too large`);
    return Number(v);
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/g, '')
    .replace(/^[\0 ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text))
    throw new PublishError(`${label}: corrupt tar header (bad number ${JSON.stringify(text)})`);
  return Number.parseInt(text, 8);
}

function checksumOk(block: Buffer, label: string): boolean {
  const stored = parseNumber(block, 148, 156, label);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function parsePax(data: Buffer, label: string): [string, string][] {
  const out: [string, string][] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    if (space < 0) throw new PublishError(`${label}: corrupt PAX header`);
    const len = Number.parseInt(data.toString('latin1', pos, space), 10);
    if (!Number.isFinite(len) || len <= 0 || pos + len > data.length)
      throw new PublishError(`${label}: corrupt PAX header`);
    const record = data.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out.push([record.slice(0, eq), record.slice(eq + 1)]);
    pos += len;
  }
  return out;
}

function typeOf(flag: string): EntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
    case 'S':
      return 'file';
    case '5':
      return 'directory';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    default:
      return 'other';
  }
}

function pairsToSegments(numbers: number[], label: string): SparseSegment[] {
  if (numbers.length % 2 !== 0) throw new PublishError(`${label}: corrupt sparse map`);
  const out: SparseSegment[] = [];
  for (let i = 0; i < numbers.length; i += 2)
    out.push({ offset: numbers[i] as number, size: numbers[i + 1] as number });
  return out;
}

function validateSparse(entry: TarEntry, label: string): void {
  const map = entry.sparse as SparseSegment[];
  let end = 0;
  let data = 0;
  for (const s of map) {
    if (!Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.size) || s.offset < end || s.size < 0) {
      throw new PublishError(`${label}: corrupt sparse map for ${entry.name}`);
    }
    end = s.offset + s.size;
    data += s.size;
  }
  if (end > entry.size || data !== entry.storedSize) {
    throw new PublishError(`${label}: sparse map of ${entry.name} does not match its sizes`);
  }
}

export interface ReadTarOptions {
  /** Names this archive in error messages. */
  label: string;
  budget: Budget;
  /** Refuse links pointing outside the archive (the release archives); a rootfs tarball has plenty. */
  strictLinks: boolean;
}

export interface TarMember {
  entry: TarEntry;
  /** The stored bytes (for sparse members the data segments, in map order). Unread bytes are skipped. */
  body: AsyncGenerator<Buffer>;
}

/**
 * Yields each member in order. The consumer may read `body` fully, partly or not at all before
 * asking for the next member; what it leaves is skipped. Ends after the end-of-archive marker
 * (and drains any padding behind it, so an upstream decompressor can finish and report errors).
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
  options: ReadTarOptions,
): AsyncGenerator<TarMember> {
  const { label, budget } = options;
  const reader = ByteReader.from(source, label);
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: [string, string][] = [];
  try {
    while (true) {
      const block = await reader.readExact(BLOCK);
      if (!block) return; // end of input without the marker: the compressor's own check covers truncation
      if (isZeroBlock(block)) {
        await reader.drain();
        return;
      }
      if (!checksumOk(block, label)) {
        throw new PublishError(
          `${label}: corrupt tar header at byte ${reader.position - BLOCK} (checksum mismatch)`,
          {
            hint: 'The archive is damaged, or a member was longer than its header said.',
          },
        );
      }
      const typeflag = String.fromCharCode(block[156] as number);
      const headerSize = parseNumber(block, 124, 136, label);
      const padded = Math.ceil(headerSize / BLOCK) * BLOCK;

      // Meta members describe the next member.
      if (typeflag === 'L' || typeflag === 'K' || typeflag === 'x' || typeflag === 'g') {
        if (headerSize > 1024 * 1024)
          throw new PublishError(`${label}: oversized ${typeflag} header (${headerSize} bytes)`);
        const data = headerSize ? ((await reader.readExact(padded)) as Buffer) : Buffer.alloc(0);
        if (data.length < padded) throw new PublishError(`${label}: unexpected end of archive in a header`);
        const body = data.subarray(0, headerSize);
        if (typeflag === 'L') longName = cString(body, 0, body.length);
        else if (typeflag === 'K') longLink = cString(body, 0, body.length);
        else if (typeflag === 'x') pax = pax.concat(parsePax(body, label));
        continue; // global headers ('g') carry nothing we use
      }

      const magic = block.toString('latin1', 257, 263);
      const ustar = magic === 'ustar\0';
      let rawName = cString(block, 0, 100);
      if (ustar) {
        const prefix = cString(block, 345, 500);
        if (prefix) rawName = `${prefix}/${rawName}`;
      }
      let linkname = cString(block, 157, 257);
      let storedSize = headerSize;
      let size = headerSize;
      let sparse: SparseSegment[] | undefined;
      const paxMap = new Map(pax);
      if (longName !== undefined) rawName = longName;
      if (longLink !== undefined) linkname = longLink;
      if (paxMap.has('path')) rawName = paxMap.get('path') as string;
      if (paxMap.has('linkpath')) linkname = paxMap.get('linkpath') as string;
      if (paxMap.has('size')) storedSize = size = Number.parseInt(paxMap.get('size') as string, 10);
      const storedPadded = Math.ceil(storedSize / BLOCK) * BLOCK;
      let consumedForMap = 0;

      if (typeflag === 'S') {
        // Old GNU sparse: 4 map entries in the header, more in extension blocks, real size at 483.
        const numbers: number[] = [];
        const readEntries = (b: Buffer, start: number, count: number): void => {
          for (let i = 0; i < count; i++) {
            const off = start + i * 24;
            if (b[off] === 0) return;
            numbers.push(parseNumber(b, off, off + 12, label), parseNumber(b, off + 12, off + 24, label));
          }
        };
        readEntries(block, 386, 4);
        let extended = block[482] !== 0;
        while (extended) {
          const ext = await reader.readExact(BLOCK);
          if (!ext) throw new PublishError(`${label}: unexpected end of archive in a sparse header`);
          readEntries(ext, 0, 21);
          extended = ext[504] !== 0;
        }
        sparse = pairsToSegments(numbers, label);
        size = parseNumber(block, 483, 495, label);
      } else if (
        paxMap.has('GNU.sparse.major') ||
        paxMap.has('GNU.sparse.map') ||
        paxMap.has('GNU.sparse.offset')
      ) {
        const major = paxMap.get('GNU.sparse.major');
        size = Number.parseInt(
          (paxMap.get('GNU.sparse.realsize') ?? paxMap.get('GNU.sparse.size') ?? '0') as string,
          10,
        );
        if (paxMap.has('GNU.sparse.name')) rawName = paxMap.get('GNU.sparse.name') as string;
        if (major === '1') {
          // PAX sparse 1.0: the map is a list of decimal lines at the start of the data, padded to a block.
          const numbers: number[] = [];
          let text = '';
          let expected = -1;
          while (expected < 0 || numbers.length < expected) {
            const b = await reader.readExact(BLOCK);
            if (!b) throw new PublishError(`${label}: unexpected end of archive in a sparse map`);
            consumedForMap += BLOCK;
            text += b.toString('latin1');
            const lines = text.split('\n');
            text = lines.pop() ?? '';
            for (const line of lines) {
              if (!/^\d+$/.test(line)) throw new PublishError(`${label}: corrupt sparse map`);
              if (expected < 0) expected = 1 + 2 * Number.parseInt(line, 10);
              numbers.push(Number.parseInt(line, 10));
              if (numbers.length === expected) break;
            }
            if (consumedForMap > 16 * 1024 * 1024) throw new PublishError(`${label}: oversized sparse map`);
          }
          sparse = pairsToSegments(numbers.slice(1), label);
          storedSize -= consumedForMap;
        } else if (paxMap.has('GNU.sparse.map')) {
          const map = (paxMap.get('GNU.sparse.map') as string)
            .split(',')
            .filter(Boolean)
            .map((n) => Number.parseInt(n, 10));
          sparse = pairsToSegments(map, label);
        } else {
          const numbers: number[] = [];
          for (const [k, v] of pax)
            if (k === 'GNU.sparse.offset' || k === 'GNU.sparse.numbytes')
              numbers.push(Number.parseInt(v, 10));
          sparse = pairsToSegments(numbers, label);
        }
      }
      longName = longLink = undefined;
      pax = [];

      const type = typeOf(typeflag);
      const entry: TarEntry = {
        name: safeMemberPath(rawName, label),
        type,
        typeflag,
        storedSize: type === 'directory' ? 0 : storedSize,
        size: type === 'file' ? size : 0,
        mode: parseNumber(block, 100, 108, label),
      };
      if (type === 'symlink' || type === 'hardlink') entry.linkname = linkname;
      if (sparse) {
        entry.sparse = sparse;
        validateSparse(entry, label);
      }
      if (options.strictLinks && (type === 'symlink' || type === 'hardlink')) checkLinkTarget(entry, label);
      budget.charge(label, entry);

      // Links, directories and devices carry no data (a hard link may carry a size but no bytes).
      const dataBytes = type === 'file' || type === 'other' ? storedSize : 0;
      const dataPadded = type === 'file' || type === 'other' ? storedPadded - consumedForMap : 0;
      let read = 0;
      const body = (async function* (): AsyncGenerator<Buffer> {
        for await (const chunk of reader.stream(dataBytes)) {
          read += chunk.length;
          yield chunk;
        }
      })();
      yield { entry, body };
      await body.return(undefined);
      await reader.skip(dataBytes - read + (dataPadded - dataBytes));
    }
  } finally {
    await reader.close();
  }
}

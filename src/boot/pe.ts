// Just enough PE/COFF reading for UKIs: the headers of an EFI stub (to add sections to it), a kernel's machine
// type (to catch the other arch's stub), and the section table of a built UKI (to verify it and for `inspect`).
// Only headers are read: a UKI is hundreds of MB and its section contents are streamed separately.
import { open, type FileHandle } from 'node:fs/promises';
import { PublishError } from '../util/errors';

export const PE_MACHINE = { amd64: 0x8664, arm64: 0xaa64 } as const;
export type BootArch = keyof typeof PE_MACHINE;

export const PE32_MAGIC = 0x10b;
export const PE32PLUS_MAGIC = 0x20b;
export const IMAGE_SUBSYSTEM_EFI_APPLICATION = 10;
export const SECTION_HEADER_SIZE = 40;
export const IMAGE_DIRECTORY_ENTRY_SECURITY = 4;

export function archOfMachine(machine: number): BootArch | undefined {
  if (machine === PE_MACHINE.amd64) return 'amd64';
  if (machine === PE_MACHINE.arm64) return 'arm64';
  return undefined;
}

export function describeMachine(machine: number): string {
  const arch = archOfMachine(machine);
  return `0x${machine.toString(16).toUpperCase().padStart(4, '0')}${arch ? ` (${arch})` : ''}`;
}

export interface PeSection {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  sizeOfRawData: number;
  pointerToRawData: number;
  characteristics: number;
  /** File offset of this section's 40-byte header. */
  headerOffset: number;
}

/** The header fields we read or patch, with their file offsets so a writer can patch them in place. */
export interface PeHeaders {
  /** e_lfanew: offset of the "PE\0\0" signature. */
  peOffset: number;
  machine: number;
  numberOfSections: number;
  pointerToSymbolTable: number;
  numberOfSymbols: number;
  sizeOfOptionalHeader: number;
  characteristics: number;
  /** Offset of the optional header (right after the COFF file header). */
  optionalHeaderOffset: number;
  magic: number;
  sizeOfInitializedData: number;
  sectionAlignment: number;
  fileAlignment: number;
  sizeOfImage: number;
  sizeOfHeaders: number;
  checkSum: number;
  subsystem: number;
  /** Data directories as [virtualAddress, size]. */
  dataDirectories: [number, number][];
  /** Offset of the first section header. */
  sectionTableOffset: number;
  sections: PeSection[];
}

/** Field offsets inside the optional header that are the same for PE32 and PE32+. */
export const OPT = {
  sizeOfInitializedData: 8,
  sectionAlignment: 32,
  fileAlignment: 36,
  sizeOfImage: 56,
  sizeOfHeaders: 60,
  checkSum: 64,
  subsystem: 68,
} as const;

export class NotPeError extends Error {
  override readonly name = 'NotPeError';
}

/**
 * Parses PE headers from `head`, the first bytes of a file (enough to hold the section table; 64 KiB covers every
 * stub and kernel we know). Throws NotPeError when the bytes are not a PE image.
 */
export function parsePeHeaders(head: Uint8Array): PeHeaders {
  const buf = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const need = (end: number, what: string) => {
    if (end > buf.length) throw new NotPeError(`truncated ${what}`);
  };
  need(0x40, 'DOS header');
  if (buf.readUInt16LE(0) !== 0x5a4d) throw new NotPeError('no MZ signature');
  const peOffset = buf.readUInt32LE(0x3c);
  need(peOffset + 24, 'PE header');
  if (buf.readUInt32LE(peOffset) !== 0x00004550) throw new NotPeError('no PE signature');
  const fh = peOffset + 4;
  const machine = buf.readUInt16LE(fh);
  const numberOfSections = buf.readUInt16LE(fh + 2);
  const pointerToSymbolTable = buf.readUInt32LE(fh + 8);
  const numberOfSymbols = buf.readUInt32LE(fh + 12);
  const sizeOfOptionalHeader = buf.readUInt16LE(fh + 16);
  const characteristics = buf.readUInt16LE(fh + 18);
  const oh = fh + 20;
  need(oh + Math.max(sizeOfOptionalHeader, 2), 'optional header');
  const magic = buf.readUInt16LE(oh);
  if (magic !== PE32_MAGIC && magic !== PE32PLUS_MAGIC)
    throw new NotPeError(`unknown optional header magic 0x${magic.toString(16)}`);
  const dirCountOffset = magic === PE32PLUS_MAGIC ? 108 : 92;
  if (sizeOfOptionalHeader < dirCountOffset + 4) throw new NotPeError('optional header too small');
  const numberOfRvaAndSizes = buf.readUInt32LE(oh + dirCountOffset);
  const dataDirectories: [number, number][] = [];
  for (let i = 0; i < numberOfRvaAndSizes && dirCountOffset + 4 + i * 8 + 8 <= sizeOfOptionalHeader; i++) {
    const at = oh + dirCountOffset + 4 + i * 8;
    dataDirectories.push([buf.readUInt32LE(at), buf.readUInt32LE(at + 4)]);
  }
  const sectionTableOffset = oh + sizeOfOptionalHeader;
  need(sectionTableOffset + numberOfSections * SECTION_HEADER_SIZE, 'section table');
  const sections: PeSection[] = [];
  for (let i = 0; i < numberOfSections; i++) {
    const at = sectionTableOffset + i * SECTION_HEADER_SIZE;
    const rawName = buf.subarray(at, at + 8);
    const nul = rawName.indexOf(0);
    sections.push({
      name: rawName.subarray(0, nul < 0 ? 8 : nul).toString('latin1'),
      virtualSize: buf.readUInt32LE(at + 8),
      virtualAddress: buf.readUInt32LE(at + 12),
      sizeOfRawData: buf.readUInt32LE(at + 16),
      pointerToRawData: buf.readUInt32LE(at + 20),
      characteristics: buf.readUInt32LE(at + 36),
      headerOffset: at,
    });
  }
  return {
    peOffset,
    machine,
    numberOfSections,
    pointerToSymbolTable,
    numberOfSymbols,
    sizeOfOptionalHeader,
    characteristics,
    optionalHeaderOffset: oh,
    magic,
    sizeOfInitializedData: buf.readUInt32LE(oh + OPT.sizeOfInitializedData),
    sectionAlignment: buf.readUInt32LE(oh + OPT.sectionAlignment),
    fileAlignment: buf.readUInt32LE(oh + OPT.fileAlignment),
    sizeOfImage: buf.readUInt32LE(oh + OPT.sizeOfImage),
    sizeOfHeaders: buf.readUInt32LE(oh + OPT.sizeOfHeaders),
    checkSum: buf.readUInt32LE(oh + OPT.checkSum),
    subsystem: buf.readUInt16LE(oh + OPT.subsystem),
    dataDirectories,
    sectionTableOffset,
    sections,
  };
}

const HEAD_BYTES = 64 * 1024;

async function readHead(handle: FileHandle, bytes: number): Promise<Buffer> {
  const buf = Buffer.alloc(bytes);
  const { bytesRead } = await handle.read(buf, 0, bytes, 0);
  return buf.subarray(0, bytesRead);
}

/** Reads the PE headers of a file on disk; undefined when it is not a PE image. Missing file: a PublishError. */
export async function tryReadPeHeaders(path: string, what = 'file'): Promise<PeHeaders | undefined> {
  const handle = await openForReading(path, what);
  try {
    let head = await readHead(handle, HEAD_BYTES);
    try {
      return parsePeHeaders(head);
    } catch (error) {
      if (!(error instanceof NotPeError)) throw error;
      // A section table beyond the first 64 KiB is legal (SizeOfHeaders may be large): read once more.
      if (head.length === HEAD_BYTES && head.readUInt16LE(0) === 0x5a4d) {
        const size = (await handle.stat()).size;
        head = await readHead(handle, Math.min(size, 16 * 1024 * 1024));
        try {
          return parsePeHeaders(head);
        } catch (again) {
          if (again instanceof NotPeError) return undefined;
          throw again;
        }
      }
      return undefined;
    }
  } finally {
    await handle.close();
  }
}

/** Like tryReadPeHeaders, but a file that is not PE is a PublishError naming `what`. */
export async function readPeHeaders(path: string, what = 'file'): Promise<PeHeaders> {
  const headers = await tryReadPeHeaders(path, what);
  if (!headers) {
    throw new PublishError(
      `${what} ${path} is not a PE/COFF image (no MZ/PE signature or a truncated header)`,
      {
        hint: 'an EFI stub is usr/lib/systemd/boot/efi/linux<arch>.efi.stub from systemd-boot-efi',
      },
    );
  }
  return headers;
}

/** The section table of a PE file (a UKI, a stub, a kernel), for tests, verification and `inspect`. */
export async function readPeSections(path: string): Promise<PeSection[]> {
  return (await readPeHeaders(path)).sections;
}

/** The COFF machine type of a PE file (0x8664 amd64, 0xAA64 arm64, ...). */
export async function peMachineOf(path: string): Promise<number> {
  return (await readPeHeaders(path)).machine;
}

export async function openForReading(path: string, what = 'file'): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PublishError(`${what} not found: ${path}`, { cause: error });
    if (code === 'EISDIR')
      throw new PublishError(`${what} is a directory, not a file: ${path}`, { cause: error });
    throw new PublishError(`cannot read ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
}

export function roundUp(value: number, alignment: number): number {
  if (alignment <= 1) return value;
  return Math.ceil(value / alignment) * alignment;
}

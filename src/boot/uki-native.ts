// A UKI written in TypeScript: the stub's bytes with sections appended, laid out exactly as ukify 254's
// pe_add_sections does it (see the steps below), so the result matches ukify's byte for byte while needing
// nothing but Node. Only the stub (tens of KB) and the small sections sit in memory; the kernel and the initrd
// are streamed from their files into the output.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PublishError, throwIfAborted } from '../util/errors';
import { writeFileAtomic, type HashedFile } from '../util/files';
import { readExactly } from './initrd';
import {
  IMAGE_DIRECTORY_ENTRY_SECURITY,
  NotPeError,
  OPT,
  SECTION_HEADER_SIZE,
  parsePeHeaders,
  roundUp,
  type PeHeaders,
  type PeSection,
} from './pe';

export type UkiSectionSource =
  { name: string; content: Uint8Array } | { name: string; file: string; size: number };

/** What went into one section, so the result can be checked against the file actually written. */
export interface AddedSection {
  name: string;
  size: number;
  /** sha256 hex of the section's content (without padding). */
  sha256: string;
}

const IMAGE_SCN_CNT_CODE = 0x20;
const IMAGE_SCN_CNT_INITIALIZED_DATA = 0x40;
const IMAGE_SCN_MEM_READ = 0x40000000;
const MAX_STUB_SIZE = 64 * 1024 * 1024;
const U32 = 0xffffffff;

interface Layout {
  /** The stub after ukify's fix-ups, with every header already patched. */
  head: Buffer;
  appended: { source: UkiSectionSource; pointer: number; rawSize: number }[];
  /** Sections placed into a section the stub already had (ukify does this for .sbat). */
  replaced: { source: UkiSectionSource & { content: Uint8Array } }[];
}

export async function writeNativeUki(options: {
  stub: string;
  sections: UkiSectionSource[];
  output: string;
  signal?: AbortSignal;
}): Promise<HashedFile & { sections: AddedSection[] }> {
  const { signal } = options;
  throwIfAborted(signal);
  const stubBytes = await readFile(options.stub);
  if (stubBytes.length > MAX_STUB_SIZE)
    throw new PublishError(`stub ${options.stub} is ${stubBytes.length} bytes: not an EFI stub`);
  const layout = planLayout(stubBytes, options.stub, options.sections);
  const added: AddedSection[] = layout.replaced.map(({ source }) => ({
    name: source.name,
    size: source.content.length,
    sha256: createHash('sha256').update(source.content).digest('hex'),
  }));

  async function* bytes(): AsyncGenerator<Uint8Array> {
    yield layout.head;
    let position = layout.head.length;
    for (const { source, pointer, rawSize } of layout.appended) {
      throwIfAborted(signal);
      if (pointer > position) yield Buffer.alloc(pointer - position);
      const hash = createHash('sha256');
      let size: number;
      if ('content' in source) {
        hash.update(source.content);
        size = source.content.length;
        yield source.content;
      } else {
        size = source.size;
        for await (const chunk of readExactly(source.file, source.size, source.name, signal)) {
          hash.update(chunk);
          yield chunk;
        }
      }
      if (rawSize > size) yield Buffer.alloc(rawSize - size);
      position = pointer + rawSize;
      added.push({ name: source.name, size, sha256: hash.digest('hex') });
    }
  }

  const written = await writeFileAtomic(options.output, bytes(), signal ? { signal } : {});
  return { ...written, sections: added };
}

function sizeOf(source: UkiSectionSource): number {
  return 'content' in source ? source.content.length : source.size;
}

/**
 * ukify 254's pe_add_sections, step by step, computing the layout without the section contents:
 * 1. strip a COFF symbol table left at the end of the stub (Debian's x64 stub has one);
 * 2. round every section's PointerToRawData and SizeOfRawData up to FileAlignment, inserting zeros;
 * 3. round SizeOfHeaders up to FileAlignment (the only way it "grows" the header area: no bytes move);
 * 4. refuse a signed stub;
 * 5. per new section, in the given order: a section the stub already has (.sbat) gets the new content in place;
 *    otherwise a header goes after the last one (it must fit below SizeOfHeaders), the data goes at the end of
 *    the file rounded up to FileAlignment, the VirtualAddress after the last section rounded up to
 *    SectionAlignment; NumberOfSections and SizeOfInitializedData (by the content size, even for .linux) grow;
 * 6. CheckSum = 0 (it is not recomputed) and SizeOfImage = end of the last section rounded to SectionAlignment.
 */
function planLayout(stubBytes: Buffer, stubPath: string, sources: UkiSectionSource[]): Layout {
  let data: Buffer = Buffer.from(stubBytes);
  let pe: PeHeaders;
  try {
    pe = parsePeHeaders(data);
  } catch (error) {
    if (error instanceof NotPeError)
      throw new PublishError(`stub ${stubPath} is not a PE/COFF image: ${error.message}`);
    throw error;
  }
  const fileAlignment = pe.fileAlignment;
  const sectionAlignment = pe.sectionAlignment;
  if (!fileAlignment || !sectionAlignment)
    throw new PublishError(`stub ${stubPath} has a zero File/SectionAlignment`);
  const fileHeader = pe.peOffset + 4;

  // 1. Symbol table: only when it (plus its string table) ends the file, as ukify checks.
  let pointerToSymbolTable = pe.pointerToSymbolTable;
  let numberOfSymbols = pe.numberOfSymbols;
  if (pointerToSymbolTable) {
    let tableSize = 18 * numberOfSymbols;
    const stringTableAt = pointerToSymbolTable + tableSize;
    if (stringTableAt + 4 <= data.length) tableSize += data.readUInt32LE(stringTableAt);
    if (pointerToSymbolTable + tableSize === data.length) {
      data = data.subarray(0, pointerToSymbolTable);
      pointerToSymbolTable = 0;
      numberOfSymbols = 0;
      // ukify also sets pefile's IMAGE_FILE_LOCAL_SYMS_STRIPPED attribute, but on a FILE_HEADER that attribute is
      // not written back to Characteristics, so the flag does not change in its output either.
    }
  }

  // 2. Realign raw data.
  const sections: PeSection[] = pe.sections.map((s) => ({ ...s }));
  sections.forEach((section, i) => {
    const oldPointer = section.pointerToRawData;
    const oldSize = section.sizeOfRawData;
    section.pointerToRawData = roundUp(oldPointer, fileAlignment);
    section.sizeOfRawData = roundUp(oldSize, fileAlignment);
    const padPointer = section.pointerToRawData - oldPointer;
    const padSize = section.sizeOfRawData - oldSize;
    if (padPointer === 0 && padSize === 0) return;
    for (const later of sections.slice(i + 1)) later.pointerToRawData += padPointer + padSize;
    data = Buffer.concat([
      data.subarray(0, oldPointer),
      Buffer.alloc(padPointer),
      data.subarray(oldPointer, oldPointer + oldSize),
      Buffer.alloc(padSize),
      data.subarray(oldPointer + oldSize),
    ]);
  });

  // 3.
  const sizeOfHeaders = roundUp(pe.sizeOfHeaders, fileAlignment);

  // 4.
  const security = pe.dataDirectories[IMAGE_DIRECTORY_ENTRY_SECURITY];
  if (security && security[0] !== 0) {
    throw new PublishError(
      `stub ${stubPath} is signed (it has a certificate table): refusing, as ukify does`,
      {
        hint: 'use the unsigned linux<arch>.efi.stub; sign the finished UKI instead',
      },
    );
  }

  // 5.
  const replaced: Layout['replaced'] = [];
  const appended: Layout['appended'] = [];
  let numberOfSections = pe.numberOfSections;
  let sizeOfInitializedData = pe.sizeOfInitializedData;
  let fileEnd = data.length;
  const seen = new Set<string>();
  const fresh = new Set<PeSection>();
  for (const source of sources) {
    if (!/^[\x20-\x7e]{1,8}$/.test(source.name))
      throw new PublishError(`bad UKI section name ${JSON.stringify(source.name)}`);
    if (seen.has(source.name)) throw new PublishError(`duplicate UKI section ${source.name}`);
    seen.add(source.name);
    const size = sizeOf(source);
    const existingIndex = sections.findIndex((s) => s.name === source.name);
    const existing = sections[existingIndex];
    if (existing) {
      if (!('content' in source))
        throw new PublishError(`stub ${stubPath} already has a ${source.name} section`);
      if (size > existing.sizeOfRawData) {
        throw new PublishError(
          `not enough space in the stub's ${source.name} section (${existing.sizeOfRawData} bytes) for ${size} bytes`,
        );
      }
      if (existing.pointerToRawData + existing.sizeOfRawData > data.length) {
        throw new PublishError(`the stub's ${source.name} section lies beyond the end of ${stubPath}`);
      }
      // ukify writes the content plus padding to a FileAlignment multiple, then the bytes from the next
      // section on. With a section already aligned (all stubs we know) that is the same as overwriting the old
      // content in place, which we do, leaving the file's length (and every later pointer) intact.
      const region = data.subarray(
        existing.pointerToRawData,
        existing.pointerToRawData + existing.sizeOfRawData,
      );
      region.fill(0);
      region.set(source.content);
      existing.sizeOfRawData = roundUp(size, fileAlignment);
      existing.virtualSize = size;
      replaced.push({ source });
      continue;
    }
    const headerOffset = pe.sectionTableOffset + sections.length * SECTION_HEADER_SIZE;
    if (headerOffset + SECTION_HEADER_SIZE > sizeOfHeaders) {
      throw new PublishError(`not enough header space in stub ${stubPath} to add section ${source.name}`, {
        hint: `its SizeOfHeaders (${sizeOfHeaders}) leaves no room for another 40-byte section header`,
      });
    }
    const last = sections[sections.length - 1];
    const pointer = roundUp(fileEnd, fileAlignment);
    const rawSize = roundUp(size, fileAlignment);
    const section: PeSection = {
      name: source.name,
      virtualSize: size,
      virtualAddress: last
        ? roundUp(last.virtualAddress + last.virtualSize, sectionAlignment)
        : roundUp(sizeOfHeaders, sectionAlignment),
      sizeOfRawData: rawSize,
      pointerToRawData: pointer,
      // .linux is marked code: old kernels using the EFI handover protocol are executed in place.
      characteristics:
        IMAGE_SCN_MEM_READ | (source.name === '.linux' ? IMAGE_SCN_CNT_CODE : IMAGE_SCN_CNT_INITIALIZED_DATA),
      headerOffset,
    };
    sections.push(section);
    fresh.add(section);
    appended.push({ source, pointer, rawSize });
    fileEnd = pointer + rawSize;
    numberOfSections++;
    sizeOfInitializedData += size;
  }

  // 6.
  const last = sections[sections.length - 1];
  const sizeOfImage = last
    ? roundUp(last.virtualAddress + last.virtualSize, sectionAlignment)
    : roundUp(sizeOfHeaders, sectionAlignment);
  for (const [value, what] of [
    [fileEnd, 'file size'],
    [sizeOfImage, 'SizeOfImage'],
    [sizeOfInitializedData, 'SizeOfInitializedData'],
  ] as const) {
    if (value > U32)
      throw new PublishError(`the UKI would be too large for a PE image (${what} ${value} > 4 GiB)`);
  }
  if (numberOfSections > 0xffff) throw new PublishError('too many PE sections');

  // Patch the headers (all within the stub's header area, which `data` holds).
  data.writeUInt16LE(numberOfSections, fileHeader + 2);
  data.writeUInt32LE(pointerToSymbolTable, fileHeader + 8);
  data.writeUInt32LE(numberOfSymbols, fileHeader + 12);
  const oh = pe.optionalHeaderOffset;
  data.writeUInt32LE(sizeOfInitializedData, oh + OPT.sizeOfInitializedData);
  data.writeUInt32LE(sizeOfImage, oh + OPT.sizeOfImage);
  data.writeUInt32LE(sizeOfHeaders, oh + OPT.sizeOfHeaders);
  data.writeUInt32LE(0, oh + OPT.checkSum);
  for (const section of sections) writeSectionHeader(data, section, fresh.has(section));
  return { head: data, appended, replaced };
}

function writeSectionHeader(data: Buffer, section: PeSection, fresh: boolean): void {
  const at = section.headerOffset;
  if (at + SECTION_HEADER_SIZE > data.length) throw new PublishError("the stub's header area is truncated");
  if (fresh) {
    // A whole new header, as pefile builds it from zeros: relocation/line-number fields stay 0.
    data.fill(0, at, at + SECTION_HEADER_SIZE);
    data.write(section.name, at, 'latin1');
  }
  data.writeUInt32LE(section.virtualSize, at + 8);
  data.writeUInt32LE(section.virtualAddress, at + 12);
  data.writeUInt32LE(section.sizeOfRawData, at + 16);
  data.writeUInt32LE(section.pointerToRawData, at + 20);
  data.writeUInt32LE(section.characteristics >>> 0, at + 36);
}

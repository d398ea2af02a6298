// A tiny, structurally valid PE32+ EFI application standing in for systemd-stub in the offline demo, where no
// Garden Linux rootfs (and so no real stub) is at hand. It passes the UKI builders' checks and ukify accepts it,
// so the demo exercises the real code path; its entry point just returns EFI_UNSUPPORTED, so firmware given
// the resulting UKI refuses it instead of jumping into a kernel without a real stub in front.
// Every field is fixed (TimeDateStamp 0): the same arch gives the same bytes, hence the same digests.

const DOS_HEADER_SIZE = 0x40;
const PE_OFFSET = 0x80;
const OPTIONAL_HEADER_SIZE = 240; // PE32+ with 16 data directories
const FILE_ALIGNMENT = 0x200;
const SECTION_ALIGNMENT = 0x1000;
/** Room for the stub's section header plus the ones a UKI adds (.osrel ... .linux): 0x400 holds 15. */
const SIZE_OF_HEADERS = 0x400;
const TEXT_RVA = 0x1000;
const TEXT_RAW_SIZE = 0x200;

const MACHINE = { amd64: 0x8664, arm64: 0xaa64 } as const;

/** Returns EFI_UNSUPPORTED (0x8000000000000003). */
const ENTRY_CODE = {
  // mov rax, 0x8000000000000003 ; ret
  amd64: Buffer.from([0x48, 0xb8, 0x03, 0, 0, 0, 0, 0, 0, 0x80, 0xc3]),
  // movz x0, #3 ; movk x0, #0x8000, lsl #48 ; ret
  arm64: Buffer.from([0x60, 0x00, 0x80, 0xd2, 0x00, 0x00, 0xf0, 0xf2, 0xc0, 0x03, 0x5f, 0xd6]),
} as const;

const MARKER = 'IronCore sample EFI stub: not systemd-stub, not bootable\0';

export function createSamplePeStub(arch: 'amd64' | 'arm64'): Uint8Array {
  const code = ENTRY_CODE[arch];
  const marker = Buffer.from(MARKER, 'latin1');
  const textVirtualSize = 16 + marker.length; // code padded to 16, then the marker
  const file = Buffer.alloc(SIZE_OF_HEADERS + TEXT_RAW_SIZE);

  // DOS header: "MZ" and e_lfanew; the rest stays zero (no DOS program: EFI never runs it).
  file.write('MZ', 0, 'latin1');
  file.writeUInt32LE(PE_OFFSET, 0x3c);
  file.write('This program cannot be run in DOS mode.\r\n$', DOS_HEADER_SIZE, 'latin1');

  // COFF file header.
  let at = PE_OFFSET;
  file.write('PE\0\0', at, 'latin1');
  at += 4;
  file.writeUInt16LE(MACHINE[arch], at);
  file.writeUInt16LE(1, at + 2); // NumberOfSections
  file.writeUInt32LE(0, at + 4); // TimeDateStamp: fixed for reproducible bytes
  file.writeUInt16LE(OPTIONAL_HEADER_SIZE, at + 16);
  // EXECUTABLE_IMAGE | LINE_NUMS_STRIPPED | DEBUG_STRIPPED, as Debian's systemd-stub has.
  file.writeUInt16LE(0x0206, at + 18);
  at += 20;

  // PE32+ optional header.
  const oh = at;
  file.writeUInt16LE(0x20b, oh); // Magic: PE32+
  file.writeUInt8(2, oh + 2); // MajorLinkerVersion
  file.writeUInt32LE(TEXT_RAW_SIZE, oh + 4); // SizeOfCode
  file.writeUInt32LE(0, oh + 8); // SizeOfInitializedData
  file.writeUInt32LE(TEXT_RVA, oh + 16); // AddressOfEntryPoint
  file.writeUInt32LE(TEXT_RVA, oh + 20); // BaseOfCode
  file.writeBigUInt64LE(0n, oh + 24); // ImageBase: 0 like gnu-efi/systemd stubs (firmware relocates)
  file.writeUInt32LE(SECTION_ALIGNMENT, oh + 32);
  file.writeUInt32LE(FILE_ALIGNMENT, oh + 36);
  file.writeUInt32LE(TEXT_RVA + SECTION_ALIGNMENT, oh + 56); // SizeOfImage: headers page + one .text page
  file.writeUInt32LE(SIZE_OF_HEADERS, oh + 60);
  file.writeUInt32LE(0, oh + 64); // CheckSum: EFI loaders ignore it (ukify writes 0 too)
  file.writeUInt16LE(10, oh + 68); // Subsystem: EFI_APPLICATION
  file.writeUInt16LE(0, oh + 70); // DllCharacteristics
  file.writeBigUInt64LE(0x100000n, oh + 72); // SizeOfStackReserve
  file.writeBigUInt64LE(0x1000n, oh + 80); // SizeOfStackCommit
  file.writeBigUInt64LE(0x100000n, oh + 88); // SizeOfHeapReserve
  file.writeBigUInt64LE(0x1000n, oh + 96); // SizeOfHeapCommit
  file.writeUInt32LE(0, oh + 104); // LoaderFlags
  file.writeUInt32LE(16, oh + 108); // NumberOfRvaAndSizes; all directories empty (no imports, no relocations)
  at = oh + OPTIONAL_HEADER_SIZE;

  // .text section header.
  file.write('.text', at, 'latin1');
  file.writeUInt32LE(textVirtualSize, at + 8);
  file.writeUInt32LE(TEXT_RVA, at + 12);
  file.writeUInt32LE(TEXT_RAW_SIZE, at + 16);
  file.writeUInt32LE(SIZE_OF_HEADERS, at + 20);
  file.writeUInt32LE(0x60000020, at + 36); // CNT_CODE | MEM_EXECUTE | MEM_READ

  code.copy(file, SIZE_OF_HEADERS);
  marker.copy(file, SIZE_OF_HEADERS + 16);
  return new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
}

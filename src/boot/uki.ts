// buildUki: the metal variant's Unified Kernel Image (systemd-stub + kernel + initrd-uki + command line), built
// either by the real ukify or by our native PE writer, checked before (clear errors for bad inputs) and after
// (the output is a PE for the stub's machine and every section we asked for holds exactly its input).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { PublishError, throwIfAborted } from '../util/errors';
import type { HashedFile } from '../util/files';
import type { Logger } from '../util/logger';
import {
  IMAGE_SUBSYSTEM_EFI_APPLICATION,
  archOfMachine,
  describeMachine,
  openForReading,
  readPeHeaders,
  tryReadPeHeaders,
  PE_MACHINE,
  type BootArch,
  type PeHeaders,
} from './pe';
import { mergedSbat } from './sbat';
import { kernelVersionOf } from './uname';
import { writeNativeUki, type AddedSection, type UkiSectionSource } from './uki-native';
import { UKIFY_INSTALL_HINT, findOnPath, installUkify, runUkify } from './uki-ukify';

export type UkiBuilder = 'auto' | 'ukify' | 'native';
/** The name the front doors and the pipeline use for the builder input. */
export type UkiBuilderChoice = UkiBuilder;

export interface BuildUkiOptions {
  /** auto: ukify when it is on PATH, else native. */
  builder: UkiBuilder;
  kernel: string;
  /** The initrd to embed (normally initrd-uki from buildEmbeddedInitrd). */
  initrd: string;
  /** systemd-stub (linuxx64.efi.stub / linuxaa64.efi.stub). */
  stub: string;
  /** Kernel command line, stored verbatim in .cmdline; "" for none. */
  cmdline: string;
  /** Path of an os-release file for .osrel (the release's `<base>.release`). */
  osRelease?: string;
  /** When given, the stub (and a PE kernel) must be for this arch. */
  arch?: BootArch;
  output: string;
  logger: Logger;
  signal?: AbortSignal;
  /** builder "ukify" and ukify missing: try `apt-get install systemd-ukify` (root or passwordless sudo only). */
  installUkify?: boolean;
  /**
   * `sha256:<hex>` of inputs the caller hashed already while writing them (the pipeline's hashing writers): the
   * check of ukify's output then compares against these instead of reading the files again.
   */
  inputDigests?: { initrd?: string; kernel?: string };
}

export type BuiltUki = HashedFile & { builder: 'ukify' | 'native' };

/**
 * The longest command line the kernel keeps, in bytes without the terminating NUL. x86: the boot header's
 * cmdline_size (protocol >= 2.06), which is COMMAND_LINE_SIZE - 1 = 2047 on 6.x; arm64: COMMAND_LINE_SIZE is
 * 2048 (arch/arm64/include/uapi/asm/setup.h), so 2047 as well.
 */
export const DEFAULT_CMDLINE_LIMIT = 2047;

export async function buildUki(options: BuildUkiOptions): Promise<BuiltUki> {
  const { logger, signal } = options;
  throwIfAborted(signal);
  const inputs = await checkInputs(options);
  const builder = await chooseBuilder(options);
  logger.info(
    `building UKI ${options.output} with ${builder} (${inputs.arch}, kernel ${inputs.uname ?? 'version unknown'})`,
  );

  let built: HashedFile;
  let expected: AddedSection[];
  if (builder === 'native') {
    const result = await writeNativeUki({
      stub: options.stub,
      sections: await nativeSections(options, inputs),
      output: options.output,
      ...(signal ? { signal } : {}),
    });
    built = result;
    expected = result.sections;
  } else {
    const ukify = (await findOnPath('ukify')) ?? (await ensureUkify(options));
    built = await runUkify({
      ukify,
      kernel: options.kernel,
      initrd: options.initrd,
      stub: options.stub,
      cmdline: options.cmdline,
      output: options.output,
      logger,
      ...(options.osRelease !== undefined ? { osRelease: options.osRelease } : {}),
      ...(signal ? { signal } : {}),
      // Hashed below, in the same read as the verification: the UKI is read back once, not twice.
      hashOutput: false,
    });
    // ukify chooses .uname and .sbat itself; the sections we hand it must come out unchanged.
    expected = await expectedUserSections(options, inputs, signal);
    built = await verifyAndHashUki(built.path, inputs.stubHeaders.machine, expected, signal);
  }
  if (builder === 'native') await verifyUki(built.path, inputs.stubHeaders.machine, expected, signal);
  logger.info(`UKI ${built.path}: ${built.size} bytes, ${built.digest}`);
  return { ...built, builder };
}

interface CheckedInputs {
  arch: BootArch;
  stubHeaders: PeHeaders;
  kernelSize: number;
  initrdSize: number;
  uname: string | undefined;
}

async function fileSize(path: string, what: string): Promise<number> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new PublishError(`${what} ${path} is not a regular file`);
    return info.size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new PublishError(`${what} not found: ${path}`, { cause: error });
    throw error;
  }
}

async function checkInputs(options: BuildUkiOptions): Promise<CheckedInputs> {
  const kernelSize = await fileSize(options.kernel, 'kernel');
  const initrdSize = await fileSize(options.initrd, 'initrd');
  if (options.osRelease !== undefined) await fileSize(options.osRelease, 'os-release file');
  await fileSize(options.stub, 'EFI stub');

  const stubHeaders = await readPeHeaders(options.stub, 'EFI stub');
  const stubArch = archOfMachine(stubHeaders.machine);
  if (!stubArch) {
    throw new PublishError(
      `EFI stub ${options.stub} is for machine ${describeMachine(stubHeaders.machine)}; expected amd64 (0x8664) or arm64 (0xAA64)`,
    );
  }
  if (options.arch && stubArch !== options.arch) {
    throw new PublishError(
      `EFI stub ${options.stub} is for ${describeMachine(stubHeaders.machine)}, but the image is ${describeMachine(PE_MACHINE[options.arch])}`,
      {
        hint: `use usr/lib/systemd/boot/efi/${options.arch === 'amd64' ? 'linuxx64' : 'linuxaa64'}.efi.stub from the ${options.arch} rootfs`,
      },
    );
  }
  if (stubHeaders.subsystem !== IMAGE_SUBSYSTEM_EFI_APPLICATION) {
    throw new PublishError(
      `EFI stub ${options.stub} is not an EFI application (PE subsystem ${stubHeaders.subsystem}, expected 10)`,
    );
  }
  // Kernels with an EFI stub are PE images too (bzImage, arm64 Image): their machine must match the stub's.
  const kernelHeaders = await tryReadPeHeaders(options.kernel, 'kernel');
  if (kernelHeaders && kernelHeaders.machine !== stubHeaders.machine) {
    throw new PublishError(
      `EFI stub ${options.stub} is for ${describeMachine(stubHeaders.machine)} but kernel ${options.kernel} is for ${describeMachine(kernelHeaders.machine)}`,
      { hint: "take the stub from the same arch's rootfs as the kernel" },
    );
  }
  await checkCmdline(options.cmdline, options.kernel, stubArch);
  const uname = await kernelVersionOf(options.kernel, options.signal);
  if (uname.version === undefined)
    options.logger.warning(
      `kernel version not found in ${options.kernel} (${uname.reason}): no .uname section`,
    );
  return { arch: stubArch, stubHeaders, kernelSize, initrdSize, uname: uname.version };
}

/** The kernel's command-line limit: x86 reads it from the boot header, arm64 uses COMMAND_LINE_SIZE - 1. */
export async function cmdlineLimitOf(kernel: string, arch: BootArch): Promise<number> {
  if (arch !== 'amd64') return DEFAULT_CMDLINE_LIMIT;
  const handle = await openForReading(kernel, 'kernel');
  try {
    const header = Buffer.alloc(0x240);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < 0x23c || header.toString('latin1', 0x202, 0x206) !== 'HdrS') return DEFAULT_CMDLINE_LIMIT;
    const protocol = header.readUInt16LE(0x206);
    const size = protocol >= 0x206 ? header.readUInt32LE(0x238) : 0;
    return size > 0 ? size : DEFAULT_CMDLINE_LIMIT;
  } finally {
    await handle.close();
  }
}

async function checkCmdline(cmdline: string, kernel: string, arch: BootArch): Promise<void> {
  const bad = /[\n\r\0]/.exec(cmdline);
  if (bad) {
    const what = bad[0] === '\0' ? 'a NUL byte' : 'a line break';
    throw new PublishError(
      `the kernel command line contains ${what} at offset ${bad.index}: it must be one line`,
      {
        hint: 'a cmdline file from the release must be used without its trailing newline',
      },
    );
  }
  const limit = await cmdlineLimitOf(kernel, arch);
  const bytes = Buffer.byteLength(cmdline, 'utf8');
  if (bytes > limit) {
    throw new PublishError(
      `the kernel command line is ${bytes} bytes; the ${arch} kernel keeps at most ${limit}`,
      {
        hint: 'the kernel would cut it short silently: shorten it',
      },
    );
  }
}

async function chooseBuilder(options: BuildUkiOptions): Promise<'ukify' | 'native'> {
  if (options.builder === 'native') return 'native';
  if (options.builder === 'auto') return (await findOnPath('ukify')) ? 'ukify' : 'native';
  if (options.builder !== 'ukify')
    throw new PublishError(
      `unknown UKI builder ${JSON.stringify(options.builder)}: use auto, ukify or native`,
    );
  if (!(await findOnPath('ukify'))) await ensureUkify(options);
  return 'ukify';
}

async function ensureUkify(options: BuildUkiOptions): Promise<string> {
  if (options.installUkify) {
    const installed = await installUkify(options.logger, options.signal);
    if (installed) return installed;
  }
  throw new PublishError('ukify is not installed (UKI builder "ukify" was asked for)', {
    hint: UKIFY_INSTALL_HINT,
  });
}

/** The sections whose content comes from the caller; ukify must store them unchanged. */
async function expectedUserSections(
  options: BuildUkiOptions,
  inputs: CheckedInputs,
  signal?: AbortSignal,
): Promise<AddedSection[]> {
  const known = (digest: string | undefined, size: number): { size: number; sha256: string } | undefined =>
    digest?.startsWith('sha256:') ? { size, sha256: digest.slice('sha256:'.length) } : undefined;
  const sections: AddedSection[] = [];
  if (options.osRelease !== undefined)
    sections.push({ name: '.osrel', ...(await digestOfFile(options.osRelease, signal)) });
  if (options.cmdline !== '')
    sections.push({ name: '.cmdline', ...digestOf(Buffer.from(options.cmdline, 'utf8')) });
  sections.push({
    name: '.initrd',
    ...(known(options.inputDigests?.initrd, inputs.initrdSize) ??
      (await digestOfFile(options.initrd, signal))),
  });
  sections.push({
    name: '.linux',
    ...(known(options.inputDigests?.kernel, inputs.kernelSize) ??
      (await digestOfFile(options.kernel, signal))),
  });
  return sections;
}

/**
 * ukify 254's section order: .osrel, .cmdline, (.dtb), .uname, (.splash, .pcrpkey), .initrd, .sbat, .linux
 * last ("to leave breathing room for decompression"). Empty contents get no section, as in ukify.
 */
async function nativeSections(options: BuildUkiOptions, inputs: CheckedInputs): Promise<UkiSectionSource[]> {
  const sections: UkiSectionSource[] = [];
  if (options.osRelease !== undefined) {
    // os-release is a few hundred bytes: read it, so its size cannot change between layout and writing.
    sections.push({ name: '.osrel', content: await readFile(options.osRelease) });
  }
  if (options.cmdline !== '')
    sections.push({ name: '.cmdline', content: Buffer.from(options.cmdline, 'utf8') });
  if (inputs.uname) sections.push({ name: '.uname', content: Buffer.from(inputs.uname, 'utf8') });
  sections.push({ name: '.initrd', file: options.initrd, size: inputs.initrdSize });
  sections.push({
    name: '.sbat',
    content: Buffer.from(await mergedSbat(options.stub, options.kernel), 'utf8'),
  });
  sections.push({ name: '.linux', file: options.kernel, size: inputs.kernelSize });
  return sections;
}

function digestOf(content: Uint8Array): { size: number; sha256: string } {
  return { size: content.length, sha256: createHash('sha256').update(content).digest('hex') };
}

async function digestOfFile(
  path: string,
  signal?: AbortSignal,
  start = 0,
  length?: number,
): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  if (length === 0) return digestOf(new Uint8Array());
  const stream = createReadStream(path, {
    start,
    ...(length === undefined ? {} : { end: start + length - 1 }),
    highWaterMark: 1024 * 1024,
    ...(signal ? { signal } : {}),
  });
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/**
 * Reads the UKI back: a PE for `machine`, and each expected section present with exactly the expected bytes
 * (VirtualSize = content size, the bytes at PointerToRawData hashing to the input's sha256).
 */
export async function verifyUki(
  path: string,
  machine: number,
  expected: AddedSection[],
  signal?: AbortSignal,
): Promise<void> {
  const { headers, fileLength } = await readUkiHeaders(path, machine);
  for (const want of expected) {
    const section = sectionFor(headers, want, fileLength, path);
    const got = await digestOfFile(path, signal, section.pointerToRawData, want.size);
    if (got.sha256 !== want.sha256)
      throw new PublishError(`the UKI's ${want.name} section differs from its input`);
  }
}

/** The UKI's PE headers, refusing a file that is not a PE image for `machine`. */
async function readUkiHeaders(
  path: string,
  machine: number,
): Promise<{ headers: PeHeaders; fileLength: number }> {
  const headers = await tryReadPeHeaders(path, 'UKI');
  if (!headers)
    throw new PublishError(`the UKI ${path} is not a PE image: the builder wrote something broken`);
  if (headers.machine !== machine) {
    throw new PublishError(
      `the UKI ${path} is for ${describeMachine(headers.machine)}, expected ${describeMachine(machine)}`,
    );
  }
  return { headers, fileLength: (await stat(path)).size };
}

function sectionFor(
  headers: PeHeaders,
  want: AddedSection,
  fileLength: number,
  path: string,
): PeHeaders['sections'][number] {
  const section = headers.sections.find((s) => s.name === want.name);
  if (!section) throw new PublishError(`the UKI ${path} has no ${want.name} section`);
  if (
    section.virtualSize !== want.size ||
    section.sizeOfRawData < want.size ||
    section.pointerToRawData + want.size > fileLength
  ) {
    throw new PublishError(
      `the UKI's ${want.name} section holds ${section.virtualSize} bytes, expected ${want.size}`,
    );
  }
  return section;
}

/**
 * verifyUki and the UKI's own sha256 in one sequential read: each chunk feeds the file's hash and the hash of
 * every expected section it overlaps (for ukify's output, which arrives unhashed).
 */
export async function verifyAndHashUki(
  path: string,
  machine: number,
  expected: AddedSection[],
  signal?: AbortSignal,
): Promise<HashedFile> {
  const { headers, fileLength } = await readUkiHeaders(path, machine);
  const ranges = expected.map((want) => {
    const section = sectionFor(headers, want, fileLength, path);
    return {
      want,
      start: section.pointerToRawData,
      end: section.pointerToRawData + want.size,
      hash: createHash('sha256'),
    };
  });
  const whole = createHash('sha256');
  let position = 0;
  // One buffer, read into again and again: hundreds of MB per UKI without allocating (and collecting) a
  // fresh buffer per chunk.
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  const handle = await openForReading(path, 'UKI');
  try {
    while (true) {
      throwIfAborted(signal);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      whole.update(chunk);
      const end = position + bytesRead;
      for (const r of ranges) {
        if (r.end <= position || r.start >= end) continue;
        r.hash.update(
          chunk.subarray(Math.max(r.start, position) - position, Math.min(r.end, end) - position),
        );
      }
      position = end;
    }
  } finally {
    await handle.close();
  }
  if (position !== fileLength) throw new PublishError(`the UKI ${path} changed while it was verified`);
  for (const r of ranges) {
    if (r.hash.digest('hex') !== r.want.sha256)
      throw new PublishError(`the UKI's ${r.want.name} section differs from its input`);
  }
  return { path, digest: `sha256:${whole.digest('hex')}`, size: position };
}

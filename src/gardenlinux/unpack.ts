// Picks what the publisher needs out of a decompressed flavor archive, in one pass, without writing
// anything else to disk. Layouts seen over the years are all accepted: a top-level `<base>/`
// folder, `./`-prefixed members, flat members (there the `.raw` is a GNU sparse member).
// Nested archives are read as streams: `<base>.pxe.tar.gz` through zlib, the rootfs `<base>.tar`
// only for its EFI stub.
import { rm, rmdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { PublishError } from '../util/errors';
import { writeFileAtomic, type HashedFile } from '../util/files';
import type { Logger } from '../util/logger';
import type { Arch, FlavorKind } from './flavors';
import { readTar, type Budget, type TarMember } from './tar/reader';
import { writeSparseFileAtomic } from './tar/sparse';

export interface FlavorFiles {
  /** `<base>.raw` (kvm). */
  raw?: HashedFile;
  /** `vmlinuz` from the PXE tarball (metal). */
  kernel?: HashedFile;
  initrd?: HashedFile;
  squashfs?: HashedFile;
  /** `linuxx64.efi.stub` / `linuxaa64.efi.stub` from the rootfs tarball (metal). */
  efiStub?: HashedFile;
  release?: HashedFile;
  manifest?: HashedFile;
  sbom?: HashedFile;
}

export interface UnpackResult {
  files: FlavorFiles;
  cmdline?: string;
}

export function efiStubName(arch: Arch): string {
  return arch === 'arm64' ? 'linuxaa64.efi.stub' : 'linuxx64.efi.stub';
}

export function efiStubPath(arch: Arch): string {
  return `usr/lib/systemd/boot/efi/${efiStubName(arch)}`;
}

export interface UnpackOptions {
  /** Names the archive in errors. */
  label: string;
  /** `<cname>-<arch>-<version>-<commit8>`: the member names inside are `<base>.<ext>`. */
  base: string;
  kind: FlavorKind;
  arch: Arch;
  dir: string;
  budget: Budget;
  logger: Logger;
  signal?: AbortSignal;
  /** Every file this call created, so a failure can remove them. */
  written: string[];
  /**
   * Only the small files published as attachments (`.release`, `.manifest`, `.sbom`): the disk image, PXE and
   * rootfs tarballs stream past unwritten (a version published before attachments existed gets them this way).
   */
  attachmentsOnly?: boolean;
}

const MAX_CMDLINE = 64 * 1024;

async function* gunzip(source: AsyncIterable<Buffer>, label: string): AsyncGenerator<Buffer> {
  const input = Readable.from(source, { objectMode: false });
  // Bigger output chunks than the 16 KiB default: fewer callbacks and buffers per MB of squashfs.
  const gz = createGunzip({ chunkSize: 256 * 1024 });
  input.on('error', (e) => gz.destroy(e));
  input.pipe(gz);
  try {
    for await (const chunk of gz) yield chunk as Buffer;
  } catch (error) {
    if (error instanceof PublishError) throw error;
    throw new PublishError(`${label}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  } finally {
    input.destroy();
    gz.destroy();
  }
}

async function readSmall(body: AsyncIterable<Buffer>, max: number, what: string): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > max) throw new PublishError(`${what} is larger than ${max} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Reads the outer archive; returns the files it wrote. Throws (leaving cleanup to the caller) when a required member is missing. */
export async function unpackFlavorTar(
  tar: AsyncIterable<Buffer>,
  options: UnpackOptions,
): Promise<UnpackResult> {
  const { base, kind, arch, dir, label, signal } = options;
  const files: FlavorFiles = {};
  const result: UnpackResult = { files };
  const seen: string[] = [];
  let sawPxe = false;
  let sawRootfs = false;

  const claim = (key: keyof FlavorFiles, name: string): string => {
    if (files[key]) throw new PublishError(`${label}: member ${name} appears twice`);
    const path = join(dir, name);
    options.written.push(path);
    return path;
  };
  const plain = async (key: keyof FlavorFiles, name: string, m: TarMember): Promise<void> => {
    files[key] = await writeFileAtomic(claim(key, name), m.body, {
      expectedSize: m.entry.size,
      ...(signal ? { signal } : {}),
    });
  };

  for await (const m of readTar(tar, { label, budget: options.budget, strictLinks: true })) {
    const { entry } = m;
    if (seen.length < 50) seen.push(entry.name);
    if (entry.type !== 'file') continue;
    // Members sit at the top or in one folder (`<base>/`); anything deeper is not ours.
    const depth = entry.name.split('/').length;
    if (depth > 2) continue;
    const name = posix.basename(entry.name);
    if (!name.startsWith(`${base}.`)) continue;
    const ext = name.slice(base.length);
    if (options.attachmentsOnly && !['.release', '.manifest', '.sbom'].includes(ext)) continue;
    switch (ext) {
      case '.raw':
        if (kind !== 'kvm') break;
        files.raw = await writeSparseFileAtomic(claim('raw', name), m.body, {
          size: entry.size,
          ...(entry.sparse ? { segments: entry.sparse } : {}),
          ...(signal ? { signal } : {}),
        });
        break;
      case '.pxe.tar.gz':
        if (kind !== 'metal') break;
        sawPxe = true;
        await unpackPxe(m, options, files, result);
        break;
      case '.tar':
        if (kind !== 'metal') break;
        sawRootfs = true;
        await extractStub(m, options, files);
        break;
      case '.release':
        await plain('release', name, m);
        break;
      case '.manifest':
        await plain('manifest', name, m);
        break;
      case '.sbom':
        await plain('sbom', name, m);
        break;
      default:
        break;
    }
  }

  const missing: string[] = [];
  if (options.attachmentsOnly) return result;
  if (kind === 'kvm' && !files.raw) missing.push(`${base}.raw`);
  if (kind === 'metal') {
    if (!sawPxe) missing.push(`${base}.pxe.tar.gz`);
    else {
      if (!files.kernel) missing.push('vmlinuz (in the PXE tarball)');
      if (!files.initrd) missing.push('initrd (in the PXE tarball)');
      if (!files.squashfs) missing.push('root.squashfs (in the PXE tarball)');
    }
    if (!sawRootfs) missing.push(`${base}.tar`);
    else if (!files.efiStub) missing.push(`${efiStubPath(arch)} (in the rootfs tarball)`);
  }
  if (missing.length) {
    throw new PublishError(`${label}: archive lacks ${missing.join(', ')}`, {
      hint: `Members found: ${seen.length ? seen.join(', ') : '(none)'}${seen.length >= 50 ? ', ...' : ''}`,
    });
  }
  return result;
}

async function unpackPxe(
  m: TarMember,
  options: UnpackOptions,
  files: FlavorFiles,
  result: UnpackResult,
): Promise<void> {
  const label = `${options.label}: ${m.entry.name}`;
  const names: Record<string, keyof FlavorFiles> = {
    vmlinuz: 'kernel',
    initrd: 'initrd',
    'root.squashfs': 'squashfs',
  };
  for await (const inner of readTar(gunzip(m.body, label), {
    label,
    budget: options.budget,
    strictLinks: true,
  })) {
    if (inner.entry.type !== 'file') continue;
    const name = inner.entry.name;
    if (name === 'cmdline') {
      result.cmdline = (await readSmall(inner.body, MAX_CMDLINE, `${label}: cmdline`)).replace(/\s+$/, '');
      continue;
    }
    const key = names[name];
    if (!key) continue;
    if (files[key]) throw new PublishError(`${label}: member ${name} appears twice`);
    const path = join(options.dir, name);
    options.written.push(path);
    files[key] = await writeFileAtomic(path, inner.body, {
      expectedSize: inner.entry.size,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
}

async function extractStub(m: TarMember, options: UnpackOptions, files: FlavorFiles): Promise<void> {
  const label = `${options.label}: ${m.entry.name}`;
  const wanted = efiStubPath(options.arch);
  // The rootfs holds absolute symlinks by nature; nothing but the stub is written, so links are not checked here.
  for await (const inner of readTar(m.body, { label, budget: options.budget, strictLinks: false })) {
    if (inner.entry.name !== wanted) continue;
    if (inner.entry.type !== 'file') {
      throw new PublishError(`${label}: ${wanted} is a ${inner.entry.type}, not a regular file`);
    }
    const path = join(options.dir, efiStubName(options.arch));
    options.written.push(path);
    files.efiStub = await writeFileAtomic(path, inner.body, options.signal ? { signal: options.signal } : {});
    // The rest of the rootfs is not needed; the outer reader skips it without parsing.
    break;
  }
}

/** Removes what a failed unpack wrote; the folder itself only when it ended up empty. */
export async function removeWritten(dir: string, written: readonly string[]): Promise<void> {
  await Promise.all(written.map((p) => rm(p, { force: true })));
  await rmdir(dir).catch(() => {});
}

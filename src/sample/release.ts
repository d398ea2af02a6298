// Sample Garden Linux release assets, shaped like the real ones (DOMAIN.md section 2): the outer
// `<base>.tar.xz` in any of the layouts seen over time, a rootfs `<base>.tar` holding the EFI stub at
// its real path, a `<base>.pxe.tar.gz`, a sparse `<base>.raw`, os-release/manifest/sbom, and the
// `.logs.tar.xz` companion. Used by tests, the benchmark and the offline demo, so the output is
// deterministic: fixed mtimes and owners, seeded content, `gzip -n`, fixed xz settings.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { chmod, mkdir, open, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFile, writeFileAtomic } from '../util/files';

export type SampleArch = 'amd64' | 'arm64';
export type SampleLayout = 'folder' | 'dot-slash' | 'flat';

export interface SampleFlavor {
  /** Asset cname prefix, e.g. `baremetal_pxe` or `kvm-gardener_prod`. */
  asset: string;
  kind: 'kvm' | 'metal';
}

export interface SampleSizes {
  /** Bulk file in the rootfs tarball. */
  rootfs?: number;
  kernel?: number;
  initrd?: number;
  squashfs?: number;
  /** Logical size of the `.raw` (mostly holes). */
  raw?: number;
  /** Non-hole bytes in the `.raw`. */
  rawData?: number;
  /** 0..1: share of incompressible 64 KiB blocks in generated content (the rest is repetitive text). */
  entropy?: number;
}

export interface SampleReleaseOptions {
  dir: string;
  version: string;
  commit8: string;
  flavors: readonly SampleFlavor[];
  arches: readonly SampleArch[];
  layout: SampleLayout;
  sizes?: SampleSizes;
  /** EFI stubs to put into the rootfs; placeholder bytes when absent. */
  stubs?: Partial<Record<SampleArch, Uint8Array>>;
  /** Files to ship instead of generated content (bootable test images): initrd, squashfs, the kvm `.raw`. */
  files?: Partial<Record<SampleArch, { initrd?: string; squashfs?: string; raw?: string }>>;
  /** Kernels for the PXE tarball; placeholder bytes when absent. */
  kernel?: Partial<Record<SampleArch, Uint8Array>>;
  /** Store the `.raw` as a GNU sparse member (`tar -S`); default: only in the flat layout, as upstream did. */
  sparseRaw?: boolean;
  /** Also write the `<base>.logs.tar.xz` companion asset. */
  withLogs?: boolean;
  /** Kernel command line file in the PXE tarball; `false` for the old layout without one. */
  cmdline?: string | false;
  /** `gnu` (default, old-GNU sparse headers) or `posix` (PAX, sparse format 1.0). */
  tarFormat?: 'gnu' | 'posix';
  /** xz preset (default 0: fast, still real LZMA2 work). */
  xzPreset?: number;
  /**
   * Other content for an archive's os-release (`.release`), package list (`.manifest`) or SBOM (`.sbom`), or
   * `false` to leave the file out (releases before 2150.9.0 have no SBOM); default: generated, shaped like upstream's.
   */
  attachments?: (
    base: string,
    arch: SampleArch,
  ) => Partial<Record<'release' | 'manifest' | 'sbom', string | false>>;
}

export interface ExpectedFile {
  digest: string;
  size: number;
}

export interface SampleAsset {
  name: string;
  path: string;
  size: number;
  digest: string;
  flavor: string;
  kind: 'kvm' | 'metal';
  arch: SampleArch;
  base: string;
  /** True for `.logs.tar.xz`. */
  companion: boolean;
  /** What an unpacker must produce from this archive (flavor archives only). */
  expected?: {
    raw?: ExpectedFile;
    kernel?: ExpectedFile;
    initrd?: ExpectedFile;
    squashfs?: ExpectedFile;
    efiStub?: ExpectedFile;
    release?: ExpectedFile;
    manifest?: ExpectedFile;
    sbom?: ExpectedFile;
    cmdline?: string;
  };
}

export interface SampleRelease {
  version: string;
  commit8: string;
  assets: SampleAsset[];
}

const MTIME = '@1704067200'; // 2024-01-01: fixed, so the same inputs give the same bytes
const BLOCK = 64 * 1024;
export const SAMPLE_CMDLINE = 'gl.ovl=/:tmpfs gl.live=1 ip=any console=ttyS0,115200 console=tty0';

/** Deterministic pseudo-random bytes: AES-CTR keystream keyed by the seed (GB/s, no state to carry). */
function keystream(seed: string): (length: number) => Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return (length) => cipher.update(Buffer.alloc(length));
}

/** `size` bytes of seeded content: `entropy` share of random blocks, the rest repetitive text (xz has real work). */
async function* content(seed: string, size: number, entropy: number): AsyncGenerator<Buffer> {
  const random = keystream(seed);
  const text = Buffer.from(
    Array.from({ length: 2048 }, (_, i) => `${seed} line ${i % 97} gardenlinux sample content\n`).join(''),
  ).subarray(0, BLOCK);
  let left = size;
  while (left > 0) {
    const n = Math.min(BLOCK, left);
    const r = random(n);
    // The keystream decides too which blocks are random, so the pattern is seeded as well.
    const isRandom = (r[0] as number) / 256 < entropy;
    yield isRandom ? r : text.subarray(0, n);
    left -= n;
  }
}

async function writeContent(
  path: string,
  seed: string,
  size: number,
  entropy: number,
  magic?: Buffer,
): Promise<ExpectedFile> {
  const f = await writeFileAtomic(
    path,
    magic ? withMagic(magic, content(seed, size - magic.length, entropy)) : content(seed, size, entropy),
  );
  await chmod(path, 0o644);
  return { digest: f.digest, size: f.size };
}

async function* withMagic(magic: Buffer, rest: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  yield magic;
  yield* rest;
}

async function writeBytes(path: string, bytes: Uint8Array | string): Promise<ExpectedFile> {
  await writeFile(path, bytes);
  await chmod(path, 0o644);
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return { digest: `sha256:${createHash('sha256').update(buf).digest('hex')}`, size: buf.length };
}

/** A disk image: data at the start (partition table, ESP) and in the middle, holes elsewhere. */
async function writeSparseRaw(
  path: string,
  seed: string,
  size: number,
  data: number,
  entropy: number,
): Promise<ExpectedFile> {
  const fh = await open(path, 'w', 0o644);
  try {
    await fh.truncate(size);
    const head = Math.min(size, Math.ceil(data / 2 / 4096) * 4096);
    const midAt = Math.floor(size / 2 / 4096) * 4096;
    const mid = Math.max(0, Math.min(size - midAt, data - head));
    let pos = 0;
    for await (const c of content(`${seed}/head`, head, entropy))
      pos += (await fh.write(c, 0, c.length, pos)).bytesWritten;
    pos = Math.max(midAt, head);
    for await (const c of content(`${seed}/mid`, Math.min(mid, size - pos), entropy))
      pos += (await fh.write(c, 0, c.length, pos)).bytesWritten;
  } finally {
    await fh.close();
  }
  await chmod(path, 0o644);
  const h = await hashFile(path);
  return { digest: h.digest, size: h.size };
}

/** Package names and versions of the sample images, as dpkg-query lists them. */
function samplePackages(arch: SampleArch): [string, string][] {
  return [
    ['base-files', '13.5gardenlinux1'],
    ['bash', '5.2.37-1'],
    ['libc6', '2.40-6'],
    [`linux-image-6.12.8-${arch}`, '6.12.8-0gardenlinux1'],
    ['openssh-server', '1:9.9p1-3'],
    ['systemd', '256.7-1gardenlinux1'],
  ];
}

/** `/etc/os-release` as Garden Linux writes it into `<base>.release`. */
function sampleOsRelease(cname: string, arch: SampleArch, version: string, commit8: string): string {
  return [
    'ID=gardenlinux',
    'NAME="Garden Linux"',
    `PRETTY_NAME="Garden Linux ${version}"`,
    'HOME_URL="https://gardenlinux.io"',
    `IMAGE_VERSION=${version}`,
    `VERSION_ID=${version}`,
    `GARDENLINUX_CNAME=${cname}-${arch}`,
    'GARDENLINUX_FEATURES=log,sap,ssh,_boot,_nopkg,_prod,_slim,base,server',
    `GARDENLINUX_VERSION=${version}`,
    `GARDENLINUX_COMMIT_ID=${commit8}`,
    `GARDENLINUX_COMMIT_ID_LONG=${commit8}${'0'.repeat(32)}`,
    '',
  ].join('\n');
}

/** A CycloneDX SBOM shaped like the one syft writes into recent archives (ATTACHMENTS.md section 8). */
function sampleSbom(base: string, arch: SampleArch, version: string, packages: [string, string][]): string {
  const serial = createHash('sha256').update(base).digest('hex');
  return `${JSON.stringify(
    {
      $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      serialNumber: `urn:uuid:${serial.slice(0, 8)}-${serial.slice(8, 12)}-${serial.slice(12, 16)}-${serial.slice(16, 20)}-${serial.slice(20, 32)}`,
      version: 1,
      metadata: {
        timestamp: '2026-01-15T09:00:00Z',
        tools: { components: [{ type: 'application', author: 'anchore', name: 'syft', version: '1.18.1' }] },
        component: {
          type: 'operating-system',
          name: 'GardenLinux',
          version,
          properties: [
            { name: 'cname', value: base },
            { name: 'arch', value: arch },
          ],
        },
      },
      components: packages.map(([name, v]) => ({
        type: 'library',
        name,
        version: v,
        purl: `pkg:deb/gardenlinux/${name}@${encodeURIComponent(v)}?arch=${arch}`,
      })),
    },
    null,
    2,
  )}\n`;
}

/** A given file copied in (holes kept), mode 0644 as the generated ones. */
async function copyGiven(source: string, path: string): Promise<ExpectedFile> {
  await run('cp', ['--sparse=always', source, path]);
  await chmod(path, 0o644);
  const h = await hashFile(path);
  return { digest: h.digest, size: h.size };
}

function run(command: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} failed (${code}): ${stderr}`)),
    );
  });
}

function tarFlags(format: 'gnu' | 'posix'): string[] {
  const flags = ['--sort=name', `--mtime=${MTIME}`, '--owner=0', '--group=0', '--numeric-owner'];
  if (format === 'posix') {
    flags.push(
      '--format=posix',
      '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
      '--sparse-version=1.0',
    );
  } else flags.push('--format=gnu');
  return flags;
}

/** `tar -c ... | xz` (or gzip -n) into `out`, via bash for the pipe with pipefail. */
async function tarCompress(
  cwd: string,
  members: string[],
  out: string,
  compress: string,
  extra: string[],
): Promise<void> {
  await run('bash', [
    '-c',
    `set -o pipefail; tar "$@" | ${compress} > ${JSON.stringify(out)}`,
    'tar',
    ...extra,
    '-cf',
    '-',
    '-C',
    cwd,
    '--',
    ...members,
  ]);
}

export async function generateSampleRelease(options: SampleReleaseOptions): Promise<SampleRelease> {
  const sizes = options.sizes ?? {};
  const entropy = sizes.entropy ?? 0.5;
  const format = options.tarFormat ?? 'gnu';
  const xz = `xz -T2 -${options.xzPreset ?? 0} -c`;
  const sparse = options.sparseRaw ?? options.layout === 'flat';
  await mkdir(options.dir, { recursive: true });
  const assets: SampleAsset[] = [];

  for (const flavor of options.flavors) {
    for (const arch of options.arches) {
      const base = `${flavor.asset}-${arch}-${options.version}-${options.commit8}`;
      const seed = `${base}`;
      const work = join(options.dir, `.work-${base}`);
      await rm(work, { recursive: true, force: true });
      const folder = join(work, 'content', base);
      await mkdir(folder, { recursive: true });
      const expected: NonNullable<SampleAsset['expected']> = {};

      const packages = samplePackages(arch);
      const given = options.attachments?.(base, arch) ?? {};
      const attachments: Record<'release' | 'manifest' | 'sbom', string | false> = {
        release: given.release ?? sampleOsRelease(flavor.asset, arch, options.version, options.commit8),
        manifest: given.manifest ?? packages.map(([name, version]) => `${name} ${version}\n`).join(''),
        sbom: given.sbom ?? sampleSbom(base, arch, options.version, packages),
      };
      for (const kind of ['release', 'manifest', 'sbom'] as const) {
        const text = attachments[kind];
        if (text !== false) expected[kind] = await writeBytes(join(folder, `${base}.${kind}`), text);
      }
      await writeBytes(join(folder, `${base}.requirements`), `arch=${arch}\n`);
      await writeBytes(join(folder, `${base}.manifest.log`), `build log of ${base}.manifest\n`);

      const givenFiles = options.files?.[arch];
      if (flavor.kind === 'kvm' && givenFiles?.raw) {
        expected.raw = await copyGiven(givenFiles.raw, join(folder, `${base}.raw`));
        await writeBytes(join(folder, `${base}.raw.log`), 'raw build log\n');
      } else if (flavor.kind === 'kvm') {
        expected.raw = await writeSparseRaw(
          join(folder, `${base}.raw`),
          `${seed}/raw`,
          sizes.raw ?? 8 * 1024 * 1024,
          sizes.rawData ?? 512 * 1024,
          entropy,
        );
        await writeBytes(join(folder, `${base}.raw.log`), 'raw build log\n');
      } else {
        // Rootfs tarball: member names without `./`, the stub at its real path, an absolute symlink as in real rootfs trees.
        const rootfs = join(work, 'rootfs');
        const efi = join(rootfs, 'usr/lib/systemd/boot/efi');
        await mkdir(efi, { recursive: true });
        await mkdir(join(rootfs, 'etc'), { recursive: true });
        await mkdir(join(rootfs, 'usr/share/gardenlinux'), { recursive: true });
        const stubName = arch === 'arm64' ? 'linuxaa64.efi.stub' : 'linuxx64.efi.stub';
        const stub = options.stubs?.[arch] ?? Buffer.from(`MZ placeholder EFI stub for ${arch}\n`.repeat(64));
        expected.efiStub = await writeBytes(join(efi, stubName), stub);
        // The other arch's stub too, so a wrong pick shows.
        await writeBytes(
          join(efi, arch === 'arm64' ? 'linuxx64.efi.stub' : 'linuxaa64.efi.stub'),
          'wrong arch stub\n',
        );
        await writeBytes(
          join(rootfs, 'usr/lib/os-release'),
          `ID=gardenlinux\nVERSION_ID=${options.version}\n`,
        );
        await symlink('../usr/lib/os-release', join(rootfs, 'etc/os-release'));
        await symlink('/proc/self/mounts', join(rootfs, 'etc/mtab'));
        await writeContent(
          join(rootfs, 'usr/share/gardenlinux/bulk.bin'),
          `${seed}/rootfs`,
          sizes.rootfs ?? 64 * 1024,
          entropy,
        );
        await run('tar', [
          ...tarFlags('gnu'),
          '-cf',
          join(folder, `${base}.tar`),
          '-C',
          rootfs,
          'etc',
          'usr',
        ]);
        await chmod(join(folder, `${base}.tar`), 0o644);

        const pxe = join(work, 'pxe');
        await mkdir(pxe, { recursive: true });
        expected.kernel = options.kernel?.[arch]
          ? await writeBytes(join(pxe, 'vmlinuz'), options.kernel[arch] as Uint8Array)
          : await writeContent(join(pxe, 'vmlinuz'), `${seed}/kernel`, sizes.kernel ?? 32 * 1024, entropy);
        expected.initrd = givenFiles?.initrd
          ? await copyGiven(givenFiles.initrd, join(pxe, 'initrd'))
          : await writeContent(join(pxe, 'initrd'), `${seed}/initrd`, sizes.initrd ?? 48 * 1024, entropy);
        // Starts with the squashfs magic: the boot side refuses a root.squashfs without it.
        expected.squashfs = givenFiles?.squashfs
          ? await copyGiven(givenFiles.squashfs, join(pxe, 'root.squashfs'))
          : await writeContent(
              join(pxe, 'root.squashfs'),
              `${seed}/squashfs`,
              sizes.squashfs ?? 96 * 1024,
              entropy,
              Buffer.from('hsqs'),
            );
        const members = ['initrd', 'root.squashfs', 'vmlinuz'];
        if (options.cmdline !== false) {
          const cmdline = options.cmdline ?? SAMPLE_CMDLINE;
          await writeBytes(join(pxe, 'cmdline'), `${cmdline}\n`);
          expected.cmdline = cmdline;
          members.unshift('cmdline');
        }
        await tarCompress(pxe, members, join(folder, `${base}.pxe.tar.gz`), 'gzip -n -1', tarFlags('gnu'));
        await chmod(join(folder, `${base}.pxe.tar.gz`), 0o644);
      }

      const name = `${base}.tar.xz`;
      const out = join(options.dir, name);
      const flags = [...tarFlags(format), ...(sparse ? ['-S'] : [])];
      if (options.layout === 'folder') await tarCompress(join(work, 'content'), [base], out, xz, flags);
      else if (options.layout === 'dot-slash') await tarCompress(folder, ['.'], out, xz, flags);
      else {
        const files = (await readdir(folder)).sort();
        await tarCompress(folder, files, out, xz, flags);
      }
      const h = await hashFile(out);
      assets.push({
        name,
        path: out,
        size: h.size,
        digest: h.digest,
        flavor: flavor.asset,
        kind: flavor.kind,
        arch,
        base,
        companion: false,
        expected,
      });

      if (options.withLogs) {
        const logs = join(work, 'logs');
        await mkdir(logs, { recursive: true });
        await writeBytes(join(logs, `${base}.build.log`), `build log of ${base}\n`);
        const logName = `${base}.logs.tar.xz`;
        await tarCompress(logs, [`${base}.build.log`], join(options.dir, logName), xz, tarFlags('gnu'));
        const lh = await hashFile(join(options.dir, logName));
        assets.push({
          name: logName,
          path: join(options.dir, logName),
          size: lh.size,
          digest: lh.digest,
          flavor: flavor.asset,
          kind: flavor.kind,
          arch,
          base,
          companion: true,
        });
      }
      await rm(work, { recursive: true, force: true });
    }
  }
  return { version: options.version, commit8: options.commit8, assets };
}

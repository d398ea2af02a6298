// buildUki with real inputs: Debian's cloud kernels, Debian's systemd-boot stubs, the real ukify 254. The
// native builder must produce what ukify produces, section for section and (as it turns out) byte for byte.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildEmbeddedInitrd,
  buildUki,
  embeddedInitrdSource,
  efiStubPathInRootfs,
  peMachineOf,
  readPeHeaders,
  readPeSections,
  verifyAndHashUki,
  type BuildUkiOptions,
  type PeSection,
} from '../../src/boot';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { PublishError } from '../../src/util/errors';
import { memoryLogger } from '../../src/util/logger';
import {
  pathWithTools,
  realKernel,
  realStub,
  realUkify,
  requireCommand,
  type RealArch,
} from '../helpers/real-tools';

const ARCHES: RealArch[] = ['amd64', 'arm64'];
const CMDLINE = {
  amd64:
    'initrd=initrd gl.ovl=/:tmpfs gl.live=1 ip=any console=ttyS0,115200 console=tty0 earlyprintk=ttyS0,115200 consoleblank=0 ignition.firstboot=1 ignition.config.url=http://boot.onmetal.de:8083/ignition ignition.config.url.append.uuid=true ignition.platform.id=metal',
  arm64:
    'initrd=initrd gl.ovl=/:tmpfs gl.live=1 ip=any console=ttyAMA0,115200 console=tty0 consoleblank=0 ignition.firstboot=1 ignition.platform.id=metal',
};

let dir: string;
let initrdUki: string;
let osRelease: string;
const originalPath = process.env.PATH;

beforeAll(async () => {
  realUkify();
  requireCommand('mksquashfs', 'squashfs-tools');
  process.env.PATH = pathWithTools(originalPath);
  dir = mkdtempSync(join(tmpdir(), 'boot-uki-'));
  mkdirSync(join(dir, 'root'));
  writeFileSync(join(dir, 'root', 'data'), randomBytes(200_000));
  execFileSync(
    'mksquashfs',
    [
      join(dir, 'root'),
      join(dir, 'root.squashfs'),
      '-noappend',
      '-all-root',
      '-mkfs-time',
      '0',
      '-quiet',
      '-no-progress',
    ],
    {
      stdio: 'ignore',
    },
  );
  writeFileSync(join(dir, 'initrd'), randomBytes(50_001));
  initrdUki = (
    await buildEmbeddedInitrd({
      initrd: join(dir, 'initrd'),
      squashfs: join(dir, 'root.squashfs'),
      output: join(dir, 'initrd-uki'),
    })
  ).path;
  osRelease = join(dir, 'os-release');
  writeFileSync(osRelease, 'ID=gardenlinux\nNAME="Garden Linux"\nVERSION_ID=2150.0.0\n');
});

afterAll(() => {
  process.env.PATH = originalPath;
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  process.env.PATH = pathWithTools(originalPath);
});

function options(arch: RealArch, overrides: Partial<BuildUkiOptions> = {}): BuildUkiOptions {
  return {
    builder: 'native',
    kernel: realKernel(arch),
    initrd: initrdUki,
    stub: realStub(arch),
    cmdline: CMDLINE[arch],
    osRelease,
    arch,
    output: join(dir, `uki-${arch}-${Math.random().toString(16).slice(2)}.efi`),
    logger: memoryLogger(),
    ...overrides,
  };
}

function sectionBytes(file: Buffer, section: PeSection): Buffer {
  return file.subarray(section.pointerToRawData, section.pointerToRawData + section.virtualSize);
}

async function expectPublishError(promise: Promise<unknown>, message: RegExp): Promise<PublishError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PublishError);
  expect((error as Error).message).toMatch(message);
  return error as PublishError;
}

describe.each(ARCHES)('buildUki on real %s inputs', (arch) => {
  it('native and ukify give the same sections, in ukify order, holding exactly their inputs; the files are identical', async () => {
    const viaUkify = await buildUki(options(arch, { builder: 'ukify' }));
    const native = await buildUki(options(arch, { builder: 'native' }));
    expect(viaUkify.builder).toBe('ukify');
    expect(native.builder).toBe('native');

    const ukifySections = await readPeSections(viaUkify.path);
    const nativeSections = await readPeSections(native.path);
    expect(nativeSections.map((s) => s.name)).toEqual(ukifySections.map((s) => s.name));
    const added = ['.osrel', '.cmdline', '.uname', '.initrd', '.linux'];
    // arm64's stub has no .sbat, so it is appended before .linux; amd64's stub has one, replaced in place.
    const tail = arch === 'arm64' ? ['.osrel', '.cmdline', '.uname', '.initrd', '.sbat', '.linux'] : added;
    expect(nativeSections.map((s) => s.name).slice(-tail.length)).toEqual(tail);

    const ukifyFile = readFileSync(viaUkify.path);
    const nativeFile = readFileSync(native.path);
    for (const [i, section] of nativeSections.entries()) {
      const other = ukifySections[i] as PeSection;
      expect(section, section.name).toEqual(other);
      expect(sectionBytes(nativeFile, section).equals(sectionBytes(ukifyFile, other)), section.name).toBe(
        true,
      );
    }
    const byName = (name: string) =>
      sectionBytes(nativeFile, nativeSections.find((s) => s.name === name) as PeSection);
    expect(byName('.linux').equals(readFileSync(realKernel(arch)))).toBe(true);
    expect(byName('.initrd').equals(readFileSync(initrdUki))).toBe(true);
    expect(byName('.cmdline').toString()).toBe(CMDLINE[arch]);
    expect(byName('.osrel').equals(readFileSync(osRelease))).toBe(true);
    expect(byName('.uname').toString()).toMatch(new RegExp(`^6\\.1\\.0-\\d+-cloud-${arch}$`));
    expect(byName('.sbat').toString()).toMatch(
      /^sbat,1,SBAT Version,.*\nuki,1,UKI,uki,1,https:\/\/uapi-group.org\/specifications\/specs\/unified_kernel_image\/\n\0$/s,
    );

    // The aim: the same file. (Reported, and asserted, as the whole-file comparison.)
    expect(native.size).toBe(viaUkify.size);
    expect(native.digest).toBe(viaUkify.digest);
    expect(nativeFile.equals(ukifyFile)).toBe(true);

    const headers = await readPeHeaders(native.path);
    expect(headers.machine).toBe(arch === 'amd64' ? 0x8664 : 0xaa64);
    expect(headers.checkSum).toBe(0);
    expect(headers.sizeOfImage % headers.sectionAlignment).toBe(0);
  });

  it('a generated initrd-uki (never a file) gives the same UKI as the file, with either builder', async () => {
    const fromFile = await buildUki(options(arch, { builder: 'native' }));
    const generated = () =>
      embeddedInitrdSource({ initrd: join(dir, 'initrd'), squashfs: join(dir, 'root.squashfs') });
    const source = await generated();
    expect(source.size).toBe(readFileSync(initrdUki).length);
    const sub = mkdtempSync(join(dir, 'generated-'));
    const native = await buildUki(options(arch, { initrd: source, output: join(sub, 'native.efi') }));
    const viaUkify = await buildUki(
      options(arch, { builder: 'ukify', initrd: await generated(), output: join(sub, 'ukify.efi') }),
    );
    expect(native.digest).toBe(fromFile.digest);
    expect(viaUkify.digest).toBe(fromFile.digest);
    // ukify's temporary copy of the initrd is gone.
    expect(readdirSync(sub).sort()).toEqual(['native.efi', 'ukify.efi']);
  });

  it('refuses a generated initrd that does not give the size it announced', async () => {
    const real = await embeddedInitrdSource({
      initrd: join(dir, 'initrd'),
      squashfs: join(dir, 'root.squashfs'),
    });
    const lying = { ...real, size: real.size + 1, open: () => real.open() };
    await expectPublishError(
      buildUki(options(arch, { initrd: lying })),
      /gave \d+ bytes for \.initrd, \d+ were announced/,
    );
  });

  it('native output is deterministic', async () => {
    const a = await buildUki(options(arch));
    const b = await buildUki(options(arch));
    expect(b.digest).toBe(a.digest);
    expect(b.size).toBe(readFileSync(a.path).length);
  });

  it('builds a valid UKI from the sample stub, with either builder, and the same bytes', async () => {
    const stub = join(dir, `sample-${arch}.stub`);
    writeFileSync(stub, createSamplePeStub(arch));
    const headers = await readPeHeaders(stub);
    expect(headers.machine).toBe(arch === 'amd64' ? 0x8664 : 0xaa64);
    expect(headers.subsystem).toBe(10);
    expect(headers.magic).toBe(0x20b);
    expect(headers.sections.map((s) => s.name)).toEqual(['.text']);
    const native = await buildUki(options(arch, { stub }));
    const viaUkify = await buildUki(options(arch, { stub, builder: 'ukify' }));
    expect((await readPeSections(native.path)).map((s) => s.name)).toEqual([
      '.text',
      '.osrel',
      '.cmdline',
      '.uname',
      '.initrd',
      '.sbat',
      '.linux',
    ]);
    expect(await peMachineOf(native.path)).toBe(headers.machine);
    expect(native.digest).toBe(viaUkify.digest);
  });
});

describe('buildUki checks and failures', () => {
  it('stores the command line verbatim with both builders (ukify gets it as @file: no whitespace folding)', async () => {
    const cmdline = '@not-a-path  two  spaces\tand a tab';
    const native = await buildUki(options('amd64', { cmdline }));
    const viaUkify = await buildUki(options('amd64', { cmdline, builder: 'ukify' }));
    expect(viaUkify.digest).toBe(native.digest);
    const section = (await readPeSections(native.path)).find((s) => s.name === '.cmdline') as PeSection;
    expect(sectionBytes(readFileSync(native.path), section).toString()).toBe(cmdline);
  });

  it('auto picks ukify when it is on PATH, native when not', async () => {
    expect((await buildUki(options('amd64', { builder: 'auto' }))).builder).toBe('ukify');
    process.env.PATH = '/usr/bin:/bin';
    expect((await buildUki(options('amd64', { builder: 'auto' }))).builder).toBe('native');
  });

  it('refuses a stub that is not a PE file', async () => {
    const notPe = join(dir, 'not-pe.stub');
    writeFileSync(notPe, '#!/bin/sh\necho this is not an EFI stub\n');
    for (const builder of ['native', 'ukify'] as const) {
      await expectPublishError(
        buildUki(options('amd64', { stub: notPe, builder })),
        /EFI stub .*not-pe\.stub is not a PE\/COFF image/,
      );
    }
  });

  it("refuses the other arch's stub, with and without an expected arch", async () => {
    await expectPublishError(
      buildUki(options('amd64', { stub: realStub('arm64') })),
      /is for 0xAA64 \(arm64\), but the image is 0x8664 \(amd64\)/,
    );
    await expectPublishError(
      buildUki(options('amd64', { stub: realStub('arm64'), arch: undefined, builder: 'ukify' })),
      /EFI stub .* is for 0xAA64 \(arm64\) but kernel .*vmlinuz-amd64 is for 0x8664 \(amd64\)/,
    );
    await expectPublishError(
      buildUki(options('arm64', { stub: realStub('amd64') })),
      /is for 0x8664 \(amd64\), but the image is 0xAA64 \(arm64\)/,
    );
  });

  it('names a missing kernel, initrd, stub or os-release', async () => {
    await expectPublishError(
      buildUki(options('amd64', { kernel: join(dir, 'no-vmlinuz') })),
      /^kernel not found: .*no-vmlinuz$/,
    );
    await expectPublishError(
      buildUki(options('amd64', { initrd: join(dir, 'no-initrd') })),
      /^initrd not found: .*no-initrd$/,
    );
    await expectPublishError(
      buildUki(options('amd64', { stub: join(dir, 'no.stub') })),
      /^EFI stub not found: .*no\.stub$/,
    );
    await expectPublishError(
      buildUki(options('amd64', { osRelease: join(dir, 'no-release') })),
      /^os-release file not found: /,
    );
  });

  it('refuses a command line with a newline or NUL, or over the kernel limit (2047 bytes + NUL on both arches)', async () => {
    await expectPublishError(
      buildUki(options('amd64', { cmdline: 'console=ttyS0\n' })),
      /contains a line break at offset 13/,
    );
    await expectPublishError(
      buildUki(options('arm64', { cmdline: 'a\0b', builder: 'ukify' })),
      /contains a NUL byte at offset 1/,
    );
    const atLimit = `x=${'y'.repeat(2045)}`;
    expect((await buildUki(options('amd64', { cmdline: atLimit }))).size).toBeGreaterThan(0);
    for (const arch of ARCHES) {
      await expectPublishError(
        buildUki(options(arch, { cmdline: `${atLimit}z` })),
        new RegExp(`is 2048 bytes; the ${arch} kernel keeps at most 2047`),
      );
    }
  });

  it('reports ukify failing, with its stderr', async () => {
    const bin = join(dir, 'fake-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'ukify'), '#!/bin/sh\necho "ukify: pefile exploded on purpose" >&2\nexit 1\n');
    chmodSync(join(bin, 'ukify'), 0o755);
    process.env.PATH = `${bin}:${originalPath}`;
    const error = await expectPublishError(
      buildUki(options('amd64', { builder: 'ukify' })),
      /^ukify build failed \(exit 1\): ukify: pefile exploded on purpose$/,
    );
    expect(error.stack).toBeDefined();

    // And the real ukify given a kernel it cannot read (a non-PE, non-compressed blob).
    process.env.PATH = pathWithTools(originalPath);
    const bogus = join(dir, 'bogus-kernel');
    writeFileSync(bogus, randomBytes(4096));
    await expectPublishError(
      buildUki(options('amd64', { kernel: bogus, builder: 'ukify' })),
      /ukify build failed \(exit 1\):[\s\S]*unknown file format/,
    );
  });

  it('asks for ukify explicitly when it is missing: a PublishError with the apt-get hint', async () => {
    process.env.PATH = '/usr/bin:/bin';
    const error = await expectPublishError(
      buildUki(options('amd64', { builder: 'ukify' })),
      /ukify is not installed/,
    );
    expect(error.hint).toMatch(/sudo apt-get install -y systemd-ukify/);
  });

  it('verification catches a section whose bytes differ from its input', async () => {
    const built = await buildUki(options('arm64'));
    const initrdSection = (await readPeSections(built.path)).find((s) => s.name === '.initrd') as PeSection;
    const bytes = readFileSync(built.path);
    const input = readFileSync(initrdUki);
    const expected = [
      { name: '.initrd', size: input.length, sha256: createHash('sha256').update(input).digest('hex') },
    ];
    expect((await verifyAndHashUki(built.path, 0xaa64, expected)).digest).toBe(built.digest);
    const at = initrdSection.pointerToRawData + 1000;
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
    writeFileSync(built.path, bytes);
    await expectPublishError(
      verifyAndHashUki(built.path, 0xaa64, expected),
      /the UKI's \.initrd section differs from its input/,
    );
    await expectPublishError(
      verifyAndHashUki(built.path, 0x8664, expected),
      /is for 0xAA64 \(arm64\), expected 0x8664 \(amd64\)/,
    );
  });

  it('stops when aborted and leaves no output behind', async () => {
    const controller = new AbortController();
    controller.abort(new PublishError('cancelled'));
    const output = join(dir, 'aborted.efi');
    await expect(buildUki(options('amd64', { output, signal: controller.signal }))).rejects.toThrow(
      'cancelled',
    );
    expect(() => readFileSync(output)).toThrow();
  });

  it('knows where the stub sits in a rootfs', () => {
    expect(efiStubPathInRootfs('amd64')).toBe('usr/lib/systemd/boot/efi/linuxx64.efi.stub');
    expect(efiStubPathInRootfs('arm64')).toBe('usr/lib/systemd/boot/efi/linuxaa64.efi.stub');
  });
});

describe('buildUki on a full disk', () => {
  // A tmpfs smaller than the UKI (the Debian kernel alone is larger): the write stops with ENOSPC.
  let small: string;
  beforeAll(() => {
    small = mkdtempSync(join(tmpdir(), 'uki-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
  });
  afterAll(() => {
    execFileSync('umount', [small]);
    rmSync(small, { recursive: true, force: true });
  });

  it.each(['native', 'ukify'] as const)(
    '%s: one error naming the folder and the sizes, and nothing left behind',
    async (builder) => {
      const output = join(small, `uki-${builder}.efi`);
      const error = await expectPublishError(
        buildUki(options('amd64', { builder, output })),
        new RegExp(
          `^no space left in ${small.replace(/[.]/g, '\\.')}: writing uki-${builder}\\.efi stopped after`,
        ),
      );
      expect(error.message).toMatch(/of the [0-9.]+ MiB it needs; its partial file was removed$/);
      expect(error.hint).toMatch(/Free space there, or give a work folder on a larger disk/);
      expect(readdirSync(small)).toEqual([]);
    },
  );
});

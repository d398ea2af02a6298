// The local half of the toolkit (build, list, tag, delete, inspect) on real files: the Debian kernels, a
// generated initrd, squashfs and raw disk. The store is read back by skopeo, an independent client.
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { hashFile } from '../../src/util/files';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBootableArtifacts, type BootableArtifacts } from '../helpers/bootable';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { runCli, type CliRun } from '../helpers/cli';

let work: string;
let store: string;
const art: Partial<Record<'amd64' | 'arm64', BootableArtifacts>> = {};

function cli(args: string[]): Promise<CliRun> {
  return runCli(args, { HOME: work });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'toolkit-'));
  store = join(work, 'store');
  art.amd64 = await makeBootableArtifacts({ dir: join(work, 'amd64'), arch: 'amd64', version: '1.0' });
  art.arm64 = await makeBootableArtifacts({
    dir: join(work, 'arm64'),
    arch: 'arm64',
    version: '1.0',
    withoutRaw: true,
  });
  await writeFile(join(work, 'cmdline'), 'console=ttyS0 root=live:LABEL=os');
}, 300_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const metalConfig = (arch: 'amd64' | 'arm64'): string =>
  `arch=${arch},kernel=${art[arch]!.kernel},initramfs=${art[arch]!.initrd},squashfs=${art[arch]!.squashfs},cmdline=${join(work, 'cmdline')}`;

async function blobCount(): Promise<number> {
  return (await readdir(join(store, 'blobs', 'sha256'))).length;
}

describe('build, list, tag, delete', () => {
  it('builds a two-arch metal image and a kvm image into the store; skopeo reads every tag', async () => {
    const metal = await cli([
      'build',
      '--tag',
      'ghcr.io/test/my-os:1.0-metal',
      '--config',
      metalConfig('amd64'),
      '--config',
      metalConfig('arm64'),
      '--annotation',
      'org.opencontainers.image.version=1.0',
      '--annotations',
      'org.opencontainers.image.vendor=test,org.opencontainers.image.licenses=MIT',
      '--store-path',
      store,
    ]);
    expect(metal.stderr).toBe('');
    expect(metal.code).toBe(0);
    const digests = Object.fromEntries(
      [...metal.stdout.matchAll(/^built (\S+) (sha256:[0-9a-f]{64})/gm)].map((m) => [m[1]!, m[2]!]),
    );
    expect(Object.keys(digests).sort()).toEqual([
      'ghcr.io/test/my-os:1.0-metal',
      'ghcr.io/test/my-os:1.0-metal-amd64',
      'ghcr.io/test/my-os:1.0-metal-arm64',
    ]);
    for (const [ref, digest] of Object.entries(digests)) {
      const read = await skopeoInspectRaw(`oci:${store}:${ref}`);
      expect(read.digest, ref).toBe(digest);
    }
    const index = JSON.parse(
      (await skopeoInspectRaw(`oci:${store}:ghcr.io/test/my-os:1.0-metal`)).bytes.toString(),
    ) as {
      manifests: { platform: { architecture: string }; annotations: Record<string, string> }[];
    };
    expect(index.manifests.map((m) => `${m.platform.architecture}/${m.annotations.variant}`)).toEqual([
      'amd64/metal',
      'arm64/metal',
    ]);
    const arm = JSON.parse(
      (await skopeoInspectRaw(`oci:${store}:ghcr.io/test/my-os:1.0-metal-arm64`)).bytes.toString(),
    ) as {
      layers: { mediaType: string }[];
    };
    expect(arm.layers.map((l) => l.mediaType.split('.').pop())).toEqual(['squashfs', 'initramfs', 'kernel']);
    expect((arm as unknown as { annotations: Record<string, string> }).annotations).toMatchObject({
      'org.opencontainers.image.version': '1.0',
      'org.opencontainers.image.vendor': 'test',
      'org.opencontainers.image.licenses': 'MIT',
      variant: 'metal',
      architecture: 'arm64',
    });

    const kvm = await cli([
      'build',
      '--tag',
      'ghcr.io/test/my-os:1.0-kvm',
      '--config',
      `arch=amd64,rootfs=${art.amd64!.raw}`,
      '--store-path',
      store,
    ]);
    expect(kvm.code).toBe(0);
    // The disk is stored with its holes: it allocates its data, not its 64 MiB.
    const raw = await hashFile(art.amd64!.raw);
    const blob = await stat(join(store, 'blobs', 'sha256', raw.digest.slice(7)));
    expect(blob.size).toBe(64 * 1024 * 1024);
    expect(blob.blocks * 512).toBeLessThan(blob.size / 2);
    const inspect = await cli(['inspect', 'ghcr.io/test/my-os:1.0-kvm', '--store-path', store]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/manifest sha256:[0-9a-f]{64} variant=virtualization arch=amd64/);
    expect(inspect.stdout).toMatch(/rootfs\s+64\.0 MiB/);
  });

  it('boot takes an image from the local store', async () => {
    const run = await cli([
      'boot',
      'ghcr.io/test/my-os:1.0-kvm',
      '--accel',
      'tcg',
      '--store-path',
      store,
      '--work-dir',
      join(work, 'boot'),
    ]);
    expect(run.stderr).not.toContain('error:');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/ghcr\.io\/test\/my-os:1\.0-kvm\s+disk\s+amd64\s+tcg\s+passed/);
  }, 300_000);

  it('the same files build the same digests', async () => {
    const again = await cli([
      'build',
      '--tag',
      'ghcr.io/test/again:1.0',
      '--config',
      metalConfig('amd64'),
      '--store-path',
      store,
    ]);
    const once = await cli([
      'build',
      '--tag',
      'ghcr.io/test/again:1.0',
      '--config',
      metalConfig('amd64'),
      '--store-path',
      store,
    ]);
    expect(again.stdout).toBe(once.stdout);
  });

  it('list shows full references; tag adds one; delete removes it and, last, every blob', async () => {
    const tagged = await cli([
      'tag',
      'ghcr.io/test/my-os:1.0-metal',
      'registry.example.com/mirror/my-os:stable',
      '--store-path',
      store,
    ]);
    expect(tagged.code).toBe(0);
    const list = await cli(['list', '--store-path', store]);
    expect(list.stdout).toMatch(/^ghcr\.io\/test\/my-os\s+1\.0-metal-arm64\s+[0-9a-f]{12}\s+manifest$/m);
    expect(list.stdout).toMatch(/^registry\.example\.com\/mirror\/my-os\s+stable\s+[0-9a-f]{12}\s+index$/m);

    const before = await blobCount();
    // Still referenced by the other tag: nothing goes.
    expect(
      (await cli(['delete', 'registry.example.com/mirror/my-os:stable', '--store-path', store])).stdout,
    ).toContain('(0 blob(s)');
    expect(await blobCount()).toBe(before);
    // The kvm index goes alone (its arch tag still names the manifest); then the arch tag takes its
    // manifest, config ({}: no command line) and rootfs with it.
    const kvm = await cli(['delete', 'ghcr.io/test/my-os:1.0-kvm', '--store-path', store]);
    expect(kvm.stdout).toMatch(/\(1 blob\(s\)/);
    const kvmArch = await cli(['delete', 'ghcr.io/test/my-os:1.0-kvm-amd64', '--store-path', store]);
    expect(kvmArch.stdout).toMatch(/\(3 blob\(s\)/);
    // Past the header and its underline, every row is an image: delete them all.
    for (const line of (await cli(['list', '--store-path', store])).stdout.split('\n').slice(2)) {
      if (!line.trim()) continue;
      expect(
        (await cli(['delete', line.split(/\s+/)[0] + ':' + line.split(/\s+/)[1], '--store-path', store]))
          .code,
      ).toBe(0);
    }
    expect(await blobCount()).toBe(0);
  });

  it.each([
    [['--config', 'kernel=/bin/sh'], 'has no arch= (amd64 or arm64)'],
    [['--config', 'arch=amd64,kernal=/bin/sh'], 'unknown key "kernal"; known: arch, rootfs'],
    [['--config', 'arch=amd64,kernel=/no/such/file'], 'kernel=/no/such/file: no such file'],
    [['--config', 'arch=riscv64,kernel=/bin/sh'], 'arch "riscv64" must be amd64 or arm64'],
    [['--config', 'arch=amd64'], 'names no layer file'],
  ])('build %j is one clear error, nothing written', async (extra, message) => {
    const empty = join(work, `empty-${Math.random().toString(36).slice(2)}`);
    const run = await cli(['build', '--tag', 'ghcr.io/test/bad:1', ...extra, '--store-path', empty]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(message);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await readdir(empty).catch(() => [])).toEqual([]);
  });

  it('usage errors exit with 2, failures with 1, and every command has --help with an example', async () => {
    expect((await cli(['build', '--config', metalConfig('amd64')])).code).toBe(2);
    const unknown = await cli(['build', '--tag', 'ghcr.io/t/x:1', '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--frobnicate'");
    expect((await cli(['tag', 'ghcr.io/t/x:1'])).code).toBe(2);
    expect((await cli(['delete', 'ghcr.io/t/nothing:1', '--store-path', store])).code).toBe(1);
    for (const command of [
      'publish',
      'inspect',
      'build',
      'list',
      'tag',
      'delete',
      'push',
      'pull',
      'url',
      'boot',
    ]) {
      const help = await cli([command, '--help']);
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toMatch(/Example/);
    }
  });

  it('a reference without a tag, and a folder that is not a layout, are refused', async () => {
    const untagged = await cli([
      'build',
      '--tag',
      'ghcr.io/test/bad',
      '--config',
      metalConfig('amd64'),
      '--store-path',
      store,
    ]);
    expect(untagged.stderr).toContain('needs a tag');
    const other = join(work, 'not-a-layout');
    await mkdir(other, { recursive: true });
    await writeFile(join(other, 'notes.txt'), 'mine');
    const run = await cli(['list', '--store-path', other]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${other} is not an OCI image layout (it has no oci-layout file)`);
  });
});

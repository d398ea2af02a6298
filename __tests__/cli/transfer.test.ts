// The remote half of the toolkit against a real docker-registry: build two arches locally, push with the
// sub-manifests, read every tag back with skopeo, pull one arch/variant into another store with its layers as
// files (byte-identical to what was built), and fetch a layer with curl from what `url` prints.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashFile } from '../../src/util/files';
import { makeBootableArtifacts, type BootableArtifacts } from '../helpers/bootable';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { runCli, type CliRun } from '../helpers/cli';

const exec = promisify(execFile);
let work: string;
let registry: RunningRegistry;
const art: Partial<Record<'amd64' | 'arm64', BootableArtifacts>> = {};
let ref: string;

function cli(args: string[]): Promise<CliRun> {
  return runCli(args, { HOME: work });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'transfer-'));
  registry = await startRegistry();
  ref = `${registry.host}/test/my-os:2.0`;
  for (const arch of ['amd64', 'arm64'] as const)
    art[arch] = await makeBootableArtifacts({
      dir: join(work, arch),
      arch,
      version: '2.0',
      withoutRaw: true,
    });
  await writeFile(join(work, 'cmdline'), 'console=ttyS0 quiet');
  const config = (arch: 'amd64' | 'arm64') =>
    `arch=${arch},kernel=${art[arch]!.kernel},initramfs=${art[arch]!.initrd},squashfs=${art[arch]!.squashfs},cmdline=${join(work, 'cmdline')}`;
  const built = await cli([
    'build',
    '--tag',
    ref,
    '--config',
    config('amd64'),
    '--config',
    config('arm64'),
    '--store-path',
    join(work, 'store'),
  ]);
  expect(built.code).toBe(0);
}, 300_000);
afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('push, pull, url', () => {
  it('push --push-sub-manifests writes the children and their <tag>-<arch> tags, then the index', async () => {
    const push = await cli(['push', ref, '--push-sub-manifests', '--store-path', join(work, 'store')]);
    expect(push.stderr).not.toContain('error');
    expect(push.code).toBe(0);
    const lines = push.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(' ')[1])).toEqual([`${ref}-amd64`, `${ref}-arm64`, ref]);
    for (const line of lines) {
      const [, tag, digest] = line.split(' ');
      expect((await skopeoInspectRaw(`docker://${tag}`)).digest).toBe(digest);
    }
    // Again, the Go tool's way to say no sub-manifest tags: every blob is there already, nothing is uploaded.
    const again = await cli(['push', ref, '--push-sub-manifests=false', '--store-path', join(work, 'store')]);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('uploaded');
    expect(
      again.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[1]),
    ).toEqual(['child', 'child', ref]);
  });

  it('pull --arch arm64 --variant metal --output gives back byte-identical files', async () => {
    const out = join(work, 'out');
    const pull = await cli([
      'pull',
      ref,
      '--arch',
      'arm64',
      '--variant',
      'metal',
      '--output',
      out,
      '--store-path',
      join(work, 'store2'),
    ]);
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    expect(pull.stdout).toMatch(/^pulled .* \(arm64\/metal\)$/m);
    for (const [name, original] of [
      ['vmlinuz', art.arm64!.kernel],
      ['initramfs', art.arm64!.initrd],
      ['root.squashfs', art.arm64!.squashfs],
    ] as const) {
      expect((await hashFile(join(out, name))).digest, name).toBe((await hashFile(original)).digest);
    }
    expect(await readFile(join(out, 'cmdline'), 'utf8')).toBe('console=ttyS0 quiet');
    // The pulled image is in the second store now, under the reference it was pulled by.
    const list = await cli(['list', '--store-path', join(work, 'store2')]);
    expect(list.stdout).toMatch(
      new RegExp(`^${registry.host.replace('.', '\\.')}/test/my-os\\s+2\\.0\\s`, 'm'),
    );
  });

  it('a selection the index does not have is one error that lists what it has', async () => {
    const pull = await cli([
      'pull',
      ref,
      '--arch',
      'arm64',
      '--variant',
      'kvm',
      '--store-path',
      join(work, 'store3'),
    ]);
    expect(pull.code).toBe(1);
    expect(pull.stderr).toContain('has no image for arm64/virtualization; it has amd64/metal, arm64/metal');
  });

  it('a blob the registry serves with other bytes is refused, and nothing is left in the store or output', async () => {
    // Corrupt the arm64 kernel in the registry's own storage (same length, one byte changed).
    const kernel = (await hashFile(art.arm64!.kernel)).digest.slice(7);
    const data = join(
      registry.storage,
      'docker/registry/v2/blobs/sha256',
      kernel.slice(0, 2),
      kernel,
      'data',
    );
    const bytes = await readFile(data);
    bytes[1000] = bytes[1000]! ^ 0xff;
    await writeFile(data, bytes);
    const out = join(work, 'out-corrupt');
    const pull = await cli([
      'pull',
      ref,
      '--arch',
      'arm64',
      '--output',
      out,
      '--store-path',
      join(work, 'store4'),
    ]);
    expect(pull.code).toBe(1);
    expect(pull.stderr).toMatch(new RegExp(`sha256:${kernel}`));
    expect(pull.stderr).not.toMatch(/\n\s+at /);
    const left = await readdir(join(work, 'store4', 'blobs', 'sha256')).catch(() => []);
    expect(left).not.toContain(kernel);
    expect(left.filter((f) => f.includes('partial'))).toEqual([]);
    expect(await readdir(out).catch(() => [])).toEqual([]);
    bytes[1000] = bytes[1000]! ^ 0xff;
    await writeFile(data, bytes);
  });

  it('url prints what curl needs to fetch the kernel', async () => {
    const url = await cli(['url', '--layer', 'kernel', `${ref}-amd64`]);
    expect(url.code).toBe(0);
    const access = JSON.parse(url.stdout) as { url: string; headers: Record<string, string[]> };
    expect(access.url).toMatch(
      new RegExp(`^http://${registry.host}/v2/test/my-os/blobs/sha256:[0-9a-f]{64}$`),
    );
    const headerArgs = Object.entries(access.headers).flatMap(([k, vs]) =>
      vs.flatMap((v) => ['-H', `${k}: ${v}`]),
    );
    await exec('curl', ['-fsSL', ...headerArgs, access.url, '-o', join(work, 'curl-kernel')]);
    expect((await hashFile(join(work, 'curl-kernel'))).digest).toBe(
      (await hashFile(art.amd64!.kernel)).digest,
    );

    const bad = await cli(['url', '--layer', 'vmlinuz', ref]);
    expect(bad.stderr).toContain(
      '--layer "vmlinuz" must be one of kernel, initramfs, rootfs, squashfs, uki, iso',
    );
    const missing = await cli(['url', '--layer', 'rootfs', `${ref}-amd64`]);
    expect(missing.stderr).toMatch(/has no rootfs layer; it has squashfs, initramfs, kernel/);
  });
});

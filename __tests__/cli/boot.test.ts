// `boot REF` from a terminal: an image published into an OCI layout by the CLI (from asset files), then booted
// with the same code the action runs before tagging, selected in the combined index by arch and variant.
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSampleRelease } from '../../src/sample/release';
import { makeBootableArtifacts } from '../helpers/bootable';
import { runCli, type CliRun } from '../helpers/cli';

const VERSION = '2150.1.0';
let work: string;
let layout: string;
let tag: string;

function cli(args: string[]): Promise<CliRun> {
  return runCli(args);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cli-boot-'));
  const a = await makeBootableArtifacts({ dir: join(work, 'boot'), arch: 'amd64', version: VERSION });
  const release = await generateSampleRelease({
    dir: join(work, 'assets'),
    version: VERSION,
    commit8: '0c11b007',
    flavors: [
      { asset: 'kvm-gardener_prod', kind: 'kvm' },
      { asset: 'baremetal-gardener_pxe', kind: 'metal' },
    ],
    arches: ['amd64'],
    layout: 'flat',
    stubs: { amd64: await readFile(a.stub) },
    kernel: { amd64: await readFile(a.kernel) },
    files: { amd64: { initrd: a.initrd, squashfs: a.squashfs, raw: a.raw } },
  });
  layout = join(work, 'layout');
  const published = await cli([
    'publish',
    '--registry',
    '',
    '--oci-layout',
    layout,
    '--uki-builder',
    'native',
    ...release.assets.filter((x) => !x.companion).flatMap((x) => ['--from-file', x.path]),
  ]);
  expect(published.stderr).not.toContain('error:');
  expect(published.code).toBe(0);
  tag = /gardenlinux\/gardener:(2150\.1\.0-manual-[0-9a-f]{8})\s/.exec(published.stdout)![1]!;
}, 300_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('ironcore-publish boot', { timeout: 600_000 }, () => {
  it('boots the kvm and the metal entry of a combined index, picked by --arch and --variant', async () => {
    const ref = `oci:${layout}/gardenlinux/gardener:${tag}`;
    const kvm = await cli([
      'boot',
      ref,
      '--arch',
      'amd64',
      '--variant',
      'kvm',
      '--accel',
      'tcg',
      '--work-dir',
      join(work, 'kvm'),
    ]);
    expect(kvm.stderr).not.toContain('error:');
    expect(kvm.code).toBe(0);
    expect(kvm.stdout).toMatch(/disk\s+amd64\s+tcg\s+passed/);
    expect(await readFile(join(work, 'kvm', 'boot-disk', 'serial.log'), 'utf8')).toContain(
      'Welcome to IronCore Boot Test',
    );

    // Without --work-dir: the folder it makes in TMPDIR is removed when both boots passed.
    const temp = join(work, 'tmp-metal');
    await mkdir(temp);
    const metal = await runCli(['boot', ref, '--variant', 'metal', '--accel', 'tcg'], { TMPDIR: temp });
    expect(metal.code).toBe(0);
    expect(metal.stdout).toMatch(/uki\s+amd64\s+tcg\s+passed/);
    expect(metal.stdout).toMatch(/pxe\s+amd64\s+tcg\s+passed/);
    expect(await readdir(temp)).toEqual([]);
  });

  it('an index entry that does not exist is one clear error that lists what the index has', async () => {
    const temp = join(work, 'tmp-unknown-entry');
    await mkdir(temp);
    const run = await runCli(
      ['boot', `oci:${layout}/gardenlinux/gardener:${tag}`, '--arch', 'arm64', '--variant', 'metal'],
      { TMPDIR: temp },
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/has no image for arm64\/metal; it has amd64\/virtualization, amd64\/metal/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    // The work folder it made for itself is gone with nothing booted.
    expect(await readdir(temp)).toEqual([]);
  });

  it('inspect of a combined index says which tag architecture-only consumers must use', async () => {
    const run = await cli(['inspect', `oci:${layout}/gardenlinux/gardener:${tag}`]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('note: more than one variant for amd64');
    expect(run.stdout).toContain('point them at the <version>-<variant> tag');
    const single = await cli([
      'inspect',
      `oci:${layout}/gardenlinux/gardener:${tag.replace('-manual', '-kvm-manual')}`,
    ]);
    expect(single.code).toBe(0);
    expect(single.stdout).toMatch(/index sha256:[0-9a-f]{64} \(1 entries\)/);
    expect(single.stdout).not.toContain('note:');
  });

  it('--help shows an example; bad options are usage errors', async () => {
    const help = await cli(['boot', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('ironcore-publish boot ghcr.io/');
    const bad = await cli(['boot', `oci:${layout}/gardenlinux:${tag}`, '--path', 'floppy']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--path "floppy" must be uki, pxe or disk');
  });
});

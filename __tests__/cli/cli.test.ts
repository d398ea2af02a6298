// The CLI: manual builds from asset files (-manual-<8 hex> tags), inspect, and its errors.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SAMPLE_VERSION as VERSION,
  startSampleEnvironment,
  type SampleEnvironment,
} from '../helpers/sample-env';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { runCli, type CliRun } from '../helpers/cli';

let world: SampleEnvironment;
let out: string;

beforeAll(async () => {
  world = await startSampleEnvironment();
  out = await mkdtemp(join(world.work, 'cli-'));
});
afterAll(async () => {
  await world?.stop();
});

function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runCli(args, env);
}

const asset = (prefix: string): string =>
  world.release.assets.find((a) => a.name.startsWith(prefix) && !a.companion)!.path;

describe('ironcore-publish CLI', () => {
  it('builds from downloaded asset files with a -manual-<8 hex> suffix, into an OCI layout', async () => {
    const layout = join(out, 'manual');
    const args = ['publish', '--registry', '', '--oci-layout', layout, '--uki-builder', 'native'];
    const files = ['--from-file', asset('baremetal_pxe-amd64'), '--from-file', asset('baremetal_pxe-arm64')];
    const run = await cli([...args, ...files]);
    expect(run.stderr).not.toMatch(/error:/);
    expect(run.code).toBe(0);
    const suffix = /2150\.1\.0-metal-amd64(-manual-[0-9a-f]{8})/.exec(run.stdout)?.[1];
    expect(suffix).toBeDefined();
    for (const tag of [
      `${VERSION}-metal-amd64${suffix}`,
      `${VERSION}-metal${suffix}`,
      `${VERSION}${suffix}`,
    ]) {
      const { bytes } = await skopeoInspectRaw(`oci:${join(layout, 'gardenlinux')}:${tag}`);
      expect(bytes.length).toBeGreaterThan(0);
    }
    // The same files give the same suffix: a rebuild is a no-op.
    const again = await cli([...args, ...files]);
    expect(again.stdout).toContain('nothing pushed (already-published)');
    expect(again.stdout).toContain(suffix);

    const inspect = await cli(['inspect', `oci:${join(layout, 'gardenlinux')}:${VERSION}-metal${suffix}`]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/index sha256:[0-9a-f]{64} \(2 entries\)/);
    expect(inspect.stdout).toContain('command line: initrd=initrd gl.ovl=/:tmpfs');
    expect(inspect.stdout).toMatch(/uki +[0-9.]+ KiB +sha256:/);
  });

  it('publishes a release to a registry and inspects it there', async () => {
    const run = await cli(
      [
        'publish',
        '--registry',
        world.registry.host,
        '--namespace',
        'CLI-Owner',
        '--select-flavors',
        'kvm-gardener_prod',
        '--architectures',
        'arm64',
      ],
      { GITHUB_API_URL: world.github.apiUrl },
    );
    expect(run.stderr).not.toMatch(/error:/);
    expect(run.code).toBe(0);
    const inspect = await cli([
      'inspect',
      `${world.registry.host}/cli-owner/gardenlinux/gardener:${VERSION}-kvm`,
    ]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/manifest sha256:[0-9a-f]{64} variant=virtualization arch=arm64/);
    expect(inspect.stdout).toContain('console=ttyAMA0,115200');
  });

  it.each([
    [['publish', '--bogus'], /Unknown option '--bogus'/],
    [
      [
        'publish',
        '--registry',
        '',
        '--oci-layout',
        '/tmp/x',
        '--from-file',
        '/nonexistent/baremetal_pxe-amd64-2150.1.0-0badcafe.tar.xz',
      ],
      /no such file/,
    ],
    [
      ['publish', '--registry', '', '--oci-layout', '/tmp/x', '--from-file', '/tmp/whatever.tar.xz'],
      /not a Garden Linux asset name/,
    ],
    [
      ['publish', '--registry', 'https://ghcr.io/x', '--version', '2150.1.0'],
      /invalid registry "https:\/\/ghcr.io\/x"/,
    ],
    [['inspect'], /inspect takes one reference/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ])('fails clearly on %j', async (args, message) => {
    const run = await cli(args);
    // 2 for a wrong command line, 1 for a command that failed.
    const usage = args[0] === 'inspect' || args[0] === 'frobnicate' || args.includes('--bogus');
    expect(run.code).toBe(usage ? 2 : 1);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('reads flavors from a YAML file', async () => {
    const file = join(out, 'flavors.yaml');
    await writeFile(file, '- {image: custom/kvm, variant: kvm, asset: kvm-gardener_prod}\n');
    const layout = join(out, 'flavors');
    const run = await cli(
      ['publish', '--registry', '', '--oci-layout', layout, '--flavors', file, '--version', VERSION],
      {
        GITHUB_API_URL: world.github.apiUrl,
      },
    );
    expect(run.code).toBe(0);
    expect(
      (await skopeoInspectRaw(`oci:${join(layout, 'custom/kvm')}:${VERSION}`)).bytes.length,
    ).toBeGreaterThan(0);
    await rm(layout, { recursive: true, force: true });
  });
});

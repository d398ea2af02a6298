// One model, not two: the Garden Linux pipeline writes into the toolkit's local store (`publish --store-path`),
// and `build` of the very same files (the layers as stored, the same command line and annotations) gives
// arch manifests with the same digests. `push` then sends what the pipeline wrote.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease, type SampleRelease } from '../../src/sample/release';
import { referrersTagFor } from '../../src/oci/referrers';
import { hashFile } from '../../src/util/files';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { runCli, type CliRun } from '../helpers/cli';

let work: string;
let store: string;
let registry: RunningRegistry;

function cli(args: string[]): Promise<CliRun> {
  return runCli(args, { HOME: work });
}

interface StoredManifest {
  digest: string;
  manifest: {
    config: { digest: string };
    layers: { mediaType: string; digest: string }[];
    annotations: Record<string, string>;
  };
}

async function stored(reference: string): Promise<StoredManifest> {
  const index = JSON.parse(await readFile(join(store, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations: Record<string, string> }[];
  };
  const entry = index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === reference);
  if (!entry) throw new Error(`${reference} is not in the store`);
  const blob = (d: string) => join(store, 'blobs', 'sha256', d.slice(7));
  return {
    digest: entry.digest,
    manifest: JSON.parse(await readFile(blob(entry.digest), 'utf8')) as StoredManifest['manifest'],
  };
}

let refs: string[];
let release: SampleRelease;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'one-model-'));
  store = join(work, 'store');
  registry = await startRegistry();
  release = await generateSampleRelease({
    dir: join(work, 'assets'),
    version: '2150.1.0',
    commit8: '0ce0dea1',
    flavors: [
      { asset: 'baremetal_pxe', kind: 'metal' },
      { asset: 'kvm-gardener_prod', kind: 'kvm' },
    ],
    arches: ['amd64'],
    layout: 'flat',
    stubs: { amd64: createSamplePeStub('amd64') },
  });
  const run = await cli([
    'publish',
    '--registry',
    '',
    '--store-path',
    store,
    '--store-registry',
    registry.host,
    '--namespace',
    'test',
    '--uki-builder',
    'native',
    ...release.assets.filter((a) => !a.companion).flatMap((a) => ['--from-file', a.path]),
  ]);
  expect(run.stderr).not.toContain('error:');
  expect(run.code).toBe(0);
  refs = [...run.stdout.matchAll(/^(\S+:2150\.1\.0\S*)\s+sha256:/gm)].map((m) => m[1]!);
}, 300_000);
afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('the pipeline and build share one model', () => {
  it.each([
    ['gardenlinux', 'metal'],
    ['gardenlinux/gardener', 'kvm'],
  ])('%s %s: build of the stored layers gives the pipeline arch manifest digest', async (image, variant) => {
    const ref = refs.find(
      (r) => r.startsWith(`${registry.host}/test/${image}:`) && r.includes(`-${variant}-amd64`),
    );
    expect(ref, refs.join('\n')).toBeDefined();
    const { digest, manifest } = await stored(ref!);
    const roles: Record<string, string> = {};
    for (const layer of manifest.layers)
      roles[layer.mediaType.split('.').pop()!] = join(store, 'blobs', 'sha256', layer.digest.slice(7));
    const config = JSON.parse(
      await readFile(join(store, 'blobs', 'sha256', manifest.config.digest.slice(7)), 'utf8'),
    ) as {
      commandLine?: string;
    };
    const cmdline = join(work, `cmdline-${variant}`);
    await writeFile(cmdline, config.commandLine ?? '');
    const parts = ['arch=amd64', ...Object.entries(roles).map(([role, path]) => `${role}=${path}`)];
    if (config.commandLine) parts.push(`cmdline=${cmdline}`);
    const annotations = Object.entries(manifest.annotations)
      .filter(([k]) => k !== 'variant' && k !== 'architecture')
      .flatMap(([k, v]) => ['--annotation', `${k}=${v}`]);
    const built = await cli([
      'build',
      '--tag',
      `${registry.host}/test/copy-${variant}:1`,
      '--config',
      parts.join(','),
      '--variant',
      variant,
      ...annotations,
      '--store-path',
      join(work, `build-store-${variant}`),
    ]);
    expect(built.stderr).toBe('');
    expect(built.stdout).toContain(`built ${registry.host}/test/copy-${variant}:1-amd64 ${digest}`);
  });

  it('push sends what the pipeline wrote into the store', async () => {
    const index = refs.find(
      (r) =>
        r.startsWith(`${registry.host}/test/gardenlinux:`) && /:2150\.1\.0-metal-manual-[0-9a-f]{8}$/.test(r),
    );
    expect(index).toBeDefined();
    const pushed = await cli(['push', index!, '--push-sub-manifests', '--store-path', store]);
    expect(pushed.stderr).not.toContain('error');
    expect(pushed.code).toBe(0);
    expect((await skopeoInspectRaw(`docker://${index}`)).digest).toBe((await stored(index!)).digest);
  });

  it('push carries the attachments the pipeline stored; pull --attachments and inspect read them back', async () => {
    const archive = release.assets.find((a) => a.base.startsWith('kvm-gardener_prod-amd64'))!;
    const ref = refs.find(
      (r) => r.startsWith(`${registry.host}/test/gardenlinux/gardener:`) && r.includes('-kvm-amd64'),
    )!;
    const pushed = await cli(['push', ref, '--store-path', store]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toMatch(/pushed 3 attachment\(s\) of sha256:[0-9a-f]{64} \(fallback-tag\)/);
    const { digest } = await stored(ref);
    const fallback = JSON.parse(
      (
        await skopeoInspectRaw(
          `docker://${registry.host}/test/gardenlinux/gardener:${referrersTagFor(digest)}`,
        )
      ).bytes.toString(),
    ) as { manifests: { artifactType: string }[] };
    expect(fallback.manifests.map((m) => m.artifactType).sort()).toEqual([
      'application/io.gardenlinux.manifest',
      'application/io.gardenlinux.release',
      'application/vnd.cyclonedx+json',
    ]);

    const inspect = await cli(['inspect', ref, '--store-path', join(work, 'empty-store')]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.stdout).toContain('referrers (3):');
    expect(inspect.stdout).toMatch(
      new RegExp(`application/vnd\\.cyclonedx\\+json +[0-9.]+ (B|KiB)  ${archive.base}\\.sbom  sha256:`),
    );
    expect(inspect.stdout).toContain(`${archive.base}.release`);

    const out = join(work, 'pulled-attachments');
    const pulled = await cli([
      'pull',
      ref,
      '--attachments',
      '--output',
      out,
      '--store-path',
      join(work, 'pull-store'),
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stdout.match(/^attachment /gm)).toHaveLength(3);
    for (const file of ['release', 'manifest', 'sbom'] as const) {
      const got = await hashFile(join(out, `${archive.base}.${file}`));
      expect(got.digest, file).toBe(archive.expected![file]!.digest);
    }
    // The pulled store keeps them as referrers too: inspect reads them from there.
    const local = await cli(['inspect', ref, '--store-path', join(work, 'pull-store')]);
    expect(local.stdout).toContain('referrers (3):');
  });
});

// Reading images back: legacy media types (ironcore v1alpha1, onmetal) are understood, an unknown layer type is
// an error naming it, and an index is narrowed by architecture and variant.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesBlob } from '../../src/oci/blob';
import { buildIndex } from '../../src/oci/ironcore';
import { openLayout } from '../../src/oci/layout/store';
import { OCI_MANIFEST } from '../../src/oci/mediatypes';
import { layersByRole, selectImage } from '../../src/oci/pull';
import { serializeManifest } from '../../src/oci/types';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pull-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function legacyImage(layerTypes: string[], configType: string, tag: string) {
  const repo = openLayout(join(dir, tag));
  const config = bytesBlob(new TextEncoder().encode('{"commandLine":"root=/dev/vda"}'));
  await repo.pushBlob(config);
  const layers = [];
  for (const [i, mediaType] of layerTypes.entries()) {
    const blob = bytesBlob(new TextEncoder().encode(`layer ${i}`));
    await repo.pushBlob(blob);
    layers.push({ mediaType, digest: blob.digest, size: blob.size });
  }
  const manifest = serializeManifest({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: configType, digest: config.digest, size: config.size },
    layers,
  });
  await repo.pushManifest(manifest, [tag]);
  return { repo, manifest };
}

describe('selectImage and layersByRole', () => {
  it.each([
    ['application/vnd.ironcore.image.config.v1alpha1+json', 'ironcore'],
    ['application/vnd.onmetal.image.config.v1alpha1+json', 'onmetal'],
  ])('reads the legacy %s layers', async (configType, prefix) => {
    const { repo } = await legacyImage(
      [
        `application/vnd.${prefix}.image.rootfs.v1alpha1.rootfs`,
        `application/vnd.${prefix}.image.initramfs.v1alpha1.initramfs`,
        `application/vnd.${prefix}.image.vmlinuz.v1alpha1.vmlinuz`,
      ],
      configType,
      prefix,
    );
    const image = await selectImage(repo, prefix, {});
    expect(image.commandLine).toBe('root=/dev/vda');
    expect([...layersByRole(image).keys()]).toEqual(['rootfs', 'initramfs', 'kernel']);
  });

  it('an unknown layer type is an error that names it', async () => {
    const { repo } = await legacyImage(
      ['application/vnd.ironcore.image.kernel', 'application/vnd.example.firmware.blob'],
      'application/vnd.ironcore.image.config.v1+json',
      'unknown',
    );
    const image = await selectImage(repo, 'unknown', {});
    expect(() => layersByRole(image)).toThrow(/unknown media type application\/vnd\.example\.firmware\.blob/);
  });

  it('an index is narrowed by arch and variant; two matches ask for both', async () => {
    const a = await legacyImage(
      ['application/vnd.ironcore.image.kernel'],
      'application/vnd.ironcore.image.config.v1+json',
      'multi',
    );
    const index = buildIndex([
      { manifest: a.manifest, architecture: 'amd64', annotations: { variant: 'metal' } },
      { manifest: a.manifest, architecture: 'amd64', annotations: { variant: 'virtualization' } },
    ]);
    await a.repo.pushManifest(index, ['both']);
    await expect(selectImage(a.repo, 'both', { architecture: 'amd64' })).rejects.toThrow(
      /has 2 images matching; choose one with --arch and --variant \(it has amd64\/metal, amd64\/virtualization\)/,
    );
    expect((await selectImage(a.repo, 'both', { architecture: 'amd64', variant: 'kvm' })).digest).toBe(
      a.manifest.digest,
    );
  });
});

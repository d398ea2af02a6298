// A multi-arch IronCore image generated on disk for the registry tests: two arch manifests over layers
// of a few MB (random, so incompressible), a kernel layer shared by both arches, and an index.
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Blob } from '../../../src/oci/blob';
import { bytesBlob, fileBlob } from '../../../src/oci/blob';
import { IRONCORE_CONFIG, IRONCORE_LAYER, OCI_INDEX, OCI_MANIFEST } from '../../../src/oci/mediatypes';
import type { Descriptor, SerializedManifest } from '../../../src/oci/types';
import { serializeManifest } from '../../../src/oci/types';

export interface TestImage {
  dir: string;
  /** Every distinct blob (configs and layers). */
  blobs: Blob[];
  arches: { arch: string; manifest: SerializedManifest; blobs: Blob[] }[];
  index: SerializedManifest;
  cleanup(): Promise<void>;
}

export async function writeRandomBlob(dir: string, name: string, size: number): Promise<Blob> {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return fileBlob(path, `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size, name);
}

const descriptor = (blob: Blob, mediaType: string, title?: string): Descriptor => ({
  mediaType,
  digest: blob.digest,
  size: blob.size,
  ...(title ? { annotations: { 'org.opencontainers.image.title': title } } : {}),
});

/** `layerSize` bytes per layer; the kernel layer is the same blob in both arches. */
export async function makeTestImage(layerSize = 3 * 1024 * 1024): Promise<TestImage> {
  const dir = await mkdtemp(join(tmpdir(), 'registry-image-'));
  const kernel = await writeRandomBlob(dir, 'vmlinuz', layerSize);
  const all = new Map<string, Blob>([[kernel.digest, kernel]]);
  const arches: TestImage['arches'] = [];
  for (const arch of ['amd64', 'arm64']) {
    const config = bytesBlob(
      new TextEncoder().encode(
        JSON.stringify({ commandLine: `console=${arch === 'amd64' ? 'ttyS0' : 'ttyAMA0'} gl.live=1` }),
      ),
      `config-${arch}`,
    );
    const squashfs = await writeRandomBlob(dir, `root-${arch}.squashfs`, layerSize + 1234);
    const initrd = await writeRandomBlob(dir, `initrd-${arch}`, Math.floor(layerSize / 2) + 7);
    const layers = [
      descriptor(squashfs, IRONCORE_LAYER.squashfs, 'root.squashfs'),
      descriptor(initrd, IRONCORE_LAYER.initramfs, 'initrd'),
      descriptor(kernel, IRONCORE_LAYER.kernel, 'vmlinuz'),
    ];
    const manifest = serializeManifest({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor(config, IRONCORE_CONFIG),
      layers,
      annotations: { variant: 'metal', architecture: arch },
    });
    const blobs = [config, squashfs, initrd, kernel];
    for (const b of blobs) all.set(b.digest, b);
    arches.push({ arch, manifest, blobs });
  }
  const index = serializeManifest({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: arches.map((a) => ({
      mediaType: OCI_MANIFEST,
      digest: a.manifest.digest,
      size: a.manifest.size,
      platform: { architecture: a.arch, os: 'linux' },
    })),
  });
  return {
    dir,
    blobs: [...all.values()],
    arches,
    index,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export const FAST_RETRY = { attempts: 4, baseDelayMs: 5, maxDelayMs: 40 };

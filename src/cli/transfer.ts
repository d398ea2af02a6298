// The remote half of the toolkit: `push` (local store -> registry, children before the index), `pull` (registry
// -> local store, one image chosen by arch and variant, and with --output its layers as named files) and `url`
// (where a layer is fetched from, with the headers that fetch it). Transfers go through the registry client the
// publisher uses (HEAD-skip, retries, docker credentials); every byte pulled is checked against its digest.
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { fileBlob, type Blob } from '../oci/blob';
import type { LayoutRepository } from '../oci/layout/store';
import { isIndexMediaType, type LayerRole } from '../oci/mediatypes';
import { layersByRole, pullLayers, selectImage } from '../oci/pull';
import { formatReference } from '../oci/reference';
import type { Repository } from '../oci/store';
import type { ImageIndex, ImageManifest, SerializedManifest } from '../oci/types';
import { printable, PublishError, UsageError } from '../util/errors';
import { writeFileAtomic } from '../util/files';
import { openLocalStore, openRegistry } from './images';
import { taggedReference } from './toolkit';

export const TRANSFER_USAGE = `Usage:
  ironcore-publish push REF [--push-sub-manifests=false]
                                                        the local image to its registry: children first,
                                                        each also tagged <tag>-<arch> unless =false
  ironcore-publish pull REF [--arch A] [--variant V] [--output DIR]
                                                        into the local store; --output: the layers as files
  ironcore-publish url --layer L REF [--arch A] [--variant V]
                                                        the URL and headers that fetch layer L (JSON)
Common: --store-path DIR (default ~/.ironcore), --docker-config-path FILE (docker's config.json, or its folder),
        --insecure-registry (plain HTTP to a non-loopback registry); the password of --username from
        $REGISTRY_PASSWORD, else docker's credentials.
Layers: kernel, initramfs, rootfs, squashfs, uki, iso. --output names them vmlinuz, initramfs, rootfs.raw,
        root.squashfs, uki.efi, image.iso, and writes the command line to cmdline.

Examples:
  ironcore-publish push ghcr.io/my-org/my-os:1.0
  ironcore-publish pull ghcr.io/ironcore-dev/gardenlinux:2150.1.0 --arch arm64 --variant metal --output boot/
  curl -fL $(ironcore-publish url --layer kernel ghcr.io/my-org/my-os:1.0-amd64 | jq -r .url) -o vmlinuz
`;

/** File names of pulled layers (what boot-operator and the Go tool's users call them). */
export const OUTPUT_NAMES: Record<LayerRole, string> = {
  kernel: 'vmlinuz',
  initramfs: 'initramfs',
  rootfs: 'rootfs.raw',
  squashfs: 'root.squashfs',
  uki: 'uki.efi',
  iso: 'image.iso',
  disk: 'disk.img',
};

const COMMON = {
  'store-path': { type: 'string' },
  'docker-config-path': { type: 'string' },
  username: { type: 'string' },
  'insecure-registry': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function parseManifest<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  } catch {
    throw new PublishError(`${what} is not valid JSON`);
  }
}

export async function pushCommand(args: string[], signal: AbortSignal): Promise<number> {
  // As ironcore-image (since 2026-04): sub-manifests are tagged by default; `--push-sub-manifests=false` turns
  // it off, a spelling parseArgs has no boolean for.
  let subManifests = true;
  const rest = args.filter((a) => {
    const m = /^--push-sub-manifests(?:=(true|false))?$/.exec(a);
    if (m) subManifests = m[1] !== 'false';
    return !m;
  });
  const { positionals, values } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: COMMON,
  });
  if (values.help) {
    process.stdout.write(TRANSFER_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('push takes one reference');
  const ref = taggedReference(positionals[0]!, 'REF');
  const local = await openLocalStore(values['store-path']);
  const source = local.repository(ref);
  const top = await source.getManifest(ref.tag!);
  if (!top) throw new PublishError(`${formatReference(ref)} is not in the store ${local.root}`);
  const registry = openRegistry(ref, values, signal);
  try {
    const target = registry.repository(ref.repository);
    const pushImage = async (manifest: SerializedManifest, tags: string[]): Promise<void> => {
      const parsed = parseManifest<ImageManifest>(manifest.bytes, manifest.digest);
      for (const d of [parsed.config, ...parsed.layers]) {
        const outcome = await target.pushBlob(fileBlob(source.blobFile(d.digest), d.digest, d.size), {
          signal,
        });
        if (outcome === 'uploaded') process.stderr.write(`uploaded ${d.digest} (${d.size} bytes)\n`);
      }
      await target.pushManifest(manifest, tags, signal);
    };
    const serialized = (m: { mediaType: string; digest: string; bytes: Uint8Array }): SerializedManifest => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.bytes.length,
      bytes: m.bytes,
    });
    if (isIndexMediaType(top.mediaType)) {
      const index = parseManifest<ImageIndex>(top.bytes, formatReference(ref));
      for (const entry of index.manifests) {
        const child = await source.getManifest(entry.digest);
        if (!child)
          throw new PublishError(`${formatReference(ref)}: ${entry.digest} is listed but not in the store`);
        const arch = entry.platform?.architecture;
        if (subManifests && !arch)
          throw new PublishError(
            `${formatReference(ref)}: index entry ${entry.digest} has no platform to tag it by`,
          );
        const tags = subManifests ? [`${ref.tag}-${arch}`] : [];
        await pushImage(serialized({ ...child, mediaType: entry.mediaType }), tags);
        process.stdout.write(
          `pushed ${tags.length ? `${ref.registry}/${ref.repository}:${tags[0]}` : 'child'} ${entry.digest}\n`,
        );
      }
      await target.pushManifest(serialized(top), [ref.tag!], signal);
    } else {
      await pushImage(serialized(top), [ref.tag!]);
    }
    process.stdout.write(`pushed ${formatReference(ref)} ${top.digest}\n`);
    return 0;
  } finally {
    await registry.close();
  }
}

/** A remote blob as a Blob: opened on demand, checked by the store that writes it. */
function remoteBlob(repo: Repository, digest: string, size: number, signal: AbortSignal): Blob {
  return {
    digest,
    size,
    label: digest,
    open: () =>
      Readable.from(
        (async function* () {
          yield* await repo.openBlob(digest, signal);
        })(),
      ),
  };
}

/** The selection flags as selectImage takes them. */
function selection(values: { arch?: string; variant?: string }): { architecture?: string; variant?: string } {
  return {
    ...(values.arch ? { architecture: values.arch } : {}),
    ...(values.variant ? { variant: values.variant } : {}),
  };
}

export async function pullCommand(args: string[], signal: AbortSignal): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { ...COMMON, arch: { type: 'string' }, variant: { type: 'string' }, output: { type: 'string' } },
  });
  if (values.help) {
    process.stdout.write(TRANSFER_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('pull takes one reference');
  const ref = taggedReference(positionals[0]!, 'REF');
  const local = await openLocalStore(values['store-path']);
  const registry = openRegistry(ref, values, signal);
  try {
    const remote = registry.repository(ref.repository);
    const image = await selectImage(remote, ref.tag!, selection(values), signal);
    const target: LayoutRepository = local.repository(ref);
    const roles = layersByRole(image); // an unknown layer type is an error before anything is written
    for (const d of [image.manifest.config, ...image.manifest.layers])
      await target.pushBlob(remoteBlob(remote, d.digest, d.size, signal), { signal });
    const bytes = (await remote.getManifest(image.digest, signal))!.bytes;
    await target.pushManifest(
      {
        mediaType: image.manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
        digest: image.digest,
        size: bytes.length,
        bytes,
      },
      [ref.tag!],
    );
    process.stdout.write(
      `pulled ${formatReference(ref)} ${image.digest} (${image.architecture}${image.variant ? `/${image.variant}` : ''})\n`,
    );
    if (values.output) {
      const out = resolve(values.output);
      // From the store, each checked again against its digest while written, then renamed into place.
      const files = await pullLayers(target, image, [...roles.keys()], out, signal, OUTPUT_NAMES);
      for (const [role, path] of Object.entries(files) as [LayerRole, string][])
        process.stdout.write(`${path} ${roles.get(role)!.digest}\n`);
      if (image.commandLine !== undefined) {
        await writeFileAtomic(join(out, 'cmdline'), [Buffer.from(image.commandLine)]);
        process.stdout.write(`${join(out, 'cmdline')}\n`);
      }
    }
    return 0;
  } finally {
    await registry.close();
  }
}

export async function urlCommand(args: string[], signal: AbortSignal): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { ...COMMON, layer: { type: 'string' }, arch: { type: 'string' }, variant: { type: 'string' } },
  });
  if (values.help) {
    process.stdout.write(TRANSFER_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('url takes one reference');
  const layer = values.layer as LayerRole | undefined;
  const known: LayerRole[] = ['kernel', 'initramfs', 'rootfs', 'squashfs', 'uki', 'iso'];
  if (!layer || !known.includes(layer))
    throw new UsageError(`--layer "${printable(values.layer ?? '')}" must be one of ${known.join(', ')}`);
  const ref = taggedReference(positionals[0]!, 'REF');
  const registry = openRegistry(ref, values, signal);
  try {
    const remote = registry.repository(ref.repository);
    const image = await selectImage(remote, ref.tag!, selection(values), signal);
    const descriptor = layersByRole(image).get(layer);
    if (!descriptor)
      throw new PublishError(
        `${formatReference(ref)} (${image.digest}) has no ${layer} layer; it has ${[...layersByRole(image).keys()].join(', ')}`,
      );
    const access = await registry.blobAccess(ref.repository, descriptor.digest, signal);
    process.stdout.write(`${JSON.stringify({ headers: access.headers, url: access.url })}\n`);
    return 0;
  } finally {
    await registry.close();
  }
}

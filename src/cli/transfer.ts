// The remote half of the toolkit: `push` (local store -> registry, children before the index), `pull` (registry
// -> local store, one image chosen by arch and variant, and with --output its layers as named files) and `url`
// (where a layer is fetched from, with the headers that fetch it). Transfers go through the registry client the
// publisher uses (HEAD-skip, retries, docker credentials); every byte pulled is checked against its digest.
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { fileBlob, type Blob } from '../oci/blob';
import type { LayoutRepository } from '../oci/layout/store';
import { isIndexMediaType, OCI_MANIFEST, type LayerRole } from '../oci/mediatypes';
import { layersByRole, pullLayers, selectImage } from '../oci/pull';
import { formatReference } from '../oci/reference';
import { serializedOf, type Repository } from '../oci/store';
import {
  descriptorOf,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type SerializedManifest,
} from '../oci/types';
import { printable, PublishError, UsageError } from '../util/errors';
import { writeFileAtomic } from '../util/files';
import { openLocalStore, openRegistry } from './images';
import { taggedReference } from './toolkit';

export const TRANSFER_USAGE = `Usage:
  ironcore-publish push REF [--push-sub-manifests=false]
                                                        the local image to its registry: children first,
                                                        each also tagged <tag>-<arch> unless =false
  ironcore-publish pull REF [--arch A] [--variant V] [--output DIR] [--attachments]
                                                        into the local store; --output: the layers as files;
                                                        --attachments: also its referrers (SBOM, os-release...),
                                                        with --output each as the file its title names
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
  ironcore-publish pull ghcr.io/ironcore-dev/gardenlinux:2150.1.0-metal-amd64 --attachments --output sbom/
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
    const pushBlobs = async (manifest: SerializedManifest): Promise<void> => {
      const parsed = parseManifest<ImageManifest>(manifest.bytes, manifest.digest);
      for (const d of [parsed.config, ...parsed.layers]) {
        const outcome = await target.pushBlob(fileBlob(source.blobFile(d.digest), d.digest, d.size), {
          signal,
        });
        if (outcome === 'uploaded') process.stderr.write(`uploaded ${d.digest} (${d.size} bytes)\n`);
      }
    };
    const pushImage = async (manifest: SerializedManifest, tags: string[]): Promise<void> => {
      await pushBlobs(manifest);
      await target.pushManifest(manifest, [], signal);
      // Its attachments (publish --store-path, pull --attachments) go up after it and before its tags.
      const referrers: SerializedManifest[] = [];
      for (const r of await source.listReferrers(manifest.digest)) {
        const artifact = await source.getManifest(r.digest);
        if (!artifact) continue;
        const bytes = serializedOf(artifact);
        await pushBlobs(bytes);
        referrers.push(bytes);
      }
      if (referrers.length > 0) {
        const mode = await target.pushReferrers(descriptorOf(manifest), referrers, signal);
        process.stdout.write(`pushed ${referrers.length} attachment(s) of ${manifest.digest} (${mode})\n`);
      }
      if (tags.length > 0) await target.pushManifest(manifest, tags, signal);
    };
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
        await pushImage(serializedOf({ ...child, mediaType: entry.mediaType }), tags);
        process.stdout.write(
          `pushed ${tags.length ? `${ref.registry}/${ref.repository}:${tags[0]}` : 'child'} ${entry.digest}\n`,
        );
      }
      await target.pushManifest(serializedOf(top), [ref.tag!], signal);
    } else {
      await pushImage(serializedOf(top), [ref.tag!]);
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
    options: {
      ...COMMON,
      arch: { type: 'string' },
      variant: { type: 'string' },
      output: { type: 'string' },
      attachments: { type: 'boolean', default: false },
    },
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
    if (values.attachments) {
      const subject = {
        mediaType: image.manifest.mediaType ?? OCI_MANIFEST,
        digest: image.digest,
        size: bytes.length,
      };
      const pulled = await pullReferrers(remote, target, subject, signal);
      if (pulled.length === 0) process.stdout.write(`${image.digest} has no attachments\n`);
      for (const a of pulled) {
        let where = '';
        if (values.output) {
          const path = join(resolve(values.output), a.fileName);
          await writeFileAtomic(path, await target.openBlob(a.layer.digest), {
            expectedDigest: a.layer.digest,
            signal,
          });
          where = ` ${path}`;
        }
        process.stdout.write(`attachment ${a.artifactType} ${a.digest}${where}\n`);
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

interface PulledReferrer {
  digest: string;
  artifactType: string;
  /** The file it carries (its first layer). */
  layer: Descriptor;
  /** Where --output writes it: the layer's title when that is a plain file name, else its digest. */
  fileName: string;
}

/** Copies the referrers of `subject` (their manifests and blobs, each checked) into the local store. */
async function pullReferrers(
  remote: Repository,
  target: LayoutRepository,
  subject: Descriptor,
  signal: AbortSignal,
): Promise<PulledReferrer[]> {
  const pulled: PulledReferrer[] = [];
  const manifests: SerializedManifest[] = [];
  for (const referrer of await remote.listReferrers(subject.digest, signal)) {
    const fetched = await remote.getManifest(referrer.digest, signal);
    if (!fetched)
      throw new PublishError(`${remote.location}@${referrer.digest} is listed as a referrer but missing`);
    const manifest = parseManifest<ImageManifest>(fetched.bytes, referrer.digest);
    for (const d of [manifest.config, ...manifest.layers])
      await target.pushBlob(remoteBlob(remote, d.digest, d.size, signal), { signal });
    manifests.push(serializedOf(fetched));
    const layer = manifest.layers[0];
    if (!layer) continue;
    const title = layer.annotations?.['org.opencontainers.image.title'] ?? '';
    // A title is the publisher's word: only a plain file name is used as one (never a path out of --output).
    const safe = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$/.test(title) ? title : layer.digest.replace(':', '-');
    pulled.push({
      digest: referrer.digest,
      artifactType: manifest.artifactType ?? referrer.artifactType ?? manifest.config.mediaType,
      layer,
      fileName: safe,
    });
  }
  if (manifests.length > 0) await target.pushReferrers(subject, manifests);
  return pulled;
}

// Reading an IronCore image back: choose the arch manifest of a tag (in an index, by architecture and
// variant, which the Go tool cannot: it refuses any index with more than one entry), and fetch its layers
// into files, each hashed while written and checked against its digest before it gets its name.
import { join } from 'node:path';
import { PublishError } from '../util/errors';
import { DigestMismatchError, writeFileAtomic } from '../util/files';
import type { IronCoreVariant } from './ironcore';
import { isIndexMediaType, isIronCoreConfig, layerRoleOf, type LayerRole } from './mediatypes';
import type { Repository } from './store';
import type { ImageIndex, ImageManifest } from './types';

export interface Selection {
  architecture?: string;
  /** `metal` or `virtualization` (`kvm` is accepted for the latter). */
  variant?: string;
}

export interface SelectedImage {
  digest: string;
  manifest: ImageManifest;
  architecture: string;
  variant: IronCoreVariant | undefined;
  commandLine: string | undefined;
  /** Annotations of the manifest, then of the index it was chosen from. */
  annotations: Record<string, string>;
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  } catch {
    throw new PublishError(`${what} is not valid JSON`);
  }
}

export function normalizeVariant(variant: string | undefined): string | undefined {
  return variant === 'kvm' ? 'virtualization' : variant;
}

/** The one arch manifest `tagOrDigest` names, or the one entry of its index that matches `selection`. */
export async function selectImage(
  repo: Repository,
  tagOrDigest: string,
  selection: Selection,
  signal?: AbortSignal,
): Promise<SelectedImage> {
  const top = await repo.getManifest(tagOrDigest, signal);
  if (!top) throw new PublishError(`${repo.location}:${tagOrDigest} does not exist`);
  let digest = top.digest;
  let bytes = top.bytes;
  let indexAnnotations: Record<string, string> = {};
  const variant = normalizeVariant(selection.variant);
  if (isIndexMediaType(top.mediaType)) {
    const index = parseJson<ImageIndex>(top.bytes, `${repo.location}:${tagOrDigest}`);
    indexAnnotations = index.annotations ?? {};
    const matches = index.manifests.filter(
      (m) =>
        (!selection.architecture || m.platform?.architecture === selection.architecture) &&
        (!variant || m.annotations?.variant === variant),
    );
    const offered = index.manifests
      .map((m) => `${m.platform?.architecture ?? '?'}/${m.annotations?.variant ?? '?'}`)
      .join(', ');
    if (matches.length === 0) {
      throw new PublishError(
        `${repo.location}:${tagOrDigest} has no image for ${selection.architecture ?? 'any arch'}${variant ? `/${variant}` : ''}; it has ${offered}`,
      );
    }
    if (matches.length > 1) {
      throw new PublishError(
        `${repo.location}:${tagOrDigest} has ${matches.length} images matching; choose one with --arch and --variant (it has ${offered})`,
      );
    }
    const child = await repo.getManifest(matches[0]!.digest, signal);
    if (!child) throw new PublishError(`${repo.location}@${matches[0]!.digest} is listed but missing`);
    digest = child.digest;
    bytes = child.bytes;
  }
  const manifest = parseJson<ImageManifest>(bytes, `${repo.location}@${digest}`);
  if (!isIronCoreConfig(manifest.config.mediaType)) {
    throw new PublishError(
      `${repo.location}@${digest} is not an IronCore image (config ${manifest.config.mediaType})`,
    );
  }
  const config = parseJson<{ commandLine?: string }>(
    await repo.readBlob(manifest.config.digest, signal),
    'config',
  );
  const annotations = { ...indexAnnotations, ...manifest.annotations };
  return {
    digest,
    manifest,
    architecture: manifest.annotations?.architecture ?? selection.architecture ?? '',
    variant: manifest.annotations?.variant as IronCoreVariant | undefined,
    commandLine: config.commandLine,
    annotations,
  };
}

/** Each layer with a known role, by role; an unknown media type is an error that names it. */
export function layersByRole(image: SelectedImage): Map<LayerRole, ImageManifest['layers'][number]> {
  const layers = new Map<LayerRole, ImageManifest['layers'][number]>();
  for (const layer of image.manifest.layers) {
    const role = layerRoleOf(layer.mediaType);
    if (!role) throw new PublishError(`layer ${layer.digest} has an unknown media type ${layer.mediaType}`);
    layers.set(role, layer);
  }
  return layers;
}

/**
 * Fetches the layers of `roles` into `dir`, each verified against its digest and renamed into place only then;
 * a file is named `names[role]`, else by its role.
 */
export async function pullLayers(
  repo: Repository,
  image: SelectedImage,
  roles: readonly LayerRole[],
  dir: string,
  signal?: AbortSignal,
  names: Partial<Record<LayerRole, string>> = {},
): Promise<Partial<Record<LayerRole, string>>> {
  const layers = layersByRole(image);
  const files: Partial<Record<LayerRole, string>> = {};
  for (const role of roles) {
    const layer = layers.get(role);
    if (!layer) continue;
    const path = join(dir, names[role] ?? role);
    const written = await writeFileAtomic(path, await repo.openBlob(layer.digest, signal), {
      expectedDigest: layer.digest,
      ...(signal ? { signal } : {}),
    }).catch((error: unknown) => {
      if (error instanceof DigestMismatchError)
        throw new PublishError(`${repo.location}: layer ${role} does not match its digest ${layer.digest}`);
      throw error;
    });
    files[role] = written.path;
  }
  return files;
}

// The IronCore image format (ironcore-image's OCI-SPEC.md and image.go): a config holding the kernel
// command line, one image manifest per architecture with typed layers, and indexes over them.
import type { Blob } from './blob';
import { bytesBlob } from './blob';
import { IRONCORE_CONFIG, IRONCORE_LAYER, OCI_INDEX, OCI_MANIFEST, type LayerRole } from './mediatypes';
import type { Annotations, Descriptor, SerializedManifest } from './types';
import { annotationsOrUndefined, canonicalJson, serializeManifest } from './types';

export type Architecture = 'amd64' | 'arm64';
export const ARCHITECTURES: readonly Architecture[] = ['amd64', 'arm64'];

/** The IronCore `variant` annotation: how the image boots. */
export type IronCoreVariant = 'metal' | 'virtualization';

export const ANNOTATION = {
  title: 'org.opencontainers.image.title',
  version: 'org.opencontainers.image.version',
  source: 'org.opencontainers.image.source',
  created: 'org.opencontainers.image.created',
  description: 'org.opencontainers.image.description',
  licenses: 'org.opencontainers.image.licenses',
  revision: 'org.opencontainers.image.revision',
  variant: 'variant',
  architecture: 'architecture',
} as const;

export interface IronCoreConfig {
  commandLine?: string;
}

export interface LayerInput {
  role: LayerRole;
  blob: Blob;
  /** File name shown by tools (`org.opencontainers.image.title` of the layer). */
  title?: string;
}

export interface ArchImageInput {
  architecture: Architecture;
  variant: IronCoreVariant;
  title: string;
  commandLine?: string;
  layers: LayerInput[];
  annotations?: Annotations;
}

export interface BuiltArchImage {
  architecture: Architecture;
  variant: IronCoreVariant;
  manifest: SerializedManifest;
  /** Every blob the manifest names, config first: what must be stored before the manifest. */
  blobs: Blob[];
}

export function configBlob(config: IronCoreConfig): Blob {
  const body: IronCoreConfig = config.commandLine ? { commandLine: config.commandLine } : {};
  return bytesBlob(new TextEncoder().encode(canonicalJson(body)), 'config');
}

export function buildArchImage(input: ArchImageInput): BuiltArchImage {
  const config = configBlob(input.commandLine === undefined ? {} : { commandLine: input.commandLine });
  const layers: Descriptor[] = input.layers.map((layer) => ({
    mediaType: IRONCORE_LAYER[layer.role],
    digest: layer.blob.digest,
    size: layer.blob.size,
    ...(layer.title ? { annotations: { [ANNOTATION.title]: layer.title } } : {}),
  }));
  const annotations = annotationsOrUndefined({
    ...input.annotations,
    [ANNOTATION.title]: input.title,
    [ANNOTATION.variant]: input.variant,
    [ANNOTATION.architecture]: input.architecture,
  });
  const manifest = serializeManifest({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: IRONCORE_CONFIG, digest: config.digest, size: config.size },
    layers,
    ...(annotations ? { annotations } : {}),
  });
  return {
    architecture: input.architecture,
    variant: input.variant,
    manifest,
    blobs: [config, ...input.layers.map((l) => l.blob)],
  };
}

export interface IndexEntry {
  /** The child manifest (built now, or found in the store from an earlier run). */
  manifest: Pick<SerializedManifest, 'mediaType' | 'digest' | 'size'>;
  architecture: Architecture;
  annotations?: Annotations;
}

/** An index over per-arch manifests, each entry with its platform (and annotations to select by). */
export function buildIndex(entries: readonly IndexEntry[], annotations?: Annotations): SerializedManifest {
  const manifests: Descriptor[] = entries.map((entry) => {
    const entryAnnotations = annotationsOrUndefined(entry.annotations);
    return {
      mediaType: entry.manifest.mediaType,
      digest: entry.manifest.digest,
      size: entry.manifest.size,
      platform: { architecture: entry.architecture, os: 'linux' },
      ...(entryAnnotations ? { annotations: entryAnnotations } : {}),
    };
  });
  const indexAnnotations = annotationsOrUndefined(annotations);
  return serializeManifest({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests,
    ...(indexAnnotations ? { annotations: indexAnnotations } : {}),
  });
}

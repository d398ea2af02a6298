// OCI 1.1 referrers (image-spec 1.1 manifest `subject`/`artifactType`, distribution-spec 1.1 referrers API and
// its fallback tag): an artifact is an ordinary image manifest with the empty config, one layer holding a file,
// and a `subject` naming the manifest it describes. Registries without the referrers API are given the
// `<alg>-<hex>` tag whose index lists every referrer; this module builds and merges those indexes (pure: no I/O).
import { bytesBlob, type Blob } from './blob';
import { OCI_INDEX, OCI_MANIFEST } from './mediatypes';
import { PublishError } from '../util/errors';
import {
  annotationsOrUndefined,
  canonicalJson,
  serializeManifest,
  type Annotations,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type SerializedManifest,
} from './types';

export const EMPTY_CONFIG_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';

/** The empty config `{}` every artifact names (image-spec 1.1 "guidance for an empty descriptor"). */
export function emptyConfigBlob(): Blob {
  return bytesBlob(new TextEncoder().encode('{}'), 'empty config');
}

/**
 * The fallback tag of a subject: `<alg>-<hex>`, the algorithm cut to 32 and the hex to 64 characters and any
 * other character mapped to `-` (distribution-spec, "Referrers Tag Schema").
 */
export function referrersTagFor(digest: string): string {
  const colon = digest.indexOf(':');
  const clean = (s: string, max: number): string => s.slice(0, max).replace(/[^a-zA-Z0-9._-]/g, '-');
  return `${clean(digest.slice(0, colon), 32)}-${clean(digest.slice(colon + 1), 64)}`;
}

export interface ArtifactInput {
  /** The manifest's `artifactType`, e.g. `application/vnd.cyclonedx+json`. */
  artifactType: string;
  /** The layer's media type (Trivy wants it equal to artifactType for SBOMs). */
  layerMediaType: string;
  file: Blob;
  /** `org.opencontainers.image.title` of the layer: the file's name. */
  title: string;
  subject: Descriptor;
  /** The manifest's annotations (`org.opencontainers.image.created` from the release, never the clock). */
  annotations?: Annotations;
}

export interface BuiltArtifact {
  artifactType: string;
  title: string;
  manifest: SerializedManifest;
  /** What must be stored before the manifest: the empty config, then the file. */
  blobs: Blob[];
  /** The artifact as a referrers index lists it: with its artifactType and a copy of its annotations. */
  entry: Descriptor;
}

export function buildArtifact(input: ArtifactInput): BuiltArtifact {
  const config = emptyConfigBlob();
  const annotations = annotationsOrUndefined(input.annotations);
  const manifest = serializeManifest({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: input.artifactType,
    config: { mediaType: EMPTY_CONFIG_MEDIA_TYPE, digest: config.digest, size: config.size },
    layers: [
      {
        mediaType: input.layerMediaType,
        digest: input.file.digest,
        size: input.file.size,
        annotations: { 'org.opencontainers.image.title': input.title },
      },
    ],
    subject: { mediaType: input.subject.mediaType, digest: input.subject.digest, size: input.subject.size },
    ...(annotations ? { annotations } : {}),
  });
  return {
    artifactType: input.artifactType,
    title: input.title,
    manifest,
    blobs: [config, input.file],
    entry: referrerEntry(manifest.digest, manifest.size, input.artifactType, annotations),
  };
}

function referrerEntry(
  digest: string,
  size: number,
  artifactType: string | undefined,
  annotations: Annotations | undefined,
): Descriptor {
  return {
    mediaType: OCI_MANIFEST,
    digest,
    size,
    ...(artifactType ? { artifactType } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

/**
 * The referrers-index entry of a stored manifest (its artifactType, else its config's media type, and its
 * annotations) and the digest of its subject, if it has one.
 */
export function referrerEntryOf(manifest: SerializedManifest): { entry: Descriptor; subject?: string } {
  const parsed = JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as Partial<ImageManifest>;
  const entry = referrerEntry(
    manifest.digest,
    manifest.size,
    parsed.artifactType ?? parsed.config?.mediaType,
    annotationsOrUndefined(parsed.annotations),
  );
  return {
    entry: { ...entry, mediaType: manifest.mediaType },
    ...(typeof parsed.subject?.digest === 'string' ? { subject: parsed.subject.digest } : {}),
  };
}

/** The entries of a referrers index (the API's answer or the fallback tag's content). */
export function parseReferrersIndex(bytes: Uint8Array, what: string): Descriptor[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new PublishError(`${what} is not JSON`);
  }
  const manifests = (parsed as { manifests?: unknown }).manifests;
  if (!Array.isArray(manifests)) throw new PublishError(`${what} is not an image index`);
  return manifests.filter(
    (m): m is Descriptor =>
      typeof m === 'object' && m !== null && typeof (m as Descriptor).digest === 'string',
  );
}

/**
 * The fallback index with `entries` added (an entry of the same digest is replaced), sorted by digest so the same
 * set of referrers always gives the same bytes. `changed` is false when every entry was there already as it is.
 */
export function mergeReferrers(
  existing: readonly Descriptor[],
  entries: readonly Descriptor[],
): { index: SerializedManifest; changed: boolean } {
  const byDigest = new Map(existing.map((d) => [d.digest, d]));
  let changed = false;
  for (const entry of entries) {
    const before = byDigest.get(entry.digest);
    if (!before || canonicalJson(before) !== canonicalJson(entry)) changed = true;
    byDigest.set(entry.digest, entry);
  }
  const manifests = [...byDigest.values()].sort((a, b) =>
    a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0,
  );
  const index: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests };
  return { index: serializeManifest(index), changed };
}

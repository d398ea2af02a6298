// OCI descriptors, manifests and indexes as typed values, and their deterministic serialization:
// keys are written in sorted order, so the same values always give the same bytes and digest.
import { sha256Digest } from './digest';
import { OCI_INDEX, OCI_MANIFEST } from './mediatypes';

export type Annotations = Record<string, string>;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Annotations;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  /** OCI 1.1: what kind of artifact this is (a referrer's type); absent on images. */
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  /** OCI 1.1: the manifest this one describes (it is then one of that manifest's referrers). */
  subject?: Descriptor;
  annotations?: Annotations;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: typeof OCI_INDEX;
  manifests: Descriptor[];
  annotations?: Annotations;
}

/** A manifest or index as bytes, ready to store, with its descriptor fields. */
export interface SerializedManifest {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Uint8Array;
}

/** JSON with object keys sorted at every level and no insignificant whitespace. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export function serializeJson(mediaType: string, value: unknown): SerializedManifest {
  const bytes = new TextEncoder().encode(canonicalJson(value));
  return { mediaType, digest: sha256Digest(bytes), size: bytes.length, bytes };
}

export function serializeManifest(manifest: ImageManifest | ImageIndex): SerializedManifest {
  return serializeJson(manifest.mediaType, manifest);
}

export function descriptorOf(serialized: SerializedManifest, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType: serialized.mediaType, digest: serialized.digest, size: serialized.size, ...extra };
}

/** Drops empty annotation maps, so `{}` never reaches the JSON (and the digest). */
export function annotationsOrUndefined(annotations: Annotations | undefined): Annotations | undefined {
  if (!annotations) return undefined;
  const entries = Object.entries(annotations).filter(([, v]) => v !== undefined && v !== '');
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

// What a run hands to the steps after it: every reference of the version with its digest, kind and platform
// (the action's `images` output), and the same digests as a `subject-checksums` file in the format
// actions/attest-build-provenance takes, so one attest step covers every image.
import { ironCoreVariantOf } from './flavors';
import { planTags, type Plan } from './plan';
import type { AttachedByTag } from './attach';
import { tagKey } from './published';

export interface ImageReference {
  /** `ghcr.io/owner/gardenlinux:2150.1.0-metal-amd64` */
  reference: string;
  /** The name without tag, as attestations name a subject: `ghcr.io/owner/gardenlinux`. */
  name: string;
  tag: string;
  digest: string;
  kind: 'arch' | 'variant' | 'combined';
  /** `linux/amd64` for arch images; indexes span platforms. */
  platform?: string;
  /** IronCore variant (`metal`, `virtualization`) of arch images and variant indexes. */
  variant?: string;
  /** Written by this run (false: it named this digest already, or a dry run). */
  written: boolean;
  /** Referrers this run attached to an arch image. */
  attachments?: { artifactType: string; digest: string; title: string }[];
}

export function imageReferences(
  plan: Plan,
  reference: (repository: string, tag: string) => string,
  digests: Record<string, string>,
  written: ReadonlySet<string>,
  attached: AttachedByTag,
): ImageReference[] {
  const variantOf = new Map<string, string>();
  for (const image of plan.images)
    for (const variant of image.variants) {
      const ironCore = ironCoreVariantOf(variant.flavor.variant);
      variantOf.set(tagKey(image.repository, variant.tag), ironCore);
      for (const arch of variant.arches) variantOf.set(tagKey(image.repository, arch.tag), ironCore);
    }
  const architectureOf = new Map(
    plan.images.flatMap((i) =>
      i.variants.flatMap((v) => v.arches.map((a) => [tagKey(i.repository, a.tag), a.architecture] as const)),
    ),
  );
  return planTags(plan).flatMap((row) => {
    const ref = reference(row.repository, row.tag);
    const digest = digests[ref];
    if (!digest) return [];
    const key = tagKey(row.repository, row.tag);
    const architecture = architectureOf.get(key);
    const variant = variantOf.get(key);
    const attachments = attached.get(key);
    return [
      {
        reference: ref,
        name: ref.slice(0, ref.length - row.tag.length - 1),
        tag: row.tag,
        digest,
        kind: row.kind,
        ...(architecture ? { platform: `linux/${architecture}` } : {}),
        ...(variant ? { variant } : {}),
        written: written.has(ref),
        ...(attachments ? { attachments } : {}),
      },
    ];
  });
}

/**
 * `<hex>  <name>` lines, as sha256sum prints them and actions/attest's `subject-checksums` reads them: one per
 * distinct manifest digest of the version (arch manifests and indexes), named by image without tag, so
 * `gh attestation verify oci://<name>:<tag>` finds the attestation of whatever a tag resolves to.
 */
export function subjectChecksums(references: readonly ImageReference[]): string {
  const lines = new Set(references.map((r) => `${r.digest.replace(/^sha256:/, '')}  ${r.name}`));
  return [...lines].map((l) => `${l}\n`).join('');
}

/** One row per attachment written by the run (image, file, artifact type, digest): the summary and the CLI. */
export function attachmentRows(references: readonly ImageReference[]): string[][] {
  return references.flatMap((r) =>
    (r.attachments ?? []).map((a) => [r.reference, a.title, a.artifactType, a.digest]),
  );
}

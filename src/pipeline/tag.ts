// The "tag" phase, last: the arch images' tags, then each variant's index and the combined index. It runs only
// once every image of the run is built, stored, booted and attached, so a tag never names missing content, and
// an index tag is written only after every child it names is tagged.
import { ANNOTATION, buildIndex, type IndexEntry } from '../oci/ironcore';
import type { Store } from '../oci/store';
import type { Annotations, SerializedManifest } from '../oci/types';
import type { Logger } from '../util/logger';
import { releaseAnnotations } from './build-image';
import { ironCoreVariantOf, type Flavor } from './flavors';
import type { Plan, PlannedImage } from './plan';
import { tagKey, type ExistingTag } from './published';
import type { ReleaseInfo } from './sources';

export interface TagSettings {
  plan: Plan;
  stores: readonly Store[];
  /** The store "is it published" was asked of. */
  checkStore: Store | undefined;
  /** Tags found before the run. */
  existing: Map<string, ExistingTag>;
  /** Arch manifests built by this run, by `repository:tag`. */
  built: Map<string, ExistingTag>;
  release: ReleaseInfo;
  architectures: readonly string[];
  annotations?: Annotations;
  description?: string;
  force: boolean;
  /** `host/repository:tag`, for logs and results. */
  reference: (repository: string, tag: string) => string;
  logger: Logger;
  signal?: AbortSignal;
}

export interface WrittenTag {
  reference: string;
  digest: string;
  size: number;
  seconds: number;
  kind: 'variant' | 'combined';
}

/** Points each built arch image's tag at its manifest, in plan order. */
export async function writeArchTags(
  settings: TagSettings,
  pending: readonly { repository: string; tag: string; manifest: SerializedManifest }[],
): Promise<void> {
  await settings.logger.group('Write arch image tags', async () => {
    for (const { repository, tag, manifest } of pending) {
      for (const store of settings.stores)
        await store.repository(repository).pushManifest(manifest, [tag], settings.signal);
      settings.logger.info(`${settings.reference(repository, tag)} ${manifest.digest}`);
    }
  });
}

/** Writes every variant index and combined index of the plan (skipping those that already name the same bytes). */
export async function writeIndexes(
  settings: TagSettings,
  digests: Record<string, string>,
): Promise<WrittenTag[]> {
  const { plan, built, existing, logger } = settings;
  const written: WrittenTag[] = [];
  const writeIndex = async (
    image: PlannedImage,
    tag: string,
    index: SerializedManifest,
    kind: WrittenTag['kind'],
  ): Promise<void> => {
    const ref = settings.reference(image.repository, tag);
    digests[ref] = index.digest;
    const before = existing.get(tagKey(image.repository, tag));
    if (
      before?.digest === index.digest &&
      !settings.force &&
      settings.stores.every((s) => s === settings.checkStore)
    ) {
      logger.info(`${ref} already names ${index.digest}`);
      return;
    }
    const started = performance.now();
    for (const store of settings.stores)
      await store.repository(image.repository).pushManifest(index, [tag], settings.signal);
    written.push({
      reference: ref,
      digest: index.digest,
      size: index.size,
      seconds: (performance.now() - started) / 1000,
      kind,
    });
    logger.info(`${ref} ${index.digest}`);
  };

  await logger.group('Write indexes', async () => {
    for (const image of plan.images) {
      const combinedEntries: IndexEntry[] = [];
      for (const variant of image.variants) {
        const entries: IndexEntry[] = variant.arches.map((arch) => ({
          manifest: childOf(image, arch.tag, built, existing),
          architecture: arch.architecture,
          annotations: {
            [ANNOTATION.variant]: ironCoreVariantOf(variant.flavor.variant),
            [ANNOTATION.architecture]: arch.architecture,
          },
        }));
        combinedEntries.push(...entries);
        const index = buildIndex(entries, indexAnnotations(settings, image, [variant.flavor]));
        await writeIndex(image, variant.tag, index, 'variant');
        built.set(tagKey(image.repository, variant.tag), index);
      }
      if (image.combinedTag) {
        const index = buildIndex(
          combinedEntries,
          indexAnnotations(
            settings,
            image,
            image.variants.map((v) => v.flavor),
          ),
        );
        await writeIndex(image, image.combinedTag, index, 'combined');
      }
    }
  });
  return written;
}

function childOf(
  image: PlannedImage,
  tag: string,
  built: Map<string, ExistingTag>,
  existing: Map<string, ExistingTag>,
): ExistingTag {
  const found = built.get(tagKey(image.repository, tag)) ?? existing.get(tagKey(image.repository, tag));
  if (!found) throw new Error(`internal: ${image.repository}:${tag} is neither built nor published`);
  return found;
}

function indexAnnotations(settings: TagSettings, image: PlannedImage, flavors: Flavor[]): Annotations {
  const release = settings.release;
  const variants = [...new Set(flavors.map((f) => f.variant))].join(' and ');
  const description =
    settings.description ??
    `Garden Linux ${release.version} as an IronCore OS image (${variants}, ${settings.architectures.join(' and ')})`;
  return {
    ...releaseAnnotations(release, settings.annotations),
    [ANNOTATION.title]: `${image.image} ${release.version}`,
    [ANNOTATION.description]: description.slice(0, 512),
  };
}

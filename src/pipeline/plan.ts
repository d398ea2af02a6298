// The plan: flavors x arches -> arch images -> tags, computed before anything is downloaded, so the
// run can be logged as a table, checked against what is already published, and ordered safely.
import type { Architecture } from '../oci/ironcore';
import { validateTag } from '../oci/reference';
import { type Flavor, flavorKey } from './flavors';

export interface PlannedArchImage {
  flavor: Flavor;
  architecture: Architecture;
  /** `<version>-<variant>-<arch><suffix>`: one image manifest. */
  tag: string;
}

export interface PlannedVariant {
  flavor: Flavor;
  /** `<version>-<variant><suffix>`: an index over the arches. */
  tag: string;
  arches: PlannedArchImage[];
}

export interface PlannedImage {
  /** Image name below the namespace, e.g. `gardenlinux/gardener`. */
  image: string;
  /** Repository in the store: `<namespace>/<image>`. */
  repository: string;
  /** `<version><suffix>`: the combined index over every variant and arch; undefined when not built here. */
  combinedTag: string | undefined;
  variants: PlannedVariant[];
}

export interface Plan {
  version: string;
  images: PlannedImage[];
}

export interface PlanOptions {
  version: string;
  namespace: string;
  flavors: readonly Flavor[];
  architectures: readonly Architecture[];
  /** Appended to every tag, e.g. `-manual-1a2b3c4d` for manual builds. */
  tagSuffix?: string;
  /** Build the combined `<version>` index (off in per-flavor matrix jobs). */
  combined?: boolean;
}

export function planPublication(options: PlanOptions): Plan {
  const suffix = options.tagSuffix ?? '';
  const images = new Map<string, PlannedImage>();
  for (const flavor of options.flavors) {
    let image = images.get(flavor.image);
    if (!image) {
      const combinedTag = options.combined === false ? undefined : validateTag(`${options.version}${suffix}`);
      image = {
        image: flavor.image,
        repository: joinRepository(options.namespace, flavor.image),
        combinedTag,
        variants: [],
      };
      images.set(flavor.image, image);
    }
    const variantTag = validateTag(`${options.version}-${flavor.variant}${suffix}`);
    image.variants.push({
      flavor,
      tag: variantTag,
      arches: options.architectures.map((architecture) => ({
        flavor,
        architecture,
        tag: validateTag(`${options.version}-${flavor.variant}-${architecture}${suffix}`),
      })),
    });
  }
  return { version: options.version, images: [...images.values()] };
}

function joinRepository(namespace: string, image: string): string {
  return namespace ? `${namespace}/${image}` : image;
}

/** Every tag of the plan with what it names, in the order they are written (children first). */
export function planTags(
  plan: Plan,
): { repository: string; tag: string; kind: 'arch' | 'variant' | 'combined'; what: string }[] {
  const rows: ReturnType<typeof planTags> = [];
  for (const image of plan.images) {
    for (const variant of image.variants) {
      for (const arch of variant.arches) {
        rows.push({
          repository: image.repository,
          tag: arch.tag,
          kind: 'arch',
          what: `${flavorKey(variant.flavor)} ${arch.architecture} (${variant.flavor.asset})`,
        });
      }
    }
    for (const variant of image.variants) {
      rows.push({
        repository: image.repository,
        tag: variant.tag,
        kind: 'variant',
        what: `index over ${variant.arches.map((a) => a.architecture).join(', ')}`,
      });
    }
    if (image.combinedTag) {
      rows.push({
        repository: image.repository,
        tag: image.combinedTag,
        kind: 'combined',
        what: `index over ${image.variants.length * (image.variants[0]?.arches.length ?? 0)} variant/arch images`,
      });
    }
  }
  return rows;
}

/** A plain-text table, readable in a CI log. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

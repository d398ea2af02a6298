// Picks a flavor's archive among a release's assets. The shell workflow's `^<pattern>-<arch>-.*\.tar\.xz$`
// plus `head -1` picks the `.logs.tar.xz` companion since spring 2026; anchoring on the commit part
// (`-<version>-<8 hex>.tar.xz`) matches the image archive only.
import { PublishError } from '../util/errors';
import type { Arch } from './flavors';
import type { GardenLinuxRelease, ReleaseAsset } from './release';

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

export function flavorAssetPattern(pattern: string, arch: Arch, version: string): RegExp {
  return new RegExp(
    `^${escapeRegExp(pattern)}-${escapeRegExp(arch)}-${escapeRegExp(version)}-[0-9a-f]{8}\\.tar\\.xz$`,
  );
}

/** The archive's base name (`<cname>-<arch>-<version>-<commit8>`), which names the members inside. */
export function assetBaseName(asset: Pick<ReleaseAsset, 'name'>): string {
  return asset.name.replace(/\.tar\.xz$/, '');
}

/**
 * GitHub's asset digest must be one we can check (sha256): any other is refused when the asset is
 * chosen, before anything is downloaded or pushed, instead of publishing an unverified download.
 */
function checkDigest(asset: ReleaseAsset): ReleaseAsset {
  if (asset.digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(asset.digest)) {
    const shown = asset.digest.length > 80 ? `${asset.digest.slice(0, 80)}...` : asset.digest;
    throw new PublishError(
      `asset ${asset.name}: GitHub gives its digest as ${JSON.stringify(shown)}, not sha256:<64 hex>; refusing to publish a download that cannot be verified`,
    );
  }
  return asset;
}

export function findFlavorAsset(
  release: Pick<GardenLinuxRelease, 'version' | 'assets'>,
  flavor: { asset: string; alternatives?: readonly string[] },
  arch: Arch,
): ReleaseAsset {
  const patterns = [flavor.asset, ...(flavor.alternatives ?? [])];
  for (const pattern of patterns) {
    const re = flavorAssetPattern(pattern, arch, release.version);
    const matches = release.assets.filter((a) => re.test(a.name));
    if (matches.length === 1) return checkDigest(matches[0] as ReleaseAsset);
    if (matches.length > 1) {
      throw new PublishError(
        `asset ${pattern}-${arch} is ambiguous in release ${release.version}: ${matches.map((a) => a.name).join(', ')}`,
      );
    }
  }
  const closest = closestNames(
    `${flavor.asset}-${arch}-${release.version}`,
    release.assets.map((a) => a.name),
    3,
  );
  throw new PublishError(
    `no asset for flavor ${flavor.asset} (${arch}) in release ${release.version}` +
      (patterns.length > 1 ? ` (also tried ${patterns.slice(1).join(', ')})` : ''),
    {
      hint: closest.length
        ? `Closest asset names: ${closest.join(', ')}`
        : `The release has ${release.assets.length} assets, none of them close.`,
    },
  );
}

/** The `count` names nearest to `wanted`: longest shared prefix first, then edit distance. */
export function closestNames(wanted: string, names: readonly string[], count: number): string[] {
  const archives = names.filter((n) => n.endsWith('.tar.xz') && !/\.(logs|certs)\.tar\.xz$/.test(n));
  const pool = archives.length ? archives : names;
  const scored = pool.map((name) => {
    const stem = name.slice(0, Math.min(name.length, wanted.length + 9));
    return { name, prefix: sharedPrefix(wanted, name), distance: levenshtein(wanted, stem) };
  });
  scored.sort((a, b) => b.prefix - a.prefix || a.distance - b.distance || a.name.localeCompare(b.name));
  return scored.slice(0, count).map((s) => s.name);
}

function sharedPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

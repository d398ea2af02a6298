// Where a flavor's artifacts come from: a GitHub release (the normal run) or archive files given on the
// command line (manual builds). The pipeline sees only this interface.
import type { Architecture } from '../oci/ironcore';
import type { FlavorArtifacts, GardenLinuxRelease } from '../gardenlinux';
import { fetchFlavorArtifacts, findFlavorAsset } from '../gardenlinux';
import type { Logger } from '../util/logger';
import type { Flavor } from './flavors';

export interface ReleaseInfo {
  version: string;
  /** First 8 hex digits of the release commit, when known. */
  commit?: string;
  /** The release page (the images' `org.opencontainers.image.source`). */
  url?: string;
  /** ISO time the release was published: the images' `created`, so re-runs give the same digests. */
  publishedAt?: string;
}

/** `image`: everything an arch image is built from; `attachments`: only the files published as its referrers. */
export type FetchScope = 'image' | 'attachments';

export interface ArtifactSource {
  release: ReleaseInfo;
  /** Names the input of one flavor and arch, for the plan table; throws when it does not exist. */
  describe(flavor: Flavor, arch: Architecture): string;
  fetch(
    flavor: Flavor,
    arch: Architecture,
    dir: string,
    logger: Logger,
    signal?: AbortSignal,
    scope?: FetchScope,
  ): Promise<FlavorArtifacts>;
}

export function releaseSource(
  release: GardenLinuxRelease,
  options: { token?: string; apiUrl?: string },
): ArtifactSource {
  return {
    release: {
      version: release.version,
      ...(release.commit ? { commit: release.commit } : {}),
      url: release.url,
      publishedAt: release.publishedAt,
    },
    describe: (flavor, arch) => findFlavorAsset(release, flavor, arch).name,
    fetch: (flavor, arch, dir, logger, signal, scope) =>
      fetchFlavorArtifacts({
        ...(scope === 'attachments' ? { attachmentsOnly: true } : {}),
        asset: findFlavorAsset(release, flavor, arch),
        kind: flavor.variant,
        arch,
        dir,
        logger,
        ...(signal ? { signal } : {}),
        ...(options.token ? { token: options.token } : {}),
        ...(options.apiUrl ? { apiUrl: options.apiUrl } : {}),
      }),
  };
}

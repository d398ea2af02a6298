// Release resolution through the GitHub REST API (Octokit). `apiUrl` defaults to GITHUB_API_URL so
// the action works on GitHub Enterprise Server too; the token is optional (public repositories).
import { Octokit } from '@octokit/rest';
import { PublishError, throwIfAborted } from '../util/errors';
import type { Logger } from '../util/logger';
import { compareVersions, isPlainVersion, validateVersion } from './versions';

export interface ReleaseAsset {
  id: number;
  name: string;
  size: number;
  /** The API asset URL (`/repos/:o/:r/releases/assets/:id`), downloaded with `Accept: application/octet-stream`. */
  url: string;
  browserDownloadUrl: string;
  /** `sha256:<hex>` when GitHub computed one (assets uploaded since mid-2025). */
  digest?: string;
}

export interface GardenLinuxRelease {
  version: string;
  tag: string;
  /** First 8 hex digits of the release commit, from the asset names or the tag's commitish. */
  commit?: string;
  url: string;
  publishedAt: string;
  name: string;
  body?: string;
  assets: ReleaseAsset[];
}

export interface ResolveReleaseOptions {
  apiUrl?: string;
  token?: string;
  repository?: string;
  /** An explicit version; without it the newest stable release is chosen. */
  version?: string;
  logger: Logger;
  signal?: AbortSignal;
}

type ApiRelease = {
  id: number;
  tag_name: string;
  name?: string | null;
  body?: string | null;
  draft: boolean;
  prerelease: boolean;
  html_url: string;
  published_at?: string | null;
  created_at?: string;
  target_commitish?: string;
};

type ApiAsset = {
  id: number;
  name: string;
  size: number;
  url: string;
  browser_download_url: string;
  digest?: string | null;
};

export function defaultApiUrl(): string {
  return process.env.GITHUB_API_URL ?? 'https://api.github.com';
}

export function createOctokit(options: { apiUrl?: string; token?: string; signal?: AbortSignal }): Octokit {
  return new Octokit({
    ...(options.token ? { auth: options.token } : {}),
    baseUrl: (options.apiUrl ?? defaultApiUrl()).replace(/\/+$/, ''),
    userAgent: 'ironcore-gardenlinux-publisher',
    request: options.signal ? { signal: options.signal } : {},
    // Octokit logs 404s as warnings by default; a missing release is reported by us instead.
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
  });
}

function splitRepository(repository: string): { owner: string; repo: string } {
  const m = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(repository);
  if (!m)
    throw new PublishError(`invalid repository ${JSON.stringify(repository)}`, {
      hint: 'Expected owner/name.',
    });
  return { owner: m[1] as string, repo: m[2] as string };
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

function apiError(what: string, error: unknown): PublishError {
  const status = statusOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return new PublishError(`${what} failed${status ? ` (HTTP ${status})` : ''}: ${message}`, {
    cause: error,
    ...(status === 401 || status === 403
      ? { hint: 'Check the token and its access to the repository.' }
      : {}),
  });
}

export async function resolveRelease(options: ResolveReleaseOptions): Promise<GardenLinuxRelease> {
  const repository = options.repository ?? 'gardenlinux/gardenlinux';
  const { logger, signal } = options;
  // Validate before any request: the version ends up in URLs, file names and tags.
  const explicit =
    options.version === undefined || options.version === '' ? undefined : validateVersion(options.version);
  const { owner, repo } = splitRepository(repository);
  const octokit = createOctokit(options);
  throwIfAborted(signal);

  let chosen: ApiRelease;
  if (explicit) {
    try {
      const res = await octokit.rest.repos.getReleaseByTag({ owner, repo, tag: explicit });
      chosen = res.data as ApiRelease;
    } catch (error) {
      if (statusOf(error) === 404) {
        throw new PublishError(`release ${explicit} not found in ${repository}`, {
          hint: `See https://github.com/${repository}/releases for the published versions.`,
        });
      }
      throw apiError(`looking up release ${explicit} in ${repository}`, error);
    }
    if (chosen.draft) throw new PublishError(`release ${explicit} in ${repository} is a draft`);
    if (chosen.prerelease)
      logger.warning(`release ${explicit} is marked as a prerelease; publishing it as asked`);
  } else {
    chosen = await newestStableRelease(octokit, owner, repo, repository, logger);
  }
  throwIfAborted(signal);

  const assets = await listAssets(octokit, owner, repo, chosen.id, repository);
  const version = explicit ?? chosen.tag_name;
  const release: GardenLinuxRelease = {
    version,
    tag: chosen.tag_name,
    url: chosen.html_url,
    publishedAt: chosen.published_at ?? chosen.created_at ?? '',
    name: chosen.name || chosen.tag_name,
    assets,
  };
  const commit = commitOf(version, assets, chosen.target_commitish);
  if (commit) release.commit = commit;
  if (chosen.body) release.body = chosen.body;
  logger.info(
    `Garden Linux ${version}${commit ? ` (${commit})` : ''}: ${assets.length} assets, published ${release.publishedAt}`,
  );
  return release;
}

async function newestStableRelease(
  octokit: Octokit,
  owner: string,
  repo: string,
  repository: string,
  logger: Logger,
): Promise<ApiRelease> {
  let all: ApiRelease[];
  try {
    all = (await octokit.paginate(octokit.rest.repos.listReleases, {
      owner,
      repo,
      per_page: 100,
    })) as ApiRelease[];
  } catch (error) {
    throw apiError(`listing releases of ${repository}`, error);
  }
  const stable = all.filter((r) => !r.draft && !r.prerelease && isPlainVersion(r.tag_name));
  const skipped = all.length - stable.length;
  if (stable.length === 0) {
    throw new PublishError(
      `no stable release found in ${repository} (${all.length} releases, none a plain version)`,
    );
  }
  // `releases/latest` is whatever the maintainers flagged, and maintenance releases of an older major
  // keep coming after a newer one: compare versions, keep `latest` only as a hint in the log.
  const newest = stable.reduce((best, r) => (compareVersions(r.tag_name, best.tag_name) > 0 ? r : best));
  logger.info(
    `newest stable release of ${repository}: ${newest.tag_name} (of ${stable.length} stable, ${skipped} drafts/prereleases/odd tags skipped)`,
  );
  try {
    const latest = (await octokit.rest.repos.getLatestRelease({ owner, repo })).data as ApiRelease;
    if (latest.tag_name !== newest.tag_name) {
      logger.info(
        `note: GitHub's releases/latest points at ${latest.tag_name}; using the higher version ${newest.tag_name}`,
      );
    }
  } catch (error) {
    logger.debug(`releases/latest unavailable: ${error instanceof Error ? error.message : String(error)}`);
  }
  return newest;
}

async function listAssets(
  octokit: Octokit,
  owner: string,
  repo: string,
  id: number,
  repository: string,
): Promise<ReleaseAsset[]> {
  let raw: ApiAsset[];
  try {
    // A release has well over 100 assets: the list inside the release object is not enough.
    raw = (await octokit.paginate(octokit.rest.repos.listReleaseAssets, {
      owner,
      repo,
      release_id: id,
      per_page: 100,
    })) as ApiAsset[];
  } catch (error) {
    throw apiError(`listing assets of release ${id} in ${repository}`, error);
  }
  return raw.map((a) => {
    const asset: ReleaseAsset = {
      id: a.id,
      name: a.name,
      size: a.size,
      url: a.url,
      browserDownloadUrl: a.browser_download_url,
    };
    if (a.digest && /^sha256:[0-9a-f]{64}$/.test(a.digest)) asset.digest = a.digest;
    return asset;
  });
}

/** The commit most asset names carry (`-<version>-<commit8>.tar.xz`), else the tag's full commitish. */
function commitOf(
  version: string,
  assets: readonly ReleaseAsset[],
  commitish: string | undefined,
): string | undefined {
  const counts = new Map<string, number>();
  const suffix = `-${version}-`;
  for (const a of assets) {
    const i = a.name.lastIndexOf(suffix);
    if (i < 0) continue;
    const m = /^([0-9a-f]{8})\./.exec(a.name.slice(i + suffix.length));
    if (m) counts.set(m[1] as string, (counts.get(m[1] as string) ?? 0) + 1);
  }
  let best: string | undefined;
  for (const [c, n] of counts) if (!best || n > (counts.get(best) ?? 0)) best = c;
  if (best) return best;
  if (commitish && /^[0-9a-f]{40}$/.test(commitish)) return commitish.slice(0, 8);
  return undefined;
}

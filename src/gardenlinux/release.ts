// Release resolution through the GitHub REST API (Octokit). `apiUrl` defaults to GITHUB_API_URL so
// the action works on GitHub Enterprise Server too; the token is optional (public repositories).
import { Octokit } from '@octokit/rest';
import { retryingFetch, type ApiRetryOptions } from './api-fetch';
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
  /** Retries of transient API failures (small values are for tests). */
  retry?: Partial<ApiRetryOptions>;
}

/** Pages followed at most: 100 per page, so 20,000 releases or assets; a `next` link that never ends is refused. */
const MAX_PAGES = 200;

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

export function createOctokit(options: {
  apiUrl?: string;
  token?: string;
  signal?: AbortSignal;
  logger?: Logger;
  retry?: Partial<ApiRetryOptions>;
}): Octokit {
  const fetch = options.logger
    ? retryingFetch(options.logger, {
        hasToken: options.token !== undefined && options.token !== '',
        ...(options.retry ? { retry: options.retry } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      })
    : undefined;
  return new Octokit({
    ...(options.token ? { auth: options.token } : {}),
    baseUrl: (options.apiUrl ?? defaultApiUrl()).replace(/\/+$/, ''),
    userAgent: 'ironcore-gardenlinux-publisher',
    request: { ...(options.signal ? { signal: options.signal } : {}), ...(fetch ? { fetch } : {}) },
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
  if (error instanceof PublishError)
    return new PublishError(`${what} failed: ${error.message}`, {
      cause: error,
      ...(error.hint ? { hint: error.hint } : {}),
    });
  // Our fetch gave up on a network failure; Octokit reports that as a 500 of its own making.
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (cause instanceof PublishError)
    return new PublishError(`${what} failed: ${cause.message}`, {
      cause: error,
      ...(cause.hint ? { hint: cause.hint } : {}),
    });
  const status = statusOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return new PublishError(`${what} failed${status ? ` (HTTP ${status})` : ''}: ${message}`, {
    cause: error,
    ...(status === 401 || status === 403
      ? { hint: 'Check the token and its access to the repository.' }
      : {}),
  });
}

/** Resolves the release; errors never carry the token, even when a server echoes it back. */
export async function resolveRelease(options: ResolveReleaseOptions): Promise<GardenLinuxRelease> {
  try {
    return await resolveReleaseUnredacted(options);
  } catch (error) {
    throw redactError(error, options.token);
  }
}

/** A PublishError with every occurrence of `secret` in its message and hint replaced. */
export function redactError(error: unknown, secret: string | undefined): unknown {
  if (!secret || !(error instanceof PublishError)) return error;
  const clean = (text: string): string => text.split(secret).join('***');
  if (!error.message.includes(secret) && !error.hint?.includes(secret)) return error;
  return new PublishError(clean(error.message), {
    cause: error,
    ...(error.hint ? { hint: clean(error.hint) } : {}),
  });
}

async function resolveReleaseUnredacted(options: ResolveReleaseOptions): Promise<GardenLinuxRelease> {
  const repository = options.repository ?? 'gardenlinux/gardenlinux';
  const { logger, signal } = options;
  // Validate before any request: the version ends up in URLs, file names and tags.
  const explicit =
    options.version === undefined || options.version === '' ? undefined : validateVersion(options.version);
  const { owner, repo } = splitRepository(repository);
  const octokit = createOctokit({
    ...(options.apiUrl ? { apiUrl: options.apiUrl } : {}),
    ...(options.token ? { token: options.token } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
    logger,
  });
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
    checkRelease(chosen, `release ${explicit} in ${repository}`);
    if (chosen.tag_name !== explicit) {
      throw new PublishError(
        `the GitHub API answered release ${printableJson(chosen.tag_name)} when asked for ${explicit} in ${repository}`,
      );
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
    all = await paginate<ApiRelease>(octokit, octokit.rest.repos.listReleases, {
      owner,
      repo,
      per_page: 100,
    });
  } catch (error) {
    throw apiError(`listing releases of ${repository}`, error);
  }
  for (const r of all) checkRelease(r, `a release listed in ${repository}`);
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
    raw = await paginate<ApiAsset>(octokit, octokit.rest.repos.listReleaseAssets, {
      owner,
      repo,
      release_id: id,
      per_page: 100,
    });
  } catch (error) {
    throw apiError(`listing assets of release ${id} in ${repository}`, error);
  }
  return raw.map((a) => {
    if (
      !a ||
      typeof a.id !== 'number' ||
      typeof a.name !== 'string' ||
      typeof a.size !== 'number' ||
      typeof a.url !== 'string'
    ) {
      throw new PublishError(
        `the GitHub API listed an asset of release ${id} in ${repository} without id, name, size or url: ${printableJson(a)}`,
      );
    }
    const asset: ReleaseAsset = {
      id: a.id,
      name: a.name,
      size: a.size,
      url: a.url,
      browserDownloadUrl: a.browser_download_url,
    };
    // Kept as given: an algorithm we cannot check is refused when the asset is chosen (findFlavorAsset),
    // rather than silently publishing an unverified download.
    if (typeof a.digest === 'string' && a.digest !== '') asset.digest = a.digest;
    return asset;
  });
}

/** Octokit's paginate, bounded: a `next` link that repeats or never ends is an error, not a hang. */
async function paginate<T>(
  octokit: Octokit,
  route: Parameters<Octokit['paginate']['iterator']>[0],
  params: Record<string, unknown>,
): Promise<T[]> {
  const items: T[] = [];
  const seen = new Set<string>();
  let pages = 0;
  for await (const page of octokit.paginate.iterator(route as never, params as never) as AsyncIterable<{
    data: unknown;
    url: string;
  }>) {
    if (++pages > MAX_PAGES) {
      throw new PublishError(
        `the GitHub API kept paging past ${MAX_PAGES} pages; refusing to follow it further`,
      );
    }
    if (seen.has(page.url)) {
      throw new PublishError(`the GitHub API's pagination loops (page ${new URL(page.url).search} again)`);
    }
    seen.add(page.url);
    if (!Array.isArray(page.data))
      throw new PublishError('the GitHub API answered a list request with no list');
    items.push(...(page.data as T[]));
  }
  return items;
}

/** The fields we rely on, with their types: a release JSON missing one is refused with one clear error. */
function checkRelease(r: ApiRelease, what: string): void {
  const bad: string[] = [];
  if (!r || typeof r !== 'object')
    throw new PublishError(`${what}: the GitHub API answered ${printableJson(r)}`);
  if (typeof r.id !== 'number') bad.push('id');
  if (typeof r.tag_name !== 'string') bad.push('tag_name');
  if (typeof r.html_url !== 'string') bad.push('html_url');
  for (const field of ['published_at', 'created_at', 'name', 'body', 'target_commitish'] as const) {
    if (r[field] !== undefined && r[field] !== null && typeof r[field] !== 'string') bad.push(field);
  }
  if (bad.length > 0) {
    throw new PublishError(
      `${what}: the GitHub API's answer lacks or mistypes ${bad.join(', ')}: ${printableJson(r)}`,
    );
  }
}

function printableJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
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

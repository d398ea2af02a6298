// A loopback stand-in for the GitHub REST API's release endpoints, with field names as the real API
// returns them. Asset downloads redirect (302) to a second server on another loopback address, as
// GitHub redirects to its objects host, so tests can check what reached that host (no token).
// Faults can be switched on per asset: wrong digest, truncated bodies, transient drops, no Range; and the
// API can run out of its primary rate limit as GitHub's does (x-ratelimit-* headers, then 403 or 429).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeAsset {
  name: string;
  /** File to serve; or `data`. */
  path?: string;
  data?: Uint8Array;
  /** Override the computed `sha256:<hex>`; `null` leaves the field out (assets from before mid-2025). */
  digest?: string | null;
  /** Every response ends (connection cut) after this absolute byte offset. */
  truncateAt?: number;
  /** The first `n` download responses are cut half-way (a transient failure, to test resuming). */
  dropFirst?: number;
  /** The first `n` download requests are refused as GitHub throttles: 403 "secondary rate limit". */
  throttleFirst?: number;
  /** Ignore `Range` (answer 200 with the whole file). */
  noRange?: boolean;
  /** Answer the download with this HTTP status instead. */
  status?: number;
}

export interface FakeRelease {
  tag: string;
  id?: number;
  name?: string;
  body?: string;
  draft?: boolean;
  prerelease?: boolean;
  /** ISO time; defaults to a fixed date. */
  publishedAt?: string;
  targetCommitish?: string;
  assets: FakeAsset[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  host: string;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * GitHub's primary rate limit, one window for every caller (GitHub keeps one per token and one per IP for
 * anonymous calls; a test sets the one the run under test uses). Every API request uses one request and is
 * answered with the `x-ratelimit-*` headers; with none left, requests are refused until `reset`, after which
 * a new window of `limit` starts.
 */
export interface RateLimitWindow {
  /** `x-ratelimit-limit`: requests per window (GitHub: 60 an hour without a token). */
  limit: number;
  /** Requests left in this window. */
  remaining: number;
  /** `x-ratelimit-reset`: when this window ends, in epoch seconds. */
  reset: number;
  /** How a request past the limit is refused: 403 (what GitHub mostly sends) or 429. */
  status?: 403 | 429;
}

export interface GitHubApiServerOptions {
  releases: FakeRelease[];
  /** Tag `releases/latest` answers with; default: the most recently published stable release. */
  latestTag?: string;
  /** When set, API requests must carry it (`Bearer` or `token`). */
  token?: string;
  /** With `token`: requests without any Authorization are served too (a public repository); a wrong token is still refused. */
  allowAnonymous?: boolean;
  /** Start with this rate-limit window (it can be changed later through `rateLimit`). */
  rateLimit?: RateLimitWindow;
  host?: string;
  /** Loopback address of the download host (default 127.0.0.2). */
  downloadHost?: string;
  repository?: string;
}

export interface GitHubApiServer {
  apiUrl: string;
  downloadUrl: string;
  /** Requests to both hosts, in order. */
  requests: RecordedRequest[];
  /** The API's rate-limit window; undefined: no limit (and no x-ratelimit headers). */
  rateLimit: RateLimitWindow | undefined;
  /** API requests refused for the rate limit so far. */
  rateLimited: number;
  stop(): Promise<void>;
}

interface AssetState {
  id: number;
  release: FakeRelease;
  asset: FakeAsset;
  size: number;
  digest: string | null;
  downloads: number;
  /** Download requests refused as throttled so far. */
  throttled: number;
}

const DEFAULT_TIME = '2025-01-01T00:00:00Z';

async function listen(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

async function describeAsset(asset: FakeAsset): Promise<{ size: number; digest: string }> {
  const hash = createHash('sha256');
  if (asset.data)
    return { size: asset.data.length, digest: `sha256:${hash.update(asset.data).digest('hex')}` };
  if (!asset.path) throw new Error(`fake asset ${asset.name} has neither path nor data`);
  const { size } = await stat(asset.path);
  for await (const c of createReadStream(asset.path)) hash.update(c as Buffer);
  return { size, digest: `sha256:${hash.digest('hex')}` };
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function record(list: RecordedRequest[], req: IncomingMessage): void {
  list.push({
    method: req.method ?? 'GET',
    path: req.url ?? '/',
    host: req.headers.host ?? '',
    headers: { ...req.headers },
  });
}

export async function startGitHubApiServer(options: GitHubApiServerOptions): Promise<GitHubApiServer> {
  const host = options.host ?? '127.0.0.1';
  const dlHost = options.downloadHost ?? '127.0.0.2';
  const repository = options.repository ?? 'gardenlinux/gardenlinux';
  const requests: RecordedRequest[] = [];
  let nextId = 1000;
  const releaseIds = new Map<FakeRelease, number>();
  const assets = new Map<number, AssetState>();
  const byRelease = new Map<FakeRelease, AssetState[]>();
  for (const release of options.releases) {
    releaseIds.set(release, release.id ?? nextId++);
    const list: AssetState[] = [];
    for (const asset of release.assets) {
      const d = await describeAsset(asset);
      const state: AssetState = {
        id: nextId++,
        release,
        asset,
        size: d.size,
        digest: asset.digest === undefined ? d.digest : asset.digest,
        downloads: 0,
        throttled: 0,
      };
      assets.set(state.id, state);
      list.push(state);
    }
    byRelease.set(release, list);
  }

  const api = createServer();
  const dl = createServer();
  const apiPort = await listen(api, host);
  const dlPort = await listen(dl, dlHost);
  const apiUrl = `http://${host}:${apiPort}`;
  const downloadUrl = `http://${dlHost}:${dlPort}`;

  const assetJson = (s: AssetState): Record<string, unknown> => ({
    id: s.id,
    name: s.asset.name,
    label: '',
    content_type: 'application/octet-stream',
    state: 'uploaded',
    size: s.size,
    ...(s.digest === null ? {} : { digest: s.digest }),
    url: `${apiUrl}/repos/${repository}/releases/assets/${s.id}`,
    browser_download_url: `${downloadUrl}/dl/${s.id}/${encodeURIComponent(s.asset.name)}`,
    created_at: s.release.publishedAt ?? DEFAULT_TIME,
  });
  const releaseJson = (r: FakeRelease): Record<string, unknown> => {
    const id = releaseIds.get(r);
    return {
      id,
      tag_name: r.tag,
      name: r.name ?? r.tag,
      body: r.body ?? '',
      draft: r.draft ?? false,
      prerelease: r.prerelease ?? false,
      target_commitish: r.targetCommitish ?? 'main',
      html_url: `https://github.com/${repository}/releases/tag/${r.tag}`,
      url: `${apiUrl}/repos/${repository}/releases/${id}`,
      assets_url: `${apiUrl}/repos/${repository}/releases/${id}/assets`,
      created_at: r.publishedAt ?? DEFAULT_TIME,
      published_at: r.draft ? null : (r.publishedAt ?? DEFAULT_TIME),
      // The real list embeds assets too; clients must still page through /assets for all of them.
      assets: (byRelease.get(r) ?? []).slice(0, 100).map(assetJson),
    };
  };
  const paginate = (res: ServerResponse, url: URL, items: unknown[]): void => {
    const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get('per_page') ?? 30) || 30));
    const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const link = (p: number, rel: string): string => {
      const u = new URL(url.href);
      u.searchParams.set('per_page', String(perPage));
      u.searchParams.set('page', String(p));
      return `<${u.href}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
    if (page > 1) links.push(link(1, 'first'), link(page - 1, 'prev'));
    json(
      res,
      200,
      items.slice((page - 1) * perPage, page * perPage),
      links.length ? { link: links.join(', ') } : {},
    );
  };
  const visible = options.releases.filter((r) => !r.draft || options.token !== undefined);

  const server: GitHubApiServer = {
    apiUrl,
    downloadUrl,
    requests,
    rateLimit: options.rateLimit ? { ...options.rateLimit } : undefined,
    rateLimited: 0,
    stop: async () => {},
  };

  /** Counts the request against the window; false when it is refused (the answer is sent). */
  const withinRateLimit = (req: IncomingMessage, res: ServerResponse): boolean => {
    const window = server.rateLimit;
    if (!window) return true;
    const now = Date.now() / 1000;
    if (now >= window.reset) {
      window.remaining = window.limit;
      window.reset = Math.floor(now) + 3600;
    }
    const allowed = window.remaining > 0;
    if (allowed) window.remaining--;
    const headers = {
      'x-ratelimit-limit': String(window.limit),
      'x-ratelimit-remaining': String(window.remaining),
      'x-ratelimit-reset': String(window.reset),
      'x-ratelimit-used': String(window.limit - window.remaining),
      'x-ratelimit-resource': 'core',
    };
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    if (allowed) return true;
    server.rateLimited++;
    // GitHub's own wording: anonymous callers are counted per address, and told a token helps.
    const anonymous = !req.headers.authorization;
    json(res, window.status ?? 403, {
      message: anonymous
        ? `API rate limit exceeded for ${req.socket.remoteAddress ?? '127.0.0.1'}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)`
        : 'API rate limit exceeded for user ID 1.',
      documentation_url:
        'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits',
    });
    return false;
  };

  api.on('request', (req: IncomingMessage, res: ServerResponse) => {
    record(requests, req);
    const url = new URL(req.url ?? '/', apiUrl);
    if (options.token !== undefined) {
      const auth = req.headers.authorization ?? '';
      const anonymous = auth === '' && options.allowAnonymous === true;
      if (!anonymous && auth !== `Bearer ${options.token}` && auth !== `token ${options.token}`) {
        return json(res, 401, {
          message: 'Bad credentials',
          documentation_url: 'https://docs.github.com/rest',
        });
      }
    }
    if (!withinRateLimit(req, res)) return;
    const prefix = `/repos/${repository}/releases`;
    if (req.method !== 'GET' || !url.pathname.startsWith(prefix))
      return json(res, 404, { message: 'Not Found' });
    const rest = url.pathname.slice(prefix.length);
    let m: RegExpExecArray | null;
    if (rest === '' || rest === '/') return paginate(res, url, visible.map(releaseJson));
    if (rest === '/latest') {
      const stable = options.releases.filter((r) => !r.draft && !r.prerelease);
      const latest = options.latestTag
        ? stable.find((r) => r.tag === options.latestTag)
        : [...stable].sort((a, b) =>
            (b.publishedAt ?? DEFAULT_TIME).localeCompare(a.publishedAt ?? DEFAULT_TIME),
          )[0];
      return latest ? json(res, 200, releaseJson(latest)) : json(res, 404, { message: 'Not Found' });
    }
    if ((m = /^\/tags\/(.+)$/.exec(rest))) {
      const tag = decodeURIComponent(m[1] as string);
      const r = options.releases.find((x) => x.tag === tag && !x.draft);
      return r ? json(res, 200, releaseJson(r)) : json(res, 404, { message: 'Not Found' });
    }
    if ((m = /^\/(\d+)\/assets$/.exec(rest))) {
      const r = options.releases.find((x) => releaseIds.get(x) === Number(m?.[1]));
      return r
        ? paginate(res, url, (byRelease.get(r) ?? []).map(assetJson))
        : json(res, 404, { message: 'Not Found' });
    }
    if ((m = /^\/assets\/(\d+)$/.exec(rest))) {
      const s = assets.get(Number(m[1]));
      if (!s) return json(res, 404, { message: 'Not Found' });
      if (!(req.headers.accept ?? '').includes('application/octet-stream'))
        return json(res, 200, assetJson(s));
      // Signed, short-lived URL on another host, as GitHub does.
      res.writeHead(302, {
        location: `${downloadUrl}/dl/${s.id}/${encodeURIComponent(s.asset.name)}?sig=${randomSig()}`,
      });
      return res.end();
    }
    if ((m = /^\/(\d+)$/.exec(rest))) {
      const r = options.releases.find((x) => releaseIds.get(x) === Number(m?.[1]));
      return r ? json(res, 200, releaseJson(r)) : json(res, 404, { message: 'Not Found' });
    }
    return json(res, 404, { message: 'Not Found' });
  });

  dl.on('request', (req: IncomingMessage, res: ServerResponse) => {
    record(requests, req);
    const url = new URL(req.url ?? '/', downloadUrl);
    const m = /^\/dl\/(\d+)\//.exec(url.pathname);
    const s = m ? assets.get(Number(m[1])) : undefined;
    if (!s) {
      res.writeHead(404).end('not found');
      return;
    }
    // The objects host refuses a second auth mechanism, so a leaked token shows as a failure too.
    if (req.headers.authorization) {
      res
        .writeHead(400, { 'content-type': 'application/xml' })
        .end('<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>');
      return;
    }
    if (s.asset.status) {
      res.writeHead(s.asset.status).end('fault');
      return;
    }
    if (s.asset.throttleFirst !== undefined && s.throttled < s.asset.throttleFirst) {
      s.throttled++;
      json(res, 403, {
        message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
      });
      return;
    }
    s.downloads++;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    if (range && !s.asset.noRange) start = Number(range[1]);
    if (start > s.size) {
      res.writeHead(416, { 'content-range': `bytes */${s.size}` }).end();
      return;
    }
    let end = s.size; // exclusive
    let cut = false;
    if (s.asset.truncateAt !== undefined && s.asset.truncateAt < end) {
      end = Math.max(start, s.asset.truncateAt);
      cut = true;
    }
    if (s.asset.dropFirst !== undefined && s.downloads <= s.asset.dropFirst) {
      end = Math.min(end, start + Math.max(1, Math.floor((s.size - start) / 2)));
      cut = true;
    }
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'accept-ranges': s.asset.noRange ? 'none' : 'bytes',
      'content-length': s.size - start,
    };
    if (start > 0) headers['content-range'] = `bytes ${start}-${s.size - 1}/${s.size}`;
    res.writeHead(start > 0 ? 206 : 200, headers);
    const body = s.asset.data
      ? (async function* () {
          yield Buffer.from((s.asset.data as Uint8Array).subarray(start, end));
        })()
      : end > start
        ? // 1 MiB reads: every socket write costs a loopback TCP round through the kernel, and in 64 KiB
          // writes (the default) serving costs ~2.8 s of CPU per GiB here against ~0.8 s: CPU the pipelines
          // being measured would otherwise lose to a stand-in for a CDN that is not on the runner at all.
          createReadStream(s.asset.path as string, { start, end: end - 1, highWaterMark: 1024 * 1024 })
        : (async function* () {})();
    void (async () => {
      try {
        for await (const c of body) {
          if (!res.write(c)) {
            await new Promise<void>((r) => {
              const done = (): void => {
                res.off('drain', done);
                res.off('close', done);
                r();
              };
              res.on('drain', done);
              res.on('close', done);
            });
          }
          if (res.destroyed) return;
        }
        // A cut transfer: the promised Content-Length never arrives.
        if (cut) res.socket?.destroy();
        else res.end();
      } catch {
        res.destroy();
      }
    })();
  });

  const close = (server: Server): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  server.stop = async () => void (await Promise.all([close(api), close(dl)]));
  return server;
}

function randomSig(): string {
  return createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16);
}

// GitHub's primary rate limit: the decision (wait for a near reset, else fail at once with when to retry and,
// without a token, that one raises the limit), and both places that meet it: the releases API (Octokit's
// fetch) and asset downloads, against the API stand-in answering as GitHub does.
import { afterEach, describe, expect, it } from 'vitest';
import { downloadAsset, resolveRelease } from '../../src/gardenlinux';
import {
  decideOnRateLimit,
  MAX_RATE_LIMIT_WAIT_MS,
  primaryRateLimit,
  utcTime,
} from '../../src/gardenlinux/rate-limit';
import { startGitHubApiServer, type GitHubApiServer } from '../../src/sample/github-server';
import { isPublishError } from '../../src/util/errors';
import { memoryLogger } from '../../src/util/logger';

const headers =
  (h: Record<string, string>) =>
  (name: string): string | undefined =>
    h[name];

describe('primaryRateLimit', () => {
  it('reads a used-up quota with its reset from a 403 or 429', () => {
    const h = { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1800000000', 'x-ratelimit-limit': '60' };
    expect(primaryRateLimit(403, headers(h))).toEqual({ resetAt: 1_800_000_000_000, limit: 60 });
    expect(primaryRateLimit(429, headers({ ...h, 'x-ratelimit-resource': 'core' }))).toEqual({
      resetAt: 1_800_000_000_000,
      limit: 60,
      resource: 'core',
    });
  });

  it('is not a primary limit: quota left, no reset, another status, or a reset that is no number', () => {
    const h = { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1800000000' };
    expect(primaryRateLimit(403, headers({ ...h, 'x-ratelimit-remaining': '12' }))).toBeUndefined();
    expect(primaryRateLimit(403, headers({ 'x-ratelimit-remaining': '0' }))).toBeUndefined();
    expect(primaryRateLimit(503, headers(h))).toBeUndefined();
    expect(primaryRateLimit(403, headers({ ...h, 'x-ratelimit-reset': 'soon' }))).toBeUndefined();
    // A secondary rate limit: Retry-After and quota left.
    expect(primaryRateLimit(403, headers({ 'retry-after': '60' }))).toBeUndefined();
  });
});

describe('decideOnRateLimit', () => {
  const now = Date.parse('2026-11-22T14:00:00Z');

  it('waits for a reset within the bound, a second past it, and says how long and why', () => {
    const d = decideOnRateLimit(
      { resetAt: now + 20_000, limit: 60 },
      { what: 'GitHub API GET /x', hasToken: false, now },
    );
    expect(d).toEqual({
      action: 'wait',
      ms: 21_000,
      log: "GitHub API GET /x: GitHub's API rate limit is used up (60 requests an hour without a token); it resets at 2026-11-22 14:00:20 UTC, waiting 21.0s for it",
    });
    // A reset already past (clock skew): one more second.
    expect(decideOnRateLimit({ resetAt: now - 5000 }, { what: 'w', hasToken: true, now })).toMatchObject({
      action: 'wait',
      ms: 1000,
    });
    expect(MAX_RATE_LIMIT_WAIT_MS).toBe(60_000);
  });

  it('fails at once past the bound, naming the reset in UTC; only without a token does it suggest one', () => {
    const far = { resetAt: now + 43 * 60_000, limit: 60 };
    const anonymous = decideOnRateLimit(far, { what: 'GitHub API GET /x', hasToken: false, now });
    expect(anonymous.action).toBe('fail');
    const message = anonymous.action === 'fail' ? anonymous.error.message : '';
    expect(message).toBe(
      "GitHub API GET /x: GitHub's API rate limit is used up (60 requests an hour without a token); it resets at 2026-11-22 14:43:00 UTC (in 43 min): run again after that; or give a token (the `github-token` input; GITHUB_TOKEN for the CLI): authenticated requests get a much higher limit",
    );
    const withToken = decideOnRateLimit(
      { resetAt: now + 3 * 3600_000 + 5 * 60_000, limit: 5000 },
      { what: 'download of a.tar.xz', hasToken: true, now },
    );
    expect(withToken.action === 'fail' && withToken.error.message).toBe(
      "download of a.tar.xz: GitHub's API rate limit is used up (5000 requests an hour for this token); it resets at 2026-11-22 17:05:00 UTC (in 3 h 5 min): run again after that",
    );
    expect(withToken.action === 'fail' && isPublishError(withToken.error)).toBe(true);
  });

  it('fails instead of waiting again when the retries are used up, and honours a shorter bound', () => {
    const near = { resetAt: now + 10_000 };
    expect(decideOnRateLimit(near, { what: 'w', hasToken: true, now, mayWait: false }).action).toBe('fail');
    expect(decideOnRateLimit(near, { what: 'w', hasToken: true, now, maxWaitMs: 5000 }).action).toBe('fail');
    expect(utcTime(Date.parse('2027-01-02T03:04:05.678Z'))).toBe('2027-01-02 03:04:05 UTC');
  });
});

describe('the API stand-in out of quota, met by the release lookup and the download', () => {
  const servers: GitHubApiServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  const serve = async (token?: string): Promise<GitHubApiServer> => {
    const server = await startGitHubApiServer({
      releases: [
        {
          tag: '2150.1.0',
          assets: [
            { name: 'kvm-gardener_prod-amd64-2150.1.0-0badcafe.tar.xz', data: Buffer.alloc(70_000, 7) },
          ],
        },
      ],
      ...(token ? { token } : {}),
    });
    servers.push(server);
    return server;
  };
  const nowSeconds = (): number => Math.floor(Date.now() / 1000);

  it('waits for a reset a few seconds away, then resolves (headers as GitHub sends them)', async () => {
    const server = await serve();
    server.rateLimit = { limit: 60, remaining: 0, reset: nowSeconds() + 2, status: 429 };
    const logger = memoryLogger();
    const started = Date.now();
    const release = await resolveRelease({ apiUrl: server.apiUrl, version: '2150.1.0', logger });
    expect(release.assets).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(server.rateLimited).toBe(1);
    const waits = logger.lines.filter((l) => l.includes('rate limit is used up'));
    expect(waits).toHaveLength(1);
    expect(waits[0]).toMatch(/resets at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, waiting [23]\.\d+s for it$/);
    // The new window started at the reset: the lookup's requests count against it.
    expect(server.rateLimit.remaining).toBeLessThan(60);
  });

  it('fails at once, with one message, when the reset is far; the token hint only without a token', async () => {
    const anonymous = await serve();
    anonymous.rateLimit = { limit: 60, remaining: 0, reset: nowSeconds() + 1800 };
    const started = Date.now();
    const error = await resolveRelease({
      apiUrl: anonymous.apiUrl,
      version: '2150.1.0',
      logger: memoryLogger(),
    }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1500); // no backoff retries against an empty quota
    expect(isPublishError(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toMatch(
      /^looking up release 2150\.1\.0 in gardenlinux\/gardenlinux failed: GitHub API GET \/repos\/gardenlinux\/gardenlinux\/releases\/tags\/2150\.1\.0: GitHub.s API rate limit is used up \(60 requests an hour without a token\); it resets at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (29|30) min\): run again after that; or give a token \(the `github-token` input/,
    );
    expect(anonymous.rateLimited).toBe(1);

    const token = 'ghs_ratelimited0123456789';
    const authenticated = await serve(token);
    authenticated.rateLimit = { limit: 5000, remaining: 0, reset: nowSeconds() + 1800 };
    const withToken = await resolveRelease({
      apiUrl: authenticated.apiUrl,
      token,
      version: '2150.1.0',
      logger: memoryLogger(),
    }).catch((e: unknown) => e);
    expect((withToken as Error).message).toMatch(/\(5000 requests an hour for this token\); it resets at /);
    expect((withToken as Error).message).not.toMatch(/github-token|give a token/);
    expect((withToken as Error).message).not.toContain(token);
  });

  it('a download whose redirect is refused for the quota waits for a near reset and fails at once for a far one', async () => {
    const server = await serve();
    const release = await resolveRelease({
      apiUrl: server.apiUrl,
      version: '2150.1.0',
      logger: memoryLogger(),
    });
    const asset = release.assets[0]!;
    const download = async (logger = memoryLogger()): Promise<number> => {
      let bytes = 0;
      for await (const chunk of downloadAsset({
        url: asset.url,
        size: asset.size,
        label: asset.name,
        logger,
      }))
        bytes += chunk.length;
      return bytes;
    };
    server.rateLimit = { limit: 60, remaining: 0, reset: nowSeconds() + 2 };
    const logger = memoryLogger();
    expect(await download(logger)).toBe(70_000);
    expect(logger.lines.some((l) => /download of .*rate limit is used up.*waiting/.test(l))).toBe(true);

    server.rateLimit = { limit: 60, remaining: 0, reset: nowSeconds() + 7200 };
    const started = Date.now();
    const error = await download().catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(isPublishError(error)).toBe(true);
    expect((error as Error).message).toMatch(
      /^download of kvm-gardener_prod-amd64-2150\.1\.0-0badcafe\.tar\.xz: GitHub's API rate limit is used up \(60 requests an hour without a token\); it resets at .* UTC \(in (1 h 59 min|2 h 0 min)\): run again after that; or give a token/,
    );
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveRelease } from '../../src/gardenlinux';
import { startGitHubApiServer, type FakeAsset, type GitHubApiServer } from '../../src/sample/github-server';
import { PublishError } from '../../src/util/errors';
import { memoryLogger } from '../../src/util/logger';

const tiny = (name: string): FakeAsset => ({ name, data: Buffer.from(name) });

// Ordered as GitHub lists them (newest first): a 1877 maintenance release came after 2150.x.
const releases = [
  { tag: '2151.0.0', draft: true, publishedAt: '2025-06-05T00:00:00Z', assets: [] },
  { tag: '2150.2.0', prerelease: true, publishedAt: '2025-06-04T00:00:00Z', assets: [] },
  { tag: 'beta_934.1', publishedAt: '2025-06-03T00:00:00Z', assets: [] },
  {
    tag: '1877.24',
    publishedAt: '2025-06-02T00:00:00Z',
    assets: [tiny('metal_pxe-amd64-1877.24-0badc0de.tar.xz')],
  },
  {
    tag: '2150.1.0',
    publishedAt: '2025-05-01T00:00:00Z',
    targetCommitish: 'abcdef1234567890abcdef1234567890abcdef12',
    // Over 100 assets: the list must be paged.
    assets: [
      ...Array.from({ length: 130 }, (_, i) =>
        tiny(`flavor${String(i).padStart(3, '0')}-amd64-2150.1.0-abcdef12.tar.xz`),
      ),
      tiny('baremetal_pxe-arm64-2150.1.0-abcdef12.tar.xz'),
    ],
  },
  { tag: '2150.0.0', publishedAt: '2025-04-01T00:00:00Z', assets: [] },
  ...Array.from({ length: 40 }, (_, i) => ({
    tag: `1592.${i}`,
    publishedAt: '2024-01-01T00:00:00Z',
    assets: [],
  })),
  { tag: '0.9.1', publishedAt: '2020-01-01T00:00:00Z', assets: [] },
];

let server: GitHubApiServer;
const token = 'ghs_testtoken';
beforeAll(async () => {
  server = await startGitHubApiServer({ releases, latestTag: '1877.24', token });
});
afterAll(async () => {
  await server.stop();
});

describe('resolveRelease', () => {
  it('picks the highest stable version, not releases/latest, and pages through releases and assets', async () => {
    const logger = memoryLogger();
    const before = server.requests.length;
    const release = await resolveRelease({ apiUrl: server.apiUrl, token, logger });
    expect(release.version).toBe('2150.1.0');
    expect(release.tag).toBe('2150.1.0');
    expect(release.commit).toBe('abcdef12');
    expect(release.assets).toHaveLength(131);
    expect(new Set(release.assets.map((a) => a.id)).size).toBe(131);
    expect(release.assets[0]?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(release.assets[0]?.url).toMatch(/\/releases\/assets\/\d+$/);
    expect(release.url).toBe('https://github.com/gardenlinux/gardenlinux/releases/tag/2150.1.0');
    expect(release.publishedAt).toBe('2025-05-01T00:00:00Z');
    expect(logger.lines.join('\n')).toContain('releases/latest points at 1877.24');
    const mine = server.requests.slice(before);
    expect(mine.filter((r) => r.path.includes('/assets')).length).toBeGreaterThanOrEqual(2);
    expect(mine.filter((r) => /\/releases\?/.test(r.path)).length).toBeGreaterThanOrEqual(1);
    expect(
      mine.every(
        (r) => r.headers.authorization === `token ${token}` || r.headers.authorization === `Bearer ${token}`,
      ),
    ).toBe(true);
  });

  it('takes an explicit two-component version', async () => {
    const release = await resolveRelease({
      apiUrl: server.apiUrl,
      token,
      version: '1877.24',
      logger: memoryLogger(),
    });
    expect(release.version).toBe('1877.24');
    expect(release.commit).toBe('0badc0de');
    expect(release.assets.map((a) => a.name)).toEqual(['metal_pxe-amd64-1877.24-0badc0de.tar.xz']);
  });

  it('says clearly when a version does not exist', async () => {
    await expect(
      resolveRelease({ apiUrl: server.apiUrl, token, version: '1877.99', logger: memoryLogger() }),
    ).rejects.toThrow(/release 1877\.99 not found in gardenlinux\/gardenlinux/);
    // A draft is not published: not found either.
    await expect(
      resolveRelease({ apiUrl: server.apiUrl, token, version: '2151.0.0', logger: memoryLogger() }),
    ).rejects.toThrow(PublishError);
  });

  it('refuses versions with shell or path characters before any request', async () => {
    const before = server.requests.length;
    for (const version of ['2150.1.0; curl evil', '../../etc', '2150.1.0/../x', '`id`']) {
      await expect(
        resolveRelease({ apiUrl: server.apiUrl, token, version, logger: memoryLogger() }),
      ).rejects.toThrow(/invalid Garden Linux version/);
    }
    expect(server.requests.length).toBe(before);
  });

  it('reports a bad token as a PublishError', async () => {
    await expect(
      resolveRelease({ apiUrl: server.apiUrl, token: 'wrong', logger: memoryLogger() }),
    ).rejects.toThrow(/HTTP 401/);
  });
});

// End to end against the loopback GitHub API: archives in every layout of DOMAIN.md section 2,
// generated here, fetched, verified and unpacked; plus every way a download or an archive can be bad.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack as tarPack, type Header as TarHeader } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchFlavorArtifacts,
  findFlavorAsset,
  resolveRelease,
  type GardenLinuxRelease,
} from '../../src/gardenlinux';
import {
  startGitHubApiServer,
  type FakeAsset,
  type FakeRelease,
  type GitHubApiServer,
} from '../../src/sample/github-server';
import { generateSampleRelease, type SampleAsset, type SampleReleaseOptions } from '../../src/sample/release';
import { mapLimit } from '../../src/util/concurrency';
import { PublishError } from '../../src/util/errors';
import { memoryLogger } from '../../src/util/logger';

const token = 'ghs_fetchtoken';
let root: string;
let server: GitHubApiServer;
const generated = new Map<string, SampleAsset[]>(); // version -> assets
const fast = { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 };

const layouts: {
  version: string;
  options: Partial<SampleReleaseOptions> & Pick<SampleReleaseOptions, 'layout' | 'flavors'>;
}[] = [
  {
    version: '2150.1.0',
    options: {
      layout: 'folder',
      withLogs: true,
      flavors: [
        { asset: 'kvm-gardener_prod', kind: 'kvm' },
        { asset: 'baremetal_pxe', kind: 'metal' },
      ],
    },
  },
  {
    // Pre-rename names, two-component version, PXE tarball without `cmdline`.
    version: '1877.24',
    options: {
      layout: 'dot-slash',
      cmdline: false,
      flavors: [
        { asset: 'kvm-gardener_prod', kind: 'kvm' },
        { asset: 'metal_pxe', kind: 'metal' },
      ],
    },
  },
  {
    version: '2150.2.0',
    options: {
      layout: 'flat',
      sparseRaw: true,
      withLogs: true,
      flavors: [
        { asset: 'kvm-gardener_prod', kind: 'kvm' },
        { asset: 'baremetal-capi', kind: 'metal' },
      ],
    },
  },
  {
    version: '2150.3.0',
    options: {
      layout: 'flat',
      sparseRaw: true,
      tarFormat: 'posix',
      flavors: [{ asset: 'kvm-gardener_prod', kind: 'kvm' }],
    },
  },
];

async function tarXz(
  entries: { name: string; type?: 'file' | 'symlink' | 'directory'; linkname?: string; data?: Buffer }[],
): Promise<Buffer> {
  const pack = tarPack();
  for (const e of entries) {
    const header: Partial<TarHeader> & { name: string } = {
      name: e.name,
      type: e.type ?? 'file',
      size: e.data?.length ?? 0,
      mtime: new Date(0),
    };
    if (e.linkname) header.linkname = e.linkname;
    if (e.data) pack.entry(header, e.data);
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return execFileSync('xz', ['-c', '-0'], { input: Buffer.concat(chunks) });
}

const release = (tag: string, assets: FakeAsset[]): FakeRelease => ({
  tag,
  publishedAt: '2025-05-01T00:00:00Z',
  assets,
});

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gl-fetch-'));
  const releases: FakeRelease[] = [];
  for (const l of layouts) {
    const r = await generateSampleRelease({
      dir: join(root, 'gen', l.version),
      version: l.version,
      commit8: 'abcdef12',
      arches: ['amd64', 'arm64'],
      sizes: { raw: 6 * 1024 * 1024, rawData: 700 * 1024 },
      ...l.options,
    });
    generated.set(l.version, r.assets);
    releases.push(
      release(
        l.version,
        r.assets.map((a) => ({ name: a.name, path: a.path })),
      ),
    );
  }

  // Faults, on good archives: each asset of 2150.9.0 misbehaves in its own way.
  const f = await generateSampleRelease({
    dir: join(root, 'gen', '2150.9.0'),
    version: '2150.9.0',
    commit8: '99999999',
    arches: ['amd64', 'arm64'],
    layout: 'flat',
    flavors: [
      { asset: 'kvm-gardener_prod', kind: 'kvm' },
      { asset: 'baremetal_pxe', kind: 'metal' },
    ],
  });
  generated.set('2150.9.0', f.assets);
  const fault: Record<string, Partial<FakeAsset>> = {
    'kvm-gardener_prod-amd64': { digest: `sha256:${'0'.repeat(64)}` },
    'kvm-gardener_prod-arm64': { truncateAt: 5000 },
    'baremetal_pxe-amd64': { dropFirst: 2, throttleFirst: 1 },
    'baremetal_pxe-arm64': { dropFirst: 1, noRange: true },
  };
  releases.push(
    release(
      '2150.9.0',
      f.assets.map((a) => ({ name: a.name, path: a.path, ...fault[`${a.flavor}-${a.arch}`] })),
    ),
  );

  // Bad archives.
  const good = (await readFile((f.assets[0] as SampleAsset).path)) as Buffer;
  const corrupt = Buffer.from(good);
  for (let i = 200; i < 260; i++) corrupt[i] = (corrupt[i] as number) ^ 0x5a;
  const b = (cname: string): string => `${cname}-amd64-2150.8.0-88888888`;
  releases.push(
    release('2150.8.0', [
      { name: `${b('corrupt')}.tar.xz`, data: corrupt },
      { name: `${b('notxz')}.tar.xz`, data: Buffer.from('this is not xz at all') },
      {
        name: `${b('dotdot')}.tar.xz`,
        data: await tarXz([{ name: `../${b('dotdot')}.raw`, data: Buffer.from('x') }]),
      },
      {
        name: `${b('abs')}.tar.xz`,
        data: await tarXz([{ name: `/tmp/${b('abs')}.raw`, data: Buffer.from('x') }]),
      },
      {
        name: `${b('link')}.tar.xz`,
        data: await tarXz([{ name: `${b('link')}.raw`, type: 'symlink', linkname: '../../../etc/passwd' }]),
      },
      {
        name: `${b('empty')}.tar.xz`,
        data: await tarXz([
          { name: `${b('empty')}.release`, data: Buffer.from('ID=x\n') },
          { name: 'README', data: Buffer.from('hi') },
        ]),
      },
      {
        name: `${b('nostub')}.tar.xz`,
        data: await tarXz([
          { name: `${b('nostub')}.tar`, data: Buffer.alloc(1024) },
          { name: `${b('nostub')}.pxe.tar.gz`, data: Buffer.from('not gzip') },
        ]),
      },
      {
        name: `${b('bomb')}.tar.xz`,
        data: await tarXz(Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: Buffer.from('x') }))),
      },
    ]),
  );
  server = await startGitHubApiServer({ releases, token });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

async function releaseOf(version: string): Promise<GardenLinuxRelease> {
  return resolveRelease({ apiUrl: server.apiUrl, token, version, logger: memoryLogger() });
}

function expectedFor(version: string, name: string): SampleAsset {
  const a = generated.get(version)?.find((x) => x.name === name);
  if (!a) throw new Error(`no sample ${name}`);
  return a;
}

/** The folder holds nothing (or does not exist): no half-extracted files, no temp files. */
async function expectEmpty(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => []);
  expect(entries).toEqual([]);
}

describe('fetchFlavorArtifacts', () => {
  it('fetches every layout, both arches, in parallel, and the files match what was packed', async () => {
    const jobs: {
      version: string;
      flavor: { asset: string; alternatives?: string[] };
      kind: 'kvm' | 'metal';
      arch: 'amd64' | 'arm64';
    }[] = [];
    for (const l of layouts) {
      for (const fl of l.options.flavors) {
        for (const arch of ['amd64', 'arm64'] as const) {
          // Ask with the new names: the old release must resolve through the alternatives.
          const flavor =
            fl.asset === 'metal_pxe'
              ? { asset: 'baremetal_pxe', alternatives: ['metal_pxe'] }
              : { asset: fl.asset };
          jobs.push({ version: l.version, flavor, kind: fl.kind, arch });
        }
      }
    }
    const releases = new Map<string, GardenLinuxRelease>();
    for (const l of layouts) releases.set(l.version, await releaseOf(l.version));
    const before = server.requests.length;
    const logger = memoryLogger();
    const results = await mapLimit(jobs, 4, async (job) => {
      const rel = releases.get(job.version) as GardenLinuxRelease;
      const asset = findFlavorAsset(rel, job.flavor, job.arch);
      expect(asset.name).not.toMatch(/logs/);
      const dir = join(root, 'out', job.version, asset.name);
      const artifacts = await fetchFlavorArtifacts({
        asset,
        kind: job.kind,
        arch: job.arch,
        dir,
        token,
        apiUrl: server.apiUrl,
        logger,
        retry: fast,
      });
      return { job, asset, artifacts };
    });
    expect(results).toHaveLength(14);
    for (const { job, asset, artifacts } of results) {
      const sample = expectedFor(job.version, asset.name);
      expect(artifacts.base).toBe(sample.base);
      expect(artifacts.archive).toEqual({ digest: sample.digest, size: sample.size });
      const exp = sample.expected ?? {};
      const keys =
        job.kind === 'kvm'
          ? ['raw', 'release', 'manifest', 'sbom']
          : ['kernel', 'initrd', 'squashfs', 'efiStub', 'release', 'manifest', 'sbom'];
      expect(Object.keys(artifacts.files).sort()).toEqual(keys.sort());
      for (const key of keys) {
        const got = artifacts.files[key as keyof typeof artifacts.files];
        const want = exp[key as keyof typeof exp] as { digest: string; size: number };
        expect({ key, digest: got?.digest, size: got?.size }).toEqual({
          key,
          digest: want.digest,
          size: want.size,
        });
        expect((await stat(got!.path)).size).toBe(want.size);
      }
      expect(artifacts.cmdline).toBe(exp.cmdline);
      if (job.kind === 'metal')
        expect(artifacts.files.efiStub?.path).toMatch(
          job.arch === 'amd64' ? /linuxx64\.efi\.stub$/ : /linuxaa64\.efi\.stub$/,
        );
    }
    // The token went to the API host only; the download host got the redirected requests without it.
    const mine = server.requests.slice(before);
    const downloads = mine.filter((r) => r.host.startsWith('127.0.0.2:'));
    expect(downloads.length).toBe(14);
    expect(downloads.every((r) => r.headers.authorization === undefined)).toBe(true);
    const api = mine.filter((r) => r.host.startsWith('127.0.0.1:'));
    expect(api.every((r) => r.headers.authorization === `Bearer ${token}`)).toBe(true);
    expect(api.every((r) => r.headers.accept === 'application/octet-stream')).toBe(true);
  });

  it.each([
    ['GNU', '2150.2.0'],
    ['PAX 1.0', '2150.3.0'],
  ])('extracts a %s sparse .raw byte for byte as GNU tar does, keeping holes', async (_kind, version) => {
    const rel = await releaseOf(version);
    const asset = findFlavorAsset(rel, { asset: 'kvm-gardener_prod' }, 'amd64');
    const sample = expectedFor(version, asset.name);
    const members = execFileSync('bash', ['-c', `xz -dc "$1" | tar -tvvf -`, '_', sample.path]).toString();
    expect(members).toMatch(/\.raw/);
    // The raw is stored sparse: the tar stream is far smaller than the image.
    expect(
      Number(execFileSync('bash', ['-c', `xz -dc "$1" | wc -c`, '_', sample.path]).toString()),
    ).toBeLessThan(2 * 1024 * 1024);
    const dir = join(root, 'sparse', version);
    const a = await fetchFlavorArtifacts({
      asset,
      kind: 'kvm',
      arch: 'amd64',
      dir,
      token,
      logger: memoryLogger(),
      retry: fast,
    });
    const ref = join(root, 'sparse-ref', version);
    execFileSync('mkdir', ['-p', ref]);
    execFileSync('tar', ['-xSf', sample.path, '-C', ref]);
    const refRaw = join(ref, `${sample.base}.raw`);
    execFileSync('cmp', [a.files.raw!.path, refRaw]);
    const st = await stat(a.files.raw!.path);
    expect(st.size).toBe(6 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(st.size / 2);
  });

  it('uses the WASM xz fallback when asked', async () => {
    const rel = await releaseOf('2150.1.0');
    const asset = findFlavorAsset(rel, { asset: 'baremetal_pxe' }, 'arm64');
    const a = await fetchFlavorArtifacts({
      asset,
      kind: 'metal',
      arch: 'arm64',
      dir: join(root, 'wasm'),
      token,
      logger: memoryLogger(),
      xz: 'wasm',
    });
    expect(a.files.efiStub?.digest).toBe(expectedFor('2150.1.0', asset.name).expected?.efiStub?.digest);
  });

  it('waits out a 403 secondary rate limit on the download host, then resumes broken downloads with Range', async () => {
    const rel = await releaseOf('2150.9.0');
    for (const arch of ['amd64', 'arm64'] as const) {
      const asset = findFlavorAsset(rel, { asset: 'baremetal_pxe' }, arch);
      const before = server.requests.length;
      const logger = memoryLogger();
      const a = await fetchFlavorArtifacts({
        asset,
        kind: 'metal',
        arch,
        dir: join(root, 'resume', arch),
        token,
        logger,
        retry: { ...fast, attempts: 4 },
      });
      expect(a.archive.digest).toBe(asset.digest);
      expect(logger.lines.some((l) => l.includes('interrupted'))).toBe(true);
      if (arch === 'amd64')
        expect(
          logger.lines.some((l) =>
            l.includes('HTTP 403: {"message":"You have exceeded a secondary rate limit'),
          ),
        ).toBe(true);
      const ranges = server.requests
        .slice(before)
        .filter((r) => r.host.startsWith('127.0.0.2:') && r.headers.range);
      expect(ranges.length).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('fetchFlavorArtifacts refuses bad input and leaves nothing behind', () => {
  const cases: [string, string, 'kvm' | 'metal', RegExp][] = [
    ['a digest mismatch', 'kvm-gardener_prod-amd64-2150.9.0', 'kvm', /digest mismatch/],
    ['a truncated download', 'kvm-gardener_prod-arm64-2150.9.0', 'kvm', /failed after 3 attempts/],
    ['a corrupt xz stream', 'corrupt-amd64-2150.8.0', 'kvm', /xz stream is corrupt|corrupt tar header/],
    ['a file that is not xz', 'notxz-amd64-2150.8.0', 'kvm', /xz stream is corrupt/],
    ['a member with ../', 'dotdot-amd64-2150.8.0', 'kvm', /refusing member path with '\.\.'/],
    ['an absolute member', 'abs-amd64-2150.8.0', 'kvm', /refusing absolute member path/],
    ['an escaping symlink', 'link-amd64-2150.8.0', 'kvm', /refusing link .* pointing outside/],
    [
      'an archive without the .raw',
      'empty-amd64-2150.8.0',
      'kvm',
      /archive lacks empty-amd64-2150\.8\.0-88888888\.raw/,
    ],
    ['a broken PXE tarball', 'nostub-amd64-2150.8.0', 'metal', /incorrect header check|lacks/],
  ];
  it.each(cases)('%s', async (_what, prefix, kind, message) => {
    const version = prefix.split('-').pop() as string;
    const rel = await releaseOf(version);
    const asset = rel.assets.find((a) => a.name.startsWith(`${prefix}-`));
    expect(asset).toBeDefined();
    const dir = join(root, 'bad', prefix, 'out');
    const error = await fetchFlavorArtifacts({
      asset: asset!,
      kind,
      arch: 'amd64',
      dir,
      token,
      logger: memoryLogger(),
      retry: fast,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PublishError);
    expect((error as Error).message).toMatch(message);
    await expectEmpty(dir);
    // Nothing escaped next to the output folder either.
    expect((await readdir(join(root, 'bad', prefix)).catch(() => [])).filter((n) => n !== 'out')).toEqual([]);
  });

  it('stops an archive bomb at the member limit', async () => {
    const rel = await releaseOf('2150.8.0');
    const asset = rel.assets.find((a) => a.name.startsWith('bomb-'))!;
    const dir = join(root, 'bad', 'bomb');
    await expect(
      fetchFlavorArtifacts({
        asset,
        kind: 'kvm',
        arch: 'amd64',
        dir,
        token,
        logger: memoryLogger(),
        limits: { maxMembers: 10 },
      }),
    ).rejects.toThrow(/more than 10 members/);
    await expectEmpty(dir);
  });

  it('stops a member over the size limit and removes what was already written', async () => {
    const rel = await releaseOf('2150.1.0');
    const asset = findFlavorAsset(rel, { asset: 'kvm-gardener_prod' }, 'amd64');
    const dir = join(root, 'bad', 'big');
    await expect(
      fetchFlavorArtifacts({
        asset,
        kind: 'kvm',
        arch: 'amd64',
        dir,
        token,
        logger: memoryLogger(),
        limits: { maxFileBytes: 1024 * 1024 },
      }),
    ).rejects.toThrow(/over the limit/);
    await expectEmpty(dir);
  });
});

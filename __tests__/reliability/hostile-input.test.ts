// Bad input through the bundled action: hostile archives served as release assets, hostile API answers
// (edited by the proxy in front of the GitHub API stand-in), and hostile inputs. Each must end with one
// clear `::error::` line, no stack trace, nothing pushed, no secret echoed, and no file written outside
// the action's temporary folder (which is itself cleaned up). The archive gaps left by
// __tests__/gardenlinux/fetch.test.ts are filled here: hard links out, a member longer than its header,
// a member count past the limit, an xz bomb, a PXE tarball that is not gzip, a stub that is not PE.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeRelease } from '../../src/sample/github-server';
import { generateSampleRelease } from '../../src/sample/release';
import type { ActionRun } from '../helpers/action';
import type { ProxyHook } from '../oci/registry/proxy';
import { CREDS, GITHUB_TOKEN, publishThroughProxies, startWorld, type World } from './world';

const MARKER = `/tmp/reliability-escape-${process.pid}`;
const UP = '../'.repeat(12);

/** One ustar header (+ data, padded) — written by hand so headers can lie. */
function tarMember(
  name: string,
  data: Buffer | string,
  options: { type?: string; linkname?: string; claimedSize?: number } = {},
): Buffer {
  const body = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${(options.claimedSize ?? body.length).toString(8).padStart(11, '0')}\0`, 124);
  header.write('14534272000\0', 136);
  header.write('        ', 148);
  header.write(options.type ?? '0', 156);
  if (options.linkname) header.write(options.linkname, 157, 100, 'utf8');
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header, body, pad]);
}

const endOfTar = Buffer.alloc(1024);
const xz = (tar: Buffer): Buffer =>
  execFileSync('xz', ['-0', '-T1', '-c'], { input: tar, maxBuffer: 1 << 30 });
const gzip = (data: Buffer): Buffer => execFileSync('gzip', ['-n', '-c'], { input: data });

interface ArchiveCase {
  what: string;
  version: string;
  kind: 'kvm' | 'metal';
  message: RegExp;
  build: (base: string) => Buffer | Promise<Buffer>;
}

const ARCHIVES: ArchiveCase[] = [
  {
    what: 'a hard link pointing outside (../)',
    version: '2150.8.1',
    kind: 'kvm',
    message: /refusing member path with '\.\.'/,
    build: (b) =>
      xz(Buffer.concat([tarMember(`${b}.raw`, '', { type: '1', linkname: `${UP}${MARKER}` }), endOfTar])),
  },
  {
    what: 'a hard link to an absolute path',
    version: '2150.8.2',
    kind: 'kvm',
    message: /refusing absolute member path/,
    build: (b) => xz(Buffer.concat([tarMember(`${b}.raw`, '', { type: '1', linkname: MARKER }), endOfTar])),
  },
  {
    what: 'a symlink out, then a file written through it',
    version: '2150.8.3',
    kind: 'kvm',
    message: /refusing link .* pointing outside/,
    build: (b) =>
      xz(
        Buffer.concat([
          tarMember('escape', '', { type: '2', linkname: `${UP}tmp` }),
          tarMember(`escape/${MARKER.slice(5)}`, 'pwned'),
          tarMember(`${b}.raw`, 'x'),
          endOfTar,
        ]),
      ),
  },
  {
    what: 'a member bigger than its header says',
    version: '2150.8.4',
    kind: 'kvm',
    message: /corrupt tar header|checksum|unexpected end/i,
    build: (b) =>
      xz(
        Buffer.concat([tarMember(`${b}.release`, Buffer.alloc(8192, 0x41), { claimedSize: 100 }), endOfTar]),
      ),
  },
  {
    what: 'an xz bomb (a tiny archive whose member claims 80 GiB)',
    version: '2150.8.5',
    kind: 'kvm',
    message: /claims \d+ bytes, over the limit|more than/,
    build: (b) => {
      // GNU base-256 size field: 80 GiB of zeros that xz would shrink to a few KB per GB.
      const head = tarMember(`${b}.raw`, '');
      const size = 80n * 1024n ** 3n;
      head[124] = 0x80;
      for (let i = 0; i < 11; i++) head[135 - i] = Number((size >> BigInt(8 * i)) & 0xffn);
      head.write('        ', 148);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += head[i]!;
      head.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
      return xz(Buffer.concat([head.subarray(0, 512), Buffer.alloc(1024 * 1024), endOfTar]));
    },
  },
  {
    what: 'a nested pxe.tar.gz that is not gzip',
    version: '2150.8.6',
    kind: 'metal',
    message: /incorrect header check|not in gzip format|gzip/i,
    build: (b) =>
      xz(
        Buffer.concat([
          tarMember(`${b}.pxe.tar.gz`, Buffer.from('PK\x03\x04 this is a zip, not gzip')),
          endOfTar,
        ]),
      ),
  },
  {
    what: 'a pxe.tar.gz whose gzip holds an escaping member',
    version: '2150.8.7',
    kind: 'metal',
    message: /refusing member path with '\.\.'/,
    build: (b) =>
      xz(
        Buffer.concat([
          tarMember(
            `${b}.pxe.tar.gz`,
            gzip(Buffer.concat([tarMember(`${UP}${MARKER.slice(1)}`, 'pwned'), endOfTar])),
          ),
          endOfTar,
        ]),
      ),
  },
];

/**
 * A million tiny members: past the 1,000,000-member limit. 512 MB of tar, about 6 s here, so it runs in CI;
 * RELIABILITY_LIGHT=1 leaves it out on a slow machine.
 */
const HEAVY = process.env.RELIABILITY_LIGHT !== '1';

interface InputCase {
  what: string;
  inputs: Record<string, string>;
  message: RegExp;
}

const INPUTS: InputCase[] = [
  {
    what: 'a version with $(...)',
    inputs: { version: '$(touch /tmp/pwned)' },
    message: /invalid Garden Linux version/,
  },
  {
    what: 'a version with a newline and a workflow command',
    inputs: { version: '2150.1.0\n::add-mask::x' },
    message: /invalid Garden Linux version/,
  },
  {
    what: 'a 100,000-character version',
    inputs: { version: '1'.repeat(100_000) },
    message: /invalid Garden Linux version/,
  },
  {
    what: 'a flavor image with shell characters',
    inputs: { flavors: '- {image: "gl;rm -rf /", variant: metal, asset: baremetal_pxe}' },
    message: /invalid repository name/,
  },
  {
    what: 'a flavor asset with a newline',
    inputs: { flavors: '- {image: gl, variant: kvm, asset: "kvm\\nx"}' },
    message: /asset pattern .* may only hold/,
  },
  { what: 'flavors YAML that is a map', inputs: { flavors: 'image: gl\nvariant: kvm' }, message: /list/ },
  { what: 'flavors YAML that is a string', inputs: { flavors: '"just text"' }, message: /list/ },
  { what: 'flavors that are not YAML', inputs: { flavors: '- {image: [' }, message: /YAML|flavors/ },
  {
    what: 'select-flavors with shell characters',
    inputs: { 'select-flavors': '`id`' },
    message: /names no flavor/,
  },
  {
    what: 'a registry host with a path',
    inputs: { registry: '127.0.0.1:5000/evil/path' },
    message: /invalid registry/,
  },
  {
    what: 'a registry host with credentials in it',
    inputs: { registry: `user:${CREDS.password}@127.0.0.1:5000` },
    message: /invalid registry/,
  },
  { what: 'a registry with a scheme', inputs: { registry: 'https://ghcr.io' }, message: /invalid registry/ },
  {
    what: 'a namespace with a newline',
    inputs: { namespace: 'ok\nbad' },
    message: /invalid repository name/,
  },
  { what: 'a very long tag suffix', inputs: { 'tag-suffix': 'x'.repeat(5000) }, message: /tag-suffix/ },
];

describe('hostile input: one clear error, nothing published, nothing written outside', () => {
  let world: World;
  let assetsDir: string;
  let sandbox: string;

  beforeAll(async () => {
    assetsDir = await mkdtemp(join(tmpdir(), 'hostile-assets-'));
    const releases: FakeRelease[] = [];
    for (const c of ARCHIVES) {
      const pattern = c.kind === 'kvm' ? 'kvm-gardener_prod' : 'baremetal_pxe';
      const base = `${pattern}-amd64-${c.version}-88888888`;
      releases.push({ tag: c.version, assets: [{ name: `${base}.tar.xz`, data: await c.build(base) }] });
    }
    // A stub that is not a PE file, in an otherwise well-formed release.
    const notPe = await generateSampleRelease({
      dir: join(assetsDir, 'not-pe'),
      version: '2150.8.8',
      commit8: '88888888',
      flavors: [{ asset: 'baremetal_pxe', kind: 'metal' }],
      arches: ['amd64'],
      layout: 'flat',
      stubs: { amd64: Buffer.from('#!/bin/sh\necho this is not a PE file\n'.repeat(20)) },
    });
    releases.push({ tag: '2150.8.8', assets: notPe.assets.map((a) => ({ name: a.name, path: a.path })) });
    if (HEAVY) {
      const base = 'kvm-gardener_prod-amd64-2150.8.9-88888888';
      const file = join(assetsDir, `${base}.tar.xz`);
      // 1,000,001 empty members, streamed into xz.
      const one = tarMember('m', '');
      const script = `import sys\nh=bytes.fromhex("${one.toString('hex')}")\nw=sys.stdout.buffer\nfor i in range(1000001): w.write(h)\nw.write(bytes(1024))`;
      execFileSync('bash', ['-c', `python3 -c "$1" | xz -0 -T2 -c > "$2"`, '_', script, file]);
      releases.push({ tag: '2150.8.9', assets: [{ name: `${base}.tar.xz`, path: file }] });
    }
    world = await startWorld({ extraReleases: releases });
    sandbox = await mkdtemp(join(tmpdir(), 'hostile-sandbox-'));
  });
  afterAll(async () => {
    await world?.stop();
    await rm(assetsDir, { recursive: true, force: true });
    await rm(sandbox, { recursive: true, force: true });
    await rm(MARKER, { force: true });
  });

  async function catalog(): Promise<string[]> {
    const res = await fetch(`http://${world.registry.host}/v2/_catalog?n=1000`, {
      headers: {
        authorization: `Basic ${Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64')}`,
      },
    });
    return ((await res.json()) as { repositories?: string[] }).repositories ?? [];
  }

  /** The common verdict: one clear error matching `message`, nothing pushed, nothing left behind. */
  async function expectCleanRefusal(run: ActionRun, message: RegExp, namespace: string): Promise<void> {
    const errors = run.stdout.split('\n').filter((l) => l.startsWith('::error::'));
    expect(run.code, run.stdout.slice(-2000)).toBe(1);
    expect(errors, run.stdout.slice(-2000)).toHaveLength(1);
    expect(errors[0]).toMatch(message);
    expect(run.stdout + run.stderr).not.toMatch(/\n\s+at /);
    // `::add-mask::<secret>` is how the runner learns what to mask; nothing else may carry a secret.
    const printed = `${run.stdout}\n${run.stderr}\n${run.summary}`
      .split('\n')
      .filter((l) => !l.startsWith('::add-mask::'))
      .join('\n');
    for (const secret of [CREDS.password, GITHUB_TOKEN]) expect(printed).not.toContain(secret);
    expect((await catalog()).filter((r) => r.startsWith(`${namespace}/`))).toEqual([]);
    expect(existsSync(MARKER)).toBe(false);
    // The action's work folder (under TMPDIR) is removed after a failure.
    expect(await readdir(sandbox)).toEqual([]);
  }

  const inSandbox = (): Record<string, string> => ({ TMPDIR: sandbox });

  it.each(ARCHIVES.map((c) => [c.what, c] as const))('archive: %s', async (_what, c) => {
    const namespace = `archive-${c.version.replace(/\./g, '-')}`;
    const run = await publishThroughProxies(world, namespace, {
      inputs: {
        version: c.version,
        architectures: 'amd64',
        flavors:
          c.kind === 'kvm'
            ? '- {image: gardenlinux/gardener, variant: kvm, asset: kvm-gardener_prod}'
            : '- {image: gardenlinux, variant: metal, asset: baremetal_pxe}',
      },
      env: inSandbox(),
    });
    await expectCleanRefusal(run, c.message, namespace);
  });

  it('archive: an EFI stub that is not a PE file', async () => {
    const run = await publishThroughProxies(world, 'archive-not-pe', {
      inputs: {
        version: '2150.8.8',
        architectures: 'amd64',
        flavors: '- {image: gardenlinux, variant: metal, asset: baremetal_pxe}',
      },
      env: inSandbox(),
    });
    await expectCleanRefusal(run, /PE|stub/i, 'archive-not-pe');
  });

  it.runIf(HEAVY)(
    'archive: a million tiny members (past the member limit)',
    async () => {
      const run = await publishThroughProxies(world, 'archive-million', {
        inputs: {
          version: '2150.8.9',
          architectures: 'amd64',
          flavors: '- {image: gardenlinux/gardener, variant: kvm, asset: kvm-gardener_prod}',
        },
        env: inSandbox(),
        timeoutMs: 170_000,
      });
      await expectCleanRefusal(run, /more than 1000000 members/, 'archive-million');
    },
    180_000,
  );

  const API: [string, ProxyHook, RegExp][] = [
    [
      'a release JSON without id and tag_name',
      (r) =>
        r.url.includes('/releases/tags/')
          ? {
              kind: 'edit',
              edit: (a) => {
                const doc = JSON.parse(a.body.toString()) as Record<string, unknown>;
                delete doc.id;
                delete doc.tag_name;
                return { ...a, body: Buffer.from(JSON.stringify(doc)) };
              },
            }
          : undefined,
      /lacks or mistypes id, tag_name/,
    ],
    [
      'an asset list whose next link repeats forever',
      (r) =>
        /\/releases\/\d+\/assets/.test(r.url)
          ? {
              kind: 'edit',
              edit: (a) => ({
                ...a,
                headers: { ...a.headers, link: `<http://${r.headers.host}${r.url}>; rel="next"` },
              }),
            }
          : undefined,
      /pagination loops|paging past/,
    ],
    [
      'an asset list whose next link never ends (page after page)',
      (r) => {
        if (!/\/releases\/\d+\/assets/.test(r.url)) return undefined;
        const url = new URL(r.url, `http://${r.headers.host}`);
        url.searchParams.set('page', String(Number(url.searchParams.get('page') ?? 1) + 1));
        return {
          kind: 'edit',
          edit: (a) => ({ ...a, headers: { ...a.headers, link: `<${url.href}>; rel="next"` } }),
        };
      },
      /paging past 200 pages/,
    ],
    [
      'asset digests in an unknown algorithm',
      (r) =>
        /\/releases\/\d+\/assets/.test(r.url)
          ? {
              kind: 'edit',
              edit: (a) => ({
                ...a,
                body: Buffer.from(
                  a.body.toString().replace(/"sha256:[0-9a-f]{64}"/g, `"sha3-512:${'ab'.repeat(64)}"`),
                ),
              }),
            }
          : undefined,
      /not sha256:<64 hex>; refusing to publish a download that cannot be verified/,
    ],
    [
      'an asset download redirecting in a loop',
      (r) =>
        r.url.includes('/releases/assets/')
          ? { kind: 'respond', status: 302, headers: { location: `http://${r.headers.host}${r.url}` } }
          : undefined,
      /too many redirects/,
    ],
    [
      'an asset download redirecting to a non-HTTP URL',
      (r) =>
        r.url.includes('/releases/assets/')
          ? { kind: 'respond', status: 302, headers: { location: `file://${MARKER}` } }
          : undefined,
      /redirect.*(not HTTP|file:)/i,
    ],
  ];

  it.each(API)('API answer: %s', async (what, hook, message) => {
    const namespace = `api-${what
      .replace(/[^a-z]+/gi, '')
      .toLowerCase()
      .slice(0, 20)}`;
    world.apiProxy.hook = hook;
    try {
      const run = await publishThroughProxies(world, namespace, { env: inSandbox() });
      await expectCleanRefusal(run, message, namespace);
    } finally {
      world.apiProxy.hook = undefined;
    }
  });

  it.each(INPUTS.map((c) => [c.what, c] as const))('input: %s', async (_what, c) => {
    const run = await publishThroughProxies(world, c.inputs.namespace ?? 'inputs', {
      inputs: c.inputs,
      env: inSandbox(),
    });
    await expectCleanRefusal(run, c.message, 'inputs');
    // Printed values are escaped: a newline in an input never starts a line of its own.
    expect(run.stdout).not.toMatch(/^::add-mask::x/m);
  });
});

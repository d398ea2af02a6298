import { mkdtemp, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSampleRelease, type SampleReleaseOptions } from '../../src/sample/release';
import { startGitHubApiServer } from '../../src/sample/github-server';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gl-sample-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const options = (dir: string): SampleReleaseOptions => ({
  dir,
  version: '2150.1.0',
  commit8: '0123abcd',
  layout: 'folder',
  withLogs: true,
  arches: ['amd64', 'arm64'],
  flavors: [
    { asset: 'kvm-gardener_prod', kind: 'kvm' },
    { asset: 'baremetal-gardener_pxe', kind: 'metal' },
  ],
  stubs: { amd64: Buffer.from('MZ amd64 stub'), arm64: Buffer.from('MZ arm64 stub') },
});

describe('generateSampleRelease', () => {
  it('gives the same bytes for the same inputs (the demo needs stable digests)', async () => {
    const a = await generateSampleRelease(options(join(root, 'a')));
    const b = await generateSampleRelease(options(join(root, 'b')));
    expect(a.assets.map((x) => [x.name, x.digest])).toEqual(b.assets.map((x) => [x.name, x.digest]));
    expect(a.assets).toHaveLength(8);
    expect(a.assets.filter((x) => x.companion).map((x) => x.name)).toContain(
      'kvm-gardener_prod-amd64-2150.1.0-0123abcd.logs.tar.xz',
    );
  });

  it('lays out members like the real archives', async () => {
    const r = await generateSampleRelease({ ...options(join(root, 'c')), layout: 'flat', withLogs: false });
    const metal = r.assets.find((x) => x.kind === 'metal' && x.arch === 'arm64')!;
    const list = execFileSync('tar', ['-tf', metal.path]).toString().split('\n').filter(Boolean);
    expect(list).toContain(`${metal.base}.pxe.tar.gz`);
    expect(list).toContain(`${metal.base}.tar`);
    const rootfs = execFileSync('bash', [
      '-c',
      'tar -xOf "$1" "$2" | tar -tf -',
      '_',
      metal.path,
      `${metal.base}.tar`,
    ]).toString();
    expect(rootfs).toContain('usr/lib/systemd/boot/efi/linuxaa64.efi.stub');
    expect(rootfs).not.toMatch(/^\.\//m);
    const pxe = execFileSync('bash', [
      '-c',
      'tar -xOf "$1" "$2" | tar -tzf -',
      '_',
      metal.path,
      `${metal.base}.pxe.tar.gz`,
    ]).toString();
    expect(pxe.split('\n').filter(Boolean).sort()).toEqual(['cmdline', 'initrd', 'root.squashfs', 'vmlinuz']);
    expect(metal.expected?.efiStub?.size).toBe('MZ arm64 stub'.length);
  });
});

describe('startGitHubApiServer', () => {
  it('pages with Link headers and redirects downloads to the other host', async () => {
    const server = await startGitHubApiServer({
      releases: [
        {
          tag: '2150.1.0',
          assets: Array.from({ length: 5 }, (_, i) => ({ name: `a${i}`, data: Buffer.from(`asset ${i}`) })),
        },
      ],
    });
    try {
      const list = await fetch(
        `${server.apiUrl}/repos/gardenlinux/gardenlinux/releases/1000/assets?per_page=2`,
      );
      expect(list.headers.get('link')).toContain('rel="next"');
      const page = (await list.json()) as { url: string; digest: string }[];
      expect(page).toHaveLength(2);
      const redirect = await fetch(page[0]!.url, {
        headers: { accept: 'application/octet-stream' },
        redirect: 'manual',
      });
      expect(redirect.status).toBe(302);
      expect(redirect.headers.get('location')).toContain(server.downloadUrl);
      const ranged = await fetch(redirect.headers.get('location')!, { headers: { range: 'bytes=2-' } });
      expect(ranged.status).toBe(206);
      expect(await ranged.text()).toBe('set 0');
    } finally {
      await server.stop();
    }
  });
});

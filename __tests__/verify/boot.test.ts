// Boots generated images with real QEMU and UEFI firmware (OVMF, AAVMF) under TCG, through each boot path,
// and checks the verdicts: the `_fwcfg` hook's report, the console fallback, and each kind of failure.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUki, embeddedInitrdSource } from '../../src/boot';
import { silentLogger } from '../../src/util/logger';
import { bootImage, type BootPath, type BootRequest } from '../../src/verify';
import { makeBootableArtifacts, WELCOME, type BootableArtifacts, type InitMode } from '../helpers/bootable';

/** The IronCore metal UKI command line: Ignition pointed at an unreachable host, VGA console last. */
const METAL_CMDLINE =
  'initrd=initrd gl.ovl=/:tmpfs gl.live=1 ip=any console=ttyS0,115200 console=tty0 earlyprintk=ttyS0,115200 consoleblank=0 ignition.firstboot=1 ignition.config.url=http://boot.onmetal.de:8083/ignition ignition.config.url.append.uuid=true ignition.platform.id=metal';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'boot-test-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function metalUki(a: BootableArtifacts, dir: string, arch: 'amd64' | 'arm64'): Promise<string> {
  const uki = await buildUki({
    builder: 'native',
    kernel: a.kernel,
    initrd: await embeddedInitrdSource({ initrd: a.initrd, squashfs: a.squashfs }),
    stub: a.stub,
    arch,
    cmdline: METAL_CMDLINE,
    output: join(dir, 'uki.efi'),
    logger: silentLogger,
  });
  return uki.path;
}

const images = new Map<string, { artifacts: BootableArtifacts; uki: string }>();
async function image(arch: 'amd64' | 'arm64', mode: InitMode) {
  const key = `${arch}-${mode}`;
  let found = images.get(key);
  if (!found) {
    const dir = join(work, key);
    const artifacts = await makeBootableArtifacts({ dir, arch, version: '2150.1.0', mode });
    found = { artifacts, uki: await metalUki(artifacts, dir, arch) };
    images.set(key, found);
  }
  return found;
}

async function boot(
  arch: 'amd64' | 'arm64',
  mode: InitMode,
  path: BootPath,
  extra: Partial<BootRequest> = {},
) {
  const { artifacts, uki } = await image(arch, mode);
  return bootImage({
    image: `test-${arch}-${mode}`,
    arch,
    path,
    files: {
      uki,
      kernel: artifacts.kernel,
      initramfs: artifacts.initrd,
      squashfs: artifacts.squashfs,
      disk: artifacts.raw,
    },
    commandLine: 'gl.ovl=/:tmpfs gl.live=1 ip=any',
    accelerator: 'tcg',
    timeoutSeconds: 600,
    expectHook: true,
    workDir: join(work, `${arch}-${mode}-${path}-${Math.random().toString(36).slice(2, 8)}`),
    logger: silentLogger,
    ...extra,
  });
}

describe('booting images under QEMU (TCG)', { timeout: 600_000 }, () => {
  it.each(['uki', 'pxe', 'disk'] as const)(
    'amd64 %s boot reaches userspace and the hook reports running',
    async (path) => {
      const result = await boot('amd64', 'good', path);
      expect(result.tail.join('\n')).toContain(WELCOME);
      expect(result).toMatchObject({ result: 'passed', signal: 'hook', accelerator: 'tcg', path });
      const log = (await stat(result.serialLog)).size;
      expect(log).toBeGreaterThan(1000);
      if (path === 'pxe') expect(result.tail.join('\n')).toContain('squashfs from /run/root.squashfs');
      if (path === 'uki') {
        // SMBIOS type 11 reached the kernel: Ignition off, serial console last.
        expect(result.tail.join('\n')).toMatch(
          /cmdline: .*ignition\.firstboot=1.* ignition\.firstboot=0 console=ttyS0,115200/,
        );
      }
    },
  );

  it('arm64 UKI boot under TCG reaches userspace', async () => {
    const result = await boot('arm64', 'good', 'uki', { timeoutSeconds: 240 });
    expect(result).toMatchObject({ result: 'passed', signal: 'hook', accelerator: 'tcg', arch: 'arm64' });
    expect(result.tail.join('\n')).toContain(`${WELCOME} 2150.1.0 (squashfs from /root.squashfs)!`);
  });

  it('an image without the hook passes on the console marker', async () => {
    const result = await boot('amd64', 'nohook', 'uki', { expectHook: false });
    expect(result).toMatchObject({ result: 'passed', signal: 'console' });
    expect(result.detail).toContain(WELCOME);
  });

  it.each([
    ['panic', 'kernel panic', /Attempted to kill init/],
    ['emergency', 'emergency shell', /emergency mode/],
    ['degraded', 'unit failed', /degraded; failed: boottest-broken\.service/],
  ] as const)('an init that %s fails with the reason "%s"', async (mode, reason, detail) => {
    const result = await boot('amd64', mode, 'uki');
    expect(result.result).toBe('failed');
    expect(result.reason).toBe(reason);
    expect(`${result.detail}\n${result.tail.join('\n')}`).toMatch(detail);
  });

  it('a hanging init fails with a timeout', async () => {
    const started = Date.now();
    const result = await boot('amd64', 'hang', 'pxe', { timeoutSeconds: 40 });
    expect(result).toMatchObject({ result: 'failed', reason: 'timeout' });
    expect(result.detail).toBe('no sign of a running system within 40 s');
    expect(result.tail.join('\n')).toContain('waiting for ever');
    expect(Date.now() - started).toBeLessThan(90_000);
  });
});

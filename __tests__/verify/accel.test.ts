// The accelerator choice. KVM does not work on the development and CI machines (/dev/kvm exists, a KVM guest
// hangs or QEMU aborts), so these tests never depend on it: `auto` must fall back quickly, the probe guest must
// be valid code (it runs under TCG with the exit status that means "it ran"), and `kvm` where it cannot work is
// one clear error.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseAccelerator, findQemu, probeGuest, probeKvm } from '../../src/verify';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'accel-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('accelerator choice', () => {
  it.each(['amd64', 'arm64'] as const)(
    'the %s probe guest runs under TCG and exits with its status',
    async (arch) => {
      const image = join(dir, `probe-${arch}.bin`);
      const { args, expectedExit } = await probeGuest(arch, 'tcg', image);
      const qemu = await findQemu(arch);
      const code = await promisify(execFile)(qemu, args, { timeout: 20_000 }).then(
        () => 0,
        (error: { code?: number }) => error.code,
      );
      expect(code).toBe(expectedExit);
    },
  );

  it('auto decides within seconds, and says why', async () => {
    const qemu = await findQemu('amd64');
    const started = Date.now();
    const choice = await chooseAccelerator('auto', 'amd64', qemu);
    expect(Date.now() - started).toBeLessThan(15_000);
    const probe = await probeKvm(qemu, 'amd64');
    // Whatever this machine can do, the choice follows the probe.
    expect(choice.accelerator).toBe(probe.works ? 'kvm' : 'tcg');
    if (!probe.works) expect(choice.why).toMatch(/^KVM not usable: /);
  });

  it('tcg is taken as asked; a foreign guest is emulated under auto and refused under kvm', async () => {
    const qemu = await findQemu('arm64');
    expect((await chooseAccelerator('tcg', 'amd64', await findQemu('amd64'))).accelerator).toBe('tcg');
    expect(await chooseAccelerator('auto', 'arm64', qemu)).toEqual({
      accelerator: 'tcg',
      why: 'arm64 guest on an x64 host: emulated',
    });
    await expect(chooseAccelerator('kvm', 'arm64', qemu)).rejects.toThrow(
      'boot-test-accel is kvm, but an arm64 guest cannot use KVM on an x64 host',
    );
  });

  it('kvm where the probe fails is one error with what to do', async () => {
    const qemu = await findQemu('amd64');
    const probe = await probeKvm(qemu, 'amd64');
    if (probe.works) {
      expect((await chooseAccelerator('kvm', 'amd64', qemu)).accelerator).toBe('kvm');
    } else {
      await expect(chooseAccelerator('kvm', 'amd64', qemu)).rejects.toThrow(/KVM does not work here: /);
    }
  });
});

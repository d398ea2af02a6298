// KVM when the guest's architecture is the host's and KVM really runs a guest; TCG otherwise. `/dev/kvm`
// opening is not enough: on nested-virtualisation hosts it opens, and then QEMU aborts (`failed to set MSR`
// with -cpu host) or the guest hangs. So `auto` runs a probe guest of a few instructions with the very
// machine and CPU options a boot would use; it exits with a known status within a second when KVM works,
// and anything else (an abort, another status, no exit within a few seconds) means TCG.
import { constants } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PublishError } from '../util/errors';
import { hostArch, machineArguments, spawnQemu, stopQemu, type Accelerator, type GuestArch } from './qemu';

export type AcceleratorChoice = 'auto' | 'kvm' | 'tcg';

const PROBE_SECONDS = 8;
export const KVM_ACCESS_HINT =
  "give the runner user access to /dev/kvm (GitHub's runners: a udev rule, as `install-qemu: true` writes), or use boot-test-accel: tcg";

/**
 * amd64: a 64 KiB "BIOS" whose reset vector (the last 16 bytes below 4 GiB) runs `mov al,0x10; out 0xf4,al`:
 * QEMU's isa-debug-exit device then exits with (0x10 << 1) | 1 = 33.
 */
function amd64Probe(): Buffer {
  const rom = Buffer.alloc(64 * 1024);
  rom.set([0xb0, 0x10, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd], 0xfff0); // mov al,0x10; out 0xf4,al; hlt; jmp hlt
  return rom;
}

/** arm64: a bare image loaded by -kernel that calls PSCI SYSTEM_OFF (0x84000008) over HVC: QEMU exits 0. */
function arm64Probe(): Buffer {
  const code = Buffer.alloc(16);
  [0x52800100, 0x72b08000, 0xd4000002, 0x14000000].forEach((insn, i) => code.writeUInt32LE(insn, i * 4));
  return code; // movz w0,#8; movk w0,#0x8400,lsl #16; hvc #0; b .
}

/**
 * The probe guest written to `image`, and the QEMU arguments and exit status of a run that executed it. The
 * same guest runs under TCG too (the tests check it does), so a KVM failure is KVM's, not the probe's.
 */
export async function probeGuest(
  arch: GuestArch,
  accelerator: Accelerator,
  image: string,
): Promise<{ args: string[]; expectedExit: number }> {
  await writeFile(image, arch === 'amd64' ? amd64Probe() : arm64Probe());
  const args = [
    ...machineArguments(arch, accelerator),
    '-m',
    '64',
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    ...(arch === 'amd64'
      ? ['-bios', image, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04']
      : ['-kernel', image]),
  ];
  return { args, expectedExit: arch === 'amd64' ? 33 : 0 };
}

export interface ProbeResult {
  works: boolean;
  /** Why KVM is not used, for the log. */
  reason: string;
}

const probes = new Map<string, Promise<ProbeResult>>();

/** Runs the probe guest under KVM once per QEMU binary (cached for the process). */
export function probeKvm(qemu: string, arch: GuestArch): Promise<ProbeResult> {
  const key = `${qemu}:${arch}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = runProbe(qemu, arch);
    probes.set(key, probe);
  }
  return probe;
}

async function runProbe(qemu: string, arch: GuestArch): Promise<ProbeResult> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      works: false,
      reason: code === 'ENOENT' ? '/dev/kvm does not exist' : `/dev/kvm cannot be opened (${code})`,
    };
  }
  const dir = await mkdtemp(join(tmpdir(), 'kvm-probe-'));
  try {
    const image = join(dir, 'probe.bin');
    const { args, expectedExit: expected } = await probeGuest(arch, 'kvm', image);
    const child = await spawnQemu(qemu, args);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    child.stdout?.resume();
    const outcome = await new Promise<{ code: number | null } | 'timeout' | Error>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), PROBE_SECONDS * 1000);
      child.once('error', (error) => {
        clearTimeout(timer);
        resolve(error);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code });
      });
    });
    await stopQemu(child);
    if (outcome === 'timeout')
      return {
        works: false,
        reason: `a KVM guest did not finish within ${PROBE_SECONDS} s (nested KVM that hangs)`,
      };
    if (outcome instanceof Error) return { works: false, reason: `cannot start ${qemu}: ${outcome.message}` };
    if (outcome.code === expected) return { works: true, reason: 'KVM probe guest ran' };
    const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
    return { works: false, reason: `a KVM guest failed (exit ${outcome.code}${last ? `: ${last}` : ''})` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The accelerator for one guest, and why (logged per image). */
export async function chooseAccelerator(
  choice: AcceleratorChoice,
  arch: GuestArch,
  qemu: string,
): Promise<{ accelerator: Accelerator; why: string }> {
  if (choice === 'tcg') return { accelerator: 'tcg', why: 'boot-test-accel: tcg' };
  const native = hostArch() === arch;
  if (!native) {
    if (choice === 'kvm') {
      throw new PublishError(
        `boot-test-accel is kvm, but an ${arch} guest cannot use KVM on an ${process.arch} host`,
        {
          hint: 'use boot-test-accel: auto (emulates foreign architectures) or boot-test: native',
        },
      );
    }
    return { accelerator: 'tcg', why: `${arch} guest on an ${process.arch} host: emulated` };
  }
  const probe = await probeKvm(qemu, arch);
  if (probe.works) return { accelerator: 'kvm', why: probe.reason };
  if (choice === 'kvm') {
    throw new PublishError(`boot-test-accel is kvm, but KVM does not work here: ${probe.reason}`, {
      hint: KVM_ACCESS_HINT,
    });
  }
  return { accelerator: 'tcg', why: `KVM not usable: ${probe.reason}` };
}

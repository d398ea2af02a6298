// Everything about starting QEMU in one place (the mkosi habit): which binary, the machine and CPU for each
// architecture and accelerator, and a child process that cannot outlive us.
import { spawn, type ChildProcess } from 'node:child_process';
import { findOnPath } from '../util/system';
import { PublishError } from '../util/errors';

export type GuestArch = 'amd64' | 'arm64';
export type Accelerator = 'kvm' | 'tcg';

export const QEMU_BINARY: Record<GuestArch, string> = {
  amd64: 'qemu-system-x86_64',
  arm64: 'qemu-system-aarch64',
};

export const QEMU_PACKAGES: Record<GuestArch, string[]> = {
  amd64: ['qemu-system-x86', 'ovmf'],
  arm64: ['qemu-system-arm', 'qemu-efi-aarch64'],
};

export function qemuInstallHint(arch: GuestArch): string {
  return (
    `install it: \`sudo apt-get install -y ${QEMU_PACKAGES[arch].join(' ')}\` ` +
    '(in the action, set `install-qemu: true`), or turn boot tests off with `boot-test: none`'
  );
}

/** The architecture Node runs on, in OCI terms (undefined on hosts that cannot boot either guest natively). */
export function hostArch(): GuestArch | undefined {
  if (process.arch === 'x64') return 'amd64';
  if (process.arch === 'arm64') return 'arm64';
  return undefined;
}

export async function findQemu(arch: GuestArch): Promise<string> {
  const binary = await findOnPath(QEMU_BINARY[arch]);
  if (!binary) {
    throw new PublishError(
      `${QEMU_BINARY[arch]} is not installed: it is needed to boot-test ${arch} images`,
      {
        hint: qemuInstallHint(arch),
      },
    );
  }
  return binary;
}

/** Machine, accelerator and CPU: q35 / virt, `-cpu host` under KVM (kola, mkosi), the widest model under TCG. */
export function machineArguments(arch: GuestArch, accelerator: Accelerator): string[] {
  if (arch === 'amd64')
    return ['-machine', 'q35', '-accel', accelerator, '-cpu', accelerator === 'kvm' ? 'host' : 'max'];
  // pauth-impdef: QEMU's default pointer-authentication algorithm is slow to emulate (QEMU issue 2656).
  return [
    '-machine',
    'virt,gic-version=max',
    '-accel',
    accelerator,
    '-cpu',
    accelerator === 'kvm' ? 'host' : 'max,pauth-impdef=on',
  ];
}

let setprivPath: Promise<string | undefined> | undefined;

/**
 * Starts QEMU so that it dies with us: through util-linux's `setpriv --pdeathsig KILL` where it exists (every
 * Debian and Ubuntu), so even a SIGKILLed publisher leaves no VM behind. Callers still kill it on every path.
 */
export async function spawnQemu(
  binary: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<ChildProcess> {
  setprivPath ??= findOnPath('setpriv');
  const setpriv = await setprivPath;
  const [command, commandArgs] = setpriv
    ? [setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args]]
    : [binary, args];
  return spawn(command, commandArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
}

/** Kills the VM and waits until it is gone (SIGKILL: a guest has nothing to save). */
export async function stopQemu(child: ChildProcess): Promise<void> {
  // Never started (spawn failed: no 'close' will come), or gone already.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.kill('SIGKILL');
  await gone;
}

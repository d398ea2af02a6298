// Paths to the real components .ci/setup installs (real Debian kernels, real systemd-boot stubs, ukify 254),
// shared by every test and bench that needs them. A missing piece fails loudly with the command that installs
// it, instead of a test silently skipping: those tests are the point.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type RealArch = 'amd64' | 'arm64';

const SETUP_HINT =
  'run `eval "$(bash .ci/setup)"` in the repository first (it installs and exports IRONCORE_TOOLS_DIR)';

export function toolsDir(): string {
  return (
    process.env.IRONCORE_TOOLS_DIR ||
    join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ironcore-publisher-tools')
  );
}

function required(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: ${SETUP_HINT}`);
  return path;
}

/** A real Debian cloud kernel (vmlinuz) for `arch`. */
export function realKernel(arch: RealArch): string {
  return required(join(toolsDir(), 'kernels', `vmlinuz-${arch}`), `the real ${arch} kernel`);
}

/** The real systemd-boot EFI stub (Debian systemd-boot-efi) for `arch`. */
export function realStub(arch: RealArch): string {
  return required(
    join(toolsDir(), 'stubs', arch === 'amd64' ? 'linuxx64.efi.stub' : 'linuxaa64.efi.stub'),
    `the real ${arch} systemd-boot stub`,
  );
}

/** The ukify wrapper (systemd 254 from bookworm-backports, run with /usr/bin/python3). */
export function realUkify(): string {
  return required(join(toolsDir(), 'bin', 'ukify'), 'ukify');
}

/** A PATH with the tools folder first, for child processes that must find `ukify` by name. */
export function pathWithTools(basePath = process.env.PATH ?? ''): string {
  return `${join(toolsDir(), 'bin')}:${basePath}`;
}

/** Fails with the install hint when a command (mksquashfs, cpio, xz) is not on PATH. */
export function requireCommand(command: string, debianPackage: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${command} is not installed (Debian package ${debianPackage}): ${SETUP_HINT}`);
  }
}

// Small helpers for the programs the pipeline runs on the host: finding one on PATH, running one to the end,
// and installing Debian/Ubuntu packages the way GitHub's runners allow it (root, or passwordless sudo).
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { Logger } from './logger';

/** The first executable `name` on PATH, or undefined. */
export async function findOnPath(name: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to the end, keeping the tail of its output (the last lines carry the reason). */
export function runCommand(
  command: string,
  args: string[],
  signal?: AbortSignal,
  options: { input?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(signal ? { signal } : {}),
    });
    let stdout = '';
    let stderr = '';
    const keep = (text: string) => (text.length > 16384 ? text.slice(-16384) : text);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => void (stdout = keep(stdout + d)));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => void (stderr = keep(stderr + d)));
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.once('error', reject);
    child.once('close', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}

/**
 * How to run a command as root without a prompt: nothing when we are root, `sudo -n` when sudo needs no
 * password (GitHub's runners); undefined when neither works.
 */
export async function rootPrefix(signal?: AbortSignal): Promise<string[] | undefined> {
  if (process.getuid?.() === 0) return [];
  const sudo = await findOnPath('sudo');
  if (!sudo) return undefined;
  const check = await runCommand(sudo, ['-n', 'true'], signal).catch(() => undefined);
  return check?.code === 0 ? [sudo, '-n'] : undefined;
}

/** Runs a command as root (see rootPrefix); undefined when that is not possible here. */
export async function runAsRoot(
  args: string[],
  signal?: AbortSignal,
  options: { input?: string } = {},
): Promise<CommandResult | undefined> {
  const prefix = await rootPrefix(signal);
  if (!prefix) return undefined;
  const [command, ...rest] = [...prefix, ...args];
  return runCommand(command as string, rest, signal, options);
}

/**
 * `apt-get install -y` of `packages` as root, refreshing the package lists once when the first try fails (a
 * runner's lists may predate a package). Returns false, with a warning, when it could not install them.
 */
export async function aptInstall(packages: string[], logger: Logger, signal?: AbortSignal): Promise<boolean> {
  if (!(await rootPrefix(signal))) {
    logger.warning(`cannot install ${packages.join(' ')}: not root and no passwordless sudo`);
    return false;
  }
  const apt = (...args: string[]) =>
    runAsRoot(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args], signal);
  logger.info(`installing ${packages.join(' ')} with apt-get`);
  let result = await apt('install', '-y', '-q', '--no-install-recommends', ...packages);
  if (result?.code !== 0) {
    await apt('update', '-q');
    result = await apt('install', '-y', '-q', '--no-install-recommends', ...packages);
  }
  if (result?.code !== 0) {
    logger.warning(
      `apt-get install ${packages.join(' ')} failed: ${(result?.stderr ?? '').trim().split('\n').slice(-3).join(' ')}`,
    );
    return false;
  }
  return true;
}

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
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(options.env ? { env: options.env } : {}),
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
 * password (GitHub's runners), keeping the proxy variables of `env` (see sudoPrefix); undefined when neither
 * works.
 */
export async function rootPrefix(
  signal?: AbortSignal,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[] | undefined> {
  if (process.getuid?.() === 0) return [];
  const sudo = await findOnPath('sudo');
  return sudo ? sudoPrefix(sudo, env, signal) : undefined;
}

/** The proxy variables apt reads (only in lowercase). */
const PROXY_VARIABLES = ['http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy'] as const;

/**
 * The proxy settings of `env` as apt reads them: its lowercase variables, taken from the uppercase forms
 * where only those are set (HTTPS_PROXY alone would leave apt without a proxy). Empty without a proxy.
 */
export function aptProxyEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PROXY_VARIABLES) {
    const value = env[name] || env[name.toUpperCase()];
    if (value) out[name] = value;
  }
  return out;
}

/**
 * `sudo -n`, asking it to keep the proxy variables: sudo's `env_reset` drops them, and apt-get behind a proxy
 * then cannot reach the archive. `--preserve-env=LIST` keeps them out of the command line (a proxy URL may
 * hold a password), and is allowed where the policy grants SETENV (`NOPASSWD: ALL`, as on GitHub's runners);
 * elsewhere plain `sudo -n`. Undefined when sudo asks for a password. `env` is the environment the commands
 * will run with (see aptProxyEnvironment).
 */
export async function sudoPrefix(
  sudo: string,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<string[] | undefined> {
  const keep = PROXY_VARIABLES.filter((name) => env[name]);
  const works = async (prefix: string[]) => {
    const [command, ...rest] = [...prefix, 'true'];
    const check = await runCommand(command as string, rest, signal, { env }).catch(() => undefined);
    return check?.code === 0;
  };
  if (keep.length > 0) {
    const keeping = [sudo, '-n', `--preserve-env=${keep.join(',')}`];
    if (await works(keeping)) return keeping;
  }
  return (await works([sudo, '-n'])) ? [sudo, '-n'] : undefined;
}

/** Runs a command as root (see rootPrefix); undefined when that is not possible here. */
export async function runAsRoot(
  args: string[],
  signal?: AbortSignal,
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult | undefined> {
  const prefix = await rootPrefix(signal, options.env);
  if (!prefix) return undefined;
  const [command, ...rest] = [...prefix, ...args];
  return runCommand(command as string, rest, signal, options);
}

/**
 * `apt-get install -y` of `packages` as root, refreshing the package lists once when the first try fails (a
 * runner's lists may predate a package). Returns false, with a warning, when it could not install them.
 */
export async function aptInstall(packages: string[], logger: Logger, signal?: AbortSignal): Promise<boolean> {
  // Behind a proxy, apt needs it too (it reads only the lowercase variables).
  const proxy = aptProxyEnvironment(process.env);
  const env = { ...process.env, ...proxy };
  const prefix = await rootPrefix(signal, env);
  if (!prefix) {
    logger.warning(`cannot install ${packages.join(' ')}: not root and no passwordless sudo`);
    return false;
  }
  if (
    prefix.length > 0 &&
    Object.keys(proxy).length > 0 &&
    !prefix.some((a) => a.startsWith('--preserve-env='))
  )
    logger.warning(
      `sudo may not keep ${Object.keys(proxy).join(', ')} here, so apt-get runs without the proxy; sudoers can allow it: Defaults env_keep += "${Object.keys(proxy).join(' ')}"`,
    );
  const [command, ...rest] = [...prefix, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get'];
  const apt = (...args: string[]) => runCommand(command as string, [...rest, ...args], signal, { env });
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

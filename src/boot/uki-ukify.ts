// Runs the real `ukify build`, as the current workflow does, for teams that want systemd's own tool in the loop.
// Text arguments go through files (`@path`): ukify 254 collapses whitespace in a --cmdline given as text and
// would read a command line starting with "@" as a path; a file is copied verbatim.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, rename, rm, stat, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { PublishError } from '../util/errors';
import type { Logger } from '../util/logger';
import { hashFile, temporaryPathFor, type HashedFile } from '../util/files';

export const UKIFY_INSTALL_HINT =
  "install it: on GitHub's Ubuntu 24.04 runners `sudo apt-get install -y systemd-ukify` (it also needs python3-pefile and, " +
  'for arm64 kernels, readelf from binutils); or use builder "native", which needs nothing outside Node';

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

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], signal?: AbortSignal): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
    let stdout = '';
    let stderr = '';
    // Keep the tail: a Python traceback's last lines carry the reason.
    const keep = (text: string) => (text.length > 16384 ? text.slice(-16384) : text);
    child.stdout.setEncoding('utf8').on('data', (d: string) => void (stdout = keep(stdout + d)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => void (stderr = keep(stderr + d)));
    child.once('error', reject);
    child.once('close', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}

/**
 * Installs systemd-ukify with apt-get, only when that can happen without a password prompt (root, or
 * passwordless sudo as on GitHub's runners). Returns the ukify path, or undefined when it could not.
 */
export async function installUkify(logger: Logger, signal?: AbortSignal): Promise<string | undefined> {
  const isRoot = process.getuid?.() === 0;
  let prefix: string[] = [];
  if (!isRoot) {
    const sudo = await findOnPath('sudo');
    if (!sudo || (await run(sudo, ['-n', 'true'], signal).catch(() => undefined))?.code !== 0) {
      logger.warning('ukify is missing and cannot be installed: not root and no passwordless sudo');
      return undefined;
    }
    prefix = [sudo, '-n'];
  }
  const apt = async (...args: string[]) => {
    const [command, ...rest] = [...prefix, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args];
    return run(command as string, rest, signal);
  };
  logger.info('installing systemd-ukify with apt-get');
  let result = await apt('install', '-y', '-q', 'systemd-ukify');
  if (result.code !== 0) {
    // The runner's package lists may predate the package: refresh once and retry.
    await apt('update', '-q');
    result = await apt('install', '-y', '-q', 'systemd-ukify');
  }
  if (result.code !== 0) {
    logger.warning(
      `apt-get install systemd-ukify failed: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`,
    );
    return undefined;
  }
  return findOnPath('ukify');
}

export interface UkifyRunOptions {
  ukify: string;
  kernel: string;
  initrd: string;
  stub: string;
  cmdline: string;
  osRelease?: string;
  output: string;
  logger: Logger;
  signal?: AbortSignal;
  /** false: leave `digest` empty; the caller hashes the output in its own read-back. */
  hashOutput?: boolean;
}

export async function runUkify(options: UkifyRunOptions): Promise<HashedFile> {
  const { logger, signal } = options;
  const temp = temporaryPathFor(options.output);
  const cmdlineFile = `${temp}.cmdline`;
  const args = ['build', '--linux', options.kernel, '--initrd', options.initrd, '--stub', options.stub];
  if (options.cmdline !== '') {
    await writeFile(cmdlineFile, options.cmdline);
    args.push('--cmdline', `@${cmdlineFile}`);
  }
  if (options.osRelease !== undefined) {
    args.push('--os-release', `@${options.osRelease}`);
  } else {
    logger.warning(
      "ukify embeds the build machine's /etc/os-release as .osrel when no os-release is given; pass the release's <base>.release for a reproducible UKI",
    );
  }
  // No signing or PCR options: ukify 254 only signs/measures when asked (keys, --measure), so it needs
  // nothing beyond python3-pefile (and readelf while guessing an arm64 kernel's version).
  args.push('--output', temp);
  logger.info(`running ${options.ukify} ${args.join(' ')}`);
  try {
    let result: RunResult;
    try {
      result = await run(options.ukify, args, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new PublishError(`cannot run ukify (${options.ukify}): ${(error as Error).message}`, {
        cause: error,
        hint: UKIFY_INSTALL_HINT,
      });
    }
    for (const line of result.stdout.split('\n').filter(Boolean)) logger.debug(`ukify: ${line}`);
    if (result.code !== 0) {
      const message = (result.stderr.trim() || result.stdout.trim() || 'no output')
        .split('\n')
        .slice(-20)
        .join('\n');
      throw new PublishError(
        `ukify build failed (${result.code === null ? `signal ${result.signal}` : `exit ${result.code}`}): ${message}`,
      );
    }
    // The caller may hash the UKI itself while it reads it back anyway (verifyAndHashUki).
    const written =
      options.hashOutput === false ? { digest: '', size: (await stat(temp)).size } : await hashFile(temp);
    await rename(temp, options.output);
    return { ...written, path: options.output };
  } finally {
    await rm(temp, { force: true });
    await rm(cmdlineFile, { force: true });
  }
}

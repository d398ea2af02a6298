// Runs the real `ukify build`, as the current workflow does, for teams that want systemd's own tool in the loop.
// Text arguments go through files (`@path`): ukify 254 collapses whitespace in a --cmdline given as text and
// would read a command line starting with "@" as a path; a file is copied verbatim.
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { PublishError } from '../util/errors';
import type { Logger } from '../util/logger';
import { hashFile, noSpaceError, temporaryPathFor, type HashedFile } from '../util/files';
import { aptInstall, findOnPath, runCommand, type CommandResult } from '../util/system';

export { findOnPath };

export const UKIFY_INSTALL_HINT =
  "install it: on GitHub's Ubuntu 24.04 runners `sudo apt-get install -y systemd-ukify` (it also needs python3-pefile and, " +
  'for arm64 kernels, readelf from binutils); or use builder "native", which needs nothing outside Node';

/**
 * Installs systemd-ukify with apt-get, only when that can happen without a password prompt (root, or
 * passwordless sudo as on GitHub's runners). Returns the ukify path, or undefined when it could not.
 */
export async function installUkify(logger: Logger, signal?: AbortSignal): Promise<string | undefined> {
  if (!(await aptInstall(['systemd-ukify'], logger, signal))) return undefined;
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
    let result: CommandResult;
    try {
      result = await runCommand(options.ukify, args, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new PublishError(`cannot run ukify (${options.ukify}): ${(error as Error).message}`, {
        cause: error,
        hint: UKIFY_INSTALL_HINT,
      });
    }
    for (const line of result.stdout.split('\n').filter(Boolean)) logger.debug(`ukify: ${line}`);
    if (result.code !== 0 && /No space left on device|\[Errno 28\]/.test(result.stderr)) {
      // Python's OSError in a traceback says nothing a person can act on; the folder and the sizes do.
      const partial = await stat(temp).then(
        (st) => st.size,
        () => 0,
      );
      throw noSpaceError(
        Object.assign(new Error(result.stderr.trim().split('\n').pop() ?? ''), { code: 'ENOSPC' }),
        options.output,
        partial,
        await inputBytes([options.kernel, options.initrd, options.stub]),
      );
    }
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

/** What a UKI of these inputs at least needs: its sections (the stub's own, the kernel, the initrd). */
async function inputBytes(paths: string[]): Promise<number> {
  let total = 0;
  for (const path of paths)
    total += await stat(path).then(
      (st) => st.size,
      () => 0,
    );
  return total;
}

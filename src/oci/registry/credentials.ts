// Finding credentials the way docker does, so a preceding docker/login-action step is enough:
// explicit values first, then $DOCKER_CONFIG/config.json (or ~/.docker/config.json): `credHelpers.<host>`,
// an `auths.<host>.auth` entry, then the global `credsStore`.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PublishError } from '../../util/errors';
import type { Logger } from '../../util/logger';

export interface Credentials {
  username: string;
  password: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

export function defaultDockerConfigDir(): string {
  return process.env.DOCKER_CONFIG || join(homedir(), '.docker');
}

/** `https://ghcr.io/v1/` and `ghcr.io` name the same registry in config.json keys. */
function normalizeKey(key: string): string {
  return key
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
}

function findEntry<T>(map: Record<string, T> | undefined, registry: string): T | undefined {
  if (!map) return undefined;
  for (const [key, value] of Object.entries(map)) if (normalizeKey(key) === registry) return value;
  return undefined;
}

function decodeAuth(auth: string, registry: string): Credentials {
  const text = Buffer.from(auth, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) {
    throw new PublishError(
      `the docker config entry for ${registry} has an "auth" value that is not base64 user:password`,
    );
  }
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Runs `docker-credential-<helper> get` with the host on stdin; undefined when it knows no credentials. */
export function runCredentialHelper(helper: string, registry: string): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error) =>
      reject(new PublishError(`cannot run the docker credential helper ${program}: ${error.message}`)),
    );
    child.on('close', (code) => {
      // Helpers say "credentials not found in native keychain" on stdout with exit code 1.
      if (code !== 0) {
        if (/credentials not found/i.test(stdout + stderr)) return resolve(undefined);
        // The output of a failing helper is not shown: it might echo a secret.
        return reject(
          new PublishError(
            `the docker credential helper ${program} failed (exit code ${code}) for ${registry}`,
          ),
        );
      }
      try {
        const parsed = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (!parsed.Secret) return resolve(undefined);
        resolve({ username: parsed.Username ?? '', password: parsed.Secret });
      } catch {
        reject(
          new PublishError(
            `the docker credential helper ${program} printed something that is not JSON for ${registry}`,
          ),
        );
      }
    });
    child.stdin.end(registry);
  });
}

export async function resolveCredentials(
  registry: string,
  options: { credentials?: Credentials; dockerConfig?: string; logger: Logger },
): Promise<Credentials | undefined> {
  if (options.credentials) return options.credentials;
  // A folder holding config.json (DOCKER_CONFIG's meaning), or the file itself (ironcore-image's --docker-config-path).
  const file = options.dockerConfig?.endsWith('.json')
    ? options.dockerConfig
    : join(options.dockerConfig ?? defaultDockerConfigDir(), 'config.json');
  let config: DockerConfig;
  try {
    config = JSON.parse(await readFile(file, 'utf8')) as DockerConfig;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PublishError(`cannot read the docker config ${file}: ${(error as Error).message}`);
  }
  const helper = findEntry(config.credHelpers, registry);
  if (helper) {
    options.logger.debug(`credentials for ${registry}: docker-credential-${helper}`);
    return runCredentialHelper(helper, registry);
  }
  const entry = findEntry(config.auths, registry);
  if (entry?.auth) {
    options.logger.debug(`credentials for ${registry}: ${file}`);
    return decodeAuth(entry.auth, registry);
  }
  if (entry?.username && entry.password) return { username: entry.username, password: entry.password };
  if (config.credsStore) {
    options.logger.debug(`credentials for ${registry}: docker-credential-${config.credsStore}`);
    return runCredentialHelper(config.credsStore, registry);
  }
  return undefined;
}

// go-containerregistry (ggcr 0.14, Debian's source built by .ci/setup from __tests__/helpers/go) as the tests'
// independent OCI 1.1 software: ggcrReferrers asks remote.Referrers (the client crane, cosign and Trivy use)
// what refers to a manifest; startGgcrRegistry starts ggcr's in-memory registry with the referrers API on,
// the registry that has what Debian's docker-registry (startRegistry) lacks. Always call stop() (afterAll).
//
// What ggcr 0.14 does, seen by __tests__/helpers/ggcr.test.ts (the lead's design depends on it):
// - its registry answers a manifest PUT that has a `subject` without an `OCI-Subject` header, lists a referrer
//   with the *config* media type as its artifactType (not the manifest's artifactType) and no annotations,
//   ignores `?artifactType=`, and answers 404 NAME_UNKNOWN for the referrers of a repository it does not hold;
// - remote.Referrers filters by artifactType on the client (it sends no query), on both paths, and fails with
//   MANIFEST_UNKNOWN when a registry without the API has no fallback tag for the subject.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { toolsDir } from './real-tools';

const run = promisify(execFile);

/** One entry of a referrers index, as ggcr's v1.Descriptor serialises it. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ReferrersIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: ReferrerDescriptor[];
}

export interface GgcrReferrersOptions {
  /** Plain HTTP (the test registries on 127.0.0.1); default true. */
  plainHttp?: boolean;
  /** Keep only this artifactType (ggcr's remote.WithFilter: applied by the client, see above). */
  artifactType?: string;
  /** Basic auth; the password reaches the helper through its environment, never its command line. */
  creds?: { username: string; password: string };
}

function ggcrBinary(name: 'ggcr-referrers' | 'ggcr-registry'): string {
  const path = join(toolsDir(), 'bin', name);
  if (!existsSync(path))
    throw new Error(
      `${name} not found at ${path}: run \`eval "$(bash .ci/setup)"\` in the repository first (it builds it)`,
    );
  return path;
}

/**
 * The referrers of `subject` (`127.0.0.1:PORT/repo@sha256:<hex>`) as go-containerregistry's
 * `remote.Referrers` reports them: the registry's referrers API, else its `sha256-<hex>` fallback tag.
 */
export async function ggcrReferrers(
  subject: string,
  options: GgcrReferrersOptions = {},
): Promise<ReferrersIndex> {
  const args: string[] = [];
  if (options.plainHttp ?? true) args.push('--plain-http');
  if (options.artifactType !== undefined) args.push('--artifact-type', options.artifactType);
  if (options.creds) args.push('--username', options.creds.username);
  args.push(subject);
  const env = { ...process.env, GGCR_PASSWORD: options.creds?.password ?? '' };
  let stdout: string;
  try {
    ({ stdout } = await run(ggcrBinary('ggcr-referrers'), args, { env, encoding: 'utf8', timeout: 60_000 }));
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`ggcr-referrers ${subject} failed: ${(e.stderr || e.message).trim()}`, { cause: error });
  }
  const index = JSON.parse(stdout) as ReferrersIndex;
  if (typeof index !== 'object' || index === null || !Array.isArray(index.manifests))
    throw new Error(`ggcr-referrers ${subject} printed no image index: ${stdout.slice(0, 500)}`);
  return index;
}

export interface RunningGgcrRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  pid: number | undefined;
  /** The registry's request log so far (one line per request, with the status and error code of failures). */
  log(): string;
  stop(): Promise<void>;
}

/** go-containerregistry's in-memory registry with the OCI 1.1 referrers API, on 127.0.0.1 and a free port. */
export async function startGgcrRegistry(options: { port?: number } = {}): Promise<RunningGgcrRegistry> {
  const child = spawn(ggcrBinary('ggcr-registry'), ['--port', String(options.port ?? 0)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-256 * 1024)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  };
  // The helper prints its address once it listens: the first stdout line.
  let address: string;
  try {
    address = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`ggcr-registry printed no address within 20 s: ${log}`)),
        20_000,
      );
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const newline = out.indexOf('\n');
        if (newline >= 0) {
          clearTimeout(timer);
          resolve(out.slice(0, newline).trim());
        }
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`ggcr-registry exited (${code ?? signal}) before listening: ${log.trim()}`));
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  const match = /^127\.0\.0\.1:(\d+)$/.exec(address);
  if (!match) {
    await stop();
    throw new Error(`ggcr-registry printed ${JSON.stringify(address)}, not 127.0.0.1:PORT`);
  }
  return { host: address, port: Number(match[1]), pid: child.pid, log: () => log, stop };
}

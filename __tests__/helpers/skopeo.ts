// Small wrappers over skopeo, the independent registry/layout client the tests compare against.
// docker:// references are always used with --tls-verify=false (the test registries speak plain HTTP).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SkopeoCreds {
  username: string;
  password: string;
}

function tlsArgs(ref: string, flag: string): string[] {
  return ref.startsWith('docker://') ? [`${flag}=false`] : [];
}

async function skopeo(args: string[]): Promise<Buffer> {
  try {
    const { stdout } = await run('skopeo', args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: Buffer; message: string };
    throw new Error(`skopeo ${args[0]} failed: ${e.stderr?.toString() || e.message}`, { cause: error });
  }
}

/** `skopeo inspect --raw`: the manifest bytes exactly as stored, and their digest. */
export async function skopeoInspectRaw(
  ref: string,
  options: { creds?: SkopeoCreds } = {},
): Promise<{ bytes: Buffer; digest: string }> {
  const args = ['inspect', '--raw', ...tlsArgs(ref, '--tls-verify')];
  if (options.creds) args.push('--creds', `${options.creds.username}:${options.creds.password}`);
  const bytes = await skopeo([...args, ref]);
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

/** `skopeo copy --all src dst` (e.g. docker://host/repo:tag to oci:DIR:tag). */
export async function skopeoCopy(
  src: string,
  dst: string,
  options: { srcCreds?: SkopeoCreds; destCreds?: SkopeoCreds; all?: boolean } = {},
): Promise<void> {
  const args = ['copy', '--quiet', ...(options.all === false ? [] : ['--all'])];
  args.push(...tlsArgs(src, '--src-tls-verify'), ...tlsArgs(dst, '--dest-tls-verify'));
  if (options.srcCreds) args.push('--src-creds', `${options.srcCreds.username}:${options.srcCreds.password}`);
  if (options.destCreds)
    args.push('--dest-creds', `${options.destCreds.username}:${options.destCreds.password}`);
  await skopeo([...args, src, dst]);
}

// Compression through the real `xz` binary (xz-utils is on every GitHub runner and in .ci/setup). Node has no
// xz compressor and liblzma is what the current workflow uses, so the stream is byte-for-byte what
// `xz` writes. The data flows through pipes: nothing is held in memory beyond a chunk or two.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PublishError } from '../util/errors';

export interface XzOptions {
  /**
   * Preset 0-9. Default 0: the payload (a squashfs) is already compressed, so higher presets buy almost
   * nothing (measured: 64 MiB of random data shrinks by the same 0.0% at -0 and -6) while -6 is about 5x slower.
   */
  preset?: number;
  /**
   * Worker threads; default: the CPU count, but at least 2. liblzma's multi-threaded encoder cuts the input into
   * independent blocks of `blockSize`, so its output does not depend on the thread count, while the
   * single-threaded encoder (xz -T1, or xz 5.2's -T0 on a one-CPU machine) writes a different stream.
   * Never going below 2 keeps us in multi-threaded mode everywhere: same input, same bytes, on any runner.
   */
  threads?: number;
  /**
   * Uncompressed bytes per xz block. Fixed (8 MiB) rather than xz's preset-dependent default (3x the dictionary)
   * so the block layout, and thus the bytes, do not depend on a default that could change between xz versions.
   * The kernel's XZ decoder reads multi-block streams (it walks the blocks and the index).
   */
  blockSize?: number;
  signal?: AbortSignal;
}

export const XZ_DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024;

export function xzArguments(options: XzOptions = {}): string[] {
  const preset = options.preset ?? 0;
  if (!Number.isInteger(preset) || preset < 0 || preset > 9)
    throw new PublishError(`xz preset must be 0-9, got ${preset}`);
  const threads = options.threads ?? Math.max(2, availableParallelism());
  if (!Number.isInteger(threads) || threads < 2) {
    throw new PublishError(
      `xz threads must be 2 or more (multi-threaded mode keeps the output deterministic), got ${threads}`,
    );
  }
  return [
    '--compress',
    '--format=xz',
    // The kernel's XZ decoder checks CRC32 (CRC64/SHA-256 are optional there); the workflow uses crc32 too.
    '--check=crc32',
    `-${preset}`,
    `--threads=${threads}`,
    `--block-size=${options.blockSize ?? XZ_DEFAULT_BLOCK_SIZE}`,
    '--stdout',
    '--quiet',
  ];
}

/**
 * Compresses `input` with `xz` and yields the compressed chunks. A missing binary or a non-zero exit is a
 * PublishError carrying xz's stderr; stopping the iteration early (or `signal`) kills the process.
 */
export async function* xzCompress(
  input: AsyncIterable<Uint8Array>,
  options: XzOptions = {},
): AsyncGenerator<Buffer> {
  const args = xzArguments(options);
  const child = spawn('xz', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  exited.catch(() => {}); // observed below; avoid an unhandled rejection while we are still streaming
  const onAbort = () => child.kill('SIGKILL');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let feedError: unknown;
  const feeding = pipeline(Readable.from(input), child.stdin).catch((error: unknown) => {
    feedError = error;
    child.kill('SIGKILL');
  });
  let finished = false;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) yield chunk;
    await feeding;
    let result: { code: number | null; signal: NodeJS.Signals | null };
    try {
      result = await exited;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new PublishError(
          'xz is not installed (needed to compress the initrd with the embedded squashfs)',
          {
            cause: error,
            hint: 'install xz-utils (Debian/Ubuntu: sudo apt-get install -y xz-utils)',
          },
        );
      }
      throw error;
    }
    if (options.signal?.aborted) throw options.signal.reason;
    if (feedError) throw feedError;
    if (result.code !== 0) {
      throw new PublishError(
        `xz ${args.join(' ')} failed (${result.code === null ? `signal ${result.signal}` : `exit ${result.code}`}): ${stderr.trim() || 'no message'}`,
      );
    }
    finished = true;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (!finished && child.exitCode === null) child.kill('SIGKILL');
  }
}

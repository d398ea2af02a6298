// xz decompression as a stream: the system `xz -dc -T<n>` when it is on PATH (several times faster
// than WASM, and multi-threaded for multi-block archives), else the xz-decompress WASM fallback
// for runners without an xz binary.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PublishError } from '../util/errors';

let xzAvailable: Promise<boolean> | undefined;

/** Whether an `xz` binary runs; probed once per process. */
export function hasSystemXz(): Promise<boolean> {
  xzAvailable ??= new Promise((resolve) => {
    const child = spawn('xz', ['--version'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('close', (code) => resolve(code === 0));
  });
  return xzAvailable;
}

export interface XzOptions {
  label: string;
  /** 'auto' (default): system xz when available; 'wasm' forces the fallback (tests, odd runners). */
  engine?: 'auto' | 'system' | 'wasm';
}

export async function* decompressXz(
  source: AsyncIterable<Uint8Array>,
  options: XzOptions,
): AsyncGenerator<Buffer> {
  const engine = options.engine ?? 'auto';
  const system = engine === 'system' || (engine === 'auto' && (await hasSystemXz()));
  if (system) yield* systemXz(source, options.label);
  else yield* wasmXz(source, options.label);
}

function isPipeError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/** xz processes running in this process right now (fetches run side by side). */
let running = 0;

/**
 * Threads for the next xz: a lone fetch gets every core (multi-block archives decode in parallel),
 * fetches running side by side share them, since xz's threading costs some extra CPU per byte and
 * the parallel fetches already keep the cores busy.
 */
function xzThreads(): number {
  return Math.max(1, Math.floor(availableParallelism() / (running + 1)));
}

async function* systemXz(source: AsyncIterable<Uint8Array>, label: string): AsyncGenerator<Buffer> {
  const child = spawn('xz', ['-dc', `-T${xzThreads()}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  running++;
  child.once('close', () => running--);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  let spawnError: Error | undefined;
  const closed = new Promise<number | null>((resolve) => {
    child.on('error', (e) => {
      spawnError = e;
      resolve(null);
    });
    child.on('close', (code) => resolve(code));
  });
  let pumpError: unknown;
  // The source is pumped into xz concurrently; a failing source (download error) kills xz so the
  // reading side ends, and the source's error is the one reported.
  const pump = pipeline(Readable.from(source, { objectMode: false }), child.stdin).catch((error: unknown) => {
    pumpError = error;
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const code = await closed;
    await pump;
    if (pumpError && !isPipeError(pumpError)) throw pumpError;
    if (spawnError) throw new PublishError(`${label}: cannot run xz: ${spawnError.message}`);
    if (code !== 0) {
      throw new PublishError(
        `${label}: xz stream is corrupt: ${stderr.trim().replace(/^xz: \(stdin\): /, '') || `xz exited with ${code}`}`,
      );
    }
    if (pumpError) throw pumpError;
    finished = true;
  } finally {
    if (!finished) {
      if (child.exitCode === null) child.kill('SIGKILL');
      child.stdin.destroy();
      child.stdout.destroy();
      await pump;
    }
  }
}

async function* wasmXz(source: AsyncIterable<Uint8Array>, label: string): AsyncGenerator<Buffer> {
  const { XzReadableStream } = await import('xz-decompress');
  const web = Readable.toWeb(Readable.from(source, { objectMode: false })) as ReadableStream<Uint8Array>;
  const out = new XzReadableStream(web);
  const reader = out.getReader();
  try {
    while (true) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (error) {
        if (error instanceof PublishError) throw error;
        const inner = (error as { cause?: unknown } | null)?.cause;
        if (inner instanceof PublishError) throw inner;
        throw new PublishError(
          `${label}: xz stream is corrupt: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
      }
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

// One flavor archive from GitHub to files on disk in a single streaming pass:
// network -> sha256 of the compressed bytes -> xz -d -> tar -> files (hashed while written).
// Nothing is read twice, memory stays bounded, and a failure leaves no partial output behind.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { PublishError } from '../util/errors';
import { formatBytes } from '../util/progress';
import type { Logger } from '../util/logger';
import { assetBaseName } from './assets';
import { downloadAsset, type RetryOptions } from './download';
import type { Arch, FlavorKind } from './flavors';
import type { ReleaseAsset } from './release';
import { Budget, DEFAULT_TAR_LIMITS, type TarLimits } from './tar/reader';
import { removeWritten, unpackFlavorTar, type FlavorFiles } from './unpack';
import { decompressXz } from './xz';

export interface FlavorArtifacts {
  base: string;
  /** The downloaded archive: `sha256:<hex>` of the compressed bytes, and their count. */
  archive: { digest: string; size: number };
  files: FlavorFiles;
  /** The `cmdline` of the PXE tarball (recent metal releases). */
  cmdline?: string;
}

export interface FetchFlavorOptions {
  asset: ReleaseAsset;
  kind: FlavorKind;
  arch: Arch;
  /** Output folder, one per call (created when missing). */
  dir: string;
  token?: string;
  /** Only used to tell the API host from the download host; the asset carries its own URL. */
  apiUrl?: string;
  logger: Logger;
  signal?: AbortSignal;
  limits?: Partial<TarLimits>;
  retry?: RetryOptions;
  /** xz engine: system binary when available (default) or the WASM fallback. */
  xz?: 'auto' | 'system' | 'wasm';
  timeoutMs?: number;
  /** Only the attachment files (os-release, package list, SBOM); see UnpackOptions. */
  attachmentsOnly?: boolean;
}

export async function fetchFlavorArtifacts(options: FetchFlavorOptions): Promise<FlavorArtifacts> {
  const { asset } = options;
  return unpackFromSource({
    ...options,
    label: asset.name,
    base: assetBaseName(asset),
    expected: { size: asset.size, ...(asset.digest ? { digest: asset.digest } : {}) },
    open: (signal) =>
      downloadAsset({
        url: asset.url,
        size: asset.size,
        label: asset.name,
        logger: options.logger,
        signal,
        ...(options.token ? { token: options.token } : {}),
        ...(options.retry ? { retry: options.retry } : {}),
        ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
      }),
  });
}

export interface UnpackArchiveOptions {
  /** A flavor archive on disk, named like the release asset (`<cname>-<arch>-<version>-<commit8>.tar.xz`). */
  archive: string;
  kind: FlavorKind;
  arch: Arch;
  dir: string;
  logger: Logger;
  signal?: AbortSignal;
  limits?: Partial<TarLimits>;
  xz?: 'auto' | 'system' | 'wasm';
  /** `sha256:<hex>` the archive must have. */
  expectedDigest?: string;
  attachmentsOnly?: boolean;
}

/** The same unpacking for an asset file already on disk (manual builds). */
export async function unpackFlavorArchive(options: UnpackArchiveOptions): Promise<FlavorArtifacts> {
  const name = basename(options.archive);
  const size = await stat(options.archive).then(
    (s) => s.size,
    () => {
      throw new PublishError(`${options.archive}: no such file`);
    },
  );
  return unpackFromSource({
    ...options,
    label: name,
    base: assetBaseName({ name }),
    expected: { size, ...(options.expectedDigest ? { digest: options.expectedDigest } : {}) },
    open: (signal) =>
      createReadStream(options.archive, { highWaterMark: 1024 * 1024, signal }) as AsyncIterable<Buffer>,
  });
}

/** What both entry points (a release asset, a file on disk) hand to the one unpacking pass. */
interface SourceOptions extends Omit<UnpackArchiveOptions, 'archive' | 'expectedDigest'> {
  label: string;
  base: string;
  expected: { size: number; digest?: string };
  open: (signal: AbortSignal) => AsyncIterable<Buffer>;
}

/** Passes the decompressed stream through, refusing one that expands like an xz bomb. */
async function* limitExpansion(
  source: AsyncIterable<Buffer>,
  compressedSoFar: () => number,
  limits: TarLimits,
  label: string,
): AsyncGenerator<Buffer> {
  let out = 0;
  for await (const chunk of source) {
    out += chunk.length;
    if (out > limits.expansionAfterBytes && out > limits.maxExpansion * Math.max(1, compressedSoFar())) {
      throw new PublishError(
        `${label}: decompresses to more than ${limits.maxExpansion} times its size (${formatBytes(out)} from ${formatBytes(compressedSoFar())}), refusing (xz bomb?)`,
      );
    }
    yield chunk;
  }
}

async function unpackFromSource(options: SourceOptions): Promise<FlavorArtifacts> {
  const { logger, label, base } = options;
  const asset = options.expected;
  // A private controller: any failure stops the download and the decompressor at once.
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const written: string[] = [];
  const started = performance.now();
  try {
    await mkdir(options.dir, { recursive: true });
    const hash = createHash('sha256');
    let compressed = 0;
    const download = options.open(controller.signal);
    const hashed = (async function* (): AsyncGenerator<Buffer> {
      for await (const chunk of download) {
        hash.update(chunk);
        compressed += chunk.length;
        yield chunk;
      }
    })();
    const limits = { ...DEFAULT_TAR_LIMITS, ...options.limits };
    const tar = limitExpansion(
      decompressXz(hashed, { label, engine: options.xz ?? 'auto' }),
      () => compressed,
      limits,
      label,
    );
    const result = await unpackFlavorTar(tar, {
      label,
      base,
      kind: options.kind,
      arch: options.arch,
      dir: options.dir,
      budget: new Budget(limits),
      logger,
      signal: controller.signal,
      written,
      ...(options.attachmentsOnly ? { attachmentsOnly: true } : {}),
    });
    const digest = `sha256:${hash.digest('hex')}`;
    if (compressed !== asset.size) {
      throw new PublishError(`${label}: downloaded ${compressed} bytes, the release says ${asset.size}`);
    }
    if (asset.digest && asset.digest !== digest) {
      throw new PublishError(`${label}: digest mismatch: expected ${asset.digest}, downloaded ${digest}`, {
        hint: 'The download was corrupted or the asset was replaced; nothing was kept.',
      });
    }
    if (!asset.digest) logger.debug(`${label}: no digest from GitHub; downloaded ${digest}`);
    const seconds = (performance.now() - started) / 1000;
    logger.info(`${label}: ${Object.keys(result.files).join(', ')} in ${seconds.toFixed(1)}s`);
    const artifacts: FlavorArtifacts = { base, archive: { digest, size: compressed }, files: result.files };
    if (result.cmdline !== undefined) artifacts.cmdline = result.cmdline;
    return artifacts;
  } catch (error) {
    controller.abort();
    await removeWritten(options.dir, written);
    if (error instanceof PublishError) throw error;
    if (options.signal?.aborted) throw error;
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string') {
      // System errors (disk full, permissions) are expected failures, not bugs.
      throw new PublishError(`${label}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

// The whole job: resolve -> plan -> check what is published -> fetch, build and push each missing
// arch image -> variant indexes -> combined indexes. Tags that name an index are written only after
// everything the index names is stored, so a tag never points at missing content.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildUki, embeddedInitrdSource, type UkiBuilderChoice } from '../boot';
import type { FlavorArtifacts } from '../gardenlinux';
import { fileBlob, sparseFileBlob } from '../oci/blob';
import {
  ANNOTATION,
  buildArchImage,
  buildIndex,
  type Architecture,
  type BuiltArchImage,
  type IndexEntry,
  type LayerInput,
} from '../oci/ironcore';
import type { Store } from '../oci/store';
import type { Annotations, SerializedManifest } from '../oci/types';
import { mapLimit, Semaphore } from '../util/concurrency';
import { PublishError, throwIfAborted } from '../util/errors';
import type { HashedFile } from '../util/files';
import type { Logger } from '../util/logger';
import { formatBytes, formatDuration, rate } from '../util/progress';
import { BlobPusher } from './blob-pusher';
import { commandLineFor, flavorKey, ironCoreVariantOf, type Flavor } from './flavors';
import {
  formatTable,
  planPublication,
  planTags,
  type Plan,
  type PlannedArchImage,
  type PlannedImage,
} from './plan';
import type { ArtifactSource } from './sources';
import { BootTester, type BootTestRecord, type BootTestSettings } from './boot-test';
import type { BootFiles } from '../verify';

export interface PublishOptions {
  /** Where artifacts come from (a resolved release, or local files). */
  source: ArtifactSource;
  /** Stores to write to, in order; the first one answers "is it published already?". Empty in a dry run without a layout. */
  stores: Store[];
  /** Read-only store checked for existing tags when `stores` is empty (dry run against a registry). */
  checkStore?: Store;
  /** Registry host shown in full references (`ghcr.io`), or the layout path. */
  referencePrefix: string;
  namespace: string;
  flavors: readonly Flavor[];
  architectures: readonly Architecture[];
  /** Publish even when every tag exists already. */
  force: boolean;
  /** Only (re)assemble indexes from arch images already in the store: no downloads (the matrix's final job). */
  assembleOnly?: boolean;
  /** Write the combined `<version>` index (off in per-flavor matrix jobs). */
  combinedIndex: boolean;
  concurrency: number;
  ukiBuilder: UkiBuilderChoice;
  installUkify?: boolean;
  tagSuffix?: string;
  /** Extra annotations on every manifest and index. */
  annotations?: Annotations;
  description?: string;
  /** Boot-test each built arch image under QEMU before any tag is written (off when absent or `none`). */
  bootTest?: BootTestSettings;
  /** Working folder for downloads and builds; a temporary one (removed afterwards) when not given. */
  workDir?: string;
  logger: Logger;
  signal?: AbortSignal;
}

export interface PublishedImage {
  reference: string;
  digest: string;
  /** Bytes of every blob the manifest names. */
  size: number;
  seconds: number;
  bytesUploaded: number;
  kind: 'arch' | 'variant' | 'combined';
}

export interface PublishResult {
  version: string;
  published: boolean;
  skippedReason?: string;
  /** Every full reference written (or, when skipped, already there). */
  tags: string[];
  /** reference -> digest */
  digests: Record<string, string>;
  images: PublishedImage[];
  bytesUploaded: number;
  /** Every boot of the run, in the order they finished. */
  bootTests: BootTestRecord[];
}

interface ExistingTag {
  digest: string;
  mediaType: string;
  size: number;
}

export async function publish(options: PublishOptions): Promise<PublishResult> {
  const { logger, signal } = options;
  const version = options.source.release.version;
  const plan = planPublication({
    version,
    namespace: options.namespace,
    flavors: options.flavors,
    architectures: options.architectures,
    ...(options.tagSuffix ? { tagSuffix: options.tagSuffix } : {}),
    combined: options.combinedIndex,
  });
  const reference = (repository: string, tag: string): string =>
    `${options.referencePrefix}/${repository}:${tag}`;

  await logger.group('Plan', async () => {
    const rows = planTags(plan).map((r) => [reference(r.repository, r.tag), r.kind, r.what]);
    logger.info(formatTable(['reference', 'kind', 'content'], rows));
    if (!options.assembleOnly) {
      // Fails early (before any download) when an asset is missing.
      for (const arch of archImages(plan)) options.source.describe(arch.flavor, arch.architecture);
    }
  });

  const checkStore = options.stores[0] ?? options.checkStore;
  const existing = await logger.group('Check what is published', () =>
    findExisting(plan, checkStore, options.stores, logger, signal),
  );
  const allTags = planTags(plan);
  const missing = allTags.filter((t) => !existing.has(key(t.repository, t.tag)));
  if (missing.length === 0 && !options.force) {
    logger.info(
      `${version}: all ${allTags.length} tags exist already; nothing to do (use force to publish again)`,
    );
    const digests: Record<string, string> = {};
    for (const t of allTags)
      digests[reference(t.repository, t.tag)] = existing.get(key(t.repository, t.tag))!.digest;
    return {
      version,
      published: false,
      skippedReason: 'already-published',
      tags: Object.keys(digests),
      digests,
      images: [],
      bytesUploaded: 0,
      bootTests: [],
    };
  }

  const toBuild = archImages(plan).filter(
    (a) => options.force || !existing.has(key(repositoryOf(plan, a), a.tag)),
  );
  if (options.assembleOnly) {
    const absent = toBuild.filter((a) => !existing.has(key(repositoryOf(plan, a), a.tag)));
    if (absent.length > 0) {
      throw new PublishError(
        `cannot assemble the indexes: ${absent.map((a) => reference(repositoryOf(plan, a), a.tag)).join(', ')} ${absent.length === 1 ? 'is' : 'are'} not published yet`,
        { hint: 'Run the per-flavor jobs first; the assembling job only combines what they pushed.' },
      );
    }
    toBuild.length = 0;
  }
  logger.info(
    toBuild.length === 0
      ? 'every arch image is published; writing the missing indexes'
      : `${toBuild.length} arch image(s) to build: ${toBuild.map((a) => `${flavorKey(a.flavor)}/${a.architecture}`).join(', ')}`,
  );

  const tester =
    options.bootTest && options.bootTest.mode !== 'none' && toBuild.length > 0
      ? new BootTester(options.bootTest, version, logger)
      : undefined;
  // A missing QEMU or firmware is found before anything is downloaded.
  await tester?.preflight([...new Set(toBuild.map((a) => a.architecture))]);

  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'ironcore-publish-')));
  const pushers = options.stores.map((s) => new BlobPusher(s));
  const results: PublishedImage[] = [];
  const digests: Record<string, string> = {};
  const built = new Map<string, ExistingTag>();
  const bytesBefore = options.stores.reduce((n, s) => n + s.stats.bytesUploaded, 0);
  try {
    // Blobs go up as soon as each arch image is built (streaming, bounded disk), but no tag is written
    // until every arch image of the run is built and stored: a bad archive in one flavor publishes
    // nothing, and a re-run finds the blobs that did go up and sends only the rest.
    // Indexed like toBuild, so tags are written in plan order whatever order the builds finish in.
    const pending: ({ repository: string; tag: string; manifest: SerializedManifest } | undefined)[] = [];
    // Fetching and building an arch image holds one of `concurrency` slots; its upload does not (the stores
    // bound their own uploads), so the next download and decompression start while the last image's blobs
    // go up, instead of the decompressor idling behind the registry. At most 2 x concurrency arch images'
    // files are on disk at once.
    const concurrency = Math.max(1, options.concurrency);
    const building = new Semaphore(concurrency);
    const onDisk = new Semaphore(2 * concurrency);
    let failure: { error: unknown } | undefined;
    const buildAndUpload = async (arch: PlannedArchImage, i: number): Promise<void> => {
      // After a failure nothing new starts; what runs already finishes (its blobs are not wasted).
      if (failure) return;
      throwIfAborted(signal);
      const repository = repositoryOf(plan, arch);
      const started = performance.now();
      const unitDir = join(workDir, `${i}-${arch.flavor.variant}-${arch.architecture}`);
      const product = await building.run(async () =>
        failure ? undefined : buildArchImageFor(arch, unitDir, options),
      );
      if (!product) return;
      const { image } = product;
      const ref = reference(repository, arch.tag);
      let bytesUploaded = 0;
      const upload = async (): Promise<void> => {
        for (const pusher of pushers) {
          const outcomes = await Promise.all(
            image.blobs.map((blob) => pusher.push(repository, blob, signal)),
          );
          bytesUploaded += image.blobs.reduce((n, b, j) => n + (outcomes[j] === 'uploaded' ? b.size : 0), 0);
        }
      };
      // The boot reads the same files the blobs are sent from, while they go up: both must finish (and the
      // files stay) before the image counts as done, and its tag waits for every image of the run. A failed
      // upload stops the boot (the run fails anyway); a failed boot lets the upload finish (a re-run reuses it).
      const bootAbort = new AbortController();
      const onAbort = (): void => bootAbort.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      const boot = async (): Promise<void> => {
        if (tester?.wants(arch.architecture))
          await tester.test(
            ref,
            arch.flavor.variant,
            arch.architecture,
            product.bootFiles,
            product.commandLine,
            bootAbort.signal,
          );
      };
      const [uploaded, booted] = await Promise.allSettled([
        upload().catch((error: unknown) => {
          bootAbort.abort(error);
          throw error;
        }),
        boot(),
      ]).finally(() => signal?.removeEventListener('abort', onAbort));
      if (uploaded.status === 'rejected') throw uploaded.reason;
      if (booted.status === 'rejected') throw booted.reason;
      await rm(unitDir, { recursive: true, force: true });
      const seconds = (performance.now() - started) / 1000;
      pending[i] = { repository, tag: arch.tag, manifest: image.manifest };
      built.set(key(repository, arch.tag), image.manifest);
      digests[ref] = image.manifest.digest;
      const size = image.blobs.reduce((n, b) => n + b.size, 0) + image.manifest.size;
      results.push({
        reference: ref,
        digest: image.manifest.digest,
        size,
        seconds,
        bytesUploaded,
        kind: 'arch',
      });
      logger.info(
        `${ref} ${image.manifest.digest} built and uploaded (${formatBytes(size)} in ${formatDuration(seconds)})`,
      );
    };
    await logger.group(
      tester ? 'Fetch, build, upload and boot-test arch images' : 'Fetch, build and upload arch images',
      async () => {
        await Promise.all(
          toBuild.map((arch, i) =>
            onDisk
              .run(() => buildAndUpload(arch, i))
              .catch((error: unknown) => {
                failure ??= { error };
              }),
          ),
        );
        if (failure) throw failure.error;
      },
    );

    await logger.group('Write arch image tags', async () => {
      for (const { repository, tag, manifest } of pending.filter((p) => p !== undefined)) {
        for (const store of options.stores)
          await store.repository(repository).pushManifest(manifest, [tag], signal);
        logger.info(`${reference(repository, tag)} ${manifest.digest}`);
      }
    });

    await logger.group('Write indexes', async () => {
      for (const image of plan.images) {
        const combinedEntries: IndexEntry[] = [];
        for (const variant of image.variants) {
          const entries: IndexEntry[] = variant.arches.map((arch) => ({
            manifest: childOf(image, arch.tag, built, existing),
            architecture: arch.architecture,
            annotations: {
              [ANNOTATION.variant]: ironCoreVariantOf(variant.flavor.variant),
              [ANNOTATION.architecture]: arch.architecture,
            },
          }));
          combinedEntries.push(...entries);
          const index = buildIndex(entries, indexAnnotations(options, image, [variant.flavor]));
          await writeIndex(image, variant.tag, index, 'variant');
          built.set(key(image.repository, variant.tag), index);
        }
        if (image.combinedTag) {
          const index = buildIndex(
            combinedEntries,
            indexAnnotations(
              options,
              image,
              image.variants.map((v) => v.flavor),
            ),
          );
          await writeIndex(image, image.combinedTag, index, 'combined');
        }
      }
    });
  } finally {
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }

  async function writeIndex(
    image: PlannedImage,
    tag: string,
    index: SerializedManifest,
    kind: 'variant' | 'combined',
  ): Promise<void> {
    const ref = reference(image.repository, tag);
    digests[ref] = index.digest;
    const before = existing.get(key(image.repository, tag));
    if (before?.digest === index.digest && !options.force && options.stores.every((s) => s === checkStore)) {
      logger.info(`${ref} already names ${index.digest}`);
      return;
    }
    const started = performance.now();
    for (const store of options.stores)
      await store.repository(image.repository).pushManifest(index, [tag], signal);
    results.push({
      reference: ref,
      digest: index.digest,
      size: index.size,
      seconds: (performance.now() - started) / 1000,
      bytesUploaded: 0,
      kind,
    });
    logger.info(`${ref} ${index.digest}`);
  }

  const bytesUploaded = options.stores.reduce((n, s) => n + s.stats.bytesUploaded, 0) - bytesBefore;
  // Tags that already named the right content (not rebuilt) are part of the version too.
  for (const t of allTags) {
    const ref = reference(t.repository, t.tag);
    digests[ref] ??= existing.get(key(t.repository, t.tag))?.digest ?? '';
  }
  const ordered = allTags.map((t) => reference(t.repository, t.tag));
  return {
    version,
    published: options.stores.length > 0,
    ...(options.stores.length === 0 ? { skippedReason: 'dry-run' } : {}),
    tags: ordered,
    digests: Object.fromEntries(ordered.filter((r) => digests[r]).map((r) => [r, digests[r]!])),
    images: results,
    bytesUploaded,
    bootTests: tester?.records ?? [],
  };
}

function key(repository: string, tag: string): string {
  return `${repository}:${tag}`;
}

function archImages(plan: Plan): PlannedArchImage[] {
  return plan.images.flatMap((i) => i.variants.flatMap((v) => v.arches));
}

function repositoryOf(plan: Plan, arch: PlannedArchImage): string {
  return plan.images.find((i) => i.image === arch.flavor.image)!.repository;
}

function childOf(
  image: PlannedImage,
  tag: string,
  built: Map<string, ExistingTag>,
  existing: Map<string, ExistingTag>,
): ExistingTag {
  const found = built.get(key(image.repository, tag)) ?? existing.get(key(image.repository, tag));
  if (!found) throw new Error(`internal: ${image.repository}:${tag} is neither built nor published`);
  return found;
}

/**
 * Tags present in every store (a tag missing from one of them counts as missing). The digest comes
 * from the first store; the manifest's size and media type are needed to name it in an index.
 */
async function findExisting(
  plan: Plan,
  checkStore: Store | undefined,
  stores: Store[],
  logger: Logger,
  signal: AbortSignal | undefined,
): Promise<Map<string, ExistingTag>> {
  const found = new Map<string, ExistingTag>();
  if (!checkStore) return found;
  const rows = planTags(plan);
  await mapLimit(rows, 8, async (row) => {
    const manifest = await checkStore.repository(row.repository).getManifest(row.tag, signal);
    if (!manifest) return;
    for (const other of stores) {
      if (other === checkStore) continue;
      if ((await other.repository(row.repository).resolveTag(row.tag, signal)) !== manifest.digest) return;
    }
    found.set(key(row.repository, row.tag), {
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      size: manifest.bytes.length,
    });
  });
  logger.info(`${found.size} of ${rows.length} tags exist in ${checkStore.description}`);
  return found;
}

function indexAnnotations(options: PublishOptions, image: PlannedImage, flavors: Flavor[]): Annotations {
  const release = options.source.release;
  const variants = [...new Set(flavors.map((f) => f.variant))].join(' and ');
  const description =
    options.description ??
    `Garden Linux ${release.version} as an IronCore OS image (${variants}, ${options.architectures.join(' and ')})`;
  return {
    ...releaseAnnotations(options),
    [ANNOTATION.title]: `${image.image} ${release.version}`,
    [ANNOTATION.description]: description.slice(0, 512),
  };
}

function releaseAnnotations(options: PublishOptions): Annotations {
  const release = options.source.release;
  return {
    [ANNOTATION.version]: release.version,
    ...(release.url ? { [ANNOTATION.source]: release.url } : {}),
    ...(release.publishedAt ? { [ANNOTATION.created]: release.publishedAt } : {}),
    ...(release.commit ? { [ANNOTATION.revision]: release.commit } : {}),
    'io.gardenlinux.version': release.version,
    ...(release.commit ? { 'io.gardenlinux.commit': release.commit } : {}),
    ...options.annotations,
  };
}

interface BuiltForPublish {
  image: BuiltArchImage;
  /** The files the layers are sent from, by role: what a boot test boots. */
  bootFiles: BootFiles;
  commandLine: string | undefined;
}

async function buildArchImageFor(
  arch: PlannedArchImage,
  dir: string,
  options: PublishOptions,
): Promise<BuiltForPublish> {
  const { flavor, architecture } = arch;
  const { logger, signal } = options;
  const artifacts = await options.source.fetch(flavor, architecture, dir, logger, signal);
  const layer = (
    role: LayerInput['role'],
    file: HashedFile | undefined,
    title: string,
    what: string,
  ): LayerInput => {
    if (!file) {
      throw new PublishError(
        `${artifacts.base}: the archive holds no ${what}; cannot build the ${flavor.variant} image`,
      );
    }
    const label = `${artifacts.base} ${title}`;
    const blob = file.dataExtents
      ? sparseFileBlob(file.path, file.digest, file.size, file.dataExtents, label)
      : fileBlob(file.path, file.digest, file.size, label);
    return { role, blob, title };
  };
  const annotations: Annotations = { ...releaseAnnotations(options), 'io.gardenlinux.cname': artifacts.base };
  const commandLine = commandLineFor(flavor.cmdline, architecture);
  const title = `${flavor.image} ${options.source.release.version} ${flavor.variant} ${architecture}`;

  if (flavor.variant === 'kvm') {
    const image = buildArchImage({
      architecture,
      variant: ironCoreVariantOf(flavor.variant),
      title,
      ...(commandLine !== undefined ? { commandLine } : {}),
      layers: [layer('rootfs', artifacts.files.raw, 'rootfs.raw', 'disk image (.raw)')],
      annotations,
    });
    return { image, bootFiles: { disk: artifacts.files.raw!.path }, commandLine };
  }
  const layers = metalLayers(artifacts, layer);
  const ukiInput = await buildMetalUki(artifacts, arch, dir, options);
  layers.push({
    role: 'uki',
    blob: fileBlob(ukiInput.path, ukiInput.digest, ukiInput.size, `${artifacts.base} uki`),
    title: 'uki.efi',
  });
  throwIfAborted(signal);
  const image = buildArchImage({
    architecture,
    variant: ironCoreVariantOf(flavor.variant),
    title,
    ...(commandLine !== undefined ? { commandLine } : {}),
    layers,
    annotations,
  });
  const { files } = artifacts;
  const bootFiles: BootFiles = { uki: ukiInput.path };
  if (files.kernel) bootFiles.kernel = files.kernel.path;
  if (files.initrd) bootFiles.initramfs = files.initrd.path;
  if (files.squashfs) bootFiles.squashfs = files.squashfs.path;
  return { image, bootFiles, commandLine };
}

function metalLayers(
  artifacts: FlavorArtifacts,
  layer: (role: LayerInput['role'], file: HashedFile | undefined, title: string, what: string) => LayerInput,
): LayerInput[] {
  return [
    layer('squashfs', artifacts.files.squashfs, 'root.squashfs', 'root.squashfs'),
    layer('initramfs', artifacts.files.initrd, 'initrd', 'initrd'),
    layer('kernel', artifacts.files.kernel, 'vmlinuz', 'kernel (vmlinuz)'),
  ];
}

async function buildMetalUki(
  artifacts: FlavorArtifacts,
  arch: PlannedArchImage,
  dir: string,
  options: PublishOptions,
): Promise<HashedFile> {
  const { files } = artifacts;
  if (!files.kernel || !files.initrd || !files.squashfs) {
    throw new PublishError(`${artifacts.base}: the PXE archive lacks vmlinuz, initrd or root.squashfs`);
  }
  if (!files.efiStub) {
    throw new PublishError(
      `${artifacts.base}: the rootfs tarball holds no EFI stub for ${arch.architecture}; cannot build the UKI`,
    );
  }
  const cmdline = commandLineFor(arch.flavor.ukiCmdline ?? arch.flavor.cmdline, arch.architecture) ?? '';
  // Generated while the UKI is written (native) or written out for ukify: never kept as a file of its own.
  const initrdUki = await embeddedInitrdSource({
    initrd: files.initrd.path,
    squashfs: files.squashfs.path,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const uki = await buildUki({
    builder: options.ukiBuilder,
    kernel: files.kernel.path,
    initrd: initrdUki,
    stub: files.efiStub.path,
    arch: arch.architecture,
    cmdline,
    ...(files.release ? { osRelease: files.release.path } : {}),
    output: join(dir, 'uki.efi'),
    logger: options.logger,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.installUkify ? { installUkify: true } : {}),
    // Hashed while written: ukify's output is checked against it without reading the kernel again.
    inputDigests: { kernel: files.kernel.digest },
  });
  options.logger.info(`${artifacts.base}: UKI built with ${uki.builder} (${formatBytes(uki.size)})`);
  return uki;
}

/** Rows for the job summary and the CLI's closing table. */
export function summaryRows(result: PublishResult): string[][] {
  return result.images.map((i) => [
    i.reference,
    i.digest.slice(0, 19),
    formatBytes(i.size),
    formatDuration(i.seconds),
    i.kind === 'arch' ? rate(i.bytesUploaded, i.seconds) : '-',
  ]);
}

// The whole job, as a short sequence of named phases, each a module of its own:
//   plan -> check what is published (published.ts) -> per arch image: fetch and build (build-image.ts), store
//   the blobs while booting them (boot-test.ts) -> attach os-release, packages and SBOM as referrers
//   (attach.ts) -> tags (tag.ts).
// No tag is written until every arch image of the run is built, stored, booted and attached, so a tag never
// points at missing content and a failed run publishes nothing a re-run would have to undo.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UkiBuilderChoice } from '../boot';
import type { Architecture } from '../oci/ironcore';
import type { Store } from '../oci/store';
import { descriptorOf, type Annotations, type Descriptor, type SerializedManifest } from '../oci/types';
import { Semaphore } from '../util/concurrency';
import { PublishError, throwIfAborted } from '../util/errors';
import type { Logger } from '../util/logger';
import { formatBytes, formatDuration, rate } from '../util/progress';
import {
  attachAll,
  prepareAttachments,
  type AttachedByTag,
  type AttachmentKind,
  type PendingAttachments,
} from './attach';
import { BlobPusher } from './blob-pusher';
import { BootTester, type BootTestRecord, type BootTestSettings } from './boot-test';
import { archImageAnnotations, buildArchImageFor } from './build-image';
import { flavorKey, type Flavor } from './flavors';
import { imageReferences, type ImageReference } from './outputs';
import { formatTable, planPublication, planTags, type Plan, type PlannedArchImage } from './plan';
import { findPublished, tagKey, type ExistingTag } from './published';
import type { ArtifactSource } from './sources';
import { writeArchTags, writeIndexes, type TagSettings } from './tag';

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
  /** Attachments published as referrers of each arch image (none when absent). */
  attach?: readonly AttachmentKind[];
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
  /** Every tag of the version with its digest, kind and platform, and what this run attached to it. */
  references: ImageReference[];
  images: PublishedImage[];
  bytesUploaded: number;
  /** Every boot of the run, in the order they finished. */
  bootTests: BootTestRecord[];
}

export async function publish(options: PublishOptions): Promise<PublishResult> {
  const { logger, signal } = options;
  const version = options.source.release.version;
  const wanted = options.assembleOnly ? [] : (options.attach ?? []);
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
    if (wanted.length > 0)
      logger.info(`attachments: ${wanted.join(', ')} (as OCI referrers of each arch image)`);
    if (!options.assembleOnly) {
      // Fails early (before any download) when an asset is missing.
      for (const arch of archImages(plan)) options.source.describe(arch.flavor, arch.architecture);
    }
  });

  const checkStore = options.stores[0] ?? options.checkStore;
  const published = await logger.group('Check what is published', () =>
    findPublished(plan, checkStore, options.stores, wanted, logger, signal),
  );
  const existing = published.tags;
  const allTags = planTags(plan);
  let attached: AttachedByTag = new Map();
  const missing = allTags.filter((t) => !existing.has(tagKey(t.repository, t.tag)));
  if (missing.length === 0 && published.unattached.size === 0 && !options.force) {
    logger.info(
      `${version}: all ${allTags.length} tags exist already${wanted.length > 0 ? ' with their attachments' : ''}; nothing to do (use force to publish again)`,
    );
    const digests: Record<string, string> = {};
    for (const t of allTags)
      digests[reference(t.repository, t.tag)] = existing.get(tagKey(t.repository, t.tag))!.digest;
    return {
      version,
      published: false,
      skippedReason: 'already-published',
      tags: Object.keys(digests),
      digests,
      references: imageReferences(plan, reference, digests, new Set(), attached),
      images: [],
      bytesUploaded: 0,
      bootTests: [],
    };
  }

  const isPublished = (a: PlannedArchImage): boolean => existing.has(tagKey(repositoryOf(plan, a), a.tag));
  const toBuild = archImages(plan).filter((a) => options.force || !isPublished(a));
  if (options.assembleOnly) {
    const absent = toBuild.filter((a) => !isPublished(a));
    if (absent.length > 0) {
      throw new PublishError(
        `cannot assemble the indexes: ${absent.map((a) => reference(repositoryOf(plan, a), a.tag)).join(', ')} ${absent.length === 1 ? 'is' : 'are'} not published yet`,
        { hint: 'Run the per-flavor jobs first; the assembling job only combines what they pushed.' },
      );
    }
    toBuild.length = 0;
  }
  // Published before attachments existed (or an attachment went missing): only the small files are fetched.
  const toAttach = archImages(plan).filter(
    (a) => !toBuild.includes(a) && published.unattached.has(tagKey(repositoryOf(plan, a), a.tag)),
  );
  logger.info(
    [
      toBuild.length === 0
        ? 'every arch image is published'
        : `${toBuild.length} arch image(s) to build: ${toBuild.map(describeArch).join(', ')}`,
      ...(toAttach.length > 0
        ? [
            `${toAttach.length} published arch image(s) to attach to: ${toAttach.map(describeArch).join(', ')}`,
          ]
        : []),
    ].join('; '),
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
  const tagSettings: TagSettings = {
    plan,
    stores: options.stores,
    checkStore,
    existing,
    built,
    release: options.source.release,
    architectures: options.architectures,
    ...(options.annotations ? { annotations: options.annotations } : {}),
    ...(options.description ? { description: options.description } : {}),
    force: options.force,
    reference,
    logger,
    ...(signal ? { signal } : {}),
  };
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

    // What the attach phase attaches, once every image of the run is stored and booted: a failed run leaves no
    // referrer (nor fallback tag) behind, only blobs a re-run reuses. Indexed in plan order, like `pending`.
    const attachmentsDir = join(workDir, 'attachments');
    const toAttachNow: (PendingAttachments | undefined)[] = [];
    const holdAttachments = (
      arch: PlannedArchImage,
      subject: Descriptor,
      prepared: PendingAttachments['prepared'],
    ) => {
      const repository = repositoryOf(plan, arch);
      toAttachNow[archImages(plan).indexOf(arch)] = {
        key: tagKey(repository, arch.tag),
        reference: reference(repository, arch.tag),
        repository,
        subject,
        prepared,
      };
    };

    const buildAndUpload = async (arch: PlannedArchImage, i: number): Promise<void> => {
      // After a failure nothing new starts; what runs already finishes (its blobs are not wasted).
      if (failure) return;
      throwIfAborted(signal);
      const repository = repositoryOf(plan, arch);
      const started = performance.now();
      const unitDir = join(workDir, `${i}-${arch.flavor.variant}-${arch.architecture}`);
      const product = await building.run(async () => {
        if (failure) return undefined;
        const builtImage = await buildArchImageFor(arch, unitDir, options);
        // Checked before anything is uploaded: a malformed or oversized attachment fails the run early.
        const attachments = await prepareAttachments({
          files: builtImage.artifacts.files,
          base: builtImage.artifacts.base,
          subject: descriptorOf(builtImage.image.manifest),
          wanted,
          annotations: archImageAnnotations(options, builtImage.artifacts.base),
          keepIn: join(attachmentsDir, `${i}`),
        });
        return { ...builtImage, attachments };
      });
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
      holdAttachments(arch, descriptorOf(image.manifest), product.attachments);
      await rm(unitDir, { recursive: true, force: true });
      const seconds = (performance.now() - started) / 1000;
      pending[i] = { repository, tag: arch.tag, manifest: image.manifest };
      built.set(tagKey(repository, arch.tag), image.manifest);
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

    /** An arch image published already (its tag stays as it is) that lacks attachments. */
    const attachOnly = async (arch: PlannedArchImage, i: number): Promise<void> => {
      if (failure) return;
      throwIfAborted(signal);
      const repository = repositoryOf(plan, arch);
      const subject = existing.get(tagKey(repository, arch.tag))!;
      const unitDir = join(
        workDir,
        `${toBuild.length + i}-${arch.flavor.variant}-${arch.architecture}-attachments`,
      );
      const prepared = await building.run(async () => {
        if (failure) return undefined;
        const artifacts = await options.source.fetch(
          arch.flavor,
          arch.architecture,
          unitDir,
          logger,
          signal,
          'attachments',
        );
        return prepareAttachments({
          files: artifacts.files,
          base: artifacts.base,
          subject,
          wanted,
          annotations: archImageAnnotations(options, artifacts.base),
          keepIn: join(attachmentsDir, `${toBuild.length + i}`),
        });
      });
      if (!prepared) return;
      holdAttachments(arch, subject, prepared);
      await rm(unitDir, { recursive: true, force: true });
    };

    const units = [
      ...toBuild.map((arch, i) => () => buildAndUpload(arch, i)),
      ...toAttach.map((arch, i) => () => attachOnly(arch, i)),
    ];
    await logger.group(
      toBuild.length === 0
        ? 'Fetch the attachments of published arch images'
        : tester
          ? 'Fetch, build, upload and boot-test arch images'
          : 'Fetch, build and upload arch images',
      async () => {
        await Promise.all(
          units.map((unit) =>
            onDisk.run(unit).catch((error: unknown) => {
              failure ??= { error };
            }),
          ),
        );
        if (failure) throw failure.error;
      },
    );

    const attachments = toAttachNow.filter((t) => t !== undefined);
    if (attachments.some((t) => t.prepared.length > 0) && pushers.length > 0)
      attached = await logger.group(`Attach ${wanted.join(', ')} as OCI referrers`, () =>
        attachAll(attachments, pushers, concurrency, logger, signal),
      );
    await rm(attachmentsDir, { recursive: true, force: true });

    await writeArchTags(
      tagSettings,
      pending.filter((p) => p !== undefined),
    );
    const indexes = await writeIndexes(tagSettings, digests);
    results.push(...indexes.map((w) => ({ ...w, bytesUploaded: 0 })));
  } finally {
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }

  const bytesUploaded = options.stores.reduce((n, s) => n + s.stats.bytesUploaded, 0) - bytesBefore;
  // Tags that already named the right content (not rebuilt) are part of the version too.
  for (const t of allTags) {
    const ref = reference(t.repository, t.tag);
    digests[ref] ??= existing.get(tagKey(t.repository, t.tag))?.digest ?? '';
  }
  const ordered = allTags.map((t) => reference(t.repository, t.tag));
  const finalDigests = Object.fromEntries(ordered.filter((r) => digests[r]).map((r) => [r, digests[r]!]));
  return {
    version,
    published: options.stores.length > 0,
    ...(options.stores.length === 0 ? { skippedReason: 'dry-run' } : {}),
    tags: ordered,
    digests: finalDigests,
    references: imageReferences(
      plan,
      reference,
      finalDigests,
      new Set(options.stores.length > 0 ? results.map((r) => r.reference) : []),
      attached,
    ),
    images: results,
    bytesUploaded,
    bootTests: tester?.records ?? [],
  };
}

function describeArch(a: PlannedArchImage): string {
  return `${flavorKey(a.flavor)}/${a.architecture}`;
}

function archImages(plan: Plan): PlannedArchImage[] {
  return plan.images.flatMap((i) => i.variants.flatMap((v) => v.arches));
}

function repositoryOf(plan: Plan, arch: PlannedArchImage): string {
  return plan.images.find((i) => i.image === arch.flavor.image)!.repository;
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

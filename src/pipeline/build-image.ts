// The "fetch and build" phase: one arch image from its release archive. The archive is fetched and unpacked as
// it streams in; kvm images take the disk image as their rootfs layer, metal images the PXE files plus a UKI
// built from them. Nothing is uploaded here: the caller stores, boots and attaches what this returns.
import { join } from 'node:path';
import { buildUki, embeddedInitrdSource, type UkiBuilderChoice } from '../boot';
import type { FlavorArtifacts } from '../gardenlinux';
import { fileBlob, sparseFileBlob } from '../oci/blob';
import { ANNOTATION, buildArchImage, type BuiltArchImage, type LayerInput } from '../oci/ironcore';
import type { Annotations } from '../oci/types';
import { PublishError, throwIfAborted } from '../util/errors';
import type { HashedFile } from '../util/files';
import type { Logger } from '../util/logger';
import { formatBytes } from '../util/progress';
import type { BootFiles } from '../verify';
import { commandLineFor, ironCoreVariantOf } from './flavors';
import type { PlannedArchImage } from './plan';
import type { ArtifactSource, ReleaseInfo } from './sources';

export interface BuildSettings {
  source: ArtifactSource;
  ukiBuilder: UkiBuilderChoice;
  installUkify?: boolean;
  /** Extra annotations on every manifest. */
  annotations?: Annotations;
  logger: Logger;
  signal?: AbortSignal;
}

/** Annotations every manifest of the release carries (the user's extra annotations last, so they win). */
export function releaseAnnotations(release: ReleaseInfo, extra?: Annotations): Annotations {
  return {
    [ANNOTATION.version]: release.version,
    ...(release.url ? { [ANNOTATION.source]: release.url } : {}),
    ...(release.publishedAt ? { [ANNOTATION.created]: release.publishedAt } : {}),
    ...(release.commit ? { [ANNOTATION.revision]: release.commit } : {}),
    'io.gardenlinux.version': release.version,
    ...(release.commit ? { 'io.gardenlinux.commit': release.commit } : {}),
    ...extra,
  };
}

/** The annotations of an arch image and of its attachments: the release's, and the archive it came from. */
export function archImageAnnotations(
  options: Pick<BuildSettings, 'source' | 'annotations'>,
  base: string,
): Annotations {
  return { ...releaseAnnotations(options.source.release, options.annotations), 'io.gardenlinux.cname': base };
}

export interface BuiltForPublish {
  /** What the archive gave: the files the attachments are made from, among others. */
  artifacts: FlavorArtifacts;
  image: BuiltArchImage;
  /** The files the layers are sent from, by role: what a boot test boots. */
  bootFiles: BootFiles;
  commandLine: string | undefined;
}

export async function buildArchImageFor(
  arch: PlannedArchImage,
  dir: string,
  options: BuildSettings,
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
  const annotations = archImageAnnotations(options, artifacts.base);
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
    return { artifacts, image, bootFiles: { disk: artifacts.files.raw!.path }, commandLine };
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
  return { artifacts, image, bootFiles, commandLine };
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
  options: BuildSettings,
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

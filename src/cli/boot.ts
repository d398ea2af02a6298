// `boot REF`: boots any IronCore image (from a registry, or oci:DIR:TAG) with the same code the publisher
// runs before tagging, so a person can check an image before pointing machines at it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pullLayers, selectImage } from '../oci/pull';
import {
  BOOT_TEST_HEADERS,
  bootTestRecord,
  bootTestRows,
  hasFwcfgHook,
  parseAcceleratorChoice,
  parseExpect,
  pathsFor,
} from '../pipeline/boot-test';
import { formatTable } from '../pipeline/plan';
import { printable, PublishError, UsageError } from '../util/errors';
import { consoleLogger } from '../util/logger';
import { openImage } from './images';
import { bootFailure, bootImage, hostArch, type BootPath, type BootResult } from '../verify';

export const BOOT_USAGE = `Usage: ironcore-publish boot REF [options]

Boots an IronCore image under QEMU the way its consumer does and says whether it reached userspace:
metal images by UKI (HTTP boot, on a FAT ESP) and by PXE (kernel + initramfs, squashfs over HTTP),
kvm images as a virtio disk. The serial console is kept in the work folder.

REF is registry/repository:tag (or @sha256:...; read from the local store when it is there, else from the
registry) or oci:DIR:TAG.

Options:
  --arch A             amd64 or arm64 (default: this machine's; needed for a multi-arch index)
  --variant V          metal or kvm (virtualization); needed for a combined index
  --path P             uki, pxe or disk (default: every path of the variant)
  --accel A            auto (KVM when it works, else TCG), kvm or tcg (default auto)
  --timeout S          seconds per boot (default 300 under KVM, 900 under TCG)
  --expect REGEX       console marker of a booted system (default: "Welcome to ...!" or "login:")
  --work-dir DIR       keep downloaded layers and serial logs here (default: a temporary folder,
                       removed afterwards, kept with its serial logs when a boot failed)
  --username U         registry user (password from $REGISTRY_PASSWORD)
  --insecure-registry  plain HTTP to a non-loopback registry
  --store-path DIR     the local store (default ~/.ironcore)

Examples:
  ironcore-publish boot ghcr.io/ironcore-dev/gardenlinux:2150.1.0-metal --arch amd64
  ironcore-publish boot oci:out/demo/gardenlinux/gardener:2150.1.0 --arch arm64 --variant kvm --accel tcg
`;

export async function bootCommand(args: string[], signal: AbortSignal): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      arch: { type: 'string' },
      variant: { type: 'string' },
      path: { type: 'string' },
      accel: { type: 'string', default: 'auto' },
      timeout: { type: 'string' },
      expect: { type: 'string', default: '' },
      'work-dir': { type: 'string' },
      username: { type: 'string' },
      'insecure-registry': { type: 'boolean', default: false },
      'store-path': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(BOOT_USAGE);
    return 0;
  }
  const ref = positionals[0];
  if (!ref || positionals.length > 1)
    throw new UsageError('boot takes one reference: registry/repo:tag or oci:DIR:TAG');
  const accelerator = parseAcceleratorChoice(values.accel);
  const expect = parseExpect(values.expect);
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 10))
    throw new PublishError(
      `--timeout "${printable(values.timeout ?? '')}" must be whole seconds (at least 10)`,
    );
  if (values.arch !== undefined && values.arch !== 'amd64' && values.arch !== 'arm64')
    throw new UsageError(`--arch "${printable(values.arch)}" must be amd64 or arm64`);
  if (values.path !== undefined && !['uki', 'pxe', 'disk'].includes(values.path))
    throw new UsageError(`--path "${printable(values.path)}" must be uki, pxe or disk`);
  const logger = consoleLogger();

  const { repo, close, tag } = await openImage(ref, values, signal);
  // A folder of our own is removed at the end, unless a boot failed: its serial log is named in the error.
  const ownWork = values['work-dir'] === undefined;
  const work = values['work-dir'] ?? (await mkdtemp(join(tmpdir(), 'ironcore-boot-')));
  const layersDir = join(work, 'layers');
  const results: BootResult[] = [];
  try {
    const image = await selectImage(
      repo,
      tag,
      {
        ...(values.arch ? { architecture: values.arch } : hostArch() ? { architecture: hostArch()! } : {}),
        ...(values.variant ? { variant: values.variant } : {}),
      },
      signal,
    );
    const arch = image.architecture;
    if (arch !== 'amd64' && arch !== 'arm64')
      throw new PublishError(`${ref}: cannot boot architecture "${arch}"`);
    const variant = image.variant === 'virtualization' ? 'kvm' : 'metal';
    const paths: BootPath[] = values.path ? [values.path as BootPath] : pathsFor(variant);
    logger.info(`${ref}: ${arch} ${variant} image ${image.digest}; boot paths: ${paths.join(', ')}`);
    const roles = paths.flatMap((p) =>
      p === 'uki' ? ['uki'] : p === 'pxe' ? ['kernel', 'initramfs', 'squashfs'] : ['rootfs'],
    ) as ('uki' | 'kernel' | 'initramfs' | 'squashfs' | 'rootfs')[];
    const files = await pullLayers(repo, image, roles, layersDir, signal);
    const version = image.annotations['io.gardenlinux.version'] ?? '';
    for (const path of paths) {
      const result = await bootImage({
        image: ref,
        arch,
        path,
        files: {
          ...(files.uki ? { uki: files.uki } : {}),
          ...(files.kernel ? { kernel: files.kernel } : {}),
          ...(files.initramfs ? { initramfs: files.initramfs } : {}),
          ...(files.squashfs ? { squashfs: files.squashfs } : {}),
          ...(files.rootfs ? { disk: files.rootfs } : {}),
        },
        ...(image.commandLine ? { commandLine: image.commandLine } : {}),
        accelerator,
        ...(timeout !== undefined ? { timeoutSeconds: timeout } : {}),
        ...(expect ? { expect } : {}),
        expectHook: hasFwcfgHook(version),
        workDir: join(work, `boot-${path}`),
        logger,
        signal,
      });
      results.push(result);
      if (result.result === 'failed') {
        process.stderr.write(`error: ${bootFailure(result).message}\n`);
        break;
      }
    }
  } finally {
    await close();
    const keepLogs = results.some((r) => r.result !== 'passed');
    await rm(ownWork && !keepLogs ? work : layersDir, { recursive: true, force: true });
  }
  process.stdout.write(`${formatTable(BOOT_TEST_HEADERS, bootTestRows(results.map(bootTestRecord)))}\n`);
  return results.every((r) => r.result === 'passed') ? 0 : 1;
}

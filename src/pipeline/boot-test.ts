// The boot-test phase: between "an arch image's blobs are stored" and "any tag is written", each arch image
// chosen for it is booted under QEMU from the very files that are published, the way its consumer boots it
// (metal: the UKI over HTTP boot and kernel + initramfs + squashfs over PXE; kvm: the rootfs disk). A failed
// boot fails the run like a bad archive does: no tag of the version is written.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseVersion } from '../gardenlinux/versions';
import type { Architecture } from '../oci/ironcore';
import { Semaphore } from '../util/concurrency';
import { PublishError } from '../util/errors';
import type { Logger } from '../util/logger';
import {
  bootFailure,
  bootImage,
  findFirmware,
  findQemu,
  hostArch,
  type AcceleratorChoice,
  type BootFiles,
  type BootPath,
  type BootResult,
} from '../verify';
import type { FlavorVariant } from './flavors';

export type BootTestChoice = 'none' | 'native' | 'all';

export interface BootTestSettings {
  mode: BootTestChoice;
  accelerator: AcceleratorChoice;
  /** Seconds per boot; default: 300 under KVM, 900 under TCG. */
  timeoutSeconds?: number;
  /** Console success marker (regular expression). */
  expect?: RegExp;
  /** Where each boot's serial log is kept (it outlives the run's temporary files). */
  logDir: string;
}

/** One boot, as the `boot-tests` output and the job summary show it. */
export interface BootTestRecord {
  image: string;
  path: BootPath;
  architecture: Architecture;
  accelerator: string;
  result: 'passed' | 'failed';
  reason?: string;
  seconds: number;
  serialLog: string;
}

/** The failure of a boot, carrying every boot of the run so far for the outputs and the summary. */
export class BootTestError extends PublishError {
  constructor(
    cause: PublishError,
    readonly bootTests: BootTestRecord[],
  ) {
    super(cause.message, { ...(cause.hint ? { hint: cause.hint } : {}) });
  }
}

export function parseBootTestChoice(text: string): BootTestChoice {
  const value = text.trim().toLowerCase() || 'none';
  if (value !== 'none' && value !== 'native' && value !== 'all')
    throw new PublishError(`boot-test "${text}" must be none, native or all`);
  return value;
}

export function parseAcceleratorChoice(text: string): AcceleratorChoice {
  const value = text.trim().toLowerCase() || 'auto';
  if (value !== 'auto' && value !== 'kvm' && value !== 'tcg')
    throw new PublishError(`boot-test-accel "${text}" must be auto, kvm or tcg`);
  return value;
}

export function parseExpect(text: string): RegExp | undefined {
  if (!text.trim()) return undefined;
  try {
    return new RegExp(text, 'm');
  } catch (error) {
    throw new PublishError(`boot-test-expect is not a valid regular expression: ${(error as Error).message}`);
  }
}

/**
 * Garden Linux runs the `_fwcfg` hook script since 1877.14 and in every 2150.x (BOOT.md section 2): for those
 * the hook's report decides; older images are judged by the console.
 */
export function hasFwcfgHook(version: string): boolean {
  const parts = parseVersion(version);
  if (!parts) return false;
  const [major, minor] = parts;
  return major > 1877 || (major === 1877 && minor >= 14);
}

/** The arches a mode boots (`native`: the runner's own; `all`: every one, the foreign ones emulated). */
export function archesToBoot(mode: BootTestChoice, architectures: readonly Architecture[]): Architecture[] {
  if (mode === 'none') return [];
  return architectures.filter((a) => mode === 'all' || a === hostArch());
}

export function pathsFor(variant: FlavorVariant): BootPath[] {
  return variant === 'metal' ? ['uki', 'pxe'] : ['disk'];
}

export class BootTester {
  readonly records: BootTestRecord[] = [];
  private readonly slots: Semaphore;

  constructor(
    private readonly settings: BootTestSettings,
    private readonly version: string,
    private readonly logger: Logger,
  ) {
    // One VM per core pair (two vCPUs each): downloads, builds and uploads go on beside them.
    this.slots = new Semaphore(Math.max(1, Math.floor(availableParallelism() / 2)));
  }

  /** Whether this arch is booted at all (`native`: the runner's own; `all`: both, the foreign one emulated). */
  wants(architecture: Architecture): boolean {
    return archesToBoot(this.settings.mode, [architecture]).length > 0;
  }

  /** Before any download: QEMU and firmware for every arch to boot, so a missing one costs nothing. */
  async preflight(architectures: readonly Architecture[]): Promise<void> {
    const arches = archesToBoot(this.settings.mode, architectures);
    if (this.settings.mode === 'native' && arches.length === 0) {
      this.logger.warning(
        `boot-test: native boots the runner's architecture (${hostArch() ?? process.arch}), which this run does not publish: nothing is booted`,
      );
    }
    for (const arch of arches) {
      await findQemu(arch);
      await findFirmware(arch);
    }
  }

  /** Boots one arch image by every path its variant has; throws a BootTestError on the first failure. */
  async test(
    reference: string,
    variant: FlavorVariant,
    architecture: Architecture,
    files: BootFiles,
    commandLine: string | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    for (const path of pathsFor(variant)) {
      const dir = join(this.settings.logDir, `${reference.replace(/[^A-Za-z0-9_.-]+/g, '_')}-${path}`);
      const result: BootResult = await this.slots.run(() =>
        bootImage({
          image: reference,
          arch: architecture,
          path,
          files,
          ...(commandLine !== undefined ? { commandLine } : {}),
          accelerator: this.settings.accelerator,
          ...(this.settings.timeoutSeconds !== undefined
            ? { timeoutSeconds: this.settings.timeoutSeconds }
            : {}),
          ...(this.settings.expect ? { expect: this.settings.expect } : {}),
          expectHook: hasFwcfgHook(this.version),
          workDir: dir,
          logger: this.logger,
          ...(signal ? { signal } : {}),
        }),
      );
      this.records.push(bootTestRecord(result));
      if (result.result === 'failed') throw new BootTestError(bootFailure(result), this.records);
    }
  }
}

export function bootTestRecord(result: BootResult): BootTestRecord {
  return {
    image: result.image,
    path: result.path,
    architecture: result.arch,
    accelerator: result.accelerator,
    result: result.result,
    ...(result.reason ? { reason: result.reason } : {}),
    seconds: Math.round(result.seconds * 10) / 10,
    serialLog: result.serialLog,
  };
}

export const BOOT_TEST_HEADERS = ['image', 'boot', 'arch', 'accelerator', 'result', 'seconds', 'serial log'];

/** Rows for the job summary and the CLI's closing table. */
export function bootTestRows(records: readonly BootTestRecord[]): string[][] {
  return records.map((r) => [
    r.image,
    r.path,
    r.architecture,
    r.accelerator,
    r.result + (r.reason ? ` (${r.reason})` : ''),
    r.seconds.toFixed(1),
    r.serialLog,
  ]);
}

// One typed set of settings, shared by the action and the CLI: validated up front (before any network
// or disk work), turned into stores and a source, then handed to `publish`.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import type { UkiBuilderChoice } from '../boot';
import { resolveRelease, validateVersion } from '../gardenlinux';
import type { Architecture } from '../oci/ironcore';
import { createLayoutStore } from '../oci/layout/store';
import { LocalStore } from '../oci/layout/local';
import { validateRegistryHost, validateRepositoryName, validateTag } from '../oci/reference';
import { createRegistryStore } from '../oci/registry';
import type { Store } from '../oci/store';
import type { Annotations } from '../oci/types';
import { describeProxies, proxySettings } from '../util/dispatcher';
import { PublishError, printable } from '../util/errors';
import type { Logger } from '../util/logger';
import { type Flavor, flavorKey } from './flavors';
import { publish, type PublishResult } from './publish';
import { releaseSource, type ArtifactSource } from './sources';
import { archesToBoot, type BootTestChoice } from './boot-test';
import type { AcceleratorChoice } from '../verify';
import { installQemu } from '../verify';
import { ATTACHMENT_KINDS, type AttachmentKind } from './attach';

export interface RunSettings {
  /** Empty: the newest stable release. */
  version: string;
  sourceRepository: string;
  githubToken?: string;
  apiUrl?: string;
  /** Registry host; empty publishes to the OCI layout only. */
  registry: string;
  namespace: string;
  registryUsername?: string;
  registryPassword?: string;
  insecureRegistry: boolean;
  flavors: Flavor[];
  /** Flavor keys (`image:variant`) or asset patterns; empty: all. */
  selectFlavors: string[];
  architectures: Architecture[];
  force: boolean;
  dryRun: boolean;
  assembleOnly: boolean;
  /** Undefined: write the combined index unless only some flavors are selected. */
  combinedIndex?: boolean;
  ociLayout?: string;
  concurrency: number;
  ukiBuilder: UkiBuilderChoice;
  installUkify: boolean;
  tagSuffix: string;
  annotations: Annotations;
  description?: string;
  workDir?: string;
  /** Boot-test arch images under QEMU before tagging: none, native (the runner's arch) or all. */
  bootTest: BootTestChoice;
  bootTestAccel: AcceleratorChoice;
  /** Seconds per boot; undefined: 300 under KVM, 900 under TCG. */
  bootTestTimeout?: number;
  bootTestExpect?: RegExp;
  /** Install QEMU and firmware with apt-get where missing, and open /dev/kvm to the runner user. */
  installQemu: boolean;
  /**
   * Also write the images into this ironcore-image style local store, under `<registry>/<namespace>/...`
   * (`storeRegistry` when `registry` is empty), so the toolkit's `push` can send them later.
   */
  storePath?: string;
  storeRegistry?: string;
  /** Where serial logs of boot tests are kept; default `<work-dir>/boot-logs` or a temporary folder. */
  bootLogDir?: string;
  /** Attachments published as OCI referrers of each arch image; default all (`attach` input), [] for none. */
  attach?: AttachmentKind[];
}

/** Checks everything that can be checked without the network, and returns the flavors to publish. */
export function validateSettings(settings: RunSettings): Flavor[] {
  if (settings.version !== '') validateVersion(settings.version);
  if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(settings.sourceRepository)) {
    throw new PublishError(`source-repository "${printable(settings.sourceRepository)}" must be owner/name`);
  }
  if (settings.registry) validateRegistryHost(settings.registry);
  if (settings.namespace) validateRepositoryName(settings.namespace);
  if (settings.tagSuffix && !/^[A-Za-z0-9_.-]{1,40}$/.test(settings.tagSuffix)) {
    throw new PublishError(
      `tag-suffix "${printable(settings.tagSuffix)}" may only hold letters, digits, _ . - (at most 40)`,
    );
  }
  if (!Number.isInteger(settings.concurrency) || settings.concurrency < 1 || settings.concurrency > 32) {
    throw new PublishError(`concurrency must be a whole number from 1 to 32, not ${settings.concurrency}`);
  }
  if (!settings.registry && !settings.ociLayout && !settings.storePath && !settings.dryRun) {
    throw new PublishError(
      'nothing to publish to: give a registry, an oci-layout folder, a store path, or dry-run',
    );
  }
  if (
    settings.bootTestTimeout !== undefined &&
    (!Number.isInteger(settings.bootTestTimeout) ||
      settings.bootTestTimeout < 10 ||
      settings.bootTestTimeout > 86400)
  ) {
    throw new PublishError(
      `boot-test-timeout must be whole seconds from 10 to 86400, not ${settings.bootTestTimeout}`,
    );
  }
  for (const name of Object.keys(settings.annotations)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(name))
      throw new PublishError(`annotation name "${printable(name)}" is not valid`);
  }
  const selected = selectFlavors(settings.flavors, settings.selectFlavors);
  // Tags are validated with a sample version: every flavor's tags must be valid for any real version.
  for (const flavor of selected) validateTag(`0.0-${flavor.variant}-amd64${settings.tagSuffix}`);
  return selected;
}

function selectFlavors(flavors: Flavor[], selection: string[]): Flavor[] {
  if (selection.length === 0) return flavors;
  return selection.map((wanted) => {
    const found = flavors.find((f) => flavorKey(f) === wanted || f.asset === wanted);
    if (!found) {
      throw new PublishError(
        `select-flavors: "${printable(wanted)}" names no flavor; known: ${flavors.map((f) => `${flavorKey(f)} (${f.asset})`).join(', ')}`,
      );
    }
    return found;
  });
}

export interface RunResult extends PublishResult {
  flavors: Flavor[];
}

/** Resolves the release, opens the stores and publishes. `source` replaces the GitHub release (manual builds). */
export async function runPublish(
  settings: RunSettings,
  logger: Logger,
  options: { signal?: AbortSignal; source?: ArtifactSource } = {},
): Promise<RunResult> {
  const flavors = validateSettings(settings);
  // Checked before any request (a malformed proxy variable is one clear error), and shown: which proxy
  // a run used is the first question when a run behind one fails.
  const proxies = describeProxies(proxySettings());
  if (proxies) logger.info(proxies);
  const { signal } = options;
  const bootArches = archesToBoot(settings.bootTest, settings.architectures);
  if (settings.installQemu && bootArches.length > 0) {
    await logger.group('Install QEMU', () => installQemu(bootArches, logger, signal));
  }
  const source =
    options.source ??
    releaseSource(
      await logger.group('Resolve release', () =>
        resolveRelease({
          repository: settings.sourceRepository,
          ...(settings.version ? { version: settings.version } : {}),
          ...(settings.githubToken ? { token: settings.githubToken } : {}),
          ...(settings.apiUrl ? { apiUrl: settings.apiUrl } : {}),
          logger,
          ...(signal ? { signal } : {}),
        }),
      ),
      {
        ...(settings.githubToken ? { token: settings.githubToken } : {}),
        ...(settings.apiUrl ? { apiUrl: settings.apiUrl } : {}),
      },
    );

  const registry = settings.registry
    ? createRegistryStore({
        registry: settings.registry,
        ...(settings.registryUsername && settings.registryPassword
          ? { credentials: { username: settings.registryUsername, password: settings.registryPassword } }
          : {}),
        insecure: settings.insecureRegistry,
        concurrency: settings.concurrency,
        logger,
        ...(signal ? { signal } : {}),
      })
    : undefined;
  const layout = settings.ociLayout ? createLayoutStore(resolvePath(settings.ociLayout)) : undefined;
  const stores: Store[] = [];
  if (registry && !settings.dryRun) stores.push(registry);
  if (layout) stores.push(layout);
  // The local store names its images by a registry: the one published to, else --store-registry.
  const storeRegistry = validateRegistryHost(settings.registry || settings.storeRegistry || 'ghcr.io');
  if (settings.storePath) {
    stores.push((await LocalStore.open(resolvePath(settings.storePath))).asStore(storeRegistry));
  }
  try {
    const result = await publish({
      source,
      stores,
      ...(registry ? { checkStore: registry } : {}),
      referencePrefix:
        settings.registry ||
        (settings.ociLayout || !settings.storePath
          ? `oci:${resolvePath(settings.ociLayout ?? '.')}`
          : storeRegistry),
      namespace: settings.namespace,
      flavors,
      architectures: settings.architectures,
      force: settings.force,
      assembleOnly: settings.assembleOnly,
      combinedIndex: settings.combinedIndex ?? settings.selectFlavors.length === 0,
      concurrency: settings.concurrency,
      ukiBuilder: settings.ukiBuilder,
      installUkify: settings.installUkify,
      tagSuffix: settings.tagSuffix,
      annotations: settings.annotations,
      attach: settings.attach ?? [...ATTACHMENT_KINDS],
      ...(settings.description ? { description: settings.description } : {}),
      ...(settings.workDir ? { workDir: settings.workDir } : {}),
      ...(settings.bootTest !== 'none'
        ? {
            bootTest: {
              mode: settings.bootTest,
              accelerator: settings.bootTestAccel,
              ...(settings.bootTestTimeout !== undefined ? { timeoutSeconds: settings.bootTestTimeout } : {}),
              ...(settings.bootTestExpect ? { expect: settings.bootTestExpect } : {}),
              logDir:
                settings.bootLogDir ??
                (settings.workDir
                  ? join(settings.workDir, 'boot-logs')
                  : await mkdtemp(join(tmpdir(), 'ironcore-boot-logs-'))),
            },
          }
        : {}),
      logger,
      ...(signal ? { signal } : {}),
    });
    return { ...result, flavors };
  } finally {
    await Promise.all([registry?.close(), layout?.close()]);
  }
}

/** `key=value` lines (or comma-separated) into annotations. */
export function parseAnnotations(text: string): Annotations {
  const out: Annotations = {};
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0) throw new PublishError(`annotations: "${printable(trimmed)}" is not key=value`);
    out[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return out;
}

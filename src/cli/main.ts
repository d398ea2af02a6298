// The CLI front door: the same pipeline as the action, from a terminal.
//   ironcore-publish publish [options]             publish a release (or --from-file assets)
//   ironcore-publish inspect REF                   show an image (registry ref or oci:DIR:TAG)
//   ironcore-publish boot REF                      boot an image under QEMU (registry ref or oci:DIR:TAG)
//   ironcore-publish demo [--out DIR]              the whole pipeline offline on a built-in sample release
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { UkiBuilderChoice } from '../boot';
import { parseArchitectures, parseFlavors } from '../pipeline/flavors';
import { fileSource } from '../pipeline/file-source';
import { inspectImage } from '../pipeline/inspect';
import { formatTable } from '../pipeline/plan';
import { summaryRows } from '../pipeline/publish';
import { parseAnnotations, runPublish, type RunResult, type RunSettings } from '../pipeline/run';
import { runDemo } from '../sample/demo';
import {
  BOOT_TEST_HEADERS,
  bootTestRows,
  parseAcceleratorChoice,
  parseBootTestChoice,
  parseExpect,
} from '../pipeline/boot-test';
import { parseAttachChoice } from '../pipeline/attach';
import { attachmentRows } from '../pipeline/outputs';
import { bootCommand } from './boot';
import { openImage } from './images';
import { pullCommand, pushCommand, urlCommand } from './transfer';
import { buildCommand, deleteCommand, listCommand, STORE_USAGE, tagCommand } from './toolkit';
import { describeError, printable, PublishError, UsageError } from '../util/errors';
import { consoleLogger } from '../util/logger';

const USAGE = `Usage: ironcore-publish <command> [options]

Commands:
  publish   Publish a Garden Linux release as IronCore OS images
  inspect   Show an image: ironcore-publish inspect ghcr.io/owner/gardenlinux:2150.1.0 | oci:DIR:TAG
  boot      Boot an image under QEMU and check it reaches userspace (ironcore-publish boot --help)
  build     Build an IronCore image of any OS into the local store (ironcore-publish build --help)
  list      List the images in the local store (~/.ironcore, or --store-path)
  tag       Tag an image of the local store: ironcore-publish tag SRC DST
  delete    Delete an image from the local store, with the blobs nothing else uses
  push      Push an image of the local store to its registry (ironcore-publish push --help)
  pull      Pull an image into the local store, and its layers as files with --output
  url       The URL and headers that fetch one layer of an image (JSON)
  demo      Run the whole pipeline offline on a built-in sample release into an OCI layout

publish options (the action's inputs):
  --version V            Garden Linux version (default: newest stable)
  --source-repository R  GitHub repository of the releases (default: gardenlinux/gardenlinux)
  --registry HOST        registry host (default: ghcr.io; "" for --oci-layout only)
  --namespace NS         repository prefix, e.g. your GitHub owner (lowercased)
  --username U           registry user (password from $REGISTRY_PASSWORD or --password-stdin);
                         without them docker's config.json is used
  --password-stdin       read the registry password from standard input
  --insecure-registry    allow plain HTTP to a non-loopback registry
  --flavors FILE         YAML flavor list (default: the four Garden Linux flavors)
  --select-flavors LIST  only these flavors (image:variant or asset pattern, comma-separated)
  --architectures LIST   amd64,arm64 (default both)
  --force                publish even when every tag exists
  --dry-run              build everything, push nothing to the registry
  --assemble-only        only write indexes over already published arch images
  --combined-index B     true|false (default: true unless --select-flavors)
  --oci-layout DIR       also write the images into this OCI layout folder
  --store-path DIR       also write them into the toolkit's local store (as ironcore-image's ~/.ironcore),
                         under <registry>/<namespace>/<image>:<tag>; then \`push\` sends them on
  --store-registry HOST  the registry named in the store's references when --registry is "" (default ghcr.io)
  --concurrency N        parallel downloads/builds/uploads (default 4)
  --uki-builder B        auto|ukify|native (default auto)
  --install-ukify        install systemd-ukify with apt-get when ukify is asked for and missing
  --tag-suffix S         appended to every tag
  --annotation K=V       extra annotation (repeatable)
  --description TEXT     org.opencontainers.image.description
  --work-dir DIR         keep downloads and builds here (default: a temporary folder)
  --from-file FILE       build from downloaded asset files instead of a release (repeatable);
                         tags get a -manual-<8 hex> suffix
  --boot-test MODE       none|native|all: boot every arch image under QEMU before any tag is
                         written (native: this machine's arch; all: both, the other emulated)
  --boot-test-accel A    auto|kvm|tcg (default auto: KVM when it really works, else TCG)
  --boot-test-timeout S  seconds per boot (default 300 under KVM, 900 under TCG)
  --boot-test-expect RE  console marker for images without the _fwcfg hook
  --install-qemu         install QEMU and UEFI firmware with apt-get where missing
  --attach LIST          sbom,os-release,packages (default all) or none: the archive's files published as
                         OCI referrers of each arch image (the API, else the sha256-<digest> fallback tag)

Examples:
  ironcore-publish publish --namespace my-org --version 2150.1.0 --boot-test native
  ironcore-publish publish --registry '' --oci-layout out --from-file baremetal_pxe-amd64-2150.1.0-1a2b3c4d.tar.xz
The GitHub token comes from $GITHUB_TOKEN; the API from $GITHUB_API_URL (default https://api.github.com).
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

async function publishCommand(args: string[], signal: AbortSignal): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      version: { type: 'string', default: '' },
      'source-repository': { type: 'string', default: 'gardenlinux/gardenlinux' },
      registry: { type: 'string', default: 'ghcr.io' },
      namespace: { type: 'string', default: '' },
      username: { type: 'string' },
      'password-stdin': { type: 'boolean', default: false },
      'insecure-registry': { type: 'boolean', default: false },
      flavors: { type: 'string' },
      'select-flavors': { type: 'string', default: '' },
      architectures: { type: 'string', default: 'amd64,arm64' },
      force: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      'assemble-only': { type: 'boolean', default: false },
      'combined-index': { type: 'string' },
      'oci-layout': { type: 'string' },
      concurrency: { type: 'string', default: '4' },
      'uki-builder': { type: 'string', default: 'auto' },
      'install-ukify': { type: 'boolean', default: false },
      'tag-suffix': { type: 'string', default: '' },
      annotation: { type: 'string', multiple: true, default: [] },
      description: { type: 'string' },
      'work-dir': { type: 'string' },
      'from-file': { type: 'string', multiple: true, default: [] },
      'boot-test': { type: 'string', default: 'none' },
      'boot-test-accel': { type: 'string', default: 'auto' },
      'boot-test-timeout': { type: 'string' },
      'boot-test-expect': { type: 'string', default: '' },
      'install-qemu': { type: 'boolean', default: false },
      attach: { type: 'string', default: '' },
      'store-path': { type: 'string' },
      'store-registry': { type: 'string', default: 'ghcr.io' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const logger = consoleLogger({ verbose: values.verbose });
  if (!['auto', 'ukify', 'native'].includes(values['uki-builder'])) {
    throw new PublishError(
      `--uki-builder "${printable(values['uki-builder'])}" must be auto, ukify or native`,
    );
  }
  let flavorsText = '';
  if (values.flavors) {
    flavorsText = await readFile(values.flavors, 'utf8').catch(() => {
      throw new PublishError(`--flavors: cannot read ${values.flavors}`);
    });
  }
  const password = values['password-stdin'] ? await readStdin() : process.env.REGISTRY_PASSWORD;
  const combined = values['combined-index'];
  const bootExpect = parseExpect(values['boot-test-expect']);
  if (combined !== undefined && combined !== 'true' && combined !== 'false') {
    throw new PublishError('--combined-index must be true or false');
  }
  const settings: RunSettings = {
    version: values.version,
    sourceRepository: values['source-repository'],
    ...(process.env.GITHUB_TOKEN ? { githubToken: process.env.GITHUB_TOKEN } : {}),
    ...(process.env.GITHUB_API_URL ? { apiUrl: process.env.GITHUB_API_URL } : {}),
    registry: values.registry,
    namespace: values.namespace.toLowerCase(),
    ...(values.username ? { registryUsername: values.username } : {}),
    ...(password ? { registryPassword: password } : {}),
    insecureRegistry: values['insecure-registry'],
    flavors: parseFlavors(flavorsText),
    selectFlavors: values['select-flavors'].split(/[\s,]+/).filter(Boolean),
    architectures: parseArchitectures(values.architectures),
    force: values.force,
    dryRun: values['dry-run'],
    assembleOnly: values['assemble-only'],
    ...(combined ? { combinedIndex: combined === 'true' } : {}),
    ...(values['oci-layout'] ? { ociLayout: values['oci-layout'] } : {}),
    concurrency: /^[0-9]+$/.test(values.concurrency) ? Number(values.concurrency) : NaN,
    ukiBuilder: values['uki-builder'] as UkiBuilderChoice,
    installUkify: values['install-ukify'],
    tagSuffix: values['tag-suffix'],
    annotations: parseAnnotations(values.annotation.join('\n')),
    ...(values.description ? { description: values.description } : {}),
    ...(values['work-dir'] ? { workDir: values['work-dir'] } : {}),
    bootTest: parseBootTestChoice(values['boot-test']),
    bootTestAccel: parseAcceleratorChoice(values['boot-test-accel']),
    ...(values['boot-test-timeout'] !== undefined
      ? {
          bootTestTimeout: /^[0-9]+$/.test(values['boot-test-timeout'])
            ? Number(values['boot-test-timeout'])
            : NaN,
        }
      : {}),
    ...(bootExpect ? { bootTestExpect: bootExpect } : {}),
    installQemu: values['install-qemu'],
    attach: parseAttachChoice(values.attach),
    ...(values['store-path']
      ? { storePath: values['store-path'], storeRegistry: values['store-registry'] }
      : {}),
  };
  let result: RunResult;
  if (values['from-file'].length > 0) {
    const selection = await fileSource(values['from-file'], settings.flavors);
    result = await runPublish(
      {
        ...settings,
        flavors: selection.flavors,
        architectures: selection.architectures,
        tagSuffix: settings.tagSuffix + selection.tagSuffix,
        combinedIndex: settings.combinedIndex ?? true,
      },
      logger,
      { signal, source: selection.source },
    );
  } else {
    result = await runPublish(settings, logger, { signal });
  }
  printResult(result);
}

export function printResult(result: RunResult): void {
  const out = process.stdout;
  if (!result.published)
    out.write(`Garden Linux ${result.version}: nothing pushed (${result.skippedReason}).\n`);
  if (result.images.length > 0) {
    out.write(`${formatTable(['image', 'digest', 'size', 'time', 'throughput'], summaryRows(result))}\n\n`);
  }
  if (result.bootTests.length > 0) {
    out.write(`${formatTable(BOOT_TEST_HEADERS, bootTestRows(result.bootTests))}\n\n`);
  }
  const attachments = attachmentRows(result.references);
  if (attachments.length > 0) {
    out.write(`${formatTable(['attached to', 'file', 'artifact type', 'digest'], attachments)}\n\n`);
  }
  out.write(
    `${formatTable(
      ['tag', 'digest'],
      Object.entries(result.digests).map(([ref, d]) => [ref, d]),
    )}\n`,
  );
}

async function inspectCommand(args: string[], signal: AbortSignal): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      username: { type: 'string' },
      'insecure-registry': { type: 'boolean', default: false },
      'store-path': { type: 'string' },
    },
  });
  const ref = positionals[0];
  if (!ref || positionals.length > 1)
    throw new UsageError('inspect takes one reference: registry/repo:tag or oci:DIR:TAG');
  const image = await openImage(ref, values, signal);
  try {
    process.stdout.write(`${await inspectImage(image.repo, image.tag, signal)}\n`);
  } finally {
    await image.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => controller.abort(new PublishError(`interrupted (${signal})`)));
  const [command, ...rest] = argv;
  try {
    if (
      ['publish', 'inspect', 'demo'].includes(command ?? '') &&
      (rest.includes('--help') || rest.includes('-h'))
    ) {
      process.stdout.write(USAGE);
      return 0;
    }
    switch (command) {
      case 'publish':
        await publishCommand(rest, controller.signal);
        return 0;
      case 'inspect':
        await inspectCommand(rest, controller.signal);
        return 0;
      case 'boot':
        return await bootCommand(rest, controller.signal);
      case 'build':
        return await buildCommand(rest);
      case 'push':
        return await pushCommand(rest, controller.signal);
      case 'pull':
        return await pullCommand(rest, controller.signal);
      case 'url':
        return await urlCommand(rest, controller.signal);
      case 'list':
      case 'tag':
      case 'delete':
        if (rest.includes('--help') || rest.includes('-h')) {
          process.stdout.write(STORE_USAGE);
          return 0;
        }
        return await (command === 'list' ? listCommand : command === 'tag' ? tagCommand : deleteCommand)(
          rest,
        );
      case 'demo': {
        const { values } = parseArgs({
          args: rest,
          options: { out: { type: 'string', default: 'out/demo' } },
        });
        const result = await runDemo({ out: values.out, logger: consoleLogger(), signal: controller.signal });
        printResult(result);
        return 0;
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${printable(command)}"`, {
          hint: 'Run "ironcore-publish --help" for the commands.',
        });
    }
  } catch (error) {
    // parseArgs rejects unknown options with a TypeError whose message is the whole story.
    const parseError =
      error instanceof TypeError && (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
    const message = parseError
      ? `${(error as Error).message}\nRun "ironcore-publish --help" for the options.`
      : describeError(controller.signal.aborted ? controller.signal.reason : error);
    process.stderr.write(`error: ${message}\n`);
    // 2: the command line is wrong; 1: the command failed.
    return parseError || error instanceof UsageError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));

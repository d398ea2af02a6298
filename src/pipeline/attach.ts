// The "attach" phase: the os-release, package list and SBOM of each arch image's release archive, published as
// OCI 1.1 referrers of its manifest (ATTACHMENTS.md), after the image is stored and before any tag of the version
// exists. Scanners find them the way OCI 1.1 clients look (the referrers API, else the `sha256-<hex>` tag):
// Trivy's `--sbom-sources oci` takes an artifact whose artifactType and layer type are both CycloneDX.
// Digests are deterministic (the release's time, never the clock), so a re-run adds nothing twice.
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { fileBlob } from '../oci/blob';
import { buildArtifact, type BuiltArtifact } from '../oci/referrers';
import type { ReferrersMode } from '../oci/store';
import type { Annotations, Descriptor } from '../oci/types';
import type { FlavorFiles } from '../gardenlinux';
import { mapLimit } from '../util/concurrency';
import { printable, PublishError } from '../util/errors';
import type { Logger } from '../util/logger';
import type { HashedFile } from '../util/files';
import { formatBytes } from '../util/progress';
import type { BlobPusher } from './blob-pusher';

export type AttachmentKind = 'sbom' | 'os-release' | 'packages';

/** Every kind, in the order they are attached; also the default of the `attach` input. */
export const ATTACHMENT_KINDS: readonly AttachmentKind[] = ['sbom', 'os-release', 'packages'];

/**
 * On every artifact we write: the kinds the release archive held for this image (comma-separated). A later run
 * reads it back to tell "not attached yet" from "the archive has none" (older releases have no SBOM) without
 * downloading the archive again.
 */
export const ARCHIVE_ATTACHMENTS_ANNOTATION = 'dev.ironcore.publisher.archive-attachments';

interface AttachmentType {
  /** The archive member it comes from, `<base>` + this. */
  suffix: string;
  file: 'sbom' | 'release' | 'manifest';
  /** The manifest's artifactType and the layer's media type (the same: what Trivy requires of SBOMs). */
  mediaType: string;
  /** Larger files are refused: an attachment is read whole to be checked. */
  maxBytes: number;
  /** What is wrong with the content, or undefined when it is what the kind promises. */
  problem(text: string): string | undefined;
}

const MiB = 1024 * 1024;

/**
 * The media types: CycloneDX's registered type for the SBOM (Trivy's `--sbom-sources oci` filters on it), and for
 * os-release and the package list the types Garden Linux gives these very files in its own OCI artifacts
 * (python-gardenlinux-lib), so tools that read Garden Linux's artifacts read ours.
 */
export const ATTACHMENT_TYPES: Record<AttachmentKind, AttachmentType> = {
  sbom: {
    suffix: '.sbom',
    file: 'sbom',
    mediaType: 'application/vnd.cyclonedx+json',
    maxBytes: 64 * MiB,
    problem: cycloneDxProblem,
  },
  'os-release': {
    suffix: '.release',
    file: 'release',
    mediaType: 'application/io.gardenlinux.release',
    maxBytes: 64 * 1024,
    problem: osReleaseProblem,
  },
  packages: {
    suffix: '.manifest',
    file: 'manifest',
    mediaType: 'application/io.gardenlinux.manifest',
    maxBytes: 16 * MiB,
    problem: packageListProblem,
  },
};

/** The `attach` input: kinds separated by commas or spaces; empty is every kind, `none` is no attachment. */
export function parseAttachChoice(text: string): AttachmentKind[] {
  const words = text
    .split(/[\s,]+/)
    .map((w) => w.trim().toLowerCase())
    .filter(Boolean);
  if (words.length === 0) return [...ATTACHMENT_KINDS];
  if (words.length === 1 && words[0] === 'none') return [];
  const kinds = new Set<AttachmentKind>();
  for (const word of words) {
    if (!(ATTACHMENT_KINDS as readonly string[]).includes(word))
      throw new PublishError(
        `attach: "${printable(word)}" is not an attachment; use ${ATTACHMENT_KINDS.join(', ')} (any of them, comma-separated) or none`,
      );
    kinds.add(word as AttachmentKind);
  }
  return ATTACHMENT_KINDS.filter((k) => kinds.has(k));
}

export interface PreparedAttachment {
  kind: AttachmentKind;
  artifact: BuiltArtifact;
}

/**
 * Reads and checks the archive's attachment files (before anything is uploaded) and builds their artifacts. With
 * `keepIn`, the files are moved there first (a rename: the attach phase comes after the arch image's other files
 * are gone).
 */
export async function prepareAttachments(input: {
  files: FlavorFiles;
  /** `<cname>-<arch>-<version>-<commit8>`: names the files. */
  base: string;
  subject: Descriptor;
  wanted: readonly AttachmentKind[];
  /** The release's annotations (its `created` time among them). */
  annotations: Annotations;
  keepIn?: string;
}): Promise<PreparedAttachment[]> {
  if (input.wanted.length === 0) return [];
  const available = ATTACHMENT_KINDS.filter((k) => input.files[ATTACHMENT_TYPES[k].file]);
  const prepared: PreparedAttachment[] = [];
  if (input.keepIn) await mkdir(input.keepIn, { recursive: true });
  for (const kind of input.wanted) {
    const type = ATTACHMENT_TYPES[kind];
    const found = input.files[type.file];
    if (!found) continue;
    const title = `${input.base}${type.suffix}`;
    await checkAttachment(kind, found, title);
    let file = found;
    if (input.keepIn) {
      file = { ...found, path: join(input.keepIn, title) };
      await rename(found.path, file.path);
    }
    prepared.push({
      kind,
      artifact: buildArtifact({
        artifactType: type.mediaType,
        layerMediaType: type.mediaType,
        file: fileBlob(file.path, file.digest, file.size, title),
        title,
        subject: input.subject,
        annotations: {
          ...input.annotations,
          'org.opencontainers.image.title': title,
          [ARCHIVE_ATTACHMENTS_ANNOTATION]: available.join(','),
        },
      }),
    });
  }
  return prepared;
}

async function checkAttachment(kind: AttachmentKind, file: HashedFile, title: string): Promise<void> {
  const type = ATTACHMENT_TYPES[kind];
  const hint = `Fix the archive, or leave the ${kind} out with the attach input (e.g. attach: ${ATTACHMENT_KINDS.filter((k) => k !== kind).join(',')}).`;
  if (file.size > type.maxBytes) {
    throw new PublishError(
      `${title} is ${formatBytes(file.size)} (${file.size} bytes); ${kind} attachments are capped at ${formatBytes(type.maxBytes)}`,
      { hint },
    );
  }
  const bytes = await readFile(file.path);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const problem = bytes.includes(0) ? 'it holds NUL bytes (not text)' : type.problem(text);
  if (problem) throw new PublishError(`${title} is not a valid ${kind} file: ${problem}`, { hint });
}

function cycloneDxProblem(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return `not JSON (${printable((error as Error).message).slice(0, 120)})`;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return 'not a JSON object';
  const bom = parsed as { bomFormat?: unknown; specVersion?: unknown };
  if (bom.bomFormat !== 'CycloneDX')
    return `bomFormat is ${bom.bomFormat === undefined ? 'missing' : `"${printable(String(bom.bomFormat)).slice(0, 40)}"`}, not "CycloneDX"`;
  if (typeof bom.specVersion !== 'string') return 'specVersion is missing';
  return undefined;
}

function osReleaseProblem(text: string): string | undefined {
  const lines = text.split('\n');
  let hasId = false;
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(line))
      return `line ${i + 1} ("${printable(line).slice(0, 60)}") is not KEY=value`;
    if (line.startsWith('ID=')) hasId = true;
  }
  return hasId ? undefined : 'it has no ID= line';
}

function packageListProblem(text: string): string | undefined {
  let packages = 0;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    if (!/^\S+\s+\S+/.test(line))
      return `line ${i + 1} ("${printable(line).slice(0, 60)}") is not "<package> <version>"`;
    packages++;
  }
  return packages > 0 ? undefined : 'it lists no package';
}

/** What this run attached, by `tagKey` of the arch image (for the `images` output). */
export type AttachedByTag = Map<string, { artifactType: string; digest: string; title: string }[]>;

/** One arch image's attachments, held until every image of the run is stored and booted. */
export interface PendingAttachments {
  /** `tagKey` of the arch image. */
  key: string;
  /** Its full reference (for the log). */
  reference: string;
  repository: string;
  subject: Descriptor;
  prepared: PreparedAttachment[];
}

/**
 * The attach phase: each arch image's artifacts go up (their blobs once per store) and are recorded as referrers
 * of its manifest, `concurrency` images at a time; logged in the order given.
 */
export async function attachAll(
  pending: readonly PendingAttachments[],
  pushers: readonly BlobPusher[],
  concurrency: number,
  logger: Logger,
  signal?: AbortSignal,
): Promise<AttachedByTag> {
  const attached: AttachedByTag = new Map();
  await mapLimit([...pending], concurrency, async ({ key, reference, repository, subject, prepared }) => {
    if (prepared.length === 0) return;
    const modes: ReferrersMode[] = [];
    for (const pusher of pushers) {
      await Promise.all(
        prepared.flatMap((p) => p.artifact.blobs).map((b) => pusher.push(repository, b, signal)),
      );
      modes.push(
        await pusher.store.repository(repository).pushReferrers(
          subject,
          prepared.map((p) => p.artifact.manifest),
          signal,
        ),
      );
    }
    attached.set(
      key,
      prepared.map((p) => ({
        artifactType: p.artifact.artifactType,
        digest: p.artifact.manifest.digest,
        title: p.artifact.title,
      })),
    );
    const bytes = prepared.reduce((n, p) => n + p.artifact.blobs[1]!.size, 0);
    logger.info(
      `${reference}: attached ${prepared.map((p) => p.kind).join(', ')} (${formatBytes(bytes)}) as referrers of ${subject.digest} (${[...new Set(modes)].join(', ')})`,
    );
  });
  return attached;
}

/**
 * The wanted kinds a subject still lacks, judged from its referrers: none of ours means all of them; otherwise
 * the kinds our artifacts say the archive held that have no artifact yet.
 */
export function missingAttachments(
  referrers: readonly Descriptor[],
  wanted: readonly AttachmentKind[],
): AttachmentKind[] {
  if (wanted.length === 0) return [];
  const ours = referrers.filter((r) => r.annotations?.[ARCHIVE_ATTACHMENTS_ANNOTATION] !== undefined);
  if (ours.length === 0) return [...wanted];
  const available = new Set(ours.flatMap((r) => r.annotations![ARCHIVE_ATTACHMENTS_ANNOTATION]!.split(',')));
  return wanted.filter(
    (k) => available.has(k) && !ours.some((r) => r.artifactType === ATTACHMENT_TYPES[k].mediaType),
  );
}

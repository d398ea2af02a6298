// Referrers on a registry (distribution-spec 1.1). A registry with the referrers API lists referrers at
// `GET /v2/<name>/referrers/<digest>`; every other registry (ghcr.io, distribution 2.8) gets the fallback tag
// `sha256-<hex>`, an index this client keeps up to date itself.
// Deciding which: the spec has a registry with the API answer a manifest PUT with `OCI-Subject`, but ECR sends the
// header without serving the API (noted in @sigstore/oci) and go-containerregistry's registry serves the API
// without sending the header. So the API counts as there when the listing endpoint answers with an index that
// holds what was just pushed (or with an index, after an `OCI-Subject`), once per store.
import {
  EMPTY_CONFIG_MEDIA_TYPE,
  mergeReferrers,
  parseReferrersIndex,
  referrerEntryOf,
  referrersTagFor,
} from '../referrers';
import { serializedOf, type ReferrersMode } from '../store';
import type { Descriptor, SerializedManifest } from '../types';
import { OCI_INDEX } from '../mediatypes';
import { PublishError } from '../../util/errors';
import { mapLimit } from '../../util/concurrency';
import { pullScope } from './blobs';
import { getManifest, putManifest, type ManifestContext } from './manifests';
import { sleep } from './retry';

/** What the store learnt about the registry, shared by all its repositories. */
export interface ReferrersCapability {
  api?: boolean;
}

/** Referrers indexes are manifests: registries cap them at 4 MiB. */
const INDEX_LIMIT = 4 * 1024 * 1024;
/** Pages of a referrers listing followed before giving up (a `next` link that never ends). */
const MAX_PAGES = 100;
/** Rounds of read-merge-write-verify on the fallback tag before concurrent writers count as a failure. */
const FALLBACK_ROUNDS = 8;
/** The shortest wait before the fallback tag is read again to see that our write stayed. */
const MIN_SETTLE_MS = 150;

/**
 * The referrers API's answer for `subject`, every page; undefined when the registry has no API (404, or an answer
 * that is not an image index: the spec says a registry with the API never answers 404 here).
 */
export async function queryReferrersApi(
  ctx: ManifestContext,
  subject: string,
  signal?: AbortSignal,
): Promise<Descriptor[] | undefined> {
  const found: Descriptor[] = [];
  let url = `/v2/${ctx.repo}/referrers/${subject}`;
  for (let page = 0; page < MAX_PAGES; page++) {
    const operation = `listing the referrers of ${ctx.location}@${subject}`;
    const res = await ctx.client.sendAndRead(
      {
        method: 'GET',
        url,
        scopes: [pullScope(ctx.repo)],
        operation,
        expect: [200, 400, 404, 405, 501],
        headers: { accept: OCI_INDEX },
        ...(signal ? { signal } : {}),
      },
      INDEX_LIMIT,
    );
    if (!res.bytes) return undefined;
    // Judged by the body, not the Content-Type (ggcr's registry answers text/plain).
    try {
      found.push(...parseReferrersIndex(res.bytes, operation));
    } catch (error) {
      if (error instanceof PublishError) return undefined;
      throw error;
    }
    const next = nextLink(res.headers.link);
    if (!next) return found;
    url = ctx.client.resolve(next, res.url);
  }
  throw new PublishError(`listing the referrers of ${ctx.location}@${subject}: more than ${MAX_PAGES} pages`);
}

function nextLink(link: string | undefined): string | undefined {
  const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link ?? '');
  return match?.[1];
}

/** The referrers of `subject`: from the API when the registry has one, else from the fallback tag. */
export async function listReferrers(
  ctx: ManifestContext,
  capability: ReferrersCapability,
  subject: string,
  signal?: AbortSignal,
): Promise<Descriptor[]> {
  if (capability.api !== false) {
    const viaApi = await queryReferrersApi(ctx, subject, signal);
    if (viaApi) return completeEntries(ctx, viaApi, signal);
  }
  return (await readFallback(ctx, subject, signal)).entries;
}

/**
 * Entries as the spec has them (the manifest's artifactType and annotations). Some registries list the config's
 * media type and no annotations (go-containerregistry 0.14); for those entries the manifest itself is read.
 */
async function completeEntries(
  ctx: ManifestContext,
  entries: readonly Descriptor[],
  signal?: AbortSignal,
): Promise<Descriptor[]> {
  return mapLimit([...entries], 4, async (entry) => {
    if (entry.artifactType && entry.artifactType !== EMPTY_CONFIG_MEDIA_TYPE && entry.annotations)
      return entry;
    const manifest = await getManifest(ctx, entry.digest, signal);
    if (!manifest) return entry;
    return referrerEntryOf(serializedOf(manifest)).entry;
  });
}

async function readFallback(
  ctx: ManifestContext,
  subject: string,
  signal?: AbortSignal,
): Promise<{ entries: Descriptor[]; etag?: string; digest?: string }> {
  const tag = referrersTagFor(subject);
  const found = await getManifest(ctx, tag, signal);
  if (!found) return { entries: [] };
  return {
    entries: parseReferrersIndex(found.bytes, `${ctx.location}:${tag}`),
    digest: found.digest,
    ...(found.etag ? { etag: found.etag } : {}),
  };
}

/** Stores the artifacts (their blobs must be there) and makes them discoverable. */
export async function pushReferrers(
  ctx: ManifestContext,
  capability: ReferrersCapability,
  subject: Descriptor,
  artifacts: readonly SerializedManifest[],
  signal?: AbortSignal,
): Promise<ReferrersMode> {
  let subjectAnswered = artifacts.length > 0;
  for (const artifact of artifacts) {
    const answer = await putManifest(ctx, artifact, artifact.digest, signal ? { signal } : {});
    if (answer.headers['oci-subject'] !== subject.digest) subjectAnswered = false;
  }
  ctx.stats.manifestsPushed += artifacts.length;
  if (artifacts.length > 0 && capability.api === undefined) {
    const listed = await queryReferrersApi(ctx, subject.digest, signal);
    capability.api =
      listed !== undefined &&
      (subjectAnswered || artifacts.every((a) => listed.some((d) => d.digest === a.digest)));
    ctx.logger.info(
      capability.api
        ? `${ctx.client.registry} serves the OCI referrers API: referrers are listed by the registry`
        : `${ctx.client.registry} has no OCI referrers API: referrers are listed in sha256-<digest> fallback tags`,
    );
  }
  if (capability.api) return 'api';
  await updateFallbackTag(
    ctx,
    subject.digest,
    artifacts.map((a) => referrerEntryOf(a).entry),
    signal,
  );
  return 'fallback-tag';
}

/**
 * Read-modify-write of the fallback index: GET (keeping the ETag), merge, PUT with `If-Match` where the registry
 * gave an ETag (a 412 means someone wrote in between: start over). Registries that ignore `If-Match`
 * (distribution 2.8 does) can still lose our entries to a writer that read before our PUT and writes after it.
 * Such a writer's PUT comes at most one read-and-write time after ours, so the tag is read again after twice
 * our own read-to-write time (and a random share more), and the round repeats until our entries are in it.
 */
async function updateFallbackTag(
  ctx: ManifestContext,
  subject: string,
  entries: readonly Descriptor[],
  signal?: AbortSignal,
): Promise<void> {
  const tag = referrersTagFor(subject);
  for (let round = 1; round <= FALLBACK_ROUNDS; round++) {
    const started = performance.now();
    const current = await readFallback(ctx, subject, signal);
    const { index, changed } = mergeReferrers(current.entries, entries);
    if (!changed) return;
    const answer = await putManifest(ctx, index, tag, {
      ...(signal ? { signal } : {}),
      ...(current.etag ? { ifMatch: current.etag } : {}),
    });
    if (answer.status !== 412) {
      ctx.stats.manifestsPushed++;
      ctx.logger.debug(`${ctx.location}:${tag} updated (${index.digest})`);
      const readToWrite = performance.now() - started;
      await sleep(Math.max(MIN_SETTLE_MS, 2 * readToWrite) * (1 + Math.random() / 2), signal);
      const after = await readFallback(ctx, subject, signal);
      if (!mergeReferrers(after.entries, entries).changed) return;
      ctx.logger.debug(`${ctx.location}:${tag} was rewritten by another writer; merging again`);
    } else {
      ctx.logger.debug(`${ctx.location}:${tag} changed since it was read (412); merging again`);
    }
    await sleep(Math.random() * 250 * round, signal);
  }
  throw new PublishError(
    `${ctx.location}:${tag}: could not record ${entries.length} referrer(s) after ${FALLBACK_ROUNDS} tries; another writer keeps replacing the tag`,
    { hint: 'Run again: the artifacts are stored, and a re-run only adds what the tag lacks.' },
  );
}

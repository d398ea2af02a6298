// The "check what is published" phase: which tags of the plan exist in every store, and which existing arch
// images still lack wanted attachments. "Already published" means both: every tag, and every attachment.
import type { Store } from '../oci/store';
import { mapLimit } from '../util/concurrency';
import type { Logger } from '../util/logger';
import { missingAttachments, type AttachmentKind } from './attach';
import { planTags, type Plan } from './plan';

export interface ExistingTag {
  digest: string;
  mediaType: string;
  size: number;
}

export interface PublishedState {
  /** `repository:tag` -> what it names, for tags present in every store. */
  tags: Map<string, ExistingTag>;
  /** `repository:tag` of existing arch images -> the wanted attachments some store lacks. */
  unattached: Map<string, AttachmentKind[]>;
}

export function tagKey(repository: string, tag: string): string {
  return `${repository}:${tag}`;
}

/**
 * Tags present in every store (a tag missing from one of them counts as missing): the digest comes from
 * `checkStore`, with the manifest's size and media type needed to name it in an index. Then the referrers of
 * each existing arch image, in every store written to (or `checkStore` in a dry run).
 */
export async function findPublished(
  plan: Plan,
  checkStore: Store | undefined,
  stores: readonly Store[],
  wanted: readonly AttachmentKind[],
  logger: Logger,
  signal: AbortSignal | undefined,
): Promise<PublishedState> {
  const state: PublishedState = { tags: new Map(), unattached: new Map() };
  if (!checkStore) return state;
  const rows = planTags(plan);
  await mapLimit(rows, 8, async (row) => {
    const manifest = await checkStore.repository(row.repository).getManifest(row.tag, signal);
    if (!manifest) return;
    for (const other of stores) {
      if (other === checkStore) continue;
      if ((await other.repository(row.repository).resolveTag(row.tag, signal)) !== manifest.digest) return;
    }
    state.tags.set(tagKey(row.repository, row.tag), {
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      size: manifest.bytes.length,
    });
  });
  logger.info(`${state.tags.size} of ${rows.length} tags exist in ${checkStore.description}`);
  if (wanted.length === 0) return state;

  const archRows = rows.filter((r) => r.kind === 'arch' && state.tags.has(tagKey(r.repository, r.tag)));
  const readFrom = stores.length > 0 ? stores : [checkStore];
  await mapLimit(archRows, 8, async (row) => {
    const digest = state.tags.get(tagKey(row.repository, row.tag))!.digest;
    const missing = new Set<AttachmentKind>();
    for (const store of readFrom) {
      const referrers = await store.repository(row.repository).listReferrers(digest, signal);
      for (const kind of missingAttachments(referrers, wanted)) missing.add(kind);
    }
    if (missing.size > 0) state.unattached.set(tagKey(row.repository, row.tag), [...missing]);
  });
  if (archRows.length > 0)
    logger.info(
      state.unattached.size === 0
        ? `every published arch image has its attachments (${wanted.join(', ')})`
        : `${state.unattached.size} of ${archRows.length} published arch images lack attachments`,
    );
  return state;
}

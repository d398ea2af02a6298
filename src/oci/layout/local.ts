// The local image store of the toolkit commands, kept as ironcore-image keeps `~/.ironcore`: one OCI image
// layout for every image, each tag an index.json entry whose `org.opencontainers.image.ref.name` is the full
// reference (`ghcr.io/owner/image:tag`). skopeo reads it as `oci:DIR:<full reference>`.
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PublishError } from '../../util/errors';
import { digestHex } from '../digest';
import { isIndexMediaType } from '../mediatypes';
import { formatReference, validateRepositoryName, type Reference } from '../reference';
import { emptyStats, type Store } from '../store';
import type { Descriptor } from '../types';
import { LayoutRepository, sortIndexEntries } from './store';

const REF_NAME = 'org.opencontainers.image.ref.name';

export function defaultStorePath(): string {
  return join(homedir(), '.ironcore');
}

export interface LocalEntry {
  /** The full reference, e.g. `ghcr.io/owner/image:tag`. */
  reference: string;
  descriptor: Descriptor;
}

export class LocalStore {
  private readonly lock = { current: Promise.resolve() as Promise<unknown> };
  private readonly stats = emptyStats();

  private constructor(readonly root: string) {}

  /** Opens (and on first use creates) the store; a folder with other content is refused, not taken over. */
  static async open(root: string): Promise<LocalStore> {
    const entries = await readdir(root).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw new PublishError(`cannot read the store folder ${root}: ${error.message}`);
    });
    if (entries.length > 0 && !entries.includes('oci-layout')) {
      throw new PublishError(`${root} is not an OCI image layout (it has no oci-layout file)`, {
        hint: 'Give an empty or new folder, or an existing store, with --store-path.',
      });
    }
    if (entries.includes('oci-layout')) {
      const text = await readFile(join(root, 'oci-layout'), 'utf8').catch(() => '');
      let version: unknown;
      try {
        version = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        version = undefined;
      }
      if (version !== '1.0.0')
        throw new PublishError(
          `${join(root, 'oci-layout')} is not an OCI image layout file (imageLayoutVersion 1.0.0)`,
        );
    }
    return new LocalStore(root);
  }

  /** The repository view of `ref`'s image: tags are stored under `registry/repository:tag`. */
  repository(ref: Pick<Reference, 'registry' | 'repository'>): LayoutRepository {
    const prefix = `${ref.registry}/${ref.repository}`;
    return new LayoutRepository(this.root, this.stats, () => this.root, {
      refName: (tag) => `${prefix}:${tag}`,
      location: `${prefix} (in ${this.root})`,
      lock: this.lock,
    });
  }

  /**
   * The store as the pipeline writes to it: repository `name` of `registry` (so `publish` can write here and
   * `push` send it on later).
   */
  asStore(registry: string): Store {
    return {
      description: `local store ${this.root} (${registry})`,
      stats: this.stats,
      repository: (name) => this.repository({ registry, repository: validateRepositoryName(name) }),
      close: async () => {},
    };
  }

  private any(): LayoutRepository {
    return new LayoutRepository(this.root, this.stats, () => this.root, {
      refName: (name) => name,
      location: this.root,
      lock: this.lock,
    });
  }

  /** Every tagged entry, sorted by reference. */
  async list(): Promise<LocalEntry[]> {
    const index = await this.any().readIndex();
    return (index?.manifests ?? [])
      .filter((d) => d.annotations?.[REF_NAME])
      .map((d) => ({ reference: d.annotations![REF_NAME]!, descriptor: d }))
      .sort((a, b) => a.reference.localeCompare(b.reference));
  }

  async find(ref: Reference): Promise<LocalEntry | undefined> {
    const wanted = formatReference({ ...ref, tag: ref.tag ?? 'latest' });
    return (await this.list()).find((e) => e.reference === wanted);
  }

  /** Points `target` at what `source` names (a new index.json entry; no blob is copied). */
  async tag(source: Reference, target: Reference): Promise<Descriptor> {
    const found = await this.find(source);
    if (!found) throw new PublishError(`${formatReference(source)} is not in the store ${this.root}`);
    const name = formatReference({ ...target, tag: target.tag ?? 'latest' });
    await this.any().updateIndex((index) => ({
      ...index,
      manifests: sortIndexEntries([
        ...index.manifests.filter((d) => d.annotations?.[REF_NAME] !== name),
        { ...found.descriptor, annotations: { ...found.descriptor.annotations, [REF_NAME]: name } },
      ]),
    }));
    return found.descriptor;
  }

  /**
   * Removes the tag, then every blob no remaining entry reaches (the Go tool leaves them behind). Returns the
   * number of blobs removed.
   */
  async delete(ref: Reference): Promise<number> {
    const name = formatReference({ ...ref, tag: ref.tag ?? 'latest' });
    if (!(await this.find(ref))) throw new PublishError(`${name} is not in the store ${this.root}`);
    await this.any().updateIndex((index) => ({
      ...index,
      manifests: index.manifests.filter((d) => d.annotations?.[REF_NAME] !== name),
    }));
    return this.collectGarbage();
  }

  /**
   * Deletes blobs that no tag reaches through indexes and manifests, and the referrers (untagged index.json
   * entries with a `subject`) whose subject no tag reaches any more, with their blobs.
   */
  async collectGarbage(): Promise<number> {
    const reachable = new Set<string>();
    const subjects = new Map<string, string>();
    const visit = async (d: Descriptor): Promise<void> => {
      if (reachable.has(d.digest)) return;
      reachable.add(d.digest);
      const bytes = await readFile(this.blobPath(d.digest)).catch(() => undefined);
      if (!bytes) return;
      let parsed: { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
      try {
        parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
      } catch {
        return;
      }
      if (isIndexMediaType(d.mediaType) || Array.isArray(parsed.manifests)) {
        for (const child of parsed.manifests ?? []) await visit(child);
      } else if (parsed.config && Array.isArray(parsed.layers)) {
        reachable.add(parsed.config.digest);
        for (const layer of parsed.layers) reachable.add(layer.digest);
      }
    };
    const repository = this.any();
    const entries = (await repository.readIndex())?.manifests ?? [];
    for (const d of entries) if (d.annotations?.[REF_NAME]) await visit(d);
    const untagged = entries.filter((d) => !d.annotations?.[REF_NAME]);
    for (const d of untagged) {
      const bytes = await readFile(this.blobPath(d.digest)).catch(() => undefined);
      const subject = bytes ? subjectOf(bytes) : undefined;
      if (subject) subjects.set(d.digest, subject);
    }
    const orphans = new Set(
      untagged
        .filter((d) => subjects.has(d.digest) && !reachable.has(subjects.get(d.digest)!))
        .map((d) => d.digest),
    );
    if (orphans.size > 0)
      await repository.updateIndex((index) => ({
        ...index,
        manifests: index.manifests.filter((d) => d.annotations?.[REF_NAME] || !orphans.has(d.digest)),
      }));
    for (const d of untagged) if (!orphans.has(d.digest)) await visit(d);
    const dir = join(this.root, 'blobs', 'sha256');
    let removed = 0;
    for (const hex of await readdir(dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}$/.test(hex) || reachable.has(`sha256:${hex}`)) continue;
      await rm(join(dir, hex), { force: true });
      removed++;
    }
    return removed;
  }

  private blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  /** Bytes the store's blobs take (for `list`). */
  async size(): Promise<number> {
    const dir = join(this.root, 'blobs', 'sha256');
    let total = 0;
    for (const hex of await readdir(dir).catch(() => [] as string[]))
      total += await stat(join(dir, hex)).then(
        (s) => s.size,
        () => 0,
      );
    return total;
  }
}

/** The digest a manifest's `subject` names (it is a referrer of that manifest), if any. */
function subjectOf(bytes: Buffer): string | undefined {
  try {
    const digest = (JSON.parse(bytes.toString('utf8')) as { subject?: { digest?: unknown } }).subject?.digest;
    return typeof digest === 'string' ? digest : undefined;
  } catch {
    return undefined;
  }
}

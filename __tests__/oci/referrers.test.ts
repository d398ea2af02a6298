// The pure half of OCI 1.1 referrers: artifact manifests as the image spec shapes them, the fallback tag's name,
// and merging fallback indexes (deterministic, idempotent, each digest once).
import { describe, expect, it } from 'vitest';
import { bytesBlob } from '../../src/oci/blob';
import { sha256Digest } from '../../src/oci/digest';
import {
  buildArtifact,
  mergeReferrers,
  parseReferrersIndex,
  referrerEntryOf,
  referrersTagFor,
} from '../../src/oci/referrers';

const subject = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: sha256Digest(new TextEncoder().encode('subject')),
  size: 1234,
};
const file = bytesBlob(new TextEncoder().encode('{"bomFormat":"CycloneDX","specVersion":"1.6"}'));

function artifact(type: string, title: string) {
  return buildArtifact({
    artifactType: type,
    layerMediaType: type,
    file,
    title,
    subject,
    annotations: { 'org.opencontainers.image.created': '2026-02-01T08:00:00Z' },
  });
}

describe('referrers', () => {
  it('builds an artifact manifest with the empty config, one titled layer and the subject', () => {
    const built = artifact('application/vnd.cyclonedx+json', 'x.sbom');
    const manifest = JSON.parse(Buffer.from(built.manifest.bytes).toString()) as Record<string, unknown>;
    expect(manifest).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.cyclonedx+json',
      config: {
        mediaType: 'application/vnd.oci.empty.v1+json',
        // The digest of `{}`, as image-spec 1.1 gives it.
        digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
        size: 2,
      },
      layers: [
        {
          mediaType: 'application/vnd.cyclonedx+json',
          digest: file.digest,
          size: file.size,
          annotations: { 'org.opencontainers.image.title': 'x.sbom' },
        },
      ],
      subject,
      annotations: { 'org.opencontainers.image.created': '2026-02-01T08:00:00Z' },
    });
    expect(built.blobs.map((b) => b.digest)).toEqual([
      'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
      file.digest,
    ]);
    expect(built.entry).toEqual({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: built.manifest.digest,
      size: built.manifest.size,
      artifactType: 'application/vnd.cyclonedx+json',
      annotations: { 'org.opencontainers.image.created': '2026-02-01T08:00:00Z' },
    });
    // The same inputs give the same bytes: no clock anywhere.
    expect(artifact('application/vnd.cyclonedx+json', 'x.sbom').manifest.digest).toBe(built.manifest.digest);
    expect(referrerEntryOf(built.manifest)).toEqual({ entry: built.entry, subject: subject.digest });
  });

  it('names the fallback tag <alg>-<hex>, cut and cleaned as the distribution spec says', () => {
    expect(referrersTagFor(subject.digest)).toBe(`sha256-${subject.digest.slice(7)}`);
    expect(referrersTagFor(`sha512:${'ab'.repeat(64)}`)).toBe(`sha512-${'ab'.repeat(32)}`);
    expect(referrersTagFor(`a+b:${'c'.repeat(10)}`)).toBe(`a-b-${'c'.repeat(10)}`);
  });

  it('merges fallback entries: sorted by digest, replaced not duplicated, unchanged when nothing is new', () => {
    const a = artifact('application/vnd.cyclonedx+json', 'a').entry;
    const b = artifact('application/io.gardenlinux.release', 'b').entry;
    const foreign = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'0'.repeat(64)}`,
      size: 9,
    };
    const first = mergeReferrers([foreign], [a]);
    expect(first.changed).toBe(true);
    const second = mergeReferrers(parseReferrersIndex(first.index.bytes, 'first'), [b, a]);
    expect(second.changed).toBe(true);
    const entries = parseReferrersIndex(second.index.bytes, 'second');
    expect(entries.map((e) => e.digest)).toEqual([foreign.digest, a.digest, b.digest].sort());
    expect(entries.find((e) => e.digest === a.digest)).toEqual(a);
    const again = mergeReferrers(entries, [a, b]);
    expect(again.changed).toBe(false);
    expect(again.index.digest).toBe(second.index.digest);
    // The same set in any order gives the same index.
    expect(mergeReferrers([], [b, a, foreign]).index.digest).toBe(second.index.digest);
  });

  it('refuses a fallback tag that is not an index', () => {
    expect(() => parseReferrersIndex(new TextEncoder().encode('nope'), 'tag')).toThrow(/tag is not JSON/);
    expect(() => parseReferrersIndex(new TextEncoder().encode('{"layers":[]}'), 'tag')).toThrow(
      /not an image index/,
    );
  });
});

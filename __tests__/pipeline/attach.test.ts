// The attach phase's own decisions: which attachments the input asks for, what counts as a valid os-release,
// package list and CycloneDX SBOM (checked before anything is uploaded), and when a published image still
// lacks some (read back from its referrers).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ARCHIVE_ATTACHMENTS_ANNOTATION,
  ATTACHMENT_TYPES,
  missingAttachments,
  parseAttachChoice,
  prepareAttachments,
  type AttachmentKind,
} from '../../src/pipeline/attach';
import type { FlavorFiles } from '../../src/gardenlinux';
import { hashFile } from '../../src/util/files';
import { PublishError } from '../../src/util/errors';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'attach-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const subject = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${'1'.repeat(64)}`,
  size: 100,
};
const GOOD = {
  release: 'ID=gardenlinux\nNAME="Garden Linux"\n# comment\n\nGARDENLINUX_VERSION=2150.1.0\n',
  manifest: 'base-files 13.5\nsystemd 256.7-1\n',
  sbom: '{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}',
};

async function files(
  content: Partial<Record<'release' | 'manifest' | 'sbom', string | Buffer>>,
): Promise<FlavorFiles> {
  const out: FlavorFiles = {};
  for (const [key, text] of Object.entries(content)) {
    const path = join(dir, `${Math.random().toString(16).slice(2)}.${key}`);
    await writeFile(path, text);
    out[key as 'release'] = await hashFile(path);
  }
  return out;
}

async function prepare(
  content: Parameters<typeof files>[0],
  wanted: AttachmentKind[] = ['sbom', 'os-release', 'packages'],
) {
  return prepareAttachments({
    files: await files(content),
    base: 'kvm-gardener_prod-amd64-2150.1.0-0badcafe',
    subject,
    wanted,
    annotations: { 'org.opencontainers.image.created': '2026-02-01T08:00:00Z' },
  });
}

describe('attach input', () => {
  it('takes kinds in any order and case, none, or empty for all', () => {
    expect(parseAttachChoice('')).toEqual(['sbom', 'os-release', 'packages']);
    expect(parseAttachChoice('none')).toEqual([]);
    expect(parseAttachChoice(' Packages, sbom ')).toEqual(['sbom', 'packages']);
    expect(() => parseAttachChoice('sbom,logs')).toThrow(
      /attach: "logs" is not an attachment; use sbom, os-release, packages/,
    );
  });
});

describe('preparing attachments', () => {
  it('builds one artifact per wanted file, titled by the archive member, each naming what the archive held', async () => {
    const prepared = await prepare(GOOD);
    expect(prepared.map((p) => p.kind)).toEqual(['sbom', 'os-release', 'packages']);
    expect(prepared.map((p) => p.artifact.title)).toEqual([
      'kvm-gardener_prod-amd64-2150.1.0-0badcafe.sbom',
      'kvm-gardener_prod-amd64-2150.1.0-0badcafe.release',
      'kvm-gardener_prod-amd64-2150.1.0-0badcafe.manifest',
    ]);
    for (const p of prepared) {
      expect(p.artifact.artifactType).toBe(ATTACHMENT_TYPES[p.kind].mediaType);
      expect(p.artifact.entry.annotations?.[ARCHIVE_ATTACHMENTS_ANNOTATION]).toBe('sbom,os-release,packages');
      expect(p.artifact.entry.annotations?.['org.opencontainers.image.created']).toBe('2026-02-01T08:00:00Z');
    }
    // Only what is asked for; an archive without an SBOM says so in the others.
    const some = await prepare({ release: GOOD.release, manifest: GOOD.manifest });
    expect(some.map((p) => p.kind)).toEqual(['os-release', 'packages']);
    expect(some[0]!.artifact.entry.annotations?.[ARCHIVE_ATTACHMENTS_ANNOTATION]).toBe('os-release,packages');
    expect((await prepare(GOOD, ['packages'])).map((p) => p.kind)).toEqual(['packages']);
    expect(await prepare(GOOD, [])).toEqual([]);
  });

  it.each([
    [{ sbom: '{"bomFormat":"SPDX"' }, /\.sbom is not a valid sbom file: not JSON/],
    [
      { sbom: '{"bomFormat":"SPDX","specVersion":"2.3"}' },
      /\.sbom is not a valid sbom file: bomFormat is "SPDX", not "CycloneDX"/,
    ],
    [{ sbom: '{"bomFormat":"CycloneDX"}' }, /specVersion is missing/],
    [{ sbom: '[1,2]' }, /not a JSON object/],
    [
      { release: 'ID=gardenlinux\nthis is not os-release\n' },
      /\.release is not a valid os-release file: line 2 \("this is not os-release"\) is not KEY=value/,
    ],
    [{ release: 'NAME=x\n' }, /it has no ID= line/],
    [
      { manifest: 'base-files\n' },
      /\.manifest is not a valid packages file: line 1 \("base-files"\) is not "<package> <version>"/,
    ],
    [{ manifest: '\n\n' }, /it lists no package/],
    [{ manifest: Buffer.from('a 1\n\0\0\0') }, /it holds NUL bytes/],
  ])('refuses a malformed attachment: %j', async (content, message) => {
    const error = await prepare({ ...GOOD, ...content }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect((error as PublishError).message).toMatch(message);
    expect((error as PublishError).hint).toMatch(/leave the .* out with the attach input/);
  });

  it('refuses an oversized attachment before reading it', async () => {
    const big = Buffer.alloc(ATTACHMENT_TYPES['os-release'].maxBytes + 1, 'A');
    const error = await prepare({ ...GOOD, release: big }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /\.release is 64\.0 KiB \(65537 bytes\); os-release attachments are capped at 64\.0 KiB/,
    );
  });
});

describe('what a published image lacks', () => {
  const ours = (type: string, available: string) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${'2'.repeat(64)}`,
    size: 1,
    artifactType: type,
    annotations: { [ARCHIVE_ATTACHMENTS_ANNOTATION]: available },
  });
  const sbom = ATTACHMENT_TYPES.sbom.mediaType;
  const release = ATTACHMENT_TYPES['os-release'].mediaType;
  const packages = ATTACHMENT_TYPES.packages.mediaType;
  const all: AttachmentKind[] = ['sbom', 'os-release', 'packages'];

  it('all of them when nothing of ours refers to it (a publication from before attachments)', () => {
    const foreign = { mediaType: 'x', digest: `sha256:${'3'.repeat(64)}`, size: 1, artifactType: sbom };
    expect(missingAttachments([], all)).toEqual(all);
    expect(missingAttachments([foreign], all)).toEqual(all);
  });

  it('the kinds the archive held that have no artifact yet; none when nothing is wanted', () => {
    const available = 'sbom,os-release,packages';
    expect(
      missingAttachments([ours(sbom, available), ours(release, available), ours(packages, available)], all),
    ).toEqual([]);
    expect(missingAttachments([ours(release, available)], all)).toEqual(['sbom', 'packages']);
    expect(missingAttachments([ours(release, available)], [])).toEqual([]);
    // An archive without an SBOM: complete with two.
    expect(
      missingAttachments([ours(release, 'os-release,packages'), ours(packages, 'os-release,packages')], all),
    ).toEqual([]);
  });
});

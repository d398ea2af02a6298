// Garden Linux versions: two components up to 1877.x (`1877.23`), three since 2150.0.0 (`2150.9.0`).
// Odd tags exist (`beta_934.1`, `0.9.1`); they are not stable releases and never win "newest".
import { PublishError, printable } from '../util/errors';

/**
 * What counts as a stable release tag when no version is given: a major of at least three digits
 * (Garden Linux majors started at 184 and are days since 2020-03-31), then one or two numeric parts.
 * This drops `beta_934.1` (prefix), `0.9.1` (pre-history) and anything with suffixes (`-rc1`).
 */
export const PLAIN_VERSION = /^\d{3,}\.\d+(\.\d+)?$/;

/** What an explicit version may look like: digits and dots only, two or three components. */
const EXPLICIT_VERSION = /^\d+\.\d+(\.\d+)?$/;

export type VersionParts = [major: number, minor: number, patch: number];

/** Parses `1877.23` / `2150.9.0`; a missing patch counts as 0. Undefined when not a version. */
export function parseVersion(version: string): VersionParts | undefined {
  if (!EXPLICIT_VERSION.test(version)) return undefined;
  const parts = version.split('.').map((p) => Number.parseInt(p, 10));
  return [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
}

/** Numeric order (missing patch = 0); non-versions sort before every version. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) return (pa ? 1 : 0) - (pb ? 1 : 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function isPlainVersion(tag: string): boolean {
  return PLAIN_VERSION.test(tag);
}

/**
 * Checks a version that came from a person (an input or a CLI flag) before it is put into a URL or
 * a file name: anything but digits and dots is refused here, before any request is made.
 */
export function validateVersion(input: string): string {
  const version = input.trim();
  if (!EXPLICIT_VERSION.test(version)) {
    throw new PublishError(`invalid Garden Linux version "${printable(input)}"`, {
      hint: 'A version is two or three dot-separated numbers, e.g. 1877.23 or 2150.9.0.',
    });
  }
  return version;
}

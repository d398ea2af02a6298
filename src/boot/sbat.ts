// The .sbat section ukify 254 writes into every UKI (merge_sbat): the SBAT header line, then the entries of the
// stub's and the kernel's own .sbat sections, then ukify's default "uki" entry. Secure Boot revocation (shim)
// reads it; we rebuild it exactly so the native UKI matches ukify's byte for byte.
import { PublishError } from '../util/errors';
import { openForReading, tryReadPeHeaders } from './pe';

export const SBAT_HEADER = 'sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md';
/** ukify's default --sbat text for a UKI (not an addon). */
export const UKIFY_DEFAULT_SBAT = `${SBAT_HEADER}\nuki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n`;

/** Python's str.splitlines(): these are all line boundaries there, and a trailing one adds no empty line. */
export function splitLines(text: string): string[] {
  // eslint-disable-next-line no-control-regex -- Python counts these control characters as line breaks
  const lines = text.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** The entries (all lines but the "sbat," header) of each .sbat section of a PE file; [] when not PE. */
async function sbatEntriesOf(path: string, what: string): Promise<string[]> {
  const headers = await tryReadPeHeaders(path, what);
  if (!headers) return []; // ukify: "is not a valid PE file, not extracting SBAT section"
  const entries: string[] = [];
  for (const section of headers.sections) {
    if (section.name !== '.sbat') continue;
    const handle = await openForReading(path, what);
    let raw: Buffer;
    try {
      raw = Buffer.alloc(section.sizeOfRawData);
      const { bytesRead } = await handle.read(raw, 0, raw.length, section.pointerToRawData);
      raw = raw.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
    let end = raw.length;
    while (end > 0 && raw[end - 1] === 0) end--;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw.subarray(0, end));
    } catch (error) {
      throw new PublishError(`the .sbat section of ${what} ${path} is not UTF-8 text`, { cause: error });
    }
    const lines = splitLines(text);
    if (!lines[0]?.startsWith('sbat,')) continue; // ukify skips a section without the header line
    entries.push(...lines.slice(1));
  }
  return entries;
}

/** The .sbat text ukify 254 builds from the stub, the kernel and its default policy (NUL-terminated). */
export async function mergedSbat(stub: string, kernel: string): Promise<string> {
  const entries = [
    ...(await sbatEntriesOf(stub, 'stub')),
    ...(await sbatEntriesOf(kernel, 'kernel')),
    ...splitLines(UKIFY_DEFAULT_SBAT).slice(1),
  ];
  return `${SBAT_HEADER}\n${entries.join('\n')}\n\0`;
}

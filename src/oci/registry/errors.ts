// Turning registry answers into PublishErrors a person can act on: the operation, the reference, the
// registry's own error code and message, and a hint for the failures we know (ghcr.io permissions).
import { PublishError } from '../../util/errors';

export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/** Parses `{"errors":[{"code","message","detail"}]}`; anything else (HTML, garbage, empty) gives []. */
export function parseRegistryErrors(body: string): RegistryErrorEntry[] {
  if (!body.trim().startsWith('{')) return [];
  try {
    const parsed: unknown = JSON.parse(body);
    const errors = (parsed as { errors?: unknown })?.errors;
    if (!Array.isArray(errors)) return [];
    return errors
      .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
      .map((e) => ({
        code: typeof e.code === 'string' ? e.code : 'UNKNOWN',
        message: typeof e.message === 'string' ? e.message : '',
        ...(e.detail !== undefined ? { detail: e.detail } : {}),
      }));
  } catch {
    return [];
  }
}

function describeEntry(entry: RegistryErrorEntry): string {
  let text = entry.code.toLowerCase();
  if (entry.message && entry.message.toLowerCase() !== text) text += `: ${entry.message}`;
  if (typeof entry.detail === 'string' && entry.detail && !text.includes(entry.detail))
    text += ` (${entry.detail})`;
  return text;
}

/** Printable start of a body that is not a registry error document, so "garbage" is still shown briefly. */
function snippet(body: string): string {
  const text = body
    .replace(/<[^>]*>/g, ' ')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** What the registry said, e.g. `denied: permission_denied: write_package` or `HTTP 502 Bad Gateway: ...`. */
export function describeRegistryAnswer(status: number, statusText: string, body: string): string {
  const entries = parseRegistryErrors(body);
  if (entries.length > 0) return entries.map(describeEntry).join('; ');
  const head = `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
  const rest = snippet(body);
  return rest ? `${head}: ${rest}` : head;
}

export function hasErrorCode(body: string, code: string): boolean {
  return parseRegistryErrors(body).some((e) => e.code.toUpperCase() === code);
}

const GHCR_HINT =
  'grant the workflow "permissions: packages: write" and check the token: GITHUB_TOKEN can only write packages ' +
  'linked to its repository, a personal access token needs the write:packages scope';

/** A hint for the failures we know how to fix, by registry and status. */
export function hintFor(registry: string, status: number, hasCredentials: boolean): string | undefined {
  if (status !== 401 && status !== 403) return undefined;
  if (registry === 'ghcr.io') return GHCR_HINT;
  if (!hasCredentials)
    return `the registry wants credentials: log in to ${registry} (docker login) or pass a username and password`;
  return `check the credentials for ${registry} and that they may push to this repository`;
}

export function registryError(
  operation: string,
  registry: string,
  status: number,
  statusText: string,
  body: string,
  hasCredentials: boolean,
): PublishError {
  const hint = hintFor(registry, status, hasCredentials);
  return new PublishError(
    `${operation}: ${describeRegistryAnswer(status, statusText, body)}`,
    hint ? { hint } : {},
  );
}

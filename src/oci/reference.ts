// Image references and the names inside them, validated against the OCI distribution grammar,
// with error messages that say what was wrong.
import { PublishError } from '../util/errors';

const NAME_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface Reference {
  /** host[:port], e.g. `ghcr.io` or `127.0.0.1:5000` */
  registry: string;
  /** repository path, e.g. `ironcore-dev/gardenlinux` */
  repository: string;
  tag?: string;
  digest?: string;
}

export function validateRepositoryName(name: string): string {
  if (name.length === 0 || name.length > 255) {
    throw new PublishError(`invalid repository name "${name}": it must be 1 to 255 characters long`);
  }
  for (const component of name.split('/')) {
    if (!NAME_COMPONENT.test(component)) {
      const hint = /[A-Z]/.test(component) ? ' (registries require lowercase names)' : '';
      throw new PublishError(
        `invalid repository name "${name}": "${component}" must be lowercase letters, digits and single separators (. _ __ -)${hint}`,
      );
    }
  }
  return name;
}

export function validateTag(tag: string): string {
  if (!TAG.test(tag)) {
    throw new PublishError(
      `invalid tag "${tag}": a tag is 1 to 128 characters of letters, digits, _ . - and must not start with . or -`,
    );
  }
  return tag;
}

/**
 * A registry input as it may be shown in an error: credentials (`user:pass@`) replaced, control
 * characters escaped, and cut short, so a mistaken input never echoes a password or forges log lines.
 */
function shownHost(host: string): string {
  const at = host.lastIndexOf('@');
  const safe = at >= 0 ? `<credentials removed>@${host.slice(at + 1)}` : host;
  const escaped = JSON.stringify(safe).slice(1, -1);
  return escaped.length > 100 ? `${escaped.slice(0, 100)}...` : escaped;
}

/** Validates a registry host (`host[:port]`): no scheme, path, credentials or spaces. */
export function validateRegistryHost(host: string): string {
  if (!/^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$/.test(host) && !/^\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?$/.test(host)) {
    throw new PublishError(
      `invalid registry "${shownHost(host)}": give a host name with an optional port (e.g. ghcr.io or 127.0.0.1:5000), without scheme, path or credentials`,
    );
  }
  return host.toLowerCase();
}

/** Parses `registry/repository[:tag][@digest]`. The registry part is required (no Docker Hub default). */
export function parseReference(text: string): Reference {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  if (slash <= 0) {
    throw new PublishError(`invalid image reference "${text}": expected registry/repository[:tag][@digest]`);
  }
  const registry = validateRegistryHost(trimmed.slice(0, slash));
  let rest = trimmed.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new PublishError(`invalid digest "${digest}" in "${text}"`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = validateTag(rest.slice(colon + 1));
    rest = rest.slice(0, colon);
  }
  const repository = validateRepositoryName(rest);
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** True for hosts where plain HTTP is acceptable without an explicit opt-in. */
export function isLoopbackHost(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}

// Registry authentication: anonymous until the registry asks, then Basic or the Bearer token flow of
// the distribution spec. Tokens are cached per scope set (a token for `pull,push` also serves `pull`),
// fetched once however many requests wait for them, and renewed before they would expire mid-request.
import { PublishError } from '../../util/errors';
import type { Logger } from '../../util/logger';
import { isLoopbackHost } from '../reference';
import type { Credentials } from './credentials';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="https://x/token",service="x",scope="repository:a:pull"` (first challenge wins). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  for (let m = re.exec(match[2] ?? ''); m; m = re.exec(match[2] ?? '')) {
    params[(m[1] ?? '').toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (match[1] ?? '').toLowerCase(), params };
}

/** `repository:a/b:pull,push` → resource → actions. */
function parseScopes(scopes: readonly string[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const colon = scope.lastIndexOf(':');
    if (colon < 0) continue;
    const resource = scope.slice(0, colon);
    const actions = out.get(resource) ?? new Set<string>();
    for (const action of scope.slice(colon + 1).split(',')) if (action) actions.add(action);
    out.set(resource, actions);
  }
  return out;
}

function covers(granted: Map<string, Set<string>>, wanted: Map<string, Set<string>>): boolean {
  for (const [resource, actions] of wanted) {
    const have = granted.get(resource);
    if (!have) return false;
    for (const action of actions) if (!have.has(action)) return false;
  }
  return true;
}

function scopeKey(scopes: readonly string[]): string {
  return [...new Set(scopes)].sort().join(' ');
}

interface CachedToken {
  token: string;
  expiresAt: number;
  scopes: Map<string, Set<string>>;
}

/** A token is renewed when less than this is left beyond the time the caller needs it for. */
const RENEW_MARGIN_MS = 10_000;

export interface TokenFetch {
  /** GETs `url` with optional headers; returns status, status text and body text. Throws on network errors. */
  (
    url: string,
    headers: Record<string, string>,
    operation: string,
  ): Promise<{ status: number; statusText: string; body: string }>;
}

export class Authenticator {
  private scheme: 'none' | 'basic' | 'bearer' = 'none';
  private realm: string | undefined;
  private service: string | undefined;
  private credentials: Promise<Credentials | undefined> | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  /** Every secret seen, so messages can be scrubbed of them. */
  readonly secrets = new Set<string>();
  /** Counts token requests; tests assert caching with it. */
  tokenRequests = 0;

  constructor(
    private readonly registry: string,
    private readonly loadCredentials: () => Promise<Credentials | undefined>,
    private readonly fetchToken: TokenFetch,
    private readonly logger: Logger,
    private readonly insecure: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  private getCredentials(): Promise<Credentials | undefined> {
    this.credentials ??= this.loadCredentials().then((c) => {
      if (c?.password) this.secrets.add(c.password);
      if (c) this.secrets.add(Buffer.from(`${c.username}:${c.password}`).toString('base64'));
      return c;
    });
    return this.credentials;
  }

  async hasCredentials(): Promise<boolean> {
    return (await this.getCredentials().catch(() => undefined)) !== undefined;
  }

  private async basicHeader(): Promise<string | undefined> {
    const c = await this.getCredentials();
    return c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : undefined;
  }

  /** The Authorization header for a request needing `scopes` that should stay valid for `minValidityMs`. */
  async header(scopes: readonly string[], minValidityMs = 0): Promise<string | undefined> {
    if (this.scheme === 'basic') return this.basicHeader();
    if (this.scheme !== 'bearer') return undefined;
    const token = await this.token(scopes, minValidityMs);
    return `Bearer ${token.token}`;
  }

  /**
   * Learns from a 401. Returns normally when a retry with new credentials makes sense; throws a
   * PublishError when it cannot (no credentials, or the ones sent were refused).
   */
  async onUnauthorized(
    wwwAuthenticate: string | undefined,
    scopes: readonly string[],
    operation: string,
    sentAuth: boolean,
  ): Promise<void> {
    const challenge = parseChallenge(wwwAuthenticate);
    const creds = await this.getCredentials();
    if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      const wasBearer = this.scheme === 'bearer';
      this.scheme = 'bearer';
      this.realm = challenge.params.realm;
      this.service = challenge.params.service;
      if (wasBearer && sentAuth) {
        // The token we sent was refused (expired early, or revoked): forget the tokens for this scope set.
        const wanted = parseScopes(scopes);
        for (const [key, cached] of this.tokens) if (covers(cached.scopes, wanted)) this.tokens.delete(key);
      }
      const extra = challenge.params.scope ? challenge.params.scope.split(' ') : [];
      // The challenge may name a scope we did not think of; ask for it too.
      if (extra.some((s) => !covers(parseScopes(scopes), parseScopes([s])))) {
        this.extraScopes.set(scopeKey(scopes), extra);
      }
      return;
    }
    if (challenge?.scheme === 'basic' || (!challenge && creds)) {
      if (!creds) {
        throw new PublishError(
          `${operation}: the registry ${this.registry} requires credentials and none were found`,
          {
            hint: `log in to ${this.registry} (docker login) or pass a username and password`,
          },
        );
      }
      if (this.scheme === 'basic' && sentAuth) {
        throw new PublishError(
          `${operation}: the registry ${this.registry} refused the credentials of user "${creds.username}" (wrong username or password)`,
          {
            hint: `check the username and password for ${this.registry}`,
          },
        );
      }
      this.scheme = 'basic';
      return;
    }
    throw new PublishError(
      `${operation}: the registry ${this.registry} answered 401 without a usable authentication challenge`,
    );
  }

  private readonly extraScopes = new Map<string, string[]>();

  private async token(scopes: readonly string[], minValidityMs: number): Promise<CachedToken> {
    const wanted = parseScopes(scopes);
    const deadline = this.now() + minValidityMs + RENEW_MARGIN_MS;
    for (const cached of this.tokens.values()) {
      if (cached.expiresAt > deadline && covers(cached.scopes, wanted)) return cached;
    }
    const all = [...scopes, ...(this.extraScopes.get(scopeKey(scopes)) ?? [])];
    const key = scopeKey(all);
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.requestToken(all).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const token = await pending;
    if (token.expiresAt <= deadline) {
      // The registry's tokens do not live as long as this request needs; the freshest one is the best we have.
      this.logger.debug(`tokens of ${this.registry} live shorter than the upload is expected to take`);
    }
    return token;
  }

  private async requestToken(scopes: readonly string[]): Promise<CachedToken> {
    const realm = this.realm ?? '';
    // Messages here leave out the operation: the request that needed the token prefixes its own.
    const operation = 'getting a token';
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new PublishError(`the registry named an invalid token realm "${realm}"`);
    }
    // Credentials must not travel in clear text to a non-loopback host.
    if (
      url.protocol !== 'https:' &&
      !(url.protocol === 'http:' && (isLoopbackHost(url.host) || this.insecure))
    ) {
      throw new PublishError(
        `the token realm ${url.origin} is not https; refusing to send credentials there`,
      );
    }
    if (this.service) url.searchParams.set('service', this.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const creds = await this.getCredentials();
    const headers: Record<string, string> = {};
    const basic = await this.basicHeader();
    if (basic) headers.authorization = basic;
    this.tokenRequests++;
    const issued = this.now();
    const answer = await this.fetchToken(url.toString(), headers, `${operation} from ${url.host}`);
    if (answer.status === 401 || answer.status === 403) {
      throw new PublishError(
        creds
          ? `the token service ${url.host} refused the credentials of user "${creds.username}" (HTTP ${answer.status})`
          : `the token service ${url.host} refused anonymous access (HTTP ${answer.status})`,
        {
          hint:
            this.registry === 'ghcr.io'
              ? 'grant the workflow "permissions: packages: write" and check the token'
              : `check the credentials for ${this.registry}`,
        },
      );
    }
    if (answer.status !== 200) {
      throw new PublishError(
        `the token service ${url.host} answered HTTP ${answer.status} ${answer.statusText}`,
      );
    }
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(answer.body) as typeof parsed;
    } catch {
      throw new PublishError(`the token service ${url.host} answered something that is not JSON`);
    }
    const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || !token) {
      throw new PublishError(`the token service ${url.host} answered without a token`);
    }
    this.secrets.add(token);
    const expiresIn = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    const cached: CachedToken = { token, expiresAt: issued + expiresIn * 1000, scopes: parseScopes(scopes) };
    this.tokens.set(scopeKey(scopes), cached);
    this.logger.debug(`token for ${this.registry} (${scopes.join(' ')}), valid ${expiresIn}s`);
    return cached;
  }

  /** Replaces every known secret in `text`; a last line of defence for messages and logs. */
  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) if (secret.length >= 4) out = out.split(secret).join('***');
    return out;
  }
}

// The one place that sends HTTP to a registry: picks the scheme, adds authentication (retrying once after
// a 401), follows redirects by hand so the Authorization header never reaches another host, and turns
// failures into PublishErrors (TransientError for those worth retrying).
import type { Readable } from 'node:stream';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { createDispatcher, proxyFailure, proxySettings } from '../../util/dispatcher';
import type { ProxySettings } from '../../util/dispatcher';
import { PublishError } from '../../util/errors';
import type { Logger } from '../../util/logger';
import { isLoopbackHost } from '../reference';
import { Authenticator } from './auth';
import type { Credentials } from './credentials';
import { describeRegistryAnswer, hintFor } from './errors';
import { DEFAULT_RETRY, TransientError, isRetryableStatus, parseRetryAfter, withRetry } from './retry';
import type { RetryOptions } from './retry';

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface SendOptions {
  method: Method;
  /** A path (`/v2/...`) on the registry, or an absolute URL (an upload Location). */
  url: string;
  /** Token scopes the request needs, e.g. `repository:a/b:pull,push`. */
  scopes: readonly string[];
  /** Says what is being done, for errors: `pushing manifest host/repo:tag`. */
  operation: string;
  /** Statuses handed back to the caller; any other is an error. */
  expect: readonly number[];
  headers?: Record<string, string>;
  /** Called again for each attempt, so a stream body can be replayed. */
  body?: () => Readable | Uint8Array | string;
  followRedirects?: boolean;
  /** The token must stay valid this long (a long upload). */
  minValidityMs?: number;
  signal?: AbortSignal;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | undefined>;
  /** The URL that answered (after redirects). */
  url: string;
  body: Dispatcher.ResponseData['body'];
}

export interface ClientOptions {
  registry: string;
  loadCredentials: () => Promise<Credentials | undefined>;
  /** Plain HTTP allowed for a non-loopback registry (HTTPS is still tried first). */
  insecure?: boolean;
  logger: Logger;
  retry?: Partial<RetryOptions>;
  signal?: AbortSignal;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed while sending',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'answer stalled',
  UND_ERR_CLOSED: 'connection closed',
};

function flattenHeaders(headers: Dispatcher.ResponseData['headers']): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(headers))
    out[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

/** Reads at most `limit` bytes of a body as text and drops the rest. */
export async function readText(body: Dispatcher.ResponseData['body'], limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (size < limit) chunks.push(chunk);
      size += chunk.length;
    }
  } catch {
    // A body cut off mid-way still says enough for an error message.
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, limit);
}

export async function readBytes(
  body: Dispatcher.ResponseData['body'],
  limit: number,
  what: string,
): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new PublishError(`${what}: larger than ${limit} bytes, refusing to read it into memory`);
    }
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  await body.dump({ limit: 256 * 1024 }).catch(() => undefined);
}

const TLS_CODE =
  /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|ERR_TLS_CERT)/;

function tlsCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TLS_CODE.test(code)) return code;
  }
  return undefined;
}

/**
 * True when a TLS handshake failed because the server does not speak TLS at all: OpenSSL read a plain
 * HTTP answer (`HTTP/1.1 400 ...`) as a TLS record. A certificate error is never this.
 */
function notTls(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (
      code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
      code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' ||
      code === 'ERR_SSL_HTTP_REQUEST'
    )
      return true;
    if (
      code === 'EPROTO' &&
      /wrong version number|packet length too long|http request/i.test(String(message))
    )
      return true;
  }
  return false;
}

function networkCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (code in NETWORK_CODES || code.startsWith('E'))) return code;
  }
  return undefined;
}

export class RegistryClient {
  readonly registry: string;
  readonly auth: Authenticator;
  readonly retry: RetryOptions;
  readonly logger: Logger;
  readonly signal: AbortSignal | undefined;
  private readonly agent: Dispatcher;
  private readonly proxies: ProxySettings;
  /** Plain HTTP is allowed (loopback, or insecure): HTTPS is probed first, once per client. */
  private readonly mayUsePlainHttp: boolean;
  private origin: Promise<string> | undefined;

  constructor(options: ClientOptions) {
    this.registry = options.registry;
    // Plain HTTP only where nobody can listen in (loopback), or when the caller opted in.
    this.mayUsePlainHttp = options.insecure === true || isLoopbackHost(options.registry);
    this.logger = options.logger;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.signal = options.signal;
    this.proxies = proxySettings();
    this.agent = createDispatcher(
      {
        keepAliveTimeout: 30_000,
        // The answer to a blob PUT comes after the registry has checked the digest of gigabytes.
        headersTimeout: 10 * 60_000,
        bodyTimeout: 5 * 60_000,
        connectTimeout: 30_000,
      },
      this.proxies,
    );
    this.auth = new Authenticator(
      options.registry,
      options.loadCredentials,
      (url, headers, operation) => this.fetchToken(url, headers, operation),
      options.logger,
      options.insecure === true,
    );
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  redact(text: string): string {
    return this.auth.redact(text);
  }

  resolve(url: string, base: string): string {
    return new URL(url, base).toString();
  }

  /**
   * `https://host` or, where plain HTTP is allowed and the registry does not speak TLS, `http://host`:
   * decided by the first request (as docker does for localhost and insecure registries) and kept for the
   * life of the client. Only a handshake that shows the server does not speak TLS at all falls back; a
   * certificate error stays an error, and a network failure is retried like any other.
   */
  baseUrl(operation = `reaching the registry ${this.registry}`): Promise<string> {
    if (!this.mayUsePlainHttp) return Promise.resolve(`https://${this.registry}`);
    this.origin ??= this.probeScheme(operation).catch((error: unknown) => {
      this.origin = undefined; // a network failure decides nothing: the next try probes again
      throw error;
    });
    return this.origin;
  }

  private async probeScheme(operation: string): Promise<string> {
    const https = `https://${this.registry}`;
    const started = performance.now();
    const took = (): string => `${(performance.now() - started).toFixed(1)} ms`;
    try {
      const res = await this.raw('GET', `${https}/v2/`, {}, undefined, operation, this.signal, {
        plainHttpFallback: true,
      });
      await discard(res.body);
      this.logger.debug(`${this.registry} speaks HTTPS (checked in ${took()})`);
      return https;
    } catch (error) {
      if (!(error instanceof NotTlsError)) throw error;
      this.logger.debug(
        `${this.registry} does not speak TLS (${error.code}, checked in ${took()}): using plain HTTP`,
      );
      return `http://${this.registry}`;
    }
  }

  private combinedSignal(signal?: AbortSignal): AbortSignal | undefined {
    const signals = [signal, this.signal].filter((s): s is AbortSignal => s !== undefined);
    return signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  }

  /** One undici request; network failures become TransientErrors naming the operation. */
  private async raw(
    method: Method,
    url: string,
    headers: Record<string, string>,
    body: Readable | Uint8Array | string | undefined,
    operation: string,
    signal: AbortSignal | undefined,
    probe: { plainHttpFallback?: boolean } = {},
  ): Promise<Dispatcher.ResponseData> {
    try {
      return await request(url, { method, headers, body: body ?? null, dispatcher: this.agent, signal });
    } catch (error) {
      if (signal?.aborted)
        throw signal.reason instanceof Error ? signal.reason : new PublishError(`${operation}: aborted`);
      if (body && typeof body === 'object' && 'destroy' in body) body.destroy();
      const viaProxy = proxyFailure(error, url, this.proxies);
      if (viaProxy) {
        const failure = new PublishError(`${operation}: ${viaProxy.message}`, {
          cause: error,
          hint: viaProxy.hint,
        });
        throw viaProxy.transient ? new TransientError(failure) : failure;
      }
      if (probe.plainHttpFallback && notTls(error)) throw new NotTlsError(tlsCode(error) ?? 'EPROTO');
      const tls = tlsCode(error);
      if (tls) {
        // Not transient: a certificate or protocol mismatch does not heal by waiting.
        throw new PublishError(`${operation}: TLS with ${new URL(url).host} failed (${tls})`, {
          cause: error,
          hint: tls.startsWith('ERR_SSL')
            ? 'if this registry speaks plain HTTP, allow it explicitly (insecure)'
            : 'the registry certificate is not trusted: fix it, or add its CA with NODE_EXTRA_CA_CERTS',
        });
      }
      const code = networkCode(error);
      const what = code
        ? `${NETWORK_CODES[code] ?? code} (${code})`
        : this.redact((error as Error).message ?? String(error));
      throw new TransientError(
        new PublishError(`${operation}: cannot reach the registry ${new URL(url).host}: ${what}`, {
          cause: error,
          hint: `check the registry address and that it is reachable from this machine`,
        }),
      );
    }
  }

  private async fetchToken(url: string, headers: Record<string, string>, operation: string) {
    return withRetry(
      async () => {
        const res = await this.raw('GET', url, headers, undefined, operation, this.signal);
        const body = await readText(res.body);
        if (isRetryableStatus(res.statusCode, body)) {
          throw new TransientError(
            new PublishError(
              `${operation}: the token service answered ${describeRegistryAnswer(res.statusCode, res.statusText, body)}`,
            ),
            parseRetryAfter(flattenHeaders(res.headers)['retry-after']),
          );
        }
        return { status: res.statusCode, statusText: res.statusText, body };
      },
      { retry: this.retry, logger: this.logger, what: operation, signal: this.signal },
    );
  }

  /**
   * One logical request: authentication (with one retry after a 401) and redirects, no retries of
   * transient failures (see `send`). Statuses outside `expect` throw.
   */
  async sendOnce(options: SendOptions): Promise<RegistryResponse> {
    const signal = this.combinedSignal(options.signal);
    const base = await this.baseUrl(options.operation);
    let url = this.resolve(options.url, base);
    const registryHost = new URL(base).host;
    let authRetried = false;
    for (let hops = 0; ;) {
      const headers: Record<string, string> = { ...options.headers };
      const sameHost = new URL(url).host === registryHost;
      // Never send the registry's credentials to another host (blob downloads redirect to a CDN).
      const authorization = sameHost ? await this.authHeader(options) : undefined;
      if (authorization) headers.authorization = authorization;
      const res = await this.raw(options.method, url, headers, options.body?.(), options.operation, signal);
      const resHeaders = flattenHeaders(res.headers);
      if (res.statusCode === 401 && sameHost && !authRetried) {
        await discard(res.body);
        authRetried = true;
        await this.auth.onUnauthorized(
          resHeaders['www-authenticate'],
          options.scopes,
          options.operation,
          authorization !== undefined,
        );
        continue;
      }
      if (res.statusCode === 401 && sameHost && authorization !== undefined) {
        // Refused again with credentials: for Basic this throws "refused the credentials"; for a token it
        // forgets the token, and the registry's own message (insufficient scope, say) is reported below.
        const answer = res.body;
        await this.auth
          .onUnauthorized(resHeaders['www-authenticate'], options.scopes, options.operation, true)
          .catch(async (error: unknown) => {
            await discard(answer);
            throw error;
          });
      }
      if (options.followRedirects && REDIRECTS.has(res.statusCode) && resHeaders.location) {
        await discard(res.body);
        if (++hops > 10) throw new PublishError(`${options.operation}: too many redirects`);
        url = new URL(resHeaders.location, url).toString();
        continue;
      }
      if (options.expect.includes(res.statusCode)) {
        return { status: res.statusCode, headers: resHeaders, url, body: res.body };
      }
      throw await this.failure(
        res.statusCode,
        res.statusText,
        resHeaders,
        res.body,
        options.operation,
        options.method,
      );
    }
  }

  /** The Authorization header; token failures are reported as failures of the operation that needed it. */
  private async authHeader(options: SendOptions): Promise<string | undefined> {
    try {
      return await this.auth.header(options.scopes, options.minValidityMs);
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      throw new PublishError(this.redact(`${options.operation}: ${error.message}`), {
        cause: error,
        ...(error.hint ? { hint: error.hint } : {}),
      });
    }
  }

  /** Builds the error for an unexpected answer: transient for statuses worth retrying. */
  async failure(
    status: number,
    statusText: string,
    headers: Record<string, string | undefined>,
    body: Dispatcher.ResponseData['body'],
    operation: string,
    method?: Method,
  ): Promise<PublishError | TransientError> {
    const text = await readText(body);
    const hasCreds = await this.auth.hasCredentials();
    const hint =
      status === 401 && !hasCreds
        ? `the registry wants credentials: log in to ${this.registry} (docker login) or pass a username and password`
        : hintFor(this.registry, status, hasCreds);
    const error = new PublishError(
      this.redact(`${operation}: ${describeRegistryAnswer(status, statusText, text)}`),
      hint ? { hint } : {},
    );
    // A HEAD answer has no body, so ghcr's "secondary rate limit" 403 looks like a refusal there: retry
    // it (a real permission error stays one, and is reported once the tries run out).
    const bareHead403 = method === 'HEAD' && status === 403;
    if (isRetryableStatus(status, text, headers['retry-after']) || bareHead403)
      return new TransientError(error, parseRetryAfter(headers['retry-after']));
    Object.assign(error, { status, registryBody: text });
    return error;
  }

  /** `sendOnce` with retries of transient failures (for requests whose body can be replayed). */
  send(options: SendOptions): Promise<RegistryResponse> {
    return withRetry(() => this.sendOnce(options), {
      retry: this.retry,
      logger: this.logger,
      what: options.operation,
      signal: this.combinedSignal(options.signal),
    });
  }

  /**
   * `send` for a small answer read whole (a manifest, a referrers index, a config): the body of an answer with a
   * status in `read` is read into memory (at most `limit` bytes) inside the retried operation, so a connection
   * cut in the middle of the body is retried like one cut before the headers. Other statuses come back without
   * bytes (their body discarded).
   */
  sendAndRead(
    options: SendOptions,
    limit: number,
    read: readonly number[] = [200],
  ): Promise<Omit<RegistryResponse, 'body'> & { bytes?: Uint8Array }> {
    return withRetry(
      async () => {
        const { body, ...res } = await this.sendOnce(options);
        if (!read.includes(res.status)) {
          await discard(body);
          return res;
        }
        try {
          return { ...res, bytes: await readBytes(body, limit, options.operation) };
        } catch (error) {
          if (error instanceof PublishError || this.combinedSignal(options.signal)?.aborted) throw error;
          const code = networkCode(error);
          throw new TransientError(
            new PublishError(
              `${options.operation}: the answer from ${this.registry} was cut off: ${code ? `${NETWORK_CODES[code] ?? code} (${code})` : this.redact((error as Error).message ?? String(error))}`,
              { cause: error },
            ),
          );
        }
      },
      {
        retry: this.retry,
        logger: this.logger,
        what: options.operation,
        signal: this.combinedSignal(options.signal),
      },
    );
  }
}

/** The HTTPS probe met a server that does not speak TLS (only thrown while probing). */
class NotTlsError extends Error {
  constructor(readonly code: string) {
    super(`the server does not speak TLS (${code})`);
  }
}

/** The HTTP status of a PublishError built from a registry answer, if any. */
export function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown })?.status;
  return typeof status === 'number' ? status : undefined;
}

export function registryBodyOf(error: unknown): string {
  const body = (error as { registryBody?: unknown })?.registryBody;
  return typeof body === 'string' ? body : '';
}

// Asset downloads from the GitHub API: `Accept: application/octet-stream` on the API asset URL,
// which answers with a redirect to another host. Redirects are followed by hand so the token is
// never sent past the API's origin. Broken transfers are retried with backoff and resumed with
// `Range` where the server honours it (206); a server that answers 200 again is read from the
// start and the bytes already delivered are skipped, so consumers see every byte exactly once.
import { request } from 'undici';
import { proxyFailure, proxySettings, sharedDispatcher } from '../util/dispatcher';
import { PublishError } from '../util/errors';
import { redactError } from './release';
import type { Logger } from '../util/logger';
import { formatBytes, startProgress } from '../util/progress';
import { decideOnRateLimit, primaryRateLimit, type PrimaryRateLimit } from './rate-limit';

export interface RetryOptions {
  /** Attempts in total (first try included). */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface DownloadOptions {
  /** The API asset URL (`.../releases/assets/:id`) or any direct URL. */
  url: string;
  token?: string;
  /** Expected size in bytes (the asset's `size`); checked at the end. */
  size?: number;
  label: string;
  logger: Logger;
  signal?: AbortSignal;
  retry?: RetryOptions;
  /** Per-request idle timeouts; small values are for tests. */
  timeoutMs?: number;
  /** The longest wait for the API rate limit to reset (tests shorten it). */
  maxRateLimitWaitMs?: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

class RetryableError extends Error {
  constructor(
    message: string,
    /** The server's Retry-After, when it gave one: the next try waits at least that long. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** The API's quota is used up until `limit.resetAt`: waiting for it is decided in rate-limit.ts. */
class RateLimitedError extends Error {
  constructor(readonly limit: PrimaryRateLimit) {
    super('rate limited');
  }
}

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^[0-9]+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type Response = Awaited<ReturnType<typeof request>>;

/** GET with manual redirects; Authorization only while on the starting URL's origin. */
async function open(options: DownloadOptions, offset: number): Promise<{ res: Response; url: string }> {
  const origin = new URL(options.url).origin;
  let current = new URL(options.url);
  for (let hop = 0; hop < 6; hop++) {
    const headers: Record<string, string> = {
      accept: 'application/octet-stream',
      'user-agent': 'ironcore-gardenlinux-publisher',
    };
    if (options.token && current.origin === origin) headers.authorization = `Bearer ${options.token}`;
    if (offset > 0) headers.range = `bytes=${offset}-`;
    let res: Response;
    try {
      res = await request(current, {
        method: 'GET',
        headers,
        dispatcher: sharedDispatcher(),
        ...(options.signal ? { signal: options.signal } : {}),
        headersTimeout: options.timeoutMs ?? 120_000,
        bodyTimeout: options.timeoutMs ?? 120_000,
      });
    } catch (error) {
      // The proxy's refusal or absence is named as such (without its credentials), not as the host's.
      const viaProxy = options.signal?.aborted ? undefined : proxyFailure(error, current, proxySettings());
      if (!viaProxy) throw error;
      const message = `${options.label}: ${viaProxy.message}`;
      throw viaProxy.transient
        ? new RetryableError(`${message} (${viaProxy.hint})`)
        : new PublishError(message, { cause: error, hint: viaProxy.hint });
    }
    if (REDIRECTS.has(res.statusCode)) {
      const location = res.headers.location;
      await res.body.dump();
      if (typeof location !== 'string')
        throw new PublishError(`${options.label}: redirect without a Location`);
      const next = new URL(location, current);
      // Only HTTP(S): a redirect to file:, ftp: or data: is hostile, and retrying it will not help.
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new PublishError(
          `${options.label}: the download redirects to a ${next.protocol} URL, which is not HTTP; refusing it`,
        );
      }
      current = next;
      continue;
    }
    return { res, url: current.href };
  }
  throw new PublishError(`${options.label}: too many redirects`);
}

async function failure(res: Response, label: string): Promise<Error> {
  let text = '';
  try {
    text = (await res.body.text()).slice(0, 300);
  } catch {
    /* the status says enough */
  }
  const status = res.statusCode;
  const header = (name: string): string | undefined => {
    const value = res.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const limited = primaryRateLimit(status, header);
  if (limited) return new RateLimitedError(limited);
  const message = `${label}: HTTP ${status}${text ? `: ${text.replace(/\s+/g, ' ')}` : ''}`;
  // GitHub throttles bursts of asset downloads like API calls: 429, or a 403 that says
  // "secondary rate limit" or carries Retry-After. Those pass; other 403s (no access) do not.
  const throttled =
    status === 403 && (res.headers['retry-after'] !== undefined || /secondary rate limit/i.test(text));
  if (status >= 500 || status === 429 || status === 408 || throttled) {
    return new RetryableError(message, retryAfterMs(res.headers['retry-after']));
  }
  return new PublishError(
    message,
    status === 401 || status === 403 || status === 404 ? { hint: 'Check the token and the asset URL.' } : {},
  );
}

/** Yields the asset's bytes in order, exactly once each, across retries. */
export async function* downloadAsset(options: DownloadOptions): AsyncGenerator<Buffer> {
  const { logger, signal, label } = options;
  const attempts = options.retry?.attempts ?? 5;
  const baseDelay = options.retry?.baseDelayMs ?? 1000;
  const maxDelay = options.retry?.maxDelayMs ?? 30_000;
  let size = options.size;
  let offset = 0;
  let attempt = 0;
  const progress = startProgress(logger, `download ${label}`, size);
  while (true) {
    attempt++;
    try {
      const { res } = await open(options, offset);
      let skip = 0;
      if (res.statusCode === 206) {
        const range = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
        if (!range || Number(range[1]) !== offset) {
          await res.body.dump();
          throw new RetryableError(`${label}: server answered a Range request with the wrong range`);
        }
      } else if (res.statusCode === 200) {
        // No Range support (or a fresh start): the bytes we already delivered come again; skip them.
        skip = offset;
        const length = Number(res.headers['content-length']);
        if (size === undefined && Number.isFinite(length) && length > 0) size = length;
      } else {
        throw await failure(res, label);
      }
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        let c = chunk;
        if (skip > 0) {
          if (c.length <= skip) {
            skip -= c.length;
            continue;
          }
          c = c.subarray(skip);
          skip = 0;
        }
        offset += c.length;
        if (size !== undefined && offset > size)
          throw new PublishError(`${label}: server sent more than the expected ${size} bytes`);
        progress.advance(c.length);
        yield c;
      }
      if (skip > 0 || (size !== undefined && offset < size)) {
        throw new RetryableError(
          `${label}: connection ended after ${formatBytes(offset)} of ${size === undefined ? '?' : formatBytes(size)}`,
        );
      }
      progress.done();
      return;
    } catch (error) {
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new PublishError('aborted');
      if (error instanceof RateLimitedError) {
        const decision = decideOnRateLimit(error.limit, {
          what: `download of ${label}`,
          hasToken: options.token !== undefined,
          mayWait: attempt < attempts,
          ...(options.maxRateLimitWaitMs !== undefined ? { maxWaitMs: options.maxRateLimitWaitMs } : {}),
        });
        if (decision.action === 'fail') throw decision.error;
        logger.warning(decision.log);
        await sleep(decision.ms, signal);
        continue;
      }
      // A server may echo the token back in its error; it never reaches a message.
      if (error instanceof PublishError) throw redactError(error, options.token);
      const message = error instanceof Error ? error.message : String(error);
      if (attempt >= attempts) {
        throw redactError(
          new PublishError(`download of ${label} failed after ${attempt} attempts: ${message}`, {
            cause: error,
          }),
          options.token,
        );
      }
      const backoff = Math.min(maxDelay, baseDelay * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
      const delay = Math.max(backoff, error instanceof RetryableError ? (error.retryAfterMs ?? 0) : 0);
      logger.warning(
        `download of ${label} interrupted at ${formatBytes(offset)} (${message}); retry ${attempt}/${attempts - 1} in ${(delay / 1000).toFixed(1)}s` +
          (offset > 0 ? ', resuming with Range' : ''),
      );
      await sleep(delay, signal);
    }
  }
}

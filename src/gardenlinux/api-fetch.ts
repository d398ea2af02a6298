// The fetch Octokit uses for the releases API: GitHub answers bursts with 429 or a 403 "secondary
// rate limit", and has bad minutes (502/503); a weekly unattended job must ride those out instead of
// failing on the first one. Only idempotent requests (GET/HEAD) are retried, with backoff and jitter;
// Retry-After wins (capped). Redirects are left to Octokit's fetch, which keeps them on the API host.
// The primary rate limit (quota used up until a reset) is not a bad minute: rate-limit.ts decides.
// Requests go through undici's fetch with the shared dispatcher, so the proxy variables apply here too.
import { fetch as undiciFetch } from 'undici';
import { proxyFailure, proxySettings, sharedDispatcher } from '../util/dispatcher';
import { PublishError } from '../util/errors';
import type { Logger } from '../util/logger';
import { decideOnRateLimit, primaryRateLimit } from './rate-limit';

export interface ApiRetryOptions {
  /** Tries in total, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_API_RETRY: ApiRetryOptions = { attempts: 5, baseDelayMs: 1000, maxDelayMs: 30_000 };

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function retryAfterMs(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^[0-9]+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Why an answer is worth another try, or undefined. */
async function transientReason(res: Response): Promise<string | undefined> {
  if (res.status >= 500 || res.status === 429 || res.status === 408) return `HTTP ${res.status}`;
  if (res.status !== 403) return undefined;
  if (res.headers.get('retry-after') !== null) return 'HTTP 403 with Retry-After (rate limited)';
  // Used up but no reset to wait for (a primary limit with a reset is decided before this).
  if (res.headers.get('x-ratelimit-remaining') === '0') return 'HTTP 403, API rate limit exhausted';
  const text = await res
    .clone()
    .text()
    .catch(() => '');
  return /secondary rate limit/i.test(text) ? 'HTTP 403 secondary rate limit' : undefined;
}

/** A `fetch` for Octokit that retries transient failures of GET requests. */
export function retryingFetch(
  logger: Logger,
  options: {
    retry?: Partial<ApiRetryOptions>;
    signal?: AbortSignal;
    /** Whether requests carry a token (a rate-limit failure then does not suggest giving one). */
    hasToken?: boolean;
    /** The longest wait for a rate-limit reset (tests shorten it). */
    maxRateLimitWaitMs?: number;
  } = {},
): typeof fetch {
  const retry = { ...DEFAULT_API_RETRY, ...options.retry };
  return async (input, init) => {
    const method = (init?.method ?? 'GET').toUpperCase();
    const url = new URL(input instanceof Request ? input.url : String(input));
    // Path only: the query may carry a signature, and nothing here needs more.
    const what = `GitHub API ${method} ${url.pathname}`;
    for (let attempt = 1; ; attempt++) {
      let reason = '';
      let wait: number | undefined;
      let res: Response | undefined;
      try {
        res = await proxiedFetch(input, init);
      } catch (error) {
        const signal = init?.signal ?? options.signal;
        if (signal?.aborted) throw error;
        // The proxy's refusal or absence, named as such (without its credentials): a refusal is final.
        const viaProxy = proxyFailure(error, url, proxySettings());
        if (viaProxy && (!viaProxy.transient || attempt >= retry.attempts)) {
          throw new PublishError(`${what}: ${viaProxy.message}`, { cause: error, hint: viaProxy.hint });
        }
        // Only a network failure (it has a code: ECONNRESET, UND_ERR_SOCKET...) may heal; a redirect
        // loop or a redirect to a non-HTTP URL does not.
        const code = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
        const network = typeof code === 'string' && !/REDIRECT/i.test(code);
        if (!network || attempt >= retry.attempts || (method !== 'GET' && method !== 'HEAD')) {
          throw new PublishError(
            `${what} failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${networkMessage(error)}`,
            { cause: error },
          );
        }
        reason = viaProxy?.message ?? networkMessage(error);
      }
      if (res) {
        const answer = res;
        const limited = primaryRateLimit(answer.status, (name) => answer.headers.get(name) ?? undefined);
        if (limited) {
          const decision = decideOnRateLimit(limited, {
            what,
            hasToken: options.hasToken ?? false,
            mayWait: attempt < retry.attempts,
            ...(options.maxRateLimitWaitMs !== undefined ? { maxWaitMs: options.maxRateLimitWaitMs } : {}),
          });
          await answer.body?.cancel().catch(() => undefined);
          if (decision.action === 'fail') throw decision.error;
          logger.warning(decision.log);
          await sleep(decision.ms, init?.signal ?? options.signal);
          continue;
        }
        const transient = method === 'GET' || method === 'HEAD' ? await transientReason(answer) : undefined;
        if (!transient || attempt >= retry.attempts) return answer;
        reason = transient;
        wait = retryAfterMs(answer.headers.get('retry-after'));
        await answer.body?.cancel().catch(() => undefined);
      }
      const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
      const delay = Math.min(wait ?? Math.round(ceiling / 2 + (Math.random() * ceiling) / 2), 120_000);
      logger.warning(
        `${what}: ${reason}; retrying in ${(delay / 1000).toFixed(1)}s (attempt ${attempt + 1} of ${retry.attempts})`,
      );
      await sleep(delay, init?.signal ?? options.signal);
    }
  };
}

/** undici's fetch (the one whose dispatcher knows the proxy), typed as the global fetch Octokit expects. */
function proxiedFetch(input: Parameters<typeof fetch>[0], init: RequestInit | undefined): Promise<Response> {
  const url = input instanceof Request ? input.url : input;
  return undiciFetch(url as Parameters<typeof undiciFetch>[0], {
    ...(init as Parameters<typeof undiciFetch>[1]),
    dispatcher: sharedDispatcher(),
  }) as unknown as Promise<Response>;
}

/** `fetch failed` says nothing: name the cause (ECONNRESET, a timeout...), never a header or token. */
function networkMessage(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (cause && typeof cause.code === 'string') return `connection failed (${cause.code})`;
  if (cause && typeof cause.message === 'string') return `connection failed (${cause.message})`;
  return error instanceof Error ? error.message : String(error);
}

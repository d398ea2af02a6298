// Retries with exponential backoff and full jitter. Only failures marked transient are retried (network
// errors, 408, 429, 5xx, ghcr's "secondary rate limit" 403); the registry's Retry-After wins over backoff.
import type { Logger } from '../../util/logger';
import type { PublishError } from '../../util/errors';

export interface RetryOptions {
  /** Total tries, including the first. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/** A failure that may go away when tried again; `final` is what the caller sees when tries run out. */
export class TransientError extends Error {
  constructor(
    readonly final: PublishError,
    readonly retryAfterMs?: number,
  ) {
    super(final.message);
  }
}

export function isRetryableStatus(status: number, body: string, retryAfter?: string): boolean {
  if (status === 408 || status === 429 || status >= 500) return true;
  // ghcr.io throttles bursts with a 403 whose body says so (a HEAD has no body: then Retry-After tells);
  // a plain 403 is a permission error.
  return status === 403 && (/secondary rate limit/i.test(body) || retryAfter !== undefined);
}

/** `Retry-After` as milliseconds: delta seconds or an HTTP date; undefined when absent or unparsable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function backoffDelay(options: RetryOptions, attempt: number): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  // Full jitter: parallel uploads that failed together do not come back together.
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, throws a non-transient error, or the attempts run out (then the last
 * TransientError's `final` PublishError is thrown). `landed` runs after each transient failure, the last one
 * included, to check whether the attempt took effect after all (a write whose answer was lost); returning a
 * value ends the loop with it.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: {
    retry: RetryOptions;
    logger: Logger;
    what: string;
    signal?: AbortSignal;
    landed?: (error: TransientError) => Promise<{ done: T } | undefined>;
  },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      if (attempt >= options.retry.attempts) {
        const outcome = await options.landed?.(error).catch(() => undefined);
        if (outcome) return outcome.done;
        throw error.final;
      }
      // Retry-After is honoured even above maxDelayMs (the registry knows best), but capped at 5 minutes.
      const delay =
        error.retryAfterMs !== undefined
          ? Math.min(error.retryAfterMs, 300_000)
          : backoffDelay(options.retry, attempt);
      options.logger.warning(
        `${error.final.message}; retrying in ${(delay / 1000).toFixed(1)}s (attempt ${attempt + 1} of ${options.retry.attempts})`,
      );
      await sleep(delay, options.signal);
      if (options.landed) {
        const outcome = await options.landed(error);
        if (outcome) return outcome.done;
      }
    }
  }
}

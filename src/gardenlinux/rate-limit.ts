// GitHub's primary rate limit: a 403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch
// seconds). Unlike a secondary rate limit or a bad minute, backing off for seconds does not help: the quota
// comes back at the reset, which may be an hour away. So: wait when the reset is near (bounded), else fail at
// once with one message saying when to retry, and (when no token was given) that a token raises the limit.
// Used by both places that speak to GitHub's API: the Octokit fetch and asset downloads.
import { PublishError } from '../util/errors';

/** What a rate-limited answer says about the quota. */
export interface PrimaryRateLimit {
  /** `x-ratelimit-limit`: requests per window, when given. */
  limit?: number;
  /** When the quota comes back (ms since the epoch, from `x-ratelimit-reset`). */
  resetAt: number;
  /** `x-ratelimit-resource` (`core`, `search`...), when given. */
  resource?: string;
}

/** The longest we wait for a reset before giving up: an unattended weekly run may wait a minute, not an hour. */
export const MAX_RATE_LIMIT_WAIT_MS = 60_000;

/** Waiting until exactly the reset second can be a little early (clocks, rounding): a second more. */
const RESET_MARGIN_MS = 1000;

type HeaderReader = (name: string) => string | undefined;

/**
 * The primary rate limit an answer reports, or undefined when it is something else (a secondary rate limit
 * has quota left or no reset; a plain 403 is a permission error).
 */
export function primaryRateLimit(status: number, header: HeaderReader): PrimaryRateLimit | undefined {
  if (status !== 403 && status !== 429) return undefined;
  if (header('x-ratelimit-remaining')?.trim() !== '0') return undefined;
  const reset = header('x-ratelimit-reset')?.trim();
  if (!reset || !/^[0-9]{1,12}$/.test(reset)) return undefined;
  const limit = Number(header('x-ratelimit-limit')?.trim());
  const resource = header('x-ratelimit-resource')?.trim();
  return {
    resetAt: Number(reset) * 1000,
    ...(Number.isInteger(limit) && limit > 0 ? { limit } : {}),
    ...(resource && /^[a-z_]{1,40}$/.test(resource) ? { resource } : {}),
  };
}

export type RateLimitDecision =
  { action: 'wait'; ms: number; log: string } | { action: 'fail'; error: PublishError };

export interface RateLimitContext {
  /** What was being done: `GitHub API GET /repos/...`, `download of <asset>`. */
  what: string;
  /** Whether the request carried a token (the hint about one is only for runs without). */
  hasToken: boolean;
  now?: number;
  maxWaitMs?: number;
  /** False when waiting is no longer allowed (the retries are used up): fail with the same message. */
  mayWait?: boolean;
}

/** `2026-11-22 14:03:12 UTC` */
export function utcTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function inWords(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  return m < 120 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Wait for the reset when it is near, else fail with one message that says when to try again. */
export function decideOnRateLimit(limit: PrimaryRateLimit, context: RateLimitContext): RateLimitDecision {
  const now = context.now ?? Date.now();
  const maxWait = context.maxWaitMs ?? MAX_RATE_LIMIT_WAIT_MS;
  const untilReset = Math.max(0, limit.resetAt - now);
  const quota = `${limit.limit !== undefined ? `${limit.limit} requests an hour` : 'its requests'}${context.hasToken ? ' for this token' : ' without a token'}`;
  const which = limit.resource && limit.resource !== 'core' ? `${limit.resource} rate limit` : 'rate limit';
  if (context.mayWait !== false && untilReset + RESET_MARGIN_MS <= maxWait) {
    const ms = untilReset + RESET_MARGIN_MS;
    return {
      action: 'wait',
      ms,
      log: `${context.what}: GitHub's API ${which} is used up (${quota}); it resets at ${utcTime(limit.resetAt)}, waiting ${(ms / 1000).toFixed(1)}s for it`,
    };
  }
  const when =
    untilReset > 0
      ? `it resets at ${utcTime(limit.resetAt)} (in ${inWords(untilReset)}): run again after that`
      : `it should have reset at ${utcTime(limit.resetAt)} but did not: run again later`;
  const token = context.hasToken
    ? ''
    : '; or give a token (the `github-token` input; GITHUB_TOKEN for the CLI): authenticated requests get a much higher limit';
  return {
    action: 'fail',
    error: new PublishError(`${context.what}: GitHub's API ${which} is used up (${quota}); ${when}${token}`),
  };
}

// Progress lines for long transfers, written for non-TTY CI logs: one line every `intervalMs`
// (never a carriage-return spinner), with bytes done, throughput and ETA.
import type { Logger } from './logger';

export interface Progress {
  /** Adds `bytes` more done. */
  advance(bytes: number): void;
  /** Logs a closing line (when the transfer was long enough to have shown progress) and stops. */
  done(): void;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(s % 60).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${(bytes / 1e6 / seconds).toFixed(1)} MB/s` : '-';
}

/**
 * Reports progress of a transfer of `total` bytes (undefined when unknown) named `label`.
 * Transfers shorter than `minBytes` log nothing, so small blobs do not flood the log.
 */
export function startProgress(
  logger: Logger,
  label: string,
  total: number | undefined,
  options: { intervalMs?: number; minBytes?: number; now?: () => number } = {},
): Progress {
  const now = options.now ?? (() => performance.now());
  const intervalMs = options.intervalMs ?? 10_000;
  const minBytes = options.minBytes ?? 32 * 1024 * 1024;
  const started = now();
  let lastReport = started;
  let doneBytes = 0;
  let reported = false;
  const quiet = total !== undefined && total < minBytes;
  const line = (): string => {
    const seconds = (now() - started) / 1000;
    const speed = seconds > 0 ? doneBytes / seconds : 0;
    if (total === undefined) return `${label}: ${formatBytes(doneBytes)} at ${rate(doneBytes, seconds)}`;
    const pct = total > 0 ? Math.floor((doneBytes / total) * 100) : 100;
    const eta = speed > 0 ? formatDuration((total - doneBytes) / speed) : '?';
    return `${label}: ${formatBytes(doneBytes)} of ${formatBytes(total)} (${pct}%) at ${rate(doneBytes, seconds)}, ETA ${eta}`;
  };
  return {
    advance(bytes) {
      doneBytes += bytes;
      if (quiet) return;
      const t = now();
      if (t - lastReport >= intervalMs) {
        lastReport = t;
        reported = true;
        logger.info(line());
      }
    },
    done() {
      if (!reported) return;
      const seconds = (now() - started) / 1000;
      logger.info(
        `${label}: ${formatBytes(doneBytes)} in ${formatDuration(seconds)} (${rate(doneBytes, seconds)})`,
      );
    },
  };
}

// Expected failures (bad input, a registry that says no, a missing asset) are PublishErrors: the front
// doors print their message alone, without a stack trace. Anything else is a bug and keeps its stack.

export class PublishError extends Error {
  override readonly name = 'PublishError';
  /** A short hint on what to do about it, printed after the message. */
  readonly hint: string | undefined;

  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.hint = options.hint;
  }
}

export function isPublishError(error: unknown): error is PublishError {
  return error instanceof PublishError;
}

/** One line (or two, with a hint) for a person: the message of an expected failure, else the stack. */
export function describeError(error: unknown): string {
  if (isPublishError(error)) return error.hint ? `${error.message}\n${error.hint}` : error.message;
  // A full disk is the machine's state, not a bug: where it happened is the whole story.
  const system = error as NodeJS.ErrnoException | undefined;
  if (system?.code === 'ENOSPC') {
    return `no space left on the device (${system.syscall ?? 'write'}${system.path ? ` ${system.path}` : ''})\nFree space, or give a work folder on a larger disk, and run again.`;
  }
  if (error instanceof Error) return error.stack ?? error.message;
  return String(error);
}

/** Throws the signal's reason when it has been aborted; call between steps of long work. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new PublishError('aborted');
}

/** Shows user input in an error without letting it break the log (control characters escaped, length capped). */
export function printable(text: string, max = 80): string {
  const escaped = JSON.stringify(text).slice(1, -1);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}

/** The command line itself is wrong (unknown command or option, missing argument): the CLI exits with 2. */
export class UsageError extends PublishError {}

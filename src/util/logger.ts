// Every stage takes a Logger from its caller (ARCHITECTURE.md): the action adapter maps it onto
// @actions/core, the CLI onto stderr, tests onto an array.

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warning(message: string): void;
  /** Runs `fn` as a named, collapsible phase (a `core.group` in the action). */
  group<T>(name: string, fn: () => Promise<T>): Promise<T>;
}

/** Writes to stderr; debug lines only when `verbose`. Used by the CLI, benches and tests. */
export function consoleLogger(options: { verbose?: boolean; stream?: NodeJS.WritableStream } = {}): Logger {
  const out = options.stream ?? process.stderr;
  return {
    debug: (m) => {
      if (options.verbose) out.write(`debug: ${m}\n`);
    },
    info: (m) => void out.write(`${m}\n`),
    warning: (m) => void out.write(`warning: ${m}\n`),
    group: async (name, fn) => {
      out.write(`== ${name}\n`);
      return fn();
    },
  };
}

/** Collects lines in memory; for tests that assert on what was logged. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    debug: (m) => void lines.push(`debug: ${m}`),
    info: (m) => void lines.push(m),
    warning: (m) => void lines.push(`warning: ${m}`),
    group: async (name, fn) => {
      lines.push(`== ${name}`);
      return fn();
    },
  };
}

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warning: () => {},
  group: (_name, fn) => fn(),
};

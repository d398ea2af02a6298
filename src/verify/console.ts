// Reading a boot from its serial console, the kola way: a success marker, and a list of known bad signs that
// end the boot at once instead of waiting for the timeout. Lines are cleaned of terminal escapes first, as
// Garden Linux's harness does (firmware and systemd colour and clear the screen).

export type BootFailureReason =
  | 'timeout'
  | 'kernel panic'
  | 'emergency shell'
  | 'unit failed'
  | 'firmware refused the image'
  | 'QEMU failed to start'
  | 'QEMU exited'
  | 'system not running'
  | 'cancelled';

export interface ConsoleSign {
  reason: BootFailureReason;
  pattern: RegExp;
}

/** kola's badness list (flatcar/mantle kola/harness.go), plus what OVMF/AAVMF print when they will not run an image. */
export const BAD_SIGNS: readonly ConsoleSign[] = [
  { reason: 'kernel panic', pattern: /Kernel panic - not syncing: ?(.*)/ },
  { reason: 'kernel panic', pattern: /\bOops: (.*)/ },
  {
    reason: 'emergency shell',
    pattern:
      /(Press Enter for emergency shell|Starting Emergency Shell|You are in emergency mode|Entering emergency mode)/,
  },
  { reason: 'unit failed', pattern: /Failed to start (.*)/ },
  { reason: 'unit failed', pattern: /Dependency failed for (.*)/ },
  { reason: 'kernel panic', pattern: /systemd\[1\]: (Freezing execution.*)/ },
  { reason: 'firmware refused the image', pattern: /BdsDxe: failed to (?:load|start) (Boot\w+ .*)/ },
  { reason: 'firmware refused the image', pattern: /!!!! (\w+ Exception Type.*)/ },
  {
    reason: 'firmware refused the image',
    pattern: /(UEFI Interactive Shell|No bootable option or device was found)/,
  },
];

/** Failures Garden Linux's own QEMU test clears: services that cannot work in a VM. */
const ALLOWED_FAILURES = /ipmievd|google-|sshguard/;

/**
 * systemd's `Welcome to <PRETTY_NAME>!` (not the initrd's, which says "(Initramfs)") or a getty's
 * `login:` prompt, which has no newline after it.
 */
export const DEFAULT_EXPECT = /Welcome to (?![^\n]*Initramfs)[^\n]*!|\blogin: *$/;

// OSC (ESC ] ... BEL), CSI (ESC [ ... letter), and two-character escapes such as ESC c (reset).
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[[0-9;!?=]*[a-zA-Z]|\x1b[a-zA-Z=>()]/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

export function cleanConsoleText(text: string): string {
  // A carriage return alone rewrites the line (countdowns): keep what was written last.
  const lines = text
    .replace(ESCAPES, '')
    .replace(/\r+\n/g, '\n')
    .split('\n')
    .map((l) => l.split('\r').filter(Boolean).pop() ?? '');
  return lines.join('\n').replace(CONTROL, '');
}

export type ConsoleEvent =
  | { kind: 'success'; line: string }
  | { kind: 'failure'; reason: BootFailureReason; detail: string; line: string };

/** Feeds console bytes in, line by line; remembers the last lines for the error message. */
export class ConsoleWatcher {
  private partial = '';
  private readonly tail: string[] = [];

  constructor(
    private readonly expect: RegExp = DEFAULT_EXPECT,
    private readonly keep = 40,
  ) {}

  /**
   * The first verdict the new text gives, if any. Bad signs are judged on whole lines only (a chunk may end
   * inside one, and its detail is the rest of it); a prompt without a newline counts as success as it stands.
   */
  push(text: string): ConsoleEvent | undefined {
    // Split the raw text first: an escape sequence may be cut between chunks, but never holds a newline.
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    // Firmware countdowns rewrite one line for ever: keep the partial line bounded.
    if (this.partial.length > 4096) this.partial = this.partial.slice(-4096);
    let event: ConsoleEvent | undefined;
    for (const raw of lines) {
      const line = cleanConsoleText(raw);
      this.remember(line);
      event ??= this.judge(line);
    }
    if (event || !this.partial) return event;
    const prompt = this.judge(cleanConsoleText(this.partial));
    return prompt?.kind === 'success' ? prompt : undefined;
  }

  /** The last lines seen (the unfinished one too). */
  lastLines(): string[] {
    const lines = [...this.tail];
    const partial = cleanConsoleText(this.partial);
    if (partial.trim()) lines.push(partial);
    return lines.slice(-this.keep);
  }

  private remember(line: string): void {
    if (!line.trim()) return;
    this.tail.push(line);
    if (this.tail.length > this.keep) this.tail.shift();
  }

  private judge(line: string): ConsoleEvent | undefined {
    for (const sign of BAD_SIGNS) {
      const match = sign.pattern.exec(line);
      if (!match) continue;
      if (sign.reason === 'unit failed' && ALLOWED_FAILURES.test(line)) continue;
      return { kind: 'failure', reason: sign.reason, detail: (match[1] ?? match[0]).trim(), line };
    }
    this.expect.lastIndex = 0;
    if (this.expect.test(line)) return { kind: 'success', line: line.trim() };
    return undefined;
  }
}

// The console verdicts, fed the way QEMU's serial output arrives: in arbitrary chunks, with terminal escapes.
import { describe, expect, it } from 'vitest';
import { cleanConsoleText, ConsoleWatcher } from '../../src/verify';

function feed(text: string, chunk: number, watcher = new ConsoleWatcher()) {
  for (let i = 0; i < text.length; i += chunk) {
    const event = watcher.push(text.slice(i, i + chunk));
    if (event) return event;
  }
  return undefined;
}

describe('ConsoleWatcher', () => {
  it('judges a bad sign on its whole line, whatever the chunks', () => {
    const text =
      '[ 3.1] Run /init\n[ 3.5] Kernel panic - not syncing: Attempted to kill init! exitcode=0x100\n';
    for (const chunk of [1, 7, 40, text.length]) {
      expect(feed(text, chunk)).toMatchObject({
        kind: 'failure',
        reason: 'kernel panic',
        detail: 'Attempted to kill init! exitcode=0x100',
      });
    }
  });

  it("strips colours before matching systemd, and refuses the initrd's own welcome", () => {
    expect(
      feed('\x1b[0;1;39mWelcome to \x1b[0;38;5;64mGarden Linux 2150.1.0 dracut-059 (Initramfs)\x1b[0m!\n', 5),
    ).toBeUndefined();
    expect(
      feed('\x1bc\x1b[?7l\x1b[2J\x1b[0;1;39mWelcome to \x1b[0;38;5;64mGarden Linux 2150.1.0\x1b[0m!\r\n', 3),
    ).toMatchObject({
      kind: 'success',
      line: 'Welcome to Garden Linux 2150.1.0!',
    });
  });

  it('takes a login prompt without a newline as success', () => {
    expect(feed('\nGarden Linux 2150.1.0 gl-host ttyS0\n\ngl-host login: ', 4)).toMatchObject({
      kind: 'success',
    });
  });

  it.each([
    ['You are in emergency mode. After logging in, type "journalctl -xb"', 'emergency shell'],
    ['[FAILED] Failed to start ignition-fetch.service - Ignition (fetch).', 'unit failed'],
    ['[DEPEND] Dependency failed for sysroot.mount - /sysroot.', 'unit failed'],
    [
      'BdsDxe: failed to start Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x2,0x0): Unsupported',
      'firmware refused the image',
    ],
    ['UEFI Interactive Shell v2.2', 'firmware refused the image'],
    [
      '!!!! X64 Exception Type - 06(#UD - Invalid Opcode)  CPU Apic ID - 00000000 !!!!',
      'firmware refused the image',
    ],
  ])('"%s" is a failure (%s)', (line, reason) => {
    expect(feed(`boot...\n${line}\n`, 9)).toMatchObject({ kind: 'failure', reason });
  });

  it('allows the failures Garden Linux clears under QEMU', () => {
    expect(feed('[FAILED] Failed to start ipmievd.service - IPMI event daemon.\n', 8)).toBeUndefined();
  });

  it('keeps the last 40 lines, and a custom marker works', () => {
    const watcher = new ConsoleWatcher(/READY-\d+/);
    for (let i = 0; i < 100; i++) expect(watcher.push(`line ${i}\n`)).toBeUndefined();
    expect(watcher.lastLines()).toHaveLength(40);
    expect(watcher.lastLines()[0]).toBe('line 60');
    expect(watcher.push('x READY-7\n')).toMatchObject({ kind: 'success' });
    expect(cleanConsoleText('a\x1b]0;title\x07b\r\n')).toBe('ab\n');
  });
});

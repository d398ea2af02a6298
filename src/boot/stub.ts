// Where the systemd-boot EFI stub sits in a Garden Linux rootfs tarball (`<base>.tar`, members without "./"),
// the file the current workflow takes for its UKI (DOMAIN.md 1.4).
import type { BootArch } from './pe';

const STUB_NAMES: Record<BootArch, string> = {
  amd64: 'linuxx64.efi.stub',
  arm64: 'linuxaa64.efi.stub',
};

export function efiStubPathInRootfs(arch: BootArch): string {
  return `usr/lib/systemd/boot/efi/${STUB_NAMES[arch]}`;
}

// Booting an image under QEMU before it is published: firmware discovery, accelerator choice, the three boot
// paths, and the verdict from the console or the image's own report. Knows nothing of releases or registries.
export { chooseAccelerator, probeGuest, probeKvm, KVM_ACCESS_HINT, type AcceleratorChoice } from './accel';
export {
  bootFailure,
  bootImage,
  defaultBootTimeout,
  type BootFiles,
  type BootPath,
  type BootRequest,
  type BootResult,
} from './boot';
export { cleanConsoleText, ConsoleWatcher, DEFAULT_EXPECT, type BootFailureReason } from './console';
export { writeEspImage } from './esp';
export { findFirmware } from './firmware';
export { HOOK_SCRIPT } from './hook';
export { findQemu, hostArch, QEMU_PACKAGES, qemuInstallHint, type Accelerator, type GuestArch } from './qemu';
export { installQemu } from './install';

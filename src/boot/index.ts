// The boot artifacts of the metal variant: initrd-uki (initrd + embedded root.squashfs) and the UKI.
export {
  buildEmbeddedInitrd,
  embeddedInitrdSource,
  EMBEDDED_SQUASHFS_NAME,
  type EmbeddedInitrdOptions,
  type SizedSource,
} from './initrd';
export {
  buildUki,
  cmdlineLimitOf,
  verifyAndHashUki,
  DEFAULT_CMDLINE_LIMIT,
  type BuildUkiOptions,
  type BuiltUki,
  type UkiBuilder,
  type UkiBuilderChoice,
} from './uki';
export { efiStubPathInRootfs } from './stub';
export {
  PE_MACHINE,
  archOfMachine,
  describeMachine,
  peMachineOf,
  readPeHeaders,
  readPeSections,
  type BootArch,
  type PeHeaders,
  type PeSection,
} from './pe';
export { kernelVersionOf } from './uname';
export { xzArguments, type XzOptions } from './xz';
export { xzStore, xzStoredSize, type XzStoreOptions } from './xz-store';
export { findOnPath, installUkify, UKIFY_INSTALL_HINT } from './uki-ukify';

// The arches and kinds of flavor archive the Garden Linux side knows. Which flavors are published
// (and their pre-2150 asset names) is the pipeline's table: src/pipeline/flavors.ts.

export type Arch = 'amd64' | 'arm64';
export type FlavorKind = 'kvm' | 'metal';

export const ARCHES: readonly Arch[] = ['amd64', 'arm64'];

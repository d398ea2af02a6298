import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__tests__/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: keep heavy suites (registries, xz, ukify) from starving each other.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default', './__tests__/helpers/summary-reporter.ts'],
  },
});

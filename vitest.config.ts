import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn MCP servers and databases; two cores are all the machines have.
    maxWorkers: 2,
  },
});

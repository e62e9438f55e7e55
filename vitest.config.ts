import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests each start their own redis-server and share one kube-apiserver;
    // two cores do not gain from more parallel files than this.
    maxWorkers: 2,
  },
});

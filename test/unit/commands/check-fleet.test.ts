import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCheck } from '../../../src/commands/check.js';

describe('pushgate check on a fleet of environments', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-check-fleet-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names a few environments that will get no commit status, and counts the rest', async () => {
    const environments = Array.from(
      { length: 40 },
      (_, i) => `  - name: env-${i}
    repo: { provider: github, name: acme/env-${i}, url: https://git.example.invalid/acme/env-${i}.git }
    branch: env/production
    cluster: local
    namespace: env-${i}
`,
    ).join('');
    const config = path.join(dir, 'pushgate.yaml');
    await writeFile(
      config,
      `redis: { url: redis://127.0.0.1:1 }\nclusters:\n  - name: local\nenvironments:\n${environments}`,
    );
    let stderr = '';
    const errors = new PassThrough().on('data', (chunk: Buffer) => (stderr += chunk.toString()));

    const code = await runCheck({
      positionals: [],
      config,
      ref: undefined,
      wait: false,
      json: false,
      env: { GITHUB_WEBHOOK_SECRET: 'x' },
      stdout: new PassThrough(),
      stderr: errors,
    });

    expect(code).toBe(0);
    expect(stderr).toContain(
      'warning: GITHUB_TOKEN is not set; commits of env-0, env-1, env-2, env-3, env-4 and 35 more (github) will get no commit status\n',
    );
  });
});

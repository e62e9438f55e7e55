import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runRender } from '../../src/commands/render.js';
import { PushgateError } from '../../src/lib/errors.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';

describe('pushgate render exit codes (real git)', () => {
  let repo: EnvRepo;
  let dir: string;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-render-codes-'));
  });

  afterEach(async () => {
    await repo.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves a cluster whose kubeconfig cannot be loaded to the CLI as invalid configuration (exit 2)', async () => {
    await repo.commit({ 'manifests/a.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n' });
    const config = path.join(dir, 'pushgate.yaml');
    await writeFile(
      config,
      [
        'clusters:',
        '  - name: local',
        `    kubeconfig: ${path.join(dir, 'missing.kubeconfig')}`,
        'environments:',
        '  - name: web',
        '    repo: {provider: github, name: acme/env, url: "' + repo.url + '"}',
        `    branch: ${repo.branch}`,
        '    path: manifests',
        '    cluster: local',
        '',
      ].join('\n'),
    );

    const error = await runRender({
      positionals: ['web'],
      config,
      ref: undefined,
      wait: false,
      json: false,
      env: { PUSHGATE_CACHE_DIR: path.join(dir, 'cache'), LOG_LEVEL: 'silent' },
      stdout: new PassThrough(),
      stderr: new PassThrough(),
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PushgateError);
    expect((error as PushgateError).code).toBe('config_invalid');
    expect((error as PushgateError).message).toContain('cluster local: cannot load kubeconfig');
  });
});

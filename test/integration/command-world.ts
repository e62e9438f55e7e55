import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { Command } from '../../src/commands/command.js';
import { runCommand } from '../../src/commands/run-command.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
import { createWorkerHarness, type EnvironmentOptions, type WorkerHarness } from './worker-harness.js';

/** What a CLI command printed and its exit code. */
export interface CommandRun {
  code: number;
  out: string;
  err: string;
}

/**
 * One environment `web` (a repository, a namespace, a worker harness that can deploy it) and
 * its configuration in a folder, for the commands that read a commit and the cluster
 * (`render`, `diff`), run in this process with their output kept.
 */
export interface CommandWorld {
  repo: EnvRepo;
  namespace: TestNamespace;
  harness: WorkerHarness;
  /** Holds pushgate.yaml and the git cache. */
  dir: string;
  /** As the CLI runs it: a failure said on stderr (as `pushgate <name>: …`) and its exit code. */
  run(
    name: string,
    command: Command,
    positionals: string[],
    options?: { ref?: string; showSecrets?: boolean; json?: boolean; exitCode?: boolean },
  ): Promise<CommandRun>;
  close(): Promise<void>;
}

export async function createCommandWorld(
  redisUrl: string,
  name: string,
  env: Omit<EnvironmentOptions, 'namespace'> = {},
): Promise<CommandWorld> {
  const repo = await createEnvRepo({ branch: 'env/test' });
  const namespace = await createTestNamespace(name);
  const harness = await createWorkerHarness({
    redisUrl,
    environments: [{ name: 'web', repo, env: { ...env, namespace: namespace.name } }],
  });
  const dir = await mkdtemp(path.join(tmpdir(), `pushgate-${name}-`));
  await writeFile(path.join(dir, 'pushgate.yaml'), harness.configText);
  return {
    repo,
    namespace,
    harness,
    dir,
    async run(name, command, positionals, options = {}) {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = '';
      let err = '';
      stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      const code = await runCommand(name, command, {
        positionals,
        config: path.join(dir, 'pushgate.yaml'),
        ref: options.ref,
        wait: false,
        json: options.json ?? false,
        showSecrets: options.showSecrets,
        exitCode: options.exitCode,
        env: { PUSHGATE_CACHE_DIR: path.join(dir, 'cache'), LOG_LEVEL: 'silent' },
        stdout,
        stderr,
      });
      return { code, out, err };
    },
    async close() {
      await harness.close();
      await namespace.cleanup();
      await repo.remove();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

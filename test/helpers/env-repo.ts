import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { git } from './git.js';

/**
 * An environment repository for tests: a bare repository served over file:// (what the
 * worker fetches) and a working clone the test commits to and pushes from.
 */
export interface EnvRepo {
  /** file:// URL of the bare repository. */
  url: string;
  bareDir: string;
  workDir: string;
  branch: string;
  /** Replaces the folder's files with these (path → content), commits and pushes; returns the sha. */
  commit(files: Record<string, string | null>, message?: string): Promise<string>;
  /** Force-pushes the branch to an earlier commit; returns it. */
  forcePush(sha: string): Promise<string>;
  head(): Promise<string>;
  remove(): Promise<void>;
}

export async function createEnvRepo(options: { branch?: string } = {}): Promise<EnvRepo> {
  const branch = options.branch ?? 'env/test';
  // Under the run's own folder (test/global-setup.ts), removed at its end: most tests share one
  // repository across their cases and never remove it themselves.
  const root = await mkdtemp(path.join(process.env.PUSHGATE_TEST_TMP ?? tmpdir(), 'pushgate-env-repo-'));
  const bareDir = path.join(root, 'remote.git');
  const workDir = path.join(root, 'work');
  await git(root, ['init', '--bare', '--quiet', bareDir]);
  await git(root, ['init', '--quiet', '-b', branch, workDir]);
  await git(workDir, ['remote', 'add', 'origin', bareDir]);

  const push = async (force: boolean): Promise<void> => {
    await git(workDir, [
      'push',
      '--quiet',
      ...(force ? ['--force'] : []),
      'origin',
      `HEAD:refs/heads/${branch}`,
    ]);
  };
  return {
    url: `file://${bareDir}`,
    bareDir,
    workDir,
    branch,
    async commit(files, message = 'change') {
      for (const [file, content] of Object.entries(files)) {
        const target = path.join(workDir, file);
        if (content === null) {
          await rm(target, { force: true });
          continue;
        }
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, content);
      }
      await git(workDir, ['add', '--all']);
      await git(workDir, ['commit', '--quiet', '--allow-empty', '-m', message]);
      await push(false);
      return git(workDir, ['rev-parse', 'HEAD']);
    },
    async forcePush(sha) {
      await git(workDir, ['reset', '--quiet', '--hard', sha]);
      await push(true);
      return sha;
    },
    head: () => git(workDir, ['rev-parse', 'HEAD']),
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

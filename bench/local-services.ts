/**
 * The private services a bench runs against: the local control plane (scripts/cluster.sh: real
 * kube-apiserver + etcd) and a redis-server that keeps nothing on disk; and git's environment.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findFreePort } from '../src/lib/free-port.js';

const execFileAsync = promisify(execFile);
const CLUSTER_SCRIPT = join(fileURLToPath(new URL('../../', import.meta.url)), 'scripts/cluster.sh');

/** git's environment for a bench's own repositories: no user or system config, a fixed author. */
export const BENCH_GIT_ENV = {
  ...process.env,
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@example.com',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@example.com',
};

/** Starts the control plane in `dir`; resolves the path of its kubeconfig. */
export function startCluster(dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [CLUSTER_SCRIPT, 'up'], {
      env: { ...process.env, PUSHGATE_CLUSTER_DIR: dir, PUSHGATE_CLUSTER_OWNER_PID: String(process.pid) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const kubeconfig = stdout.trim().split('\n').at(-1)?.trim();
      if (code === 0 && kubeconfig) resolve(kubeconfig);
      else reject(new Error(`scripts/cluster.sh up failed with exit code ${code}`));
    });
  });
}

export async function stopCluster(dir: string): Promise<void> {
  await execFileAsync('bash', [CLUSTER_SCRIPT, 'down'], {
    env: { ...process.env, PUSHGATE_CLUSTER_DIR: dir },
  }).catch(() => undefined);
}

export async function startRedisServer(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await findFreePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    {
      stdio: 'ignore',
    },
  );
  return { url: `redis://127.0.0.1:${port}`, child };
}

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The same script `npm run cluster` runs, so tests, demo and developers share one code path.
const clusterScript = fileURLToPath(new URL('../../scripts/cluster.sh', import.meta.url));

export interface ControlPlane {
  /** Absolute path of the admin kubeconfig (client certificate in group system:masters). */
  kubeconfigPath: string;
  /** Absolute path of the cluster directory (certs, etcd data, logs, pids). */
  dir: string;
  /** Stops etcd and kube-apiserver and removes `dir`. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartControlPlaneOptions {
  /** Cluster directory; relative paths resolve against the current directory. */
  dir: string;
  /** Where the script's progress lines go (build, start-up); default: this process's stderr. */
  onProgress?: (chunk: string) => void;
  /**
   * By default the cluster stops by itself once this process exits, so a run killed before
   * its teardown leaks no processes. Set to keep it running (e.g. for a demo left up).
   */
  keepAfterExit?: boolean;
}

interface ScriptResult {
  stdout: string;
  stderr: string;
}

function runClusterScript(
  command: 'up' | 'down' | 'status',
  dir: string,
  onProgress: (chunk: string) => void,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [clusterScript, command], {
      env: { ...process.env, ...extraEnv, PUSHGATE_CLUSTER_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      onProgress(chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const status = signal ? `signal ${signal}` : `exit code ${code}`;
      reject(
        new Error(
          `scripts/cluster.sh ${command} (PUSHGATE_CLUSTER_DIR=${dir}) failed with ${status}:\n${stderr}`,
        ),
      );
    });
  });
}

/**
 * Starts (building first if the binaries are not cached) a real etcd + kube-apiserver on
 * free loopback ports through `scripts/cluster.sh up`.
 */
export async function startControlPlane(options: StartControlPlaneOptions): Promise<ControlPlane> {
  const dir = path.resolve(options.dir);
  const onProgress = options.onProgress ?? ((chunk: string) => process.stderr.write(chunk));
  const ownerEnv = options.keepAfterExit
    ? { PUSHGATE_CLUSTER_OWNER_PID: '' }
    : { PUSHGATE_CLUSTER_OWNER_PID: String(process.pid) };
  const { stdout } = await runClusterScript('up', dir, onProgress, ownerEnv);
  const kubeconfigPath = stdout.trimEnd().split('\n').at(-1)?.trim();
  if (!kubeconfigPath) {
    throw new Error(`scripts/cluster.sh up (PUSHGATE_CLUSTER_DIR=${dir}) printed no kubeconfig path`);
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= runClusterScript('down', dir, onProgress).then(() => undefined);
    return stopping;
  };
  return { kubeconfigPath, dir, stop };
}

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/**
 * The worker's Deployment: its container's command and NODE_OPTIONS are what a shipped worker
 * runs with. Found from its source (the tests) and from the compiled bench (dist/bench).
 */
export const WORKER_DEPLOYMENT =
  ['../', '../../']
    .map((up) => fileURLToPath(new URL(`${up}deploy/kubernetes/worker-deployment.yaml`, import.meta.url)))
    .find((path) => existsSync(path)) ?? 'deploy/kubernetes/worker-deployment.yaml';

interface Container {
  name?: string;
  command?: string[];
  env?: { name: string; value?: string }[];
}

function workerContainer(): Container {
  for (const document of parseAllDocuments(readFileSync(WORKER_DEPLOYMENT, 'utf8'))) {
    const object = document.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: Container[] } } };
    } | null;
    if (object?.kind !== 'Deployment') continue;
    const container = object.spec?.template?.spec?.containers?.find(
      (candidate) => candidate.name === 'worker',
    );
    if (container) return container;
  }
  throw new Error(`${WORKER_DEPLOYMENT}: no Deployment with a container named worker`);
}

/** The flags the worker's command gives node itself: those between `node` and the script. */
export function shippedWorkerCommandFlags(): string[] {
  const command = workerContainer().command ?? [];
  const node = command.indexOf('node');
  const script = command.indexOf('dist/src/cli.js');
  if (node < 0 || script < node)
    throw new Error(`${WORKER_DEPLOYMENT}: the worker's command does not run node dist/src/cli.js`);
  return command.slice(node + 1, script);
}

/** Every node flag a shipped worker runs with: its NODE_OPTIONS, then its command's. */
export function shippedWorkerNodeFlags(): string[] {
  const options = workerContainer().env?.find((variable) => variable.name === 'NODE_OPTIONS')?.value ?? '';
  return [...options.split(/\s+/).filter(Boolean), ...shippedWorkerCommandFlags()];
}

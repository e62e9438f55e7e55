import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/**
 * The worker's Deployment: its container's NODE_OPTIONS are what a shipped worker runs with.
 * Found from its source (the tests) and from the compiled bench (dist/bench).
 */
export const WORKER_DEPLOYMENT =
  ['../', '../../']
    .map((up) => fileURLToPath(new URL(`${up}deploy/kubernetes/worker-deployment.yaml`, import.meta.url)))
    .find((path) => existsSync(path)) ?? 'deploy/kubernetes/worker-deployment.yaml';

interface Container {
  name?: string;
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

/**
 * The node flags a shipped worker runs with: its NODE_OPTIONS. Its command is the image's
 * entrypoint, and `pushgate worker` turns V8's Maglev off by itself (src/lib/no-maglev.ts).
 */
export function shippedWorkerNodeFlags(): string[] {
  const options = workerContainer().env?.find((variable) => variable.name === 'NODE_OPTIONS')?.value ?? '';
  return options.split(/\s+/).filter(Boolean);
}

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { fileURLToPath } from 'node:url';
import { checkPrerequisites } from '../scripts/prerequisites.js';
import { startControlPlane } from './helpers/control-plane.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin kubeconfig of the kube-apiserver shared by the whole test run. */
    kubeconfig: string;
  }
}

/**
 * One real kube-apiserver + etcd for the whole run; tests isolate themselves by namespace.
 * The kubeconfig path reaches tests both as `inject('kubeconfig')` and as
 * PUSHGATE_TEST_KUBECONFIG (workers inherit the environment of this process).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Tests need real parts: say which one is missing and how to get it, not a spawn ENOENT.
  const missing = checkPrerequisites({
    controlPlane: true,
    buildScript: fileURLToPath(new URL('../scripts/control-plane/build.sh', import.meta.url)),
  }).filter((prerequisite) => !prerequisite.ok);
  if (missing.length > 0) {
    throw new Error(
      `npm test needs real tools that are missing:\n${missing
        .map((p) => `  ${p.name}: ${p.detail}; ${p.hint}`)
        .join('\n')}`,
    );
  }
  const dir = path.join(os.tmpdir(), `pushgate-test-cluster-${process.pid}`);
  const controlPlane = await startControlPlane({ dir });
  process.env.PUSHGATE_TEST_KUBECONFIG = controlPlane.kubeconfigPath;
  project.provide('kubeconfig', controlPlane.kubeconfigPath);
  // Scratch space of the run (the tests' git repositories), gone at its end.
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'pushgate-test-run-'));
  process.env.PUSHGATE_TEST_TMP = scratch;

  return async () => {
    await controlPlane.stop();
    rmSync(scratch, { recursive: true, force: true });
  };
}

import type { EnvironmentConfig } from '../config/schema.js';
import type { DeployOutcome, DeployRequest } from '../kube/types.js';
import type { LoadedManifest, ManifestObject } from '../manifests/types.js';

/**
 * What the worker needs from the apply engine (src/kube), as one seam: the worker and the
 * CLI are built against it, and `createKubeApplyEngine` wires the real one.
 */
export interface ApplyEngine {
  /** Applies the manifests to the environment's cluster (dry-run first, then apply, prune, health). */
  deploy(request: DeployRequest): Promise<DeployOutcome>;
  /** The objects as the API server would store them (server-side dry-run); applies nothing. */
  render(environment: EnvironmentConfig, manifests: LoadedManifest[]): Promise<ManifestObject[]>;
}

import type { EnvironmentConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import { PushgateError, type ErrorCode } from '../lib/errors.js';
import type { LoadedManifest, ManifestObject } from '../manifests/types.js';
import type { ResourceResult } from '../status/job-record.js';

export interface DeployRequest {
  environment: EnvironmentConfig;
  manifests: LoadedManifest[];
  /** The commit being applied; recorded in the inventory. */
  sha: string;
  /**
   * The commit the environment's last successful deploy applied, by pushgate's records (null
   * before one): with no inventory in the cluster then, it was deleted, and what it listed
   * can no longer be pruned. The job says so.
   */
  lastAppliedSha?: string | null;
  /**
   * pushgate's record of the namespaces that hold an inventory of the environment: its
   * `namespace` now and, after that setting changed, the one it had before, until the move is
   * done (the inventory there taken over, pruned from and deleted).
   */
  inventoryHomes?: InventoryHomes;
  /** This pushgate installation's id, stamped on the inventories it writes. */
  installation?: string;
  /** Where Redis keeps it (`{prefix}:installation`), named in the refusal that tells how to restore it. */
  installationKey?: string;
  jobId: string;
  logger: Logger;
  /**
   * Called before every write to the cluster (apply batches, prune, inventory update);
   * throws when this worker no longer holds the environment's lock, so a worker that lost
   * its lock (paused, partitioned) never writes over the one that took it over.
   */
  assertLockHeld: () => Promise<void>;
  /**
   * Checked, without a round trip, before each object's write inside a group (apply, prune):
   * throws once the lock may have lapsed, so a worker frozen mid-group (SIGSTOP, a VM pause)
   * writes at most what was already in flight when it froze, not the rest of the group.
   */
  assertLockHeldNow?: () => void;
  /**
   * Asked after each poll of the health wait: true once the lock is known lost, which ends the
   * wait (the worker that took the job over waits and records it), unlike a Redis blip.
   */
  lockLost?: () => Promise<boolean>;
  /** Progress for logs and the job record, e.g. "dry-run ok: 20 objects". */
  onProgress?: (message: string) => void;
  /**
   * Every object's outcome so far, after each stage that wrote to the cluster and after the
   * prune: a worker that dies mid-deploy leaves them in the job record for the one taking over.
   */
  onWritten?: (resources: ResourceResult[]) => Promise<void>;
  /**
   * The objects a stage is about to create or change, each with that action, before the first
   * write of the stage: onWritten comes at most once a second, and not at all for a write whose
   * answer was lost, so an attempt that took over would otherwise find them as git has them
   * and list them `unchanged`.
   */
  onChanging?: (resources: ResourceResult[]) => Promise<void>;
  /**
   * Asked during the health wait: a newer commit of the branch that a queued job will deploy.
   * Waiting on would only hold that commit back (a fix for the workloads this wait is on,
   * say), so the wait ends and the deploy finishes as overtaken.
   */
  newerCommit?: NewerCommitCheck;
  signal?: AbortSignal;
}

/** See DeployRequest.newerCommit. */
export interface NewerCommitCheck {
  /** A newer commit whose job is queued, if one is known by now. */
  ask(): Promise<string | undefined>;
  /** The wait is over: a check still running says and does nothing more. */
  stop(): void;
}

export interface DeployOutcome {
  resources: ResourceResult[];
  /** What went through but needs a person's eye (a lost inventory); shown on the job. */
  warnings?: string[];
  /**
   * Applied, but the health wait ended early for a newer commit (DeployRequest.newerCommit):
   * which one, and the workloads that were not ready yet ("apps/v1 Deployment apps/web: …").
   */
  overtaken?: { by: string; notReady: string[] };
}

/**
 * A deploy that failed. `resources` holds what was done before the failure (all `skipped`
 * or `failed` when nothing was written), so the job record shows every object's outcome.
 */
/** Where the environment's inventories are, by pushgate's records (under the environment's lock). */
export interface InventoryHomes {
  recorded: readonly string[];
  /** Called before an inventory is first written in `namespace`. */
  add(namespace: string): Promise<void>;
  /** Called once no inventory of the environment is left in `namespace`. */
  remove(namespace: string): Promise<void>;
}

export class DeployError extends PushgateError {
  readonly resources: ResourceResult[];
  /** Said before the deploy failed (a lost inventory, say): kept on the failed job. */
  readonly warnings: string[] = [];

  constructor(
    code: ErrorCode,
    message: string,
    options: { permanent: boolean; resources?: ResourceResult[]; cause?: unknown },
  ) {
    super(code, message, { permanent: options.permanent, cause: options.cause });
    this.name = 'DeployError';
    this.resources = options.resources ?? [];
  }
}

export type { ManifestObject };

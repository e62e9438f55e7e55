import type { PreparedObject } from '../manifests/prepare.js';
import type { HandMadeRetry } from './plan.js';

/**
 * Puts back the ownership of hand-made fields the plan took for objects no apply followed,
 * when the deploy fails (best effort: it changes no value).
 */
export async function undoOwnership(handMade: HandMadeRetry | undefined): Promise<void> {
  if (!handMade || handMade.undos.size === 0) return;
  const undos = [...handMade.undos.values()];
  handMade.undos.clear();
  // Only while the lock is ours: what is left is pushgate owning fields it would remove next
  // time anyway, while a write now could put a stale entry over the next holder's apply.
  const held = await handMade.beforeWrite().then(
    () => true,
    () => false,
  );
  if (held) await Promise.all(undos.map((undo) => undo().catch(() => undefined)));
}

/**
 * Hand-made fields taken over (or refused) with a changed object's own apply, so the
 * takeover after the stages leaves those objects alone; its warnings, for the job.
 */
export interface TakenWithApply {
  done: Set<PreparedObject>;
  warn(warning: string): void;
  /** Applied: the plan's takeover of its hand-made fields, if any, is not given back. */
  landed(object: PreparedObject): void;
}

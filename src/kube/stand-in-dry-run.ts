import type { PreparedObject } from '../manifests/prepare.js';
import type { ClusterClient } from './cluster.js';
import { objectFailure, type ObjectFailure } from './failures.js';
import { KubeApiError } from './api-error.js';
import { settleWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY } from './plan.js';

/**
 * Rejections that say the object itself is wrong, whatever namespace it is in: the API
 * server's own validation (422), strict field validation (400), a field of the wrong type
 * (server-side apply's typed patch, 500). A denial by admission (a webhook or a
 * ValidatingAdmissionPolicy, which can answer 400 or 422 too) may depend on the namespace, so
 * it proves nothing about the real one.
 */
function rejectsTheObject(error: unknown): boolean {
  if (!(error instanceof KubeApiError)) return false;
  if (/admission webhook|ValidatingAdmissionPolicy|denied/i.test(error.message)) return false;
  if (error.status === 400 || error.status === 422) return true;
  return error.status === 500 && error.message.includes('failed to create typed patch object');
}

/**
 * Objects bound for a Namespace that the same set creates cannot be dry-run before it exists.
 * So that a bad one still fails the job before any write, each is dry-run once in `standIn`,
 * a namespace that does exist (the environment's own, else `default`); only rejections that
 * cannot depend on the namespace count, and an object whose name is taken there is left to
 * its real dry-run after stage 1. Objects that pass are still dry-run in their own namespace
 * once it exists.
 */
export async function dryRunInStandInNamespace(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  standIn: string,
  signal: AbortSignal | undefined,
): Promise<ObjectFailure[]> {
  const settled = await settleWithConcurrency(objects, CONCURRENCY, async (object) => {
    const { resource, ref } = object;
    // Applying over a namesake would judge a change to it (an immutable field, say), not a creation.
    if (await client.get(resource, standIn, ref.name, signal)) return;
    const moved = { ...object.object, metadata: { ...object.object.metadata, namespace: standIn } };
    await client.apply(resource, moved, { dryRun: true, signal });
  });
  signal?.throwIfAborted();
  const failures: ObjectFailure[] = [];
  settled.forEach((outcome, index) => {
    if (outcome.status === 'fulfilled' || !rejectsTheObject(outcome.reason)) return;
    const object = objects[index] as PreparedObject;
    const verb = `dry-run rejected (checked in namespace ${standIn} until ${String(object.ref.namespace)} exists)`;
    failures.push(objectFailure(object, verb, outcome.reason));
  });
  return failures;
}

import type { PreparedObject } from '../manifests/prepare.js';
import type { ObjectRef } from '../manifests/types.js';
import type { ResourceResult } from '../status/job-record.js';
import type { ObjectFailure } from './failures.js';

export function resultOf(ref: ObjectRef, action: ResourceResult['action'], message?: string): ResourceResult {
  const entry: ResourceResult = { apiVersion: ref.apiVersion, kind: ref.kind, name: ref.name, action };
  if (ref.namespace !== undefined) entry.namespace = ref.namespace;
  if (message !== undefined) entry.message = message;
  return entry;
}

/** Every object's outcome so far, in apply order; objects not reached yet are `skipped`. */
export class Results {
  private readonly byObject = new Map<PreparedObject, ResourceResult>();
  readonly extra: ResourceResult[] = [];

  constructor(
    private readonly ordered: readonly PreparedObject[],
    private readonly notReached: string,
  ) {}

  set(object: PreparedObject, action: ResourceResult['action'], message?: string): void {
    this.byObject.set(object, resultOf(object.ref, action, message));
  }

  get(object: PreparedObject): ResourceResult | undefined {
    return this.byObject.get(object);
  }

  fail(failures: readonly ObjectFailure[]): void {
    for (const failure of failures) this.set(failure.object, 'failed', failure.message);
  }

  list(notReached = this.notReached): ResourceResult[] {
    const objects = this.ordered.map(
      (object) => this.byObject.get(object) ?? resultOf(object.ref, 'skipped', notReached),
    );
    return [...objects, ...this.extra];
  }
}

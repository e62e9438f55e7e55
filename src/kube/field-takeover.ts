import { errorMessage } from '../lib/errors.js';
import type { PreparedObject } from '../manifests/prepare.js';
import { describeRef } from '../manifests/resource-info.js';
import { FIELD_MANAGER, type ClusterClient, type LiveObject } from './cluster.js';
import { shortenQuotedValues } from './failures.js';
import { KubeApiError } from './api-error.js';
import { sameObject } from './compare.js';
import { PRUNE_PROTECTION_ANNOTATIONS } from './prune-protection.js';
import { redactSecretValues } from './secret-redaction.js';

/** One entry of `metadata.managedFields`, as the API server writes it. */
export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  apiVersion?: string;
  time?: string;
  fieldsType?: string;
  fieldsV1?: FieldSet;
  subresource?: string;
}

/** A `fieldsV1` tree: keys like `f:spec`, `k:{"name":"app"}`, `.`; leaves are `{}`. */
export interface FieldSet {
  [key: string]: FieldSet;
}

/**
 * Field managers of hand-made configuration: `kubectl apply` (client-side, and server-side
 * as `kubectl`) and `kubectl edit/patch/create/replace/label/annotate/set`. Fields they own
 * survive a server-side apply that no longer sets them, so a key added with `kubectl edit`,
 * or one git declared before pushgate adopted the object, would stay for good. Not `kubectl
 * scale` or `kubectl rollout`: a replica count or a restart stamp set by hand is an operation,
 * not configuration, and taking it over would undo it. Not `before-first-apply`, the entry
 * the API server makes for an object that had no field ownership: it holds every field,
 * controllers' too (a PVC's `volumeName`, finalizers). Not Flux's or Argo CD's controllers:
 * they may still apply the object beside pushgate (a Namespace both declare), and taking
 * their labels would strip it until their next sync; docs/migrating.md says how to let go of
 * what they applied once they stop.
 */
const HAND_MANAGERS = new Set([
  'kubectl',
  'kubectl-client-side-apply',
  'kubectl-edit',
  'kubectl-patch',
  'kubectl-create',
  'kubectl-replace',
  'kubectl-label',
  'kubectl-annotate',
  'kubectl-set',
]);

/**
 * Left with their manager even then: a replica count git leaves out belongs to whoever scales
 * (a person, an autoscaler), and pushgate owning it would reset it to the default of 1; a
 * finalizer guards a deletion, and is never pushgate's to drop; `pushgate.dev/prune: disabled`
 * (or Flux's or Argo CD's marker) set with `kubectl annotate` is an instruction to prune, which reads the live object (taken
 * over, the next re-sync dropped it, and a later `git rm` deleted the PVC it protected).
 */
const KEPT_PATHS: readonly (readonly string[])[] = [
  ['f:spec', 'f:replicas'],
  ['f:metadata', 'f:finalizers'],
  ...PRUNE_PROTECTION_ANNOTATIONS.map((name) => ['f:metadata', 'f:annotations', `f:${name}`]),
];

function isEmpty(set: FieldSet): boolean {
  return Object.keys(set).length === 0;
}

/** The union of two field sets. */
export function mergeFieldSets(a: FieldSet, b: FieldSet): FieldSet {
  const merged: FieldSet = { ...a };
  for (const [key, value] of Object.entries(b)) {
    merged[key] = key in merged ? mergeFieldSets(merged[key]!, value) : value;
  }
  return merged;
}

/** Splits `set` into the part at `path` (if any) and the rest. */
function splitAt(set: FieldSet, path: readonly string[]): { at: FieldSet | undefined; rest: FieldSet } {
  const [head, ...tail] = path;
  if (head === undefined || !(head in set)) return { at: undefined, rest: set };
  const child = set[head]!;
  if (tail.length === 0) {
    const { [head]: _taken, ...rest } = set;
    return { at: { [head]: child }, rest };
  }
  const inner = splitAt(child, tail);
  if (!inner.at) return { at: undefined, rest: set };
  const rest = { ...set };
  // A parent that only held the split-off child goes with it (`.` alone marks no field).
  if (isEmpty(inner.rest) || (Object.keys(inner.rest).length === 1 && '.' in inner.rest)) delete rest[head];
  else rest[head] = inner.rest;
  return { at: { [head]: inner.at }, rest };
}

/** Whether an entry is hand-made configuration of `apiVersion` that a deploy takes over. */
function isHandMade(entry: ManagedFieldsEntry, apiVersion: string): boolean {
  return (
    entry.manager !== undefined &&
    HAND_MANAGERS.has(entry.manager) &&
    !entry.subresource &&
    entry.apiVersion === apiVersion &&
    entry.fieldsType === 'FieldsV1' &&
    entry.fieldsV1 !== undefined
  );
}

/**
 * The fields hand-made managers own that a deploy hands to pushgate (all but KEPT_PATHS), and
 * the entries as they are once they are handed over, pushgate's aside.
 */
function splitHandMade(
  entries: readonly ManagedFieldsEntry[],
  apiVersion: string,
): { taken: FieldSet; next: ManagedFieldsEntry[]; changed: boolean } {
  let taken: FieldSet = {};
  let changed = false;
  const next: ManagedFieldsEntry[] = [];
  for (const entry of entries) {
    if (!isHandMade(entry, apiVersion)) {
      next.push(entry);
      continue;
    }
    let rest = entry.fieldsV1!;
    let kept: FieldSet = {};
    for (const path of KEPT_PATHS) {
      const split = splitAt(rest, path);
      if (split.at) kept = mergeFieldSets(kept, split.at);
      rest = split.rest;
    }
    if (isEmpty(rest)) {
      next.push(entry);
      continue;
    }
    changed = true;
    taken = mergeFieldSets(taken, rest);
    if (!isEmpty(kept)) next.push({ ...entry, fieldsV1: kept });
  }
  return { taken, next, changed };
}

function managedFieldsOf(object: LiveObject): ManagedFieldsEntry[] {
  return (object.metadata as { managedFields?: ManagedFieldsEntry[] }).managedFields ?? [];
}

/** Whether hand-made managers own fields of `live` that a deploy would take over. */
export function holdsHandMadeFields(live: LiveObject, apiVersion: string): boolean {
  return splitHandMade(managedFieldsOf(live), apiVersion).changed;
}

/** pushgate's own server-side apply entry for `apiVersion`. */
function isOwnApply(entry: ManagedFieldsEntry, apiVersion: string): boolean {
  return (
    entry.manager === FIELD_MANAGER &&
    entry.operation === 'Apply' &&
    !entry.subresource &&
    entry.apiVersion === apiVersion
  );
}

function isCoreSecret(object: LiveObject, apiVersion: string): boolean {
  return apiVersion === 'v1' && object.kind === 'Secret';
}

/**
 * A Secret's field set with its `stringData` keys owned as the `data` keys they became.
 * pushgate applied `stringData` as written until it folded it into `data`
 * (secret-string-data.ts); the entry it left owns keys that exist in no object, and their
 * `data` keys nobody, so a key git no longer declares would stay. Moved, the next apply
 * removes it.
 */
function stringDataAsData(set: FieldSet): FieldSet {
  const stringData = set['f:stringData'];
  if (stringData === undefined) return set;
  const { 'f:stringData': _moved, ...rest } = set;
  return { ...rest, 'f:data': mergeFieldSets(rest['f:data'] ?? {}, stringData) };
}

/**
 * The `managedFields` that hand over to pushgate's apply entry whatever hand-made managers
 * own (except KEPT_PATHS), and for a Secret move the `stringData` keys that entry owns to
 * `data` (stringDataAsData); undefined when there is nothing to do. Only entries of
 * `apiVersion` (the version pushgate applies) are merged: field paths differ across versions.
 */
export function takeOverHandManagedFields(
  live: LiveObject,
  apiVersion: string,
  now = new Date(),
): ManagedFieldsEntry[] | undefined {
  const { taken, next, changed } = splitHandMade(managedFieldsOf(live), apiVersion);
  const own = next.findIndex((entry) => isOwnApply(entry, apiVersion));
  const secret = isCoreSecret(live, apiVersion);
  const ownStringData = own >= 0 && secret && next[own]!.fieldsV1?.['f:stringData'] !== undefined;
  if (!changed && !ownStringData) return undefined;
  const owned = (set: FieldSet): FieldSet => (secret ? stringDataAsData(set) : set);
  if (own >= 0) {
    const entry = next[own]!;
    next[own] = { ...entry, fieldsV1: owned(mergeFieldSets(entry.fieldsV1 ?? {}, taken)) };
  } else {
    next.push({
      manager: FIELD_MANAGER,
      operation: 'Apply',
      apiVersion,
      time: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      fieldsType: 'FieldsV1',
      fieldsV1: owned(taken),
    });
  }
  return next;
}

/** Tries at the ownership write: a controller writing status moves the object on meanwhile. */
const OWNERSHIP_TRIES = 3;

/**
 * Hands the object's hand-made fields to pushgate (its managedFields only, guarded by the
 * resourceVersion read), reading it again when it moved on meanwhile. Undefined when there is
 * nothing to take, or it kept moving. `original` is the ownership before, for putOwnershipBack.
 */
async function handOver(
  client: ClusterClient,
  object: PreparedObject,
  signal: AbortSignal | undefined,
  known?: LiveObject,
): Promise<{ original: ManagedFieldsEntry[]; rewritten: LiveObject } | undefined> {
  let current = known ?? (await client.get(object.resource, object.ref.namespace, object.ref.name, signal));
  for (let attempt = 1; current; attempt += 1) {
    const managedFields = takeOverHandManagedFields(current, object.object.apiVersion);
    if (!managedFields) return undefined;
    try {
      const rewritten = await client.replaceManagedFields(object.resource, current, managedFields, signal);
      const original = (current.metadata as { managedFields?: ManagedFieldsEntry[] }).managedFields ?? [];
      return { original, rewritten };
    } catch {
      if (attempt === OWNERSHIP_TRIES) return undefined;
      current = await client.get(object.resource, object.ref.namespace, object.ref.name, signal);
    }
  }
  return undefined;
}

/**
 * For an object whose dry-run was refused: hands its hand-made fields to pushgate (no value
 * changes, only who owns them) and dry-runs it again, as what kubectl set by hand can be what
 * clashes with git: a port changed with `kubectl edit` keeps its name, and git's port would add
 * that name a second time. Undefined, the ownership as it was, when there is nothing to take
 * or the dry-run is still refused; `undo` puts it back, for a deploy that then writes nothing.
 */
export async function dryRunTakingOver(
  client: ClusterClient,
  object: PreparedObject,
  live: LiveObject,
  beforeWrite: () => Promise<void>,
  signal?: AbortSignal,
): Promise<{ result: LiveObject; undo: () => Promise<void> } | undefined> {
  if (!holdsHandMadeFields(live, object.object.apiVersion)) return undefined;
  await beforeWrite();
  const handed = await handOver(client, object, signal, live);
  if (!handed) return undefined;
  const { original, rewritten } = handed;
  const undo = async (): Promise<void> => {
    await putOwnershipBack(client, object, rewritten, original, signal);
  };
  try {
    const result = await client.apply(object.resource, object.object, { dryRun: true, signal });
    return { result, undo };
  } catch {
    await undo();
    return undefined;
  }
}

/** What became of the hand-made fields of one object (see applyTakingOver, takeOverAndReapply). */
export interface TakeoverOutcome {
  /** Handed to pushgate, and what git does not declare is gone. */
  taken: boolean;
  /** The apply after the hand-over changed the object (it held fields git does not declare). */
  changed?: boolean;
  /** The API server refused to remove them: the object is as the commit's apply left it. */
  warning?: string;
}

/** The refusal, short, and whether the ownership could be put back as it was. */
function refusedWarning(object: PreparedObject, error: unknown, undone: boolean, byHand: boolean): string {
  const reason = shortenQuotedValues(
    redactSecretValues(errorMessage(error), object.object).split('\n')[0] ?? '',
  );
  // Else only the stringData keys an earlier pushgate applied (stringDataAsData).
  const what = byHand
    ? 'what kubectl set by hand'
    : 'the keys applied as stringData that git no longer declares';
  const left = byHand
    ? `${what} is left as it was: removing it`
    : `${what} are left as they were: removing them`;
  return undone
    ? `${describeRef(object.ref)}: ${left} was refused (${reason})`
    : `${describeRef(object.ref)}: removing ${what} was refused (${reason}), and its field ` +
        'ownership could not be put back: pushgate now owns those fields; until they match git or their ' +
        'managers are restored by hand, deploys of this object may be refused';
}

/**
 * The apply of an object the commit changes that holds hand-made fields: they are handed to
 * pushgate first, so one apply brings git's change and removes what git does not declare (a
 * Deployment rolls out once, not once for each). The dry-run could not foresee the removal:
 * when the API server refuses it, the ownership is put back and the object applied as the
 * dry-run checked it, with a warning. `taken` false, and no warning, when there was nothing
 * to take or the object changed meanwhile: takeOverAndReapply tries again after the stage.
 */
export async function applyTakingOver(
  client: ClusterClient,
  object: PreparedObject,
  signal?: AbortSignal,
): Promise<TakeoverOutcome> {
  const handed = await handOver(client, object, signal);
  const outcome: TakeoverOutcome = handed
    ? await applyHandedOver(client, object, handed, signal)
    : { taken: false };
  // Nothing taken, or its removal refused: applied as the dry-run checked it (refused as well
  // when the fields stayed pushgate's).
  if (!outcome.taken) await client.apply(object.resource, object.object, { signal });
  return outcome;
}

/** The apply once the hand-made fields are pushgate's; refused, they are given back. */
async function applyHandedOver(
  client: ClusterClient,
  object: PreparedObject,
  { original, rewritten }: { original: ManagedFieldsEntry[]; rewritten: LiveObject },
  signal: AbortSignal | undefined,
): Promise<TakeoverOutcome> {
  try {
    const applied = await client.apply(object.resource, object.object, { signal });
    // Who owns what may move again (a `.` marker, a default kubectl owned), and a controller
    // may write status meanwhile: only a change of the object itself counts.
    return { taken: true, changed: !sameObject(rewritten, applied) };
  } catch (error) {
    // Not a refusal (no answer, a server fault): the apply may have landed, and putting the
    // old ownership back could undo it. The fields stay pushgate's; a retry applies again.
    if (!(error instanceof KubeApiError) || error.transient) throw error;
    const undone = await putOwnershipBack(client, object, rewritten, original, signal);
    const byHand = splitHandMade(original, object.object.apiVersion).changed;
    return { taken: false, warning: refusedWarning(object, error, undone, byHand) };
  }
}

/**
 * After the stage's own apply went through, for an object it did not change: hands the
 * hand-made fields to pushgate and applies again, so what git does not declare goes. The
 * dry-run cannot foresee this step (removing a field can be refused: an immutable Job
 * template), so it is undone when the apply refuses it, and the object stays as it was, with
 * a warning for the job (the next deploy tries again). `taken` false when there was nothing
 * to take, or the object changed meanwhile (the next deploy looks again).
 */
export async function takeOverAndReapply(
  client: ClusterClient,
  object: PreparedObject,
  signal?: AbortSignal,
): Promise<TakeoverOutcome> {
  // The first apply moved the object on: from what it is now.
  const handed = await handOver(client, object, signal);
  return handed ? applyHandedOver(client, object, handed, signal) : { taken: false };
}

/**
 * Gives the hand-made managers their fields back (undoing the takeover), keeping what other
 * managers changed meanwhile (a controller writing status moves the object on): a few tries
 * against the object as it is now. False when it did not go through.
 */
async function putOwnershipBack(
  client: ClusterClient,
  object: PreparedObject,
  rewritten: LiveObject,
  original: readonly ManagedFieldsEntry[],
  signal?: AbortSignal,
): Promise<boolean> {
  const apiVersion = object.object.apiVersion;
  const ours = (entry: ManagedFieldsEntry): boolean =>
    !entry.subresource &&
    entry.apiVersion === apiVersion &&
    ((entry.manager === FIELD_MANAGER && entry.operation === 'Apply') ||
      (entry.manager !== undefined && HAND_MANAGERS.has(entry.manager)));
  let live: LiveObject | undefined = rewritten;
  for (let attempt = 0; attempt < 3 && live; attempt += 1) {
    const now = (live.metadata as { managedFields?: ManagedFieldsEntry[] }).managedFields ?? [];
    const restored = [...now.filter((entry) => !ours(entry)), ...original.filter(ours)];
    try {
      await client.replaceManagedFields(object.resource, live, restored, signal);
      return true;
    } catch {
      live = await client
        .get(object.resource, object.ref.namespace, object.ref.name, signal)
        .catch(() => undefined);
    }
  }
  return false;
}

/** The fields of `a` that `b` does not own (a leaf of `b` owns everything under it). */
function subtractFieldSet(a: FieldSet, b: FieldSet): FieldSet {
  const rest: FieldSet = {};
  for (const [key, child] of Object.entries(a)) {
    const other = b[key];
    if (other === undefined) {
      rest[key] = child;
      continue;
    }
    if (isEmpty(child) || isEmpty(other)) continue;
    const left = subtractFieldSet(child, other);
    if (!isEmpty(left)) rest[key] = left;
  }
  return rest;
}

/** What a deploy's takeover removes besides what the dry-run shows, and why, for `pushgate diff`. */
export interface TakeoverRemoval {
  fields: FieldSet;
  why: string;
}

/**
 * What a deploy's takeover removes besides what the dry-run shows: the fields hand-made
 * managers own on `live`, and on a Secret the `data` keys pushgate applied as `stringData`,
 * that pushgate's apply (its entry in the dry-run result) does not declare and no other
 * manager owns. Undefined when there is nothing to take.
 */
export function takeoverRemoval(
  live: LiveObject,
  dryRun: LiveObject,
  apiVersion: string,
): TakeoverRemoval | undefined {
  const entries = managedFieldsOf(live);
  const { taken, changed } = splitHandMade(entries, apiVersion);
  const ownStringData = isCoreSecret(live, apiVersion)
    ? entries.find((entry) => isOwnApply(entry, apiVersion))?.fieldsV1?.['f:stringData']
    : undefined;
  if (!changed && !ownStringData) return undefined;
  let kept: FieldSet = {};
  for (const entry of managedFieldsOf(dryRun)) {
    // The kept paths of hand-made entries stay theirs (splitHandMade left them out of `taken`).
    if ((isOwnApply(entry, apiVersion) || !isHandMade(entry, apiVersion)) && entry.fieldsV1)
      kept = mergeFieldSets(kept, entry.fieldsV1);
  }
  const owned = (set: FieldSet): FieldSet => (isCoreSecret(live, apiVersion) ? stringDataAsData(set) : set);
  const byHand = subtractFieldSet(owned(taken), kept);
  const asStringData = ownStringData
    ? subtractFieldSet(stringDataAsData({ 'f:stringData': ownStringData }), kept)
    : {};
  const why = [
    ...(isEmpty(byHand) ? [] : ['fields set by hand (kubectl) that git does not declare go']),
    ...(isEmpty(asStringData) ? [] : ['keys pushgate applied as stringData that git no longer declares go']),
  ];
  if (why.length === 0) return undefined;
  return { fields: mergeFieldSets(byHand, asStringData), why: why.join('; ') };
}

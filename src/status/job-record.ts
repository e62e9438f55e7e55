import { z } from 'zod';
import { environmentTargetSchema, triggerSchema } from '../queue/job-data.js';

export const jobStateSchema = z.enum(['queued', 'running', 'succeeded', 'failed', 'superseded']);
export type JobState = z.infer<typeof jobStateSchema>;
export const FINISHED_STATES: readonly JobState[] = ['succeeded', 'failed', 'superseded'];

export const resourceActionSchema = z.enum([
  'created',
  'configured',
  'unchanged',
  'pruned',
  'skipped',
  'failed',
]);
export type ResourceAction = z.infer<typeof resourceActionSchema>;

export const resourceResultSchema = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  namespace: z.string().optional(),
  name: z.string(),
  action: resourceActionSchema,
  /** Why an object was skipped or failed, as the API server or the policy said it. */
  message: z.string().optional(),
});
export type ResourceResult = z.infer<typeof resourceResultSchema>;

/** The job as SPEC §5 shows it; the record in Redis is exactly this JSON. */
export const jobRecordSchema = z.object({
  id: z.string(),
  environment: z.string(),
  state: jobStateSchema,
  trigger: triggerSchema,
  sha: z.string().nullable(),
  attempts: z.number().int().nonnegative(),
  receivedAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  resources: z.array(resourceResultSchema),
  error: z.string().nullable(),
  /** A human sentence for outcomes that are not errors, e.g. what superseded the job. */
  message: z.string().nullable().optional(),
  /**
   * For a superseded job, the commit whose deploy took its place (a newer one, or its own
   * commit deployed by another job); `pushgate sync --wait` follows that deploy on.
   */
  supersededBy: z.string().optional(),
  /**
   * The status URL the answer that created the job named (a webhook's or a sync's 202): the
   * commit status links there. Absent for jobs no request created (reconcile, CLI sync).
   */
  statusUrl: z.string().optional(),
  /** Webhook jobs: the receiver's configuration of the environment (see config-skew); not shown. */
  target: environmentTargetSchema.optional(),
  /**
   * While the job runs: the objects (resourceKey) its attempts were about to create, written
   * before the writes that create them. A worker killed between such a write and its next
   * progress write leaves the one taking over able to tell what the job created from what
   * it found. Dropped when the job finishes; not shown.
   */
  creating: z.array(z.string()).optional(),
  /**
   * As `creating`, for the objects its attempts were about to change, kind group by kind
   * group: one the next attempt finds as git has it was, as far as the record can tell,
   * configured by the attempt that could not record it. An attempt that ends with its own
   * outcome list settles those it wrote, found done or never reached (JobRun.settledIntents).
   * Dropped when the job finishes; not shown.
   */
  configuring: z.array(z.string()).optional(),
});
export type JobRecord = z.infer<typeof jobRecordSchema>;

/** A trigger as SPEC §5 shows it: every field present, null where the trigger has none (a manual sync). */
export interface TriggerView {
  kind: JobRecord['trigger']['kind'];
  provider: NonNullable<JobRecord['trigger']['provider']> | null;
  deliveryId: string | null;
  sha: string | null;
  pusher: string | null;
}

export type JobView = Omit<
  JobRecord,
  'statusUrl' | 'target' | 'creating' | 'configuring' | 'trigger' | 'message'
> & {
  trigger: TriggerView;
  /** Present on every job, null where it has none: a queued job's record holds no message. */
  message: string | null;
};

/** The job as the API and the CLI show it: SPEC §5's fields (the link is the commit status's business). */
export function jobView(record: JobRecord): JobView {
  const {
    statusUrl: _statusUrl,
    target: _target,
    creating: _creating,
    configuring: _configuring,
    trigger,
    ...view
  } = record;
  return {
    ...view,
    message: view.message ?? null,
    trigger: {
      kind: trigger.kind,
      provider: trigger.provider ?? null,
      deliveryId: trigger.deliveryId ?? null,
      sha: trigger.sha ?? null,
      pusher: trigger.pusher ?? null,
    },
  };
}

import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

export const DEPLOY_QUEUE = 'deploy';
export const DEPLOY_JOB_NAME = 'deploy';

/**
 * Transient failures retry with exponential backoff: 1 s, 2 s, 4 s … about 8.5 minutes in all.
 * Not stretched to an API server's Retry-After: an attempt fails on a throttled request only
 * after the transport has waited it out 10 times (kube/throttle-retry.ts).
 */
export const DEPLOY_JOB_OPTIONS: JobsOptions = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 1_000 },
  // The job records in the JobStore are the history; BullMQ keeps only a short tail.
  removeOnComplete: 100,
  removeOnFail: 100,
};

export const triggerKindSchema = z.enum(['webhook', 'manual', 'reconcile']);
export type TriggerKind = z.infer<typeof triggerKindSchema>;

export const triggerSchema = z.object({
  kind: triggerKindSchema,
  provider: z.enum(['github', 'gitlab']).optional(),
  deliveryId: z.string().optional(),
  /** The commit the push announced; the worker still deploys the branch head it fetches. */
  sha: z.string().optional(),
  pusher: z.string().optional(),
});
export type Trigger = z.infer<typeof triggerSchema>;

/** Where the receiver's configuration sends the environment's pushes (see config-skew). */
export const environmentTargetSchema = z.object({
  branch: z.string(),
  path: z.string(),
  cluster: z.string(),
  namespace: z.string(),
});
export type EnvironmentTarget = z.infer<typeof environmentTargetSchema>;

/** What travels in BullMQ's job data: the only thing the receiver and the workers share. */
export const deployJobDataSchema = z.object({
  environment: z.string(),
  trigger: triggerSchema,
  receivedAt: z.string(),
  /** Webhook jobs: the receiver's configuration of the environment, checked by the worker. */
  target: environmentTargetSchema.optional(),
});
export type DeployJobData = z.infer<typeof deployJobDataSchema>;

export function parseDeployJobData(data: unknown): DeployJobData {
  return deployJobDataSchema.parse(data);
}

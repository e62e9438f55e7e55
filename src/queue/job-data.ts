import { z } from 'zod';

export const DEPLOY_QUEUE = 'deploy';
export const DEPLOY_JOB_NAME = 'deploy';

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

/** What travels in BullMQ's job data: the only thing the receiver and the workers share. */
export const deployJobDataSchema = z.object({
  environment: z.string(),
  trigger: triggerSchema,
  receivedAt: z.string(),
});
export type DeployJobData = z.infer<typeof deployJobDataSchema>;

export function parseDeployJobData(data: unknown): DeployJobData {
  return deployJobDataSchema.parse(data);
}

import type { EnvironmentConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { JobRecord } from '../status/job-record.js';
import { describeSuspension, type Suspension } from '../status/suspensions.js';
import type { ProcessDeps } from './job-processor-deps.js';

/**
 * A job held by a suspension looks again this often: a resume queues a deploy of the head and
 * wakes the held jobs at once (DeployProducer.wakeHeld), so this is only the backstop for a
 * wake that failed or came before the job was put back. Long, as a suspension can last days:
 * each look takes the environment's lock and writes BullMQ events.
 */
export const SUSPENDED_RECHECK_MS = 60_000;

/** Says on the job's record, and as the commit's pending status, that a suspension holds it (once). */
export async function markHeld(
  environment: EnvironmentConfig,
  record: JobRecord,
  suspension: Suspension,
  deps: ProcessDeps,
  logger: Logger,
): Promise<void> {
  const message = `held: ${environment.name} is ${describeSuspension(suspension)}; deploys once resumed`;
  if (record.message === message) return;
  const reason = suspension.reason ? ` (${suspension.reason})` : '';
  await deps
    .run(environment, record, logger)
    .held(message, `Held: ${environment.name} is suspended${reason}`);
  logger.info({ reason: suspension.reason }, 'environment suspended: job held until it is resumed');
}

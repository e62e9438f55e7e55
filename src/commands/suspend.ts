import { PushgateError, UsageError } from '../lib/errors.js';
import { waitForRedis } from '../queue/connection.js';
import { connectProducer, loadRuntime } from '../runtime.js';
import { describeSuspension, suspendReasonProblem } from '../status/suspensions.js';
import { CliFailure } from './cli-failure.js';
import { clientRedisUrl } from './client-redis-url.js';
import type { CommandArgs } from './command.js';
import { printable } from './printable.js';

const REDIS_WAIT_MS = 5_000;

/**
 * `pushgate suspend ENV [--reason TEXT]`: holds ENV's deploys, as `flux suspend` does: the
 * deploy running finishes; pushes are queued and held; re-syncs and syncs do not run; the
 * cluster is left as it is (hand-made changes included) until `pushgate resume ENV`.
 */
export async function runSuspend(args: CommandArgs): Promise<number> {
  const [name, ...extra] = args.positionals;
  if (!name || extra.length > 0) throw new UsageError('usage: pushgate suspend ENV [--reason TEXT]');
  const reason = args.reason?.trim() || null;
  const problem = reason === null ? undefined : suspendReasonProblem(reason);
  if (problem) throw new UsageError(`--reason: ${problem}`);
  const { config } = loadRuntime(args.config, args.env, { unsetWhenVariableMissing: ['redis.url'] });
  if (!config.environments.some((environment) => environment.name === name)) {
    const names = config.environments.map((environment) => environment.name).join(', ') || 'none';
    throw new CliFailure('environment_not_found', `unknown environment "${name}" (configured: ${names})`, {
      exitCode: 2,
    });
  }
  const services = connectProducer(
    { url: clientRedisUrl(config, 'suspend'), cluster: config.redis.cluster },
    config.redis.prefix,
  );
  try {
    await waitForRedis(services.redis, REDIS_WAIT_MS).catch((error: unknown) => {
      if (error instanceof PushgateError) throw error;
      throw new PushgateError('unavailable', `cannot suspend ${name}: ${(error as Error).message}`);
    });
    const suspension = await services.store.suspensions.suspend(name, reason);
    if (args.json) args.stdout.write(`${JSON.stringify({ environment: name, suspended: suspension })}\n`);
    else
      args.stdout.write(
        `${name} ${printable(describeSuspension(suspension))}: deploys held until pushgate resume ${name}\n`,
      );
    return 0;
  } finally {
    await services.close();
  }
}

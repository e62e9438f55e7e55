import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';

export function runWorker(_args: CommandArgs): Promise<number> {
  return Promise.reject(new UsageError('pushgate worker is not implemented yet'));
}

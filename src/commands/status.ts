import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';

export function runStatus(_args: CommandArgs): Promise<number> {
  return Promise.reject(new UsageError('pushgate status is not implemented yet'));
}

import { readFileSync } from 'node:fs';
import type { CommandArgs } from './command.js';

/** package.json beside dist/, as npm installs it and the image copies it. */
const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);

/** `pushgate version` (and `pushgate --version`): the version of the package, alone on a line. */
export function runVersion(args: CommandArgs): Promise<number> {
  const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string };
  args.stdout.write(`${version}\n`);
  return Promise.resolve(0);
}

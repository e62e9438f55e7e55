/**
 * `npm run bench [-- NAME...]`: runs the named benches (default: all known) one after the
 * other. A bench is a module `bench/<name>.ts` exporting `run(): Promise<void>` that writes
 * its own section of BENCHMARKS.md. A bench not written yet is skipped with a message.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const KNOWN = ['ingest', 'instructions', 'deploy', 'idle', 'git-fetch'];

interface BenchModule {
  run(): Promise<void>;
}

async function main(names: string[]): Promise<number> {
  const selected = names.length > 0 ? names : KNOWN;
  let failed = 0;
  for (const name of selected) {
    if (!/^[a-z][a-z0-9-]*$/.test(name)) {
      process.stderr.write(`bench: "${name}" is not a bench name\n`);
      return 2;
    }
    const file = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
    if (!existsSync(file)) {
      process.stdout.write(`bench ${name}: bench/${name}.ts does not exist yet, skipped\n`);
      continue;
    }
    const started = Date.now();
    process.stdout.write(`bench ${name}: running\n`);
    try {
      const bench = (await import(file)) as BenchModule;
      await bench.run();
      process.stdout.write(`bench ${name}: done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    } catch (error) {
      failed += 1;
      process.stderr.write(
        `bench ${name}: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
    }
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));

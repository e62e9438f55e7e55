import path from 'node:path';
import type { MirrorCache, RepoSource } from '../git/mirror-cache.js';
import { PushgateError } from '../lib/errors.js';
import { KUSTOMIZATION_FILES, type SkippedPath } from '../manifests/load.js';

/** `folder` and every folder above it up to `base` (both repository-relative, '' the root). */
function foldersDownTo(base: string, folder: string): string[] {
  if (folder !== base && !folder.startsWith(base === '' ? '' : `${base}/`)) return [folder];
  const below = folder
    .slice(base === '' ? 0 : base.length)
    .split('/')
    .filter(Boolean);
  const folders = [base];
  for (const name of below) folders.push(folders.at(-1) === '' ? name : `${folders.at(-1)}/${name}`);
  return folders;
}

/**
 * The folders this commit skips for their kustomization (SPEC §4: not built in this version)
 * that still hold other files, and that the commit last applied read: a folder then, with no
 * kustomization in it or above it. Their objects were applied then, are still in git, and a
 * deploy of this commit would prune them. Where the mirror no longer has that commit, none.
 */
export async function newlySkippedFolders(
  mirrors: Pick<MirrorCache, 'typesAt'>,
  repo: RepoSource,
  lastAppliedSha: string,
  manifestPath: string,
  skipped: readonly SkippedPath[],
): Promise<SkippedPath[]> {
  const normalised = path.posix.normalize(manifestPath).replace(/\/+$/, '');
  const base = normalised === '.' ? '' : normalised;
  const checks = skipped
    .filter((folder) => folder.holdsManifests && folder.path !== '.')
    .map((folder) => ({
      folder,
      kustomizations: foldersDownTo(base, folder.path).flatMap((dir) =>
        KUSTOMIZATION_FILES.map((name) => (dir === '' ? name : `${dir}/${name}`)),
      ),
    }));
  if (checks.length === 0) return [];
  const paths = checks.flatMap(({ folder, kustomizations }) => [folder.path, ...kustomizations]);
  const types = await mirrors.typesAt(repo, lastAppliedSha, paths);
  const typeOf = new Map(paths.map((entry, index) => [entry, types[index]]));
  return checks
    .filter(
      ({ folder, kustomizations }) =>
        typeOf.get(folder.path) === 'tree' &&
        kustomizations.every((entry) => typeOf.get(entry) === undefined),
    )
    .map(({ folder }) => folder);
}

/** The deploy's refusal: pruning what those folders held would delete objects git still declares. */
export function newlySkippedError(folders: readonly SkippedPath[], lastAppliedSha: string): PushgateError {
  const named = folders.map((folder) => `${folder.path} (${folder.reason})`).join('; ');
  return new PushgateError(
    'manifest_invalid',
    `refusing to deploy: ${named}: pushgate skips such a folder, so the objects it held when ` +
      `${lastAppliedSha.slice(0, 12)} was applied would be pruned, though their files are still in git. ` +
      'Remove the kustomization file to keep deploying them, or remove their files (or the folder) to have them pruned',
    { permanent: true },
  );
}

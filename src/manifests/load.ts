import { lstat, readFile, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { PushgateError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { problemsError, type ManifestProblem } from './problems.js';
import { dataShapeProblems } from './data-shape.js';
import { isCanonicalApiVersion } from './resource-info.js';
import { MAX_FILE_PARSE_MS, PARSE_HEAP_MB, readYaml } from './yaml-parser.js';
import { MAX_YAML_ANCHORS_AND_ALIASES } from './yaml-anchors.js';
import { MAX_YAML_NESTING, MAX_YAML_VALUES_PER_ENVIRONMENT } from './yaml-documents.js';
import { manifestText } from './text.js';
import type { LoadedManifest, ManifestObject, ManifestSource } from './types.js';

/** Manifests are small; anything bigger is a mistake (a vendored binary, a data dump) or an attack. */
export const MAX_MANIFEST_FILE_BYTES = 4 * 1024 * 1024;
/**
 * All files of one environment together. Parsed YAML takes many times its text in memory,
 * and one worker deploys every environment: a push to staging must not starve production.
 */
export const MAX_MANIFEST_TOTAL_BYTES = 32 * 1024 * 1024;
/** CPU time the YAML parser may take over one environment's files (4 MiB of typical manifests: about 3 to 4 s). */
export const MAX_PARSE_MS_PER_ENVIRONMENT = 60_000;

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
export const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

export interface SkippedPath {
  /** Repository-relative folder. */
  path: string;
  reason: string;
  /** It holds files or folders that could hold manifests besides its kustomization file. */
  holdsManifests: boolean;
}

export interface ManifestTree {
  manifests: LoadedManifest[];
  skipped: SkippedPath[];
}

export interface LoadOptions {
  /** Receives a warning for each folder skipped (kustomizations are not built in this version). */
  logger?: Logger;
  /**
   * The environment the objects are for: a tree without objects then fails, naming the folders
   * skipped, unless the environment allows an empty set (deploying one prunes everything).
   */
  environment?: { name: string; allowEmpty: boolean };
  /** Told the folders skipped, once the tree is read. */
  onSkipped?: (skipped: readonly SkippedPath[]) => void;
}

/** Why an environment refuses an empty set; `skipped` says where objects may have been missed. */
export function emptySetMessage(
  environment: string,
  manifestPath: string,
  skipped: readonly SkippedPath[],
): string {
  const missed =
    skipped.length === 0
      ? ''
      : ` (skipped: ${skipped.map((folder) => `${folder.path}, which ${folder.reason}`).join('; ')})`;
  return (
    `no objects under ${manifestPath}${missed}: refusing to deploy an empty set, which would prune everything ` +
    `environment ${environment} applied before (set allowEmpty: true on the environment to allow it)`
  );
}

/**
 * The objects under `manifestPath` (relative to `repoRoot`), files sorted by path, documents
 * in file order. Throws one `manifest_invalid` error listing every problem found.
 */
export async function loadManifests(
  repoRoot: string,
  manifestPath: string,
  options: LoadOptions = {},
): Promise<LoadedManifest[]> {
  const tree = await loadManifestTree(repoRoot, manifestPath);
  for (const skipped of tree.skipped) {
    options.logger?.warn({ path: skipped.path, reason: skipped.reason }, 'manifest folder skipped');
  }
  options.onSkipped?.(tree.skipped);
  const { environment } = options;
  if (environment && tree.manifests.length === 0 && !environment.allowEmpty)
    throw invalid(emptySetMessage(environment.name, manifestPath, tree.skipped));
  return tree.manifests;
}

/** What reading one environment's manifests may cost (MAX_YAML_VALUES_PER_ENVIRONMENT, MAX_PARSE_MS_PER_ENVIRONMENT); smaller in tests. */
export interface ParseLimits {
  values: number;
  parseMs: number;
}

const PARSE_LIMITS: ParseLimits = {
  values: MAX_YAML_VALUES_PER_ENVIRONMENT,
  parseMs: MAX_PARSE_MS_PER_ENVIRONMENT,
};

export async function loadManifestTree(
  repoRoot: string,
  manifestPath: string,
  limits: ParseLimits = PARSE_LIMITS,
): Promise<ManifestTree> {
  const realRoot = await realpath(repoRoot);
  const start = await resolveStart(repoRoot, realRoot, manifestPath);
  const problems: ManifestProblem[] = [];
  const skipped: SkippedPath[] = [];
  const files: FileEntry[] = [];
  if (start.isFile) {
    files.push({ relative: start.relative, real: start.real });
  } else {
    await walk(realRoot, start.relative, start.real, new Set(), files, skipped, problems);
  }
  files.sort((a, b) => Buffer.compare(Buffer.from(a.relative), Buffer.from(b.relative)));

  const sizes = await Promise.all(files.map((file) => stat(file.real).then((info) => info.size)));
  const total = sizes.reduce((sum, size) => sum + size, 0);
  if (total > MAX_MANIFEST_TOTAL_BYTES) {
    throw invalid(
      `the manifests under "${manifestPath}" are ${total} bytes in ${files.length} files, over the ${MAX_MANIFEST_TOTAL_BYTES}-byte limit for one environment`,
    );
  }
  const manifests: LoadedManifest[] = [];
  const budget: ParseBudget = {
    references: MAX_YAML_ANCHORS_AND_ALIASES,
    values: limits.values,
    parseMs: limits.parseMs,
    limits,
  };
  for (const file of files) {
    await parseFile(file, manifests, problems, budget);
  }
  // Only when that file is all: another file's own fault fails the commit whatever the CPU.
  if (budget.starved && problems.every((problem) => problem.message.startsWith(`${budget.starved!.file}: `)))
    throw starvedError(budget.starved);
  if (problems.length > 0) throw problemsError('manifest_invalid', problems);
  return { manifests, skipped };
}

interface FileEntry {
  /** Repository-relative path with forward slashes, as the user sees it. */
  relative: string;
  real: string;
}

interface Start extends FileEntry {
  isFile: boolean;
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root + path.sep);
}

function toRepoPath(relative: string): string {
  return relative.split(path.sep).join('/');
}

/**
 * Not the commit's fault: retried like any transient failure, where a file that is merely slow
 * to read fails the job at once.
 */
function starvedError({ file, cpuShare }: { file: string; cpuShare: number }): PushgateError {
  return new PushgateError(
    'transient',
    `${file}: not read in time: the thread reading it was given ${Math.round(cpuShare * 100)}% of a CPU core (its process throttled by a CPU limit, or a busy node), too little to judge the file; a deploy tries again; give workers more CPU (docs/production.md, "Sizing workers")`,
  );
}

function invalid(message: string): PushgateError {
  return new PushgateError('manifest_invalid', message, { permanent: true });
}

async function resolveStart(repoRoot: string, realRoot: string, manifestPath: string): Promise<Start> {
  const absolute = path.resolve(repoRoot, manifestPath);
  const relative = toRepoPath(path.relative(path.resolve(repoRoot), absolute)) || '.';
  if (path.isAbsolute(manifestPath) || relative === '..' || relative.startsWith('../')) {
    throw invalid(`manifest path "${manifestPath}" is outside the repository`);
  }
  try {
    await lstat(absolute);
  } catch {
    throw invalid(`manifest path "${manifestPath}" does not exist in the repository`);
  }
  let real: string;
  try {
    real = await realpath(absolute);
  } catch {
    throw invalid(`manifest path "${manifestPath}" is a broken symlink`);
  }
  if (!isInside(realRoot, real)) {
    throw invalid(`manifest path "${manifestPath}" is a symlink that leaves the repository`);
  }
  const info = await stat(real);
  return { relative: relative === '.' ? '' : relative, real, isFile: info.isFile() };
}

function joinRepoPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

async function walk(
  realRoot: string,
  relativeDir: string,
  realDir: string,
  visited: Set<string>,
  files: FileEntry[],
  skipped: SkippedPath[],
  problems: ManifestProblem[],
): Promise<void> {
  // A symlinked folder inside the repository may point back up the tree.
  if (visited.has(realDir)) return;
  visited.add(realDir);

  const entries = await readdir(realDir, { withFileTypes: true });
  const names = new Set(entries.map((entry) => entry.name));
  const kustomization = KUSTOMIZATION_FILES.find((name) => names.has(name));
  if (kustomization) {
    skipped.push({
      path: relativeDir || '.',
      reason: `contains ${kustomization}; kustomizations are not built in this version`,
      holdsManifests: entries.some(
        (entry) =>
          !entry.name.startsWith('.') &&
          !KUSTOMIZATION_FILES.includes(entry.name) &&
          (entry.isDirectory() ||
            entry.isSymbolicLink() ||
            MANIFEST_EXTENSIONS.has(path.extname(entry.name).toLowerCase())),
      ),
    });
    return;
  }

  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const relative = joinRepoPath(relativeDir, entry.name);
    let real = path.join(realDir, entry.name);
    const read = entry.isDirectory() || MANIFEST_EXTENSIONS.has(path.extname(entry.name).toLowerCase());
    // Node reads a name that is not UTF-8 with U+FFFD in place of its bytes: no path reaches it.
    if (read && entry.name.includes('\uFFFD') && !(await lstat(real).then(Boolean, () => false))) {
      problems.push({ message: `${relative}: the name is not valid UTF-8 (rename it)` });
      continue;
    }
    let isDirectory = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      try {
        real = await realpath(real);
      } catch {
        problems.push({ message: `${relative}: broken symlink` });
        continue;
      }
      if (!isInside(realRoot, real)) {
        problems.push({ message: `${relative}: symlink leaves the repository` });
        continue;
      }
      const info = await stat(real);
      isDirectory = info.isDirectory();
      isFile = info.isFile();
    }
    if (isDirectory) {
      await walk(realRoot, relative, real, visited, files, skipped, problems);
    } else if (isFile && MANIFEST_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) {
      files.push({ relative, real });
    }
  }
}

/** What is left for the environment's remaining files. */
interface ParseBudget {
  references: number;
  values: number;
  parseMs: number;
  limits: ParseLimits;
  /** The first file that ran out of time while the process had too little CPU to judge it. */
  starved?: { file: string; cpuShare: number };
}

async function parseFile(
  file: FileEntry,
  manifests: LoadedManifest[],
  problems: ManifestProblem[],
  budget: ParseBudget,
): Promise<void> {
  const info = await stat(file.real);
  if (info.size > MAX_MANIFEST_FILE_BYTES) {
    problems.push({
      message: `${file.relative}: file is ${info.size} bytes, over the ${MAX_MANIFEST_FILE_BYTES}-byte limit`,
    });
    return;
  }
  const read = manifestText(await readFile(file.real), path.extname(file.relative).toLowerCase() === '.json');
  if ('problem' in read) {
    problems.push({ message: `${file.relative}: ${read.problem}` });
    return;
  }
  const { text } = read;
  const { limits } = budget;
  // Starved of CPU, the rest would be read as slowly: the deploy is tried again instead.
  if (budget.starved) return;
  if (budget.references < 0 || budget.values < 0 || budget.parseMs <= 0) {
    problems.push({
      message: `${file.relative}: not read: the environment's manifests took all they may before it`,
    });
    return;
  }
  const { outcome, spentMs } = await readYaml(text, budget);
  budget.parseMs -= spentMs;
  if ('references' in outcome) budget.references -= outcome.references;
  // Past the values it may hold, the environment stops here, as for its anchors.
  if ('refused' in outcome && outcome.refused === 'values') budget.values = -1;
  if ('refused' in outcome && outcome.refused === 'time' && outcome.starvedCpuShare !== undefined)
    budget.starved ??= { file: file.relative, cpuShare: outcome.starvedCpuShare };
  if ('refused' in outcome) {
    const why = {
      references: `the environment's manifests hold more than ${MAX_YAML_ANCHORS_AND_ALIASES} YAML anchors and aliases (&name, *name) up to this file`,
      nesting: `it nests more than ${MAX_YAML_NESTING} levels deep (a pair in brackets, "[a: b]", counts 2), far more than any Kubernetes object`,
      values: `the environment's manifests hold more than ${limits.values} YAML values (mappings, lists and scalars, aliases expanded) up to this file, more than one environment may: split it into several environments`,
      memory: `reading it takes more than the ${PARSE_HEAP_MB} MiB of memory one file may (a shape that costs the YAML parser far more than its bytes, or too much in one file): split or simplify it`,
      time: `reading it took more CPU time than it may (${MAX_FILE_PARSE_MS / 1000} s a file, ${limits.parseMs / 1000} s the environment's files together): a shape that costs the YAML parser far more than its bytes, or too much in one environment`,
      crash: `the YAML parser stopped (${'detail' in outcome ? (outcome.detail ?? 'no reason given') : ''})`,
    }[outcome.refused];
    problems.push({ message: `${file.relative}: not read: ${why}` });
    return;
  }
  for (const [index, document] of outcome.documents.entries()) {
    const source: ManifestSource = { file: file.relative, document: index + 1 };
    if ('problem' in document) {
      problems.push({ source, message: document.problem });
      continue;
    }
    budget.values -= document.values;
    collectObjects(document.value, source, manifests, problems);
  }
}

/**
 * Kubernetes' rule for any name that is a segment of an API path: `.` and `..` would be
 * resolved as dot-segments of the request URL (`configmaps/..` is the Namespace above), and
 * `/` or `%` would split or re-encode it. The API server refuses them only once the request
 * has reached another path; they are refused here, before anything is sent.
 */
function isPathSegmentName(value: string): boolean {
  return value !== '.' && value !== '..' && !value.includes('/') && !value.includes('%');
}

const PATH_SEGMENT_RULE = 'must not be "." or ".." nor contain "/" or "%"';

const objectHeaderSchema = z.object({
  apiVersion: z
    .string({ required_error: 'apiVersion is required' })
    .min(1, 'apiVersion is required')
    .refine(isCanonicalApiVersion, (apiVersion) => ({
      message: `${JSON.stringify(apiVersion)} is not VERSION (the core group: v1) or GROUP/VERSION (apps/v1)`,
    })),
  kind: z.string({ required_error: 'kind is required' }).min(1, 'kind is required'),
  metadata: z
    .object(
      {
        name: z
          .string({ required_error: 'metadata.name is required' })
          .min(1, 'metadata.name is required')
          .refine(isPathSegmentName, PATH_SEGMENT_RULE),
        namespace: z
          .string()
          .min(1, 'metadata.namespace must not be empty')
          .refine(isPathSegmentName, PATH_SEGMENT_RULE)
          .optional(),
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
      },
      { required_error: 'metadata is required', invalid_type_error: 'must be a mapping' },
    )
    .passthrough(),
});

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function collectObjects(
  value: unknown,
  source: ManifestSource,
  manifests: LoadedManifest[],
  problems: ManifestProblem[],
): void {
  if (value === null || value === undefined) return;
  if (!isMapping(value)) {
    problems.push({ source, message: 'document is not a Kubernetes object (expected a mapping)' });
    return;
  }
  // First: SOPS encrypts every value unless told otherwise, apiVersion and kind included.
  if (isSopsEncrypted(value)) {
    problems.push({ source, message: SOPS_REFUSAL });
    return;
  }
  // As kubectl: any `…List` with items (`List`, `ConfigMapList`, what `kubectl get -o yaml` writes).
  if (source.item === undefined && isListKind(value.kind) && Array.isArray(value.items)) {
    const listKind = value.kind as string;
    value.items.forEach((item: unknown, index) => {
      if (item === null || item === undefined) return;
      collectObjects(
        typedListItem(item, listKind, value.apiVersion),
        { ...source, item: index + 1 },
        manifests,
        problems,
      );
    });
    return;
  }
  const parsed = objectHeaderSchema.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const field = issue.path.join('.');
      const message =
        issue.message.includes(' is required') || field === '' ? issue.message : `${field}: ${issue.message}`;
      problems.push({ source, message });
    }
    return;
  }
  const shapeProblems = dataShapeProblems(value as ManifestObject);
  if (shapeProblems.length > 0) {
    for (const message of shapeProblems) problems.push({ source, message });
    return;
  }
  manifests.push({ object: value as ManifestObject, source });
}

/**
 * A SOPS-encrypted document of Kubernetes' own kinds, as Flux's kustomize-controller decrypts
 * it, holds its ciphertext as `ENC[AES256_GCM,…]` strings and its keys in a top-level `sops`
 * mapping (`mac`, `lastmodified`). Applied as it is, the API server refuses only the `sops`
 * field, and a Secret's `data` reads as not base64: neither says what is wrong.
 */
function isSopsEncrypted(document: Record<string, unknown>): boolean {
  const metadata = document.sops;
  if (!isMapping(metadata) || (typeof metadata.mac !== 'string' && typeof metadata.lastmodified !== 'string'))
    return false;
  // A custom resource may carry its `sops` field on purpose, for a controller that decrypts
  // it in the cluster (sops-secrets-operator's SopsSecret): its schema decides, at the dry-run.
  const { apiVersion } = document;
  return typeof apiVersion !== 'string' || apiVersion.startsWith('ENC[') || isBuiltInApiVersion(apiVersion);
}

/** Kubernetes' own groups: the core group, the undotted ones (apps, batch…) and `*.k8s.io`. */
function isBuiltInApiVersion(apiVersion: string): boolean {
  const slash = apiVersion.indexOf('/');
  if (slash < 0) return true;
  const group = apiVersion.slice(0, slash);
  return !group.includes('.') || group.endsWith('.k8s.io');
}

const SOPS_REFUSAL =
  'encrypted with SOPS (it has a top-level "sops" field): pushgate does not decrypt SOPS and would apply the ' +
  'ciphertext; keep secrets out of the branch with a controller that decrypts in the cluster (Sealed Secrets, ' +
  'External Secrets), see docs/deploys.md "Secrets"';

function isListKind(kind: unknown): boolean {
  return typeof kind === 'string' && kind.endsWith('List');
}

/**
 * The API leaves out each item's apiVersion and kind in a typed list (`ConfigMapList`): as
 * kubectl does, an item that names neither gets the list's apiVersion and its kind less
 * `List`; one that names only one of them is refused for the other, as kubectl refuses it.
 */
function typedListItem(item: unknown, listKind: string, apiVersion: unknown): unknown {
  if (listKind === 'List' || typeof item !== 'object' || item === null || Array.isArray(item)) return item;
  const object = item as Record<string, unknown>;
  const named = (field: unknown): boolean => typeof field === 'string' && field !== '';
  if (named(object.apiVersion) || named(object.kind)) return item;
  return { ...object, apiVersion, kind: listKind.slice(0, -'List'.length) };
}

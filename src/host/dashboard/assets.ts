import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoworkError } from '../errors.js';

/**
 * The dashboard's files: a fixed map from URL path to one file of the package, nothing else.
 * There is no directory serving and no path from the request ever reaches the filesystem, so
 * `/../`, encoded slashes or symlink tricks have nothing to work on. The pages come from
 * src/dashboard/static/ as they are; the script is built into dist/dashboard/.
 */

export const ASSETS = {
  '/': { file: 'src/dashboard/static/index.html', type: 'text/html; charset=utf-8' },
  '/app.css': { file: 'src/dashboard/static/app.css', type: 'text/css; charset=utf-8' },
  '/app.js': { file: 'dist/dashboard/app.js', type: 'text/javascript; charset=utf-8' },
} as const satisfies Record<string, { file: string; type: string }>;

export type AssetPath = keyof typeof ASSETS;

export function isAssetPath(path: string): path is AssetPath {
  return Object.hasOwn(ASSETS, path);
}

/** The package root: this file is src/host/dashboard/assets.ts or dist/host/dashboard/assets.js. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The asset's bytes and type; a missing file is `unavailable` with the step that makes it. */
export async function readAsset(root: string, path: AssetPath): Promise<{ body: Buffer; type: string }> {
  const asset = ASSETS[path];
  try {
    return { body: await readFile(join(root, asset.file)), type: asset.type };
  } catch (err) {
    throw CoworkError.from(
      err,
      'unavailable',
      `the dashboard file ${asset.file} is missing (run \`npm run build\`)`,
    );
  }
}

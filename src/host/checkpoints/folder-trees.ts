import type { ObjectStore } from './objects.js';
import type { FileState } from './snapshot.js';

interface Folder {
  /** Names of the files and links directly in it. */
  files: Set<string>;
  /** Names of its subfolders (each holds at least one file, somewhere below). */
  dirs: Set<string>;
  tree: string;
}

/**
 * The git trees of one snapshot, folder by folder, so the next snapshot rewrites only the folders
 * on the way to what changed. Immutable: `next` shares every untouched folder with this one.
 * Sorting is git's: by name bytes, a tree compared as if its name ended in "/". Folders are
 * implied by their files, as in git: one left with nothing below it is not recorded.
 */
export class FolderTrees {
  /** Use `build` or `next`. */
  constructor(
    readonly root: string,
    private readonly folders: ReadonlyMap<string, Folder>,
  ) {}

  /** The trees of `files` (path → state), every folder written. */
  static build(objects: ObjectStore, files: ReadonlyMap<string, FileState>): FolderTrees {
    return apply(objects, new Map(), files, files.keys());
  }

  /**
   * The trees of `files`, which MUST be this snapshot's files with only `changed` paths created,
   * changed or removed: every other path's folder keeps its tree id unread.
   */
  next(objects: ObjectStore, files: ReadonlyMap<string, FileState>, changed: Iterable<string>): FolderTrees {
    return apply(objects, this.folders, files, changed);
  }
}

function apply(
  objects: ObjectStore,
  base: ReadonlyMap<string, Folder>,
  files: ReadonlyMap<string, FileState>,
  changed: Iterable<string>,
): FolderTrees {
  const folders = new Map(base);
  const touched = new Set<string>();
  // The folder at `path`, copied before it is changed; its parents are copied too (their trees change).
  const edit = (path: string): Folder => {
    const f = folders.get(path);
    if (f && touched.has(path)) return f;
    const copy: Folder = { files: new Set(f?.files), dirs: new Set(f?.dirs), tree: '' };
    folders.set(path, copy);
    touched.add(path);
    if (path !== '') edit(parentOf(path)).dirs.add(nameOf(path));
    return copy;
  };
  edit('');
  for (const rel of changed) {
    const dir = parentOf(rel);
    if (files.has(rel)) edit(dir).files.add(nameOf(rel));
    else if (folders.has(dir)) edit(dir).files.delete(nameOf(rel));
  }
  const depth = (p: string) => (p === '' ? -1 : p.split('/').length);
  for (const path of [...touched].sort((a, b) => depth(b) - depth(a))) {
    const f = folders.get(path) as Folder;
    if (path !== '' && f.files.size === 0 && f.dirs.size === 0) {
      folders.delete(path);
      edit(parentOf(path)).dirs.delete(nameOf(path));
      continue;
    }
    f.tree = writeTree(objects, path, f, files, folders);
  }
  return new FolderTrees((folders.get('') as Folder).tree, folders);
}

function writeTree(
  objects: ObjectStore,
  path: string,
  f: Folder,
  files: ReadonlyMap<string, FileState>,
  folders: ReadonlyMap<string, Folder>,
): string {
  const prefix = path === '' ? '' : `${path}/`;
  const rows: { name: string; mode: string; oid: string; key: Buffer }[] = [];
  for (const name of f.files) {
    const s = files.get(prefix + name) as FileState;
    const mode = s.kind === 'link' ? '120000' : s.mode & 0o111 ? '100755' : '100644';
    rows.push({ name, mode, oid: s.oid, key: Buffer.from(name) });
  }
  for (const name of f.dirs) {
    const sub = folders.get(prefix + name) as Folder;
    rows.push({ name, mode: '40000', oid: sub.tree, key: Buffer.from(`${name}/`) });
  }
  rows.sort((a, b) => Buffer.compare(a.key, b.key));
  const body = Buffer.concat(
    rows.flatMap((r) => [Buffer.from(`${r.mode} ${r.name}\0`), Buffer.from(r.oid, 'hex')]),
  );
  return objects.write('tree', body);
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

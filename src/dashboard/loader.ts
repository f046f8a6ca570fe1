/**
 * The dashboard is served as ONE script (`/app.js`; the CSP allows no other file), so tsc joins
 * its modules into one AMD file (`outFile`). This is the whole module loader that file needs:
 * `define` records each module, `requireModule` runs one after its dependencies. It runs only
 * what tsc emitted into the same file — it never fetches anything.
 */
type AmdFactory = (...deps: unknown[]) => void;
interface AmdModule {
  deps: string[];
  factory: AmdFactory;
  exports?: Record<string, unknown>;
}
const amdModules = new Map<string, AmdModule>();

// biome-ignore lint/correctness/noUnusedVariables: called by the AMD code tsc emits after this file
function define(name: string, deps: string[], factory: AmdFactory): void {
  amdModules.set(name, { deps, factory });
}

// biome-ignore lint/correctness/noUnusedVariables: boot.ts (the last part of app.js) calls it
function requireModule(name: string): Record<string, unknown> {
  const mod = amdModules.get(name);
  if (!mod) throw new Error(`dashboard module "${name}" is not in app.js`);
  if (mod.exports) return mod.exports;
  const exports: Record<string, unknown> = {};
  mod.exports = exports; // set first: a cycle sees the partial exports, as with ES modules
  const args = mod.deps.map((d) => {
    if (d === 'require') return requireModule;
    if (d === 'exports') return exports;
    // tsc writes dependencies already resolved to module names ("pages/tasks").
    return requireModule(d);
  });
  mod.factory(...args);
  return exports;
}

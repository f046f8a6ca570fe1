import { createRequire } from 'node:module';
import { CoworkError } from '../errors.js';

/**
 * The real shell parser: mvdan/sh (the same parser behind shfmt and sh-syntax), in its
 * GopherJS build `mvdan-sh`, because that build parses synchronously and returns the full
 * typed syntax tree. (sh-syntax 0.7's WASM build only returns statement positions — its
 * `Cmd` nodes carry no words — and costs ~15 ms per call, so it cannot drive analysis.)
 */

/** The subset of mvdan/sh's syntax tree we read. Field names are Go's. */
export interface ShNode {
  [field: string]: unknown;
}
export interface ShSyntax {
  NewParser(...opts: unknown[]): { Parse(src: string, name: string): ShNode };
  KeepComments(keep: boolean): unknown;
  Variant(v: unknown): unknown;
  LangBash: unknown;
  Walk(node: ShNode, fn: (node: ShNode | null) => boolean): void;
  NodeType(node: ShNode): string;
}

/** Go token numbers of mvdan/sh (syntax/tokens.go), checked by tests/unit/policy-parser.test.ts. */
export const BIN_OPS: Record<number, string> = { 10: '&&', 11: '||', 12: '|', 13: '|&' };
export const REDIR_OPS: Record<number, string> = {
  54: '>',
  55: '>>',
  56: '<',
  57: '<>',
  58: '<&',
  59: '>&',
  60: '>|',
  61: '<<',
  62: '<<-',
  63: '<<<',
  64: '&>',
  65: '&>>',
};
export const PROC_SUBST_OPS: Record<number, string> = { 66: '<(', 67: '>(' };

export class ShellParseError extends Error {}

/** One parser per engine; parsing is synchronous (~0.1–0.3 ms for a typical command line). */
export class ShellParser {
  readonly syntax: ShSyntax;
  readonly #parser: { Parse(src: string, name: string): ShNode };

  constructor() {
    let mod: { syntax: ShSyntax };
    try {
      mod = createRequire(import.meta.url)('mvdan-sh') as { syntax: ShSyntax };
    } catch (err) {
      throw new CoworkError(
        'unavailable',
        'the shell parser (npm package mvdan-sh) is missing: run npm install',
        err,
      );
    }
    this.syntax = mod.syntax;
    this.#parser = this.syntax.NewParser(
      this.syntax.KeepComments(false),
      this.syntax.Variant(this.syntax.LangBash),
    );
  }

  /** Parse bash source; throws ShellParseError with mvdan/sh's message ("1:6: reached EOF ..."). */
  parse(src: string): ShNode {
    try {
      return this.#parser.Parse(src, '');
    } catch (err) {
      const e = err as { Error?: () => string; message?: string };
      const msg = typeof e?.Error === 'function' ? e.Error() : (e?.message ?? String(err));
      throw new ShellParseError(msg);
    }
  }

  type(node: ShNode): string {
    return this.syntax.NodeType(node);
  }

  /** Depth-first visit of every node under `node` (including `node`). */
  walk(node: ShNode, fn: (node: ShNode, type: string) => boolean | undefined): void {
    this.syntax.Walk(node, (n) => {
      if (!n) return true;
      return fn(n, this.syntax.NodeType(n)) !== false;
    });
  }
}

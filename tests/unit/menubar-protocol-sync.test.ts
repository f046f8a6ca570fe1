import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { METHODS, type Transport } from '../../src/host/api/contract.js';
import {
  CLOSE_CODES,
  clientFrameSchema,
  PAIRING_ALPHABET,
  serverFrameSchema,
} from '../../src/host/control/protocol.js';
import { verdictKindSchema } from '../../src/host/timeline/events.js';
import {
  decoderBranches,
  enumCases,
  fields,
  requireType,
  type SwiftType,
  storedProperties,
  swiftTypes,
} from '../helpers/swift-decls.js';

/**
 * The Swift client speaks the control API as src/host says it: every method it sends is a
 * `remote` method of the contract (src/host/api/contract.ts) with the contract's params, every
 * frame it sends is a client frame of src/host/control/protocol.ts with exactly its fields, and
 * every server frame it reads is one the server sends. Read from the Swift source (it cannot be
 * compiled here); a rename on either side fails.
 */

const CORE = new URL('../../native/menubar/Sources/CoworkMenubarCore/', import.meta.url).pathname;
const FILES = [
  'Methods.swift',
  'Protocol.swift',
  'ControlClient.swift',
  'CommandLineOptions.swift',
  'MenuSession.swift',
  'MenuModel.swift',
].map((f) => join(CORE, f));
const METHODS_SWIFT = join(CORE, 'Methods.swift');

// biome-ignore lint/suspicious/noExplicitAny: zod's def is typed per schema kind; this walks any of them.
const def = (s: z.ZodType): any => (s as any).def;
const isOptional = (s: z.ZodType) => def(s).type === 'optional';

/** The object options of a union, nested unions flattened. */
function objectOptions(s: z.ZodType): z.ZodObject[] {
  const d = def(s);
  if (d.type === 'union') return (d.options as z.ZodType[]).flatMap(objectOptions);
  if (d.type === 'object') return [s as z.ZodObject];
  throw new Error(`not an object or union: ${d.type}`);
}
const typeLiteral = (o: z.ZodObject) => def(o.shape.type!).values[0] as string;

function remoteMethod(name: string) {
  if (!Object.hasOwn(METHODS, name)) return undefined;
  const spec = METHODS[name as keyof typeof METHODS];
  return (spec.transports as readonly Transport[]).includes('remote') ? spec : undefined;
}

interface SwiftCall {
  struct: SwiftType;
  method: string;
  result: string | undefined;
}

/** Every `RemoteCall` struct: the method it names and its Result type. */
function swiftCalls(types: Map<string, SwiftType>): SwiftCall[] {
  const raw = new Map(enumCases(requireType(types, 'RemoteMethod')).map((c) => [c.name, c.raw!]));
  return [...types.values()]
    .filter((t) => t.kind === 'struct' && t.conformances.includes('RemoteCall'))
    .map((t) => {
      const m = storedProperties(t).find((p) => p.isStatic && p.name === 'method');
      const caseName = /^RemoteMethod\.(\w+)$/.exec(m?.initial ?? '')?.[1];
      const method = caseName ? raw.get(caseName) : undefined;
      if (!method)
        throw new Error(`${t.name} does not name its method as 'static let method = RemoteMethod.x'`);
      return { struct: t, method, result: /typealias Result = (.+)$/m.exec(t.members)?.[1]?.trim() };
    });
}

/** Differences between a RemoteCall's fields and the contract's params for its method. */
function paramProblems(call: SwiftCall, params: z.ZodObject): string[] {
  const problems: string[] = [];
  const swift = fields(call.struct);
  for (const [name, f] of swift) {
    const p = params.shape[name];
    if (!p) problems.push(`${call.struct.name}.${name} is not a param of '${call.method}'`);
    else if (!f.optional && isOptional(p)) continue;
    else if (f.optional && !isOptional(p))
      problems.push(`${call.struct.name}.${name} is optional; '${call.method}' requires it`);
  }
  for (const [name, p] of Object.entries(params.shape))
    if (!isOptional(p) && !swift.has(name))
      problems.push(`'${call.method}' requires '${name}'; ${call.struct.name} does not send it`);
  return problems;
}

/** Differences between a Swift result struct and the contract's result object. */
function resultProblems(t: SwiftType, result: z.ZodObject, method: string): string[] {
  const problems: string[] = [];
  for (const [name, f] of fields(t)) {
    const r = result.shape[name];
    if (!r) problems.push(`${t.name}.${name} is not in the result of '${method}'`);
    else if (!f.optional && isOptional(r))
      problems.push(`${t.name}.${name} is required, but '${method}' may leave it out`);
  }
  return problems;
}

function allCallProblems(types: Map<string, SwiftType>): string[] {
  const problems: string[] = [];
  for (const call of swiftCalls(types)) {
    const spec = remoteMethod(call.method);
    if (!spec) continue; // reported by the method-name tests
    problems.push(...paramProblems(call, spec.params));
    const r = def(spec.result);
    const elementType = /^\[(\w+)\]$/.exec(call.result ?? '')?.[1];
    if (r.type === 'object')
      problems.push(
        ...resultProblems(requireType(types, call.result!), spec.result as z.ZodObject, call.method),
      );
    else if (r.type === 'array' && elementType)
      problems.push(...resultProblems(requireType(types, elementType), r.element, call.method));
  }
  return problems;
}

function copyWith(file: string, from: string, to: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'menubar-swift-'));
  const out = join(dir, file.split('/').pop()!);
  copyFileSync(file, out);
  const text = readFileSync(out, 'utf8');
  expect(text.includes(from), `${file} no longer contains ${from}`).toBe(true);
  writeFileSync(out, text.replaceAll(from, to));
  return out;
}

const types = swiftTypes(...FILES);
const sentMethods = enumCases(requireType(types, 'RemoteMethod')).map((c) => c.raw!);

describe('the methods the Swift client sends', () => {
  it('reads RemoteMethod (the reader found the cases)', () => {
    expect(sentMethods).toContain('approvals.answer');
    expect(sentMethods.length).toBeGreaterThanOrEqual(5);
  });

  for (const m of sentMethods) {
    it(`'${m}' is a method of the contract offered on the remote transport`, () => {
      expect(remoteMethod(m), `'${m}' is not a remote method of src/host/api/contract.ts`).toBeDefined();
    });
  }

  it('each method is sent by exactly one RemoteCall, and ControlClient.call takes only those', () => {
    const calls = swiftCalls(types);
    expect(calls.map((c) => c.method).sort()).toEqual([...sentMethods].sort());
    const client = readFileSync(join(CORE, 'ControlClient.swift'), 'utf8');
    expect(client).toMatch(/public func call<C: RemoteCall>\(_ call: C\) async throws -> C\.Result/);
    // The one place a `req` frame is built names the method from the RemoteMethod it was given.
    const builds = [...client.matchAll(/RequestFrame\(([^)]*)\)/g)].map((m) => m[1]);
    expect(builds).toEqual(['id: id, method: method.rawValue, params: params']);
    expect(client).toMatch(/private func request<P: Encodable>\(_ method: RemoteMethod, params: P\)/);
  });

  it("each call's fields are the contract's params, and its result fields are in the contract's result", () => {
    expect(allCallProblems(types)).toEqual([]);
  });

  it('approvals.answer sends kinds the contract accepts', () => {
    const kinds = enumCases(requireType(types, 'VerdictKind')).map((c) => c.raw);
    for (const k of kinds) expect(verdictKindSchema.options).toContain(k);
    expect(kinds).toContain('approve-once');
    expect(kinds).toContain('deny');
  });

  it('a renamed method or param in the Swift is caught', () => {
    const renamedMethod = swiftTypes(copyWith(METHODS_SWIFT, '"approvals.answer"', '"approvals.reply"'));
    const m = enumCases(requireType(renamedMethod, 'RemoteMethod')).map((c) => c.raw!);
    expect(m.filter((x) => !remoteMethod(x))).toEqual(['approvals.reply']);
    // The copy stands in for Methods.swift beside the other files (results such as MenuModel live there).
    const renamedParam = swiftTypes(
      copyWith(METHODS_SWIFT, 'public let kind: VerdictKind', 'public let verdict: VerdictKind'),
      ...FILES.filter((f) => f !== METHODS_SWIFT),
    );
    expect(allCallProblems(renamedParam)).toEqual([
      "ApprovalsAnswer.verdict is not a param of 'approvals.answer'",
      "'approvals.answer' requires 'kind'; ApprovalsAnswer does not send it",
    ]);
  });
});

/** What MenuSession.perform does for each MenuAction case: the method it calls, or what it leaves to the app. */
function performTable(types: Map<string, SwiftType>): Record<string, string> {
  const body = requireType(types, 'MenuSession').body;
  const at = body.indexOf('public func perform(_ action: MenuAction) async -> ActionOutcome {');
  expect(at, 'MenuSession.perform').toBeGreaterThan(0);
  const end = body.indexOf('\n    }\n', at);
  const methodOf = new Map(swiftCalls(types).map((c) => [c.struct.name, c.method]));
  const table: Record<string, string> = {};
  const chunks = body
    .slice(at, end)
    .split(/\bcase \./)
    .slice(1);
  for (const chunk of chunks) {
    const name = /^(\w+)/.exec(chunk)![1]!;
    const answer = /answer\(approvalId: \w+, kind: \.(\w+)\)/.exec(chunk);
    const call = /callAndRefresh\((\w+)\(/.exec(chunk);
    const app = /return \.(\w+)/.exec(chunk);
    if (answer) {
      const kind = enumCases(requireType(types, 'VerdictKind')).find((c) => c.name === answer[1])?.raw;
      table[name] = `approvals.answer ${kind}`;
    } else if (call) table[name] = methodOf.get(call[1]!) ?? `<${call[1]} is not a RemoteCall>`;
    else if (app) table[name] = `app: ${app[1]}`;
    else table[name] = '<unread>';
  }
  return table;
}

describe('what choosing a menu entry sends', () => {
  it('maps every MenuAction to the contract method for it', () => {
    expect(performTable(types)).toEqual({
      approve: 'approvals.answer approve-once',
      deny: 'approvals.answer deny',
      stop: 'stop',
      openDashboard: 'dashboard.login',
      startWorkspace: 'app: startWorkspace',
      quit: 'app: quit',
    });
    // Every case of the Swift enum is handled (the Swift compiler would say so too, on a Mac).
    const cases = enumCases(requireType(types, 'MenuAction')).map((c) => c.name);
    expect(Object.keys(performTable(types)).sort()).toEqual([...cases].sort());
  });
});

describe('the frames the Swift client sends and reads', () => {
  const clientOptions = new Map(objectOptions(clientFrameSchema).map((o) => [typeLiteral(o), o]));
  const serverOptions = objectOptions(serverFrameSchema);

  it('each client frame is a struct with `let type = "<type>"` and exactly the schema\'s fields', () => {
    const frames = [...types.values()].filter((t) => fields(t).get('type')?.initial?.startsWith('"'));
    expect(frames.map((t) => t.name).sort()).toEqual(['AuthFrame', 'PairFrame', 'RequestFrame']);
    for (const t of frames) {
      const f = fields(t);
      const type = JSON.parse(f.get('type')!.initial!);
      const option = clientOptions.get(type);
      expect(option, `${t.name} sends type '${type}', which is not a client frame`).toBeDefined();
      expect([...f.keys()].sort(), `${t.name}'s fields`).toEqual(Object.keys(option!.shape).sort());
      for (const [name, schema] of Object.entries(option!.shape))
        if (name !== 'type')
          expect(f.get(name)!.optional, `${t.name}.${name} optional?`).toBe(isOptional(schema));
    }
    expect([...clientOptions.keys()].sort()).toEqual(['auth', 'pair', 'req']);
  });

  it('it reads every server frame type, each into a struct whose fields the frame has', () => {
    const serverFrame = requireType(types, 'ServerFrame');
    const branches = decoderBranches(serverFrame);
    expect(branches.map((b) => b.wire).sort()).toEqual([...new Set(serverOptions.map(typeLiteral))].sort());
    for (const b of branches) {
      const options = serverOptions.filter((o) => typeLiteral(o) === b.wire);
      expect(b.decodes, `ServerFrame "${b.wire}" decodes no struct`).toBeDefined();
      for (const [name, f] of fields(requireType(types, b.decodes!))) {
        const inSome = options.some((o) => name in o.shape);
        expect(inSome, `${b.decodes}.${name} is in no '${b.wire}' frame`).toBe(true);
        if (!f.optional)
          for (const o of options)
            expect(
              name in o.shape && !isOptional(o.shape[name]!),
              `${b.decodes}.${name} must be in every '${b.wire}'`,
            ).toBe(true);
      }
    }
  });

  it('before authentication it sends only pair and auth', () => {
    const client = readFileSync(join(CORE, 'ControlClient.swift'), 'utf8');
    const sent = [...client.matchAll(/try await send\((\w+)\(/g)].map((m) => m[1]).sort();
    expect(sent).toEqual(['AuthFrame', 'PairFrame']);
  });

  it("close codes and the pairing alphabet are the server's", () => {
    const codes = new Map(
      storedProperties(requireType(types, 'ControlCloseCode')).map((p) => [p.name, Number(p.initial)]),
    );
    expect(Object.fromEntries(codes)).toEqual(CLOSE_CODES);
    const alphabet = /pairingAlphabet = Set\("([A-Z0-9]+)"\)/.exec(
      readFileSync(join(CORE, 'CommandLineOptions.swift'), 'utf8'),
    )?.[1];
    expect(alphabet).toBe(PAIRING_ALPHABET);
    const version = /controlProtocolVersion = (\d+)/.exec(
      readFileSync(join(CORE, 'Protocol.swift'), 'utf8'),
    )?.[1];
    expect(Number(version)).toBe(def(objectOptions(serverFrameSchema)[0]!.shape.version!).values[0]);
  });
});

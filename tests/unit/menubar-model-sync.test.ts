import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  MENU_MODEL_VERSION,
  MENU_STATES,
  menuActionSchema,
  menuItemSchema,
  menuModelSchema,
  menuStatusSchema,
} from '../../src/host/menu/model.js';
import {
  codingKeys,
  decoderBranches,
  enumCases,
  fields,
  requireType,
  type SwiftType,
  swiftTypes,
} from '../helpers/swift-decls.js';

/**
 * The Swift menu model (native/menubar/Sources/CoworkMenubarCore/MenuModel.swift) mirrors the
 * zod schema of src/host/menu/model.ts field for field: the same field names, the same
 * optionality, the same types, the same discriminator values and the same fields per variant.
 * The Swift cannot be compiled here, so this reads its declarations and decoders (see
 * tests/helpers/swift-decls.ts) and walks the zod schema; a rename on either side fails.
 */

const CORE = new URL('../../native/menubar/Sources/CoworkMenubarCore/', import.meta.url).pathname;
const MODEL_SWIFT = join(CORE, 'MenuModel.swift');
const FIXTURE = new URL(
  '../../native/menubar/Tests/CoworkMenubarCoreTests/Fixtures/menu-model.json',
  import.meta.url,
).pathname;

interface Schemas {
  model: z.ZodObject;
  status: z.ZodObject;
  action: z.ZodType;
  item: z.ZodType;
  states: readonly string[];
  version: number;
}
const REAL: Schemas = {
  model: menuModelSchema,
  status: menuStatusSchema,
  action: menuActionSchema,
  item: menuItemSchema,
  states: MENU_STATES,
  version: MENU_MODEL_VERSION,
};

// biome-ignore lint/suspicious/noExplicitAny: zod's def is typed per schema kind; this walks any of them.
const def = (s: z.ZodType): any => (s as any).def;

/** The Swift type a zod field must have; named schemas map to the Swift types that mirror them. */
function swiftTypeOf(s: z.ZodType, named: Map<unknown, string>, enumName: string): string {
  const name = named.get(s);
  if (name) return name;
  const d = def(s);
  switch (d.type) {
    case 'string':
      return 'String';
    case 'boolean':
      return 'Bool';
    case 'number':
      return (z.toJSONSchema(s) as { type?: string }).type === 'integer' ? 'Int' : 'Double';
    case 'literal':
      return Number.isInteger(d.values[0]) ? 'Int' : typeof d.values[0] === 'string' ? 'String' : '?';
    case 'enum':
      return enumName;
    case 'optional':
      return `${swiftTypeOf(d.innerType, named, enumName)}?`;
    case 'array':
      return `[${swiftTypeOf(d.element, named, enumName)}]`;
    default:
      return `<unmapped zod ${d.type}>`;
  }
}

/** The options of a discriminated union (lazy ones resolved), keyed by their discriminator value. */
function variants(schema: z.ZodType, discriminator: string): Map<string, Record<string, z.ZodType>> {
  let s = schema;
  if (def(s).type === 'lazy') s = def(s).getter();
  const out = new Map<string, Record<string, z.ZodType>>();
  for (const option of (s as z.ZodDiscriminatedUnion).options as z.ZodObject[]) {
    const value = def(option.shape[discriminator]!).values[0] as string;
    const { [discriminator]: _, ...rest } = option.shape;
    out.set(value, rest as Record<string, z.ZodType>);
  }
  return out;
}

/** Compares one struct with one zod object: names, optionality, types. */
function compareStruct(
  t: SwiftType,
  shape: Record<string, z.ZodType>,
  named: Map<unknown, string>,
  enumName: string,
): string[] {
  const problems: string[] = [];
  const swift = fields(t);
  for (const key of Object.keys(shape)) {
    const f = swift.get(key);
    if (!f) {
      problems.push(`${t.name} has no field '${key}' (the schema has it)`);
      continue;
    }
    const want = swiftTypeOf(shape[key]!, named, enumName);
    if (f.type !== want) problems.push(`${t.name}.${key} is ${f.type}; the schema's field needs ${want}`);
  }
  for (const name of swift.keys())
    if (!(name in shape)) problems.push(`${t.name}.${name} is not in the schema (renamed or removed there?)`);
  return problems;
}

/** Compares an enum decoded by a discriminator with the union's variants. */
function compareUnion(
  t: SwiftType,
  types: Map<string, SwiftType>,
  union: Map<string, Record<string, z.ZodType>>,
  discriminator: string,
  named: Map<unknown, string>,
): string[] {
  const problems: string[] = [];
  const keys = codingKeys(t, types);
  const wireOf = (k: string) => keys.get(k) ?? `<${k} is not a CodingKeys case>`;
  if (!new RegExp(`decode\\(String\\.self, forKey: \\.${discriminator}\\)`).test(t.body))
    problems.push(`${t.name}'s decoder does not read '${discriminator}' as the discriminator`);
  const branches = decoderBranches(t);
  const cases = new Map(enumCases(t).map((c) => [c.name, c]));
  const seen = new Set<string>();
  for (const b of branches) {
    seen.add(b.swiftCase);
    const shape = union.get(b.wire);
    if (!shape) {
      problems.push(`${t.name} decodes ${discriminator} "${b.wire}", which the schema does not have`);
      continue;
    }
    const read = b.keys.map(wireOf).sort();
    const want = Object.keys(shape).sort();
    if (read.join() !== want.join())
      problems.push(`${t.name} "${b.wire}" reads [${read.join(', ')}]; the schema has [${want.join(', ')}]`);
    const c = cases.get(b.swiftCase);
    if (!c) {
      problems.push(`${t.name} "${b.wire}" builds .${b.swiftCase}, which is not a case`);
      continue;
    }
    const labels = c.associated.map((a) => a.label).sort();
    if (labels.join() !== want.join())
      problems.push(`${t.name}.${c.name} holds [${labels.join(', ')}]; the schema has [${want.join(', ')}]`);
    for (const a of c.associated) {
      const field = shape[a.label];
      if (!field) continue;
      const wantType = swiftTypeOf(field, named, '?');
      if (a.type !== wantType)
        problems.push(`${t.name}.${c.name}(${a.label}:) is ${a.type}; needs ${wantType}`);
    }
  }
  for (const wire of union.keys())
    if (!branches.some((b) => b.wire === wire))
      problems.push(`${t.name} does not decode ${discriminator} "${wire}" (the schema has it)`);
  for (const name of cases.keys()) if (!seen.has(name)) problems.push(`${t.name}.${name} is never decoded`);
  const wireKeys = new Set([discriminator, ...[...union.values()].flatMap((s) => Object.keys(s))]);
  for (const [k, w] of keys)
    if (!wireKeys.has(w)) problems.push(`${t.name}.CodingKeys.${k} ('${w}') is in no variant`);
  return problems;
}

/** Every difference between the Swift file and the schemas; empty when they mirror each other. */
function modelProblems(swiftFile: string, s: Schemas): string[] {
  const types = swiftTypes(swiftFile);
  const named = new Map<unknown, string>([
    [s.status, 'MenuStatus'],
    [s.action, 'MenuAction'],
    [s.item, 'MenuItem'],
  ]);
  const problems = [
    ...compareStruct(requireType(types, 'MenuModel'), s.model.shape, named, '?'),
    ...compareStruct(requireType(types, 'MenuStatus'), s.status.shape, named, 'MenuState'),
    ...compareUnion(requireType(types, 'MenuAction'), types, variants(s.action, 'kind'), 'kind', named),
    ...compareUnion(requireType(types, 'MenuItem'), types, variants(s.item, 'type'), 'type', named),
  ];
  const states = enumCases(requireType(types, 'MenuState')).map((c) => c.raw);
  if (states.join() !== [...s.states].join())
    problems.push(`MenuState is [${states.join(', ')}]; MENU_STATES is [${s.states.join(', ')}]`);
  const version = /menuModelVersion = (\d+)/.exec(readFileSync(swiftFile, 'utf8'))?.[1];
  if (Number(version) !== s.version)
    problems.push(`menuModelVersion is ${version}; MENU_MODEL_VERSION is ${s.version}`);
  return problems;
}

/** A copy of MenuModel.swift with one edit, for the tests that prove a rename is caught. */
function editedSwift(from: string, to: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'menubar-swift-'));
  const file = join(dir, 'MenuModel.swift');
  copyFileSync(MODEL_SWIFT, file);
  const text = readFileSync(file, 'utf8');
  expect(text.includes(from), `MenuModel.swift no longer contains ${from}`).toBe(true);
  writeFileSync(file, text.replaceAll(from, to));
  return file;
}

describe('MenuModel.swift mirrors src/host/menu/model.ts', () => {
  it('field for field: names, optionality, types, discriminators and variants', () => {
    expect(modelProblems(MODEL_SWIFT, REAL)).toEqual([]);
  });

  it('reads every declaration it compares (the reader did not silently see nothing)', () => {
    const types = swiftTypes(MODEL_SWIFT);
    expect([...fields(requireType(types, 'MenuStatus')).keys()]).toEqual([
      'state',
      'pendingApprovals',
      'title',
      'tooltip',
      'workspace',
    ]);
    expect(decoderBranches(requireType(types, 'MenuAction')).map((b) => b.wire)).toEqual([
      'approve',
      'deny',
      'open-dashboard',
      'stop',
      'start-workspace',
      'quit',
    ]);
    expect(enumCases(requireType(types, 'MenuItem')).map((c) => c.name)).toEqual([
      'separator',
      'label',
      'action',
      'submenu',
    ]);
  });

  it('a field renamed in the Swift is caught (in the wire key and in the case)', () => {
    const renamedKey = editedSwift('case approvalId\n', 'case approvalID\n');
    expect(modelProblems(renamedKey, REAL).join('\n')).toMatch(
      /"approve" reads \[<approvalId is not a CodingKeys case>\]/,
    );
    const renamedField = editedSwift('public let pendingApprovals: Int', 'public let pending: Int');
    expect(modelProblems(renamedField, REAL).join('\n')).toMatch(
      /MenuStatus has no field 'pendingApprovals'/,
    );
    const renamedKind = editedSwift('case "open-dashboard":', 'case "dashboard":');
    expect(modelProblems(renamedKind, REAL).join('\n')).toMatch(/does not decode kind "open-dashboard"/);
    const optional = editedSwift('public let workspace: String?', 'public let workspace: String');
    expect(modelProblems(optional, REAL).join('\n')).toMatch(
      /MenuStatus.workspace is String; .* needs String\?/,
    );
  });

  it('a field renamed or added in the schema is caught', () => {
    const status = menuStatusSchema.extend({ waitingSince: z.number().optional() });
    expect(modelProblems(MODEL_SWIFT, { ...REAL, status }).join('\n')).toMatch(
      /MenuStatus has no field 'waitingSince'/,
    );
    const kept = menuActionSchema.options.filter((o) => o.shape.kind.value !== 'start-workspace');
    const action = z.discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('start-workspace'), path: z.string() }),
      ...kept,
    ]);
    expect(modelProblems(MODEL_SWIFT, { ...REAL, action }).join('\n')).toMatch(
      /"start-workspace" reads \[workspace\]; the schema has \[path\]/,
    );
    expect(modelProblems(MODEL_SWIFT, { ...REAL, states: ['stopped', 'running'] }).join('\n')).toMatch(
      /MenuState is \[stopped, running, waiting\]/,
    );
  });
});

describe('the Swift tests fixture (Tests/CoworkMenubarCoreTests/Fixtures/menu-model.json)', () => {
  const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8'));

  it('is a valid menu model by the zod schema', () => {
    expect(menuModelSchema.safeParse(fixture).error).toBeUndefined();
  });

  it('holds every item type and every action kind, so the Swift decoder test covers them all', () => {
    const types = new Set<string>();
    const kinds = new Set<string>();
    const walk = (items: { type: string; action?: { kind: string }; items?: unknown[] }[]) => {
      for (const i of items) {
        types.add(i.type);
        if (i.action) kinds.add(i.action.kind);
        if (i.items) walk(i.items as typeof items);
      }
    };
    walk(fixture.items);
    expect([...types].sort()).toEqual([...variants(menuItemSchema, 'type').keys()].sort());
    expect([...kinds].sort()).toEqual([...variants(menuActionSchema, 'kind').keys()].sort());
  });
});

import type { z } from 'zod';
import { METHOD_NAMES, METHODS, type MethodName } from '../../src/host/api/contract.js';

/** The row docs/control-api.md must have for a method of the contract (the test prints it when missing). */
export function methodRow(name: MethodName): string {
  const spec = METHODS[name];
  const keys = (o: z.ZodObject) =>
    Object.entries(o.shape).map(
      ([k, s]) => `${k}${(s as z.ZodType).safeParse(undefined).success ? '?' : ''}`,
    );
  const common = keys(spec.params);
  const ownerOnly = keys(spec.ownerParams).filter((k) => !common.includes(k));
  const params =
    (common.length ? `\`{ ${common.join(', ')} }\`` : '–') +
    (ownerOnly.length ? ` + owner: \`{ ${ownerOnly.join(', ')} }\`` : '');
  return `| \`${name}\` | ${params} | ${spec.minRole} | ${spec.context} | ${spec.transports.join(', ')} | ${spec.description} |`;
}

export function methodRows(): string[] {
  return METHOD_NAMES.map(methodRow);
}

import type Anthropic from '@anthropic-ai/sdk';
import type { ToolRegistry } from '../tools/registry.js';
import { systemPrompt } from './system-prompt.js';

const EPHEMERAL = { type: 'ephemeral' } as const;

export interface RequestInput {
  model: string;
  registry: ToolRegistry;
  messages: Anthropic.MessageParam[];
  maxTokensPerCall?: number;
  systemExtra?: string;
}

/** The conversation with a cache breakpoint on the newest block, so each call reuses the previous prefix. */
function withTailBreakpoint(messages: Anthropic.MessageParam[]): Anthropic.MessageParam[] {
  const last = messages[messages.length - 1];
  if (!last) return messages;
  const blocks: Anthropic.ContentBlockParam[] =
    typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : [...last.content];
  const tail = blocks[blocks.length - 1];
  if (!tail || tail.type === 'thinking' || tail.type === 'redacted_thinking') return messages;
  blocks[blocks.length - 1] = { ...tail, cache_control: EPHEMERAL };
  return [...messages.slice(0, -1), { ...last, content: blocks } as Anthropic.MessageParam];
}

/**
 * The Messages API request for the next call. Prompt caching: breakpoints on the system
 * prompt, on the last tool definition (caches all tools) and on the newest message — three
 * of the four the API allows.
 */
export function buildRequest(input: RequestInput): Anthropic.MessageCreateParamsNonStreaming {
  const defs = input.registry.definitions();
  const tools: Anthropic.Tool[] = defs.map((d, i) => ({
    name: d.name,
    description: d.description,
    input_schema: d.input_schema,
    ...(i === defs.length - 1 ? { cache_control: EPHEMERAL } : {}),
  }));
  return {
    model: input.model,
    max_tokens: input.maxTokensPerCall ?? 8192,
    system: [{ type: 'text', text: systemPrompt(input.systemExtra), cache_control: EPHEMERAL }],
    tools,
    messages: withTailBreakpoint(input.messages),
  };
}

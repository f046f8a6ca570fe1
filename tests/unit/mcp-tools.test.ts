import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfigText, validateConfig } from '../../src/host/config/index.js';
import { CoworkError } from '../../src/host/errors.js';
import { budgetText, deniedAdvice, failureText, mcpOrigin, toolListing } from '../../src/host/mcp/index.js';
import { BROWSER_TOOLS } from '../../src/host/tools/browser.js';
import { defaultTools, ToolRegistry } from '../../src/host/tools/index.js';

/** What an MCP client is offered, and what it is told when a call does not run. */

describe('tool listing for outside agents', () => {
  it('is the registry’s own zod-derived definitions, without task_complete', () => {
    for (const tools of [defaultTools(), [...defaultTools(), ...BROWSER_TOOLS]]) {
      const expected = new ToolRegistry(tools)
        .definitions()
        .filter((d) => d.name !== 'task_complete')
        .map((d) => ({ name: d.name, description: d.description, inputSchema: d.input_schema }));
      expect(toolListing(tools)).toEqual(expected);
      expect(toolListing(tools).map((t) => t.name)).not.toContain('task_complete');
    }
  });

  it('offers the tools of `cowork-vm run`, the browser tools only with them', () => {
    const base = toolListing(defaultTools()).map((t) => t.name);
    expect(base).toEqual(['shell', 'read_file', 'write_file', 'edit_file', 'list_directory', 'search_files']);
    const withBrowser = toolListing([...defaultTools(), ...BROWSER_TOOLS]).map((t) => t.name);
    expect(withBrowser).toEqual([...base, ...BROWSER_TOOLS.map((t) => t.name)]);
  });

  it('describes the shell input as the model sees it (strict object, command required)', () => {
    const shell = toolListing(defaultTools()).find((t) => t.name === 'shell')!;
    expect(shell.inputSchema).toMatchObject({
      type: 'object',
      required: ['command'],
      additionalProperties: false,
      properties: { command: { type: 'string' }, cwd: { type: 'string' } },
    });
  });
});

describe('mcp origin', () => {
  it('is mcp:<name>@<version>, printable and bounded', () => {
    expect(mcpOrigin({ name: 'claude-code', version: '2.0.1' })).toBe('mcp:claude-code@2.0.1');
    expect(mcpOrigin({ name: 'my client\n\u001b[2J', version: '' })).toBe('mcp:my-client-[2J');
    expect(mcpOrigin({ name: '', version: '1' })).toBe('mcp:unknown@1');
    expect(mcpOrigin({ name: 'x'.repeat(500), version: 'y'.repeat(500) }).length).toBeLessThanOrEqual(166);
  });
});

describe('what the agent is told', () => {
  it('a policy denial names the rule and the config line that would allow it', () => {
    const text = deniedAdvice({
      tool: 'shell',
      command: 'curl http://x',
      decision: { effect: 'deny', layer: 'user', rule: 'Bash(curl:*)', reasons: ['matches deny'] },
    });
    expect(text).toContain('rule Bash(curl:*) (user)');
    expect(text).toContain('"Bash(curl http://x)" to [policy] allow');
    expect(text).toContain('Do not retry the same call');
  });

  it('a timed-out approval says nobody answered and how to answer next time', () => {
    const text = deniedAdvice({ tool: 'shell', approval: { id: 'ap-1', timedOut: true } });
    expect(text).toMatch(/Nobody answered approval ap-1 in time/);
    expect(text).toContain('cowork-vm approve');
  });

  it('a user denial passes the user’s message and says not to retry', () => {
    const text = deniedAdvice({
      tool: 'write_file',
      approval: { id: 'ap-2', deniedBy: 'dashboard:d1', message: 'not there' },
    });
    expect(text).toContain('The user denied it (dashboard:d1: not there)');
    expect(text).toContain('ask the user');
  });

  it('a sandbox that went away says how to bring it back', () => {
    const text = failureText(new CoworkError('unavailable', 'the VM process ended'), 'shell');
    expect(text).toContain('the VM process ended');
    expect(text).toContain('cowork-vm start --detach');
    // A message that already says how to start it again is not given the advice twice.
    const once = failureText(
      new CoworkError('unavailable', 'the sandbox is crashed — start it again with `cowork-vm start`'),
      'shell',
    );
    expect(once.match(/cowork-vm start/g)).toHaveLength(1);
  });

  it('a budget names its config key and value', () => {
    expect(budgetText('calls', 3)).toContain('[mcp] maxCalls = 3');
    expect(budgetText('time', 5)).toContain('[mcp] maxSessionMinutes = 5');
  });
});

describe('[mcp] config', () => {
  const FILE = 'config.toml';
  it('defaults', () => {
    expect(defaultConfig().mcp).toEqual({ maxCalls: 500, maxSessionMinutes: 480 });
  });
  it('names key, value and range when out of range', () => {
    for (const [key, value, range] of [
      ['maxCalls', '0', '1–100,000'],
      ['maxSessionMinutes', '20000', '1–10,080'],
    ] as const) {
      expect(() => validateConfig(parseConfigText(`[mcp]\n${key} = ${value}`, FILE), FILE, {})).toThrow(
        `config ${FILE}: mcp.${key} = ${value} is out of range (${range})`,
      );
    }
    expect(() => validateConfig(parseConfigText('[mcp]\nmaxCall = 3', FILE), FILE, {})).toThrow(/maxCall/);
  });
});

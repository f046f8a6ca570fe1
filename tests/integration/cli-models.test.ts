import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnthropicApiStandIn } from '../helpers/anthropic-api.js';
import { assertBuilt, cliAsync } from '../helpers/cli.js';

/* `cowork-vm models` end to end: built binary → @anthropic-ai/sdk → GET /v1/models on the stand-in. */
describe('cowork-vm models', () => {
  let api: AnthropicApiStandIn;
  let root: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    assertBuilt();
    api = await AnthropicApiStandIn.start({ apiKey: 'sk-ant-cli-models' });
    root = mkdtempSync(join(tmpdir(), 'cli-models-'));
    env = {
      ...process.env,
      ANTHROPIC_API_KEY: api.apiKey,
      ANTHROPIC_BASE_URL: api.baseURL,
      COWORK_VM_CONFIG_DIR: join(root, 'cfg'),
      COWORK_VM_STATE_DIR: join(root, 'state'),
    };
  });
  afterAll(async () => {
    await api.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('--json lists every model with its known price', async () => {
    const r = await cliAsync(['models', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { id: string; price?: { input: number } }[];
    expect(list.map((m) => m.id)).toEqual(api.models.map((m) => m.id));
    expect(list.find((m) => m.id === 'claude-sonnet-5-5')?.price?.input).toBe(2);
    expect(list.find((m) => m.id === 'claude-fable-5-2')?.price).toBeUndefined();
  });

  it('marks the model run uses and says how to price an unpriced one', async () => {
    const r = await cliAsync(['models'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\* claude-sonnet-5-5 .*\$2 in \/ \$10 out per MTok/m);
    expect(r.stdout).toMatch(/claude-fable-5-2 .*no known price — add \[pricing\."claude-fable-5-2"\]/);
  });

  it('a wrong key is one clear line, not a stack', async () => {
    const r = await cliAsync(['models'], { ...env, ANTHROPIC_API_KEY: 'sk-ant-wrong' });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^cowork-vm: /);
  });
});

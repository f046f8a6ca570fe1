import type { Command } from 'commander';
import type { ListedModel } from '../../host/agent/models.js';
import { action, addExamples, printJson } from '../common.js';

const usd = (n: number) => `$${n}`;

function priceText(m: ListedModel): string {
  const p = m.price;
  if (!p) return `no known price — add [pricing."${m.id}"] to config.toml to run it with a cost budget`;
  return `${usd(p.input)} in / ${usd(p.output)} out per MTok${p.longContext ? ` (more above ${p.longContext.aboveInputTokens / 1000}k prompt tokens)` : ''}`;
}

export function register(program: Command): void {
  const cmd = program
    .command('models')
    .description('List the Claude models the Models API offers to your key, marking those with a known price')
    .option('-c, --config <file>', 'config file (default: ~/.config/cowork-vm/config.toml)')
    .option('--json', 'print [{id, displayName, createdAt, price?}] as JSON')
    .action(
      action(async (flags: { config?: string; json?: boolean }) => {
        const { availableModels } = await import('../../host/agent/models.js');
        const { models, configuredModel } = await availableModels({ configFile: flags.config });
        if (flags.json) return printJson(models);
        const width = Math.max(...models.map((m) => m.id.length), 8);
        for (const m of models) {
          const mark = m.id === configuredModel ? '*' : ' ';
          process.stdout.write(
            `${mark} ${m.id.padEnd(width)}  ${m.displayName} (${m.createdAt.slice(0, 10)}) · ${priceText(m)}\n`,
          );
        }
        process.stdout.write(
          `* = the model \`run\` uses now (${configuredModel}); choose with \`run --model ID\` or [agent] model in config.toml\n`,
        );
      }),
    );
  addExamples(cmd, ['cowork-vm models', 'cowork-vm models --json | jq -r ".[].id"']);
}

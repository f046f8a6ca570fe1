export {
  applyWorkspaceConfig,
  defaultConfig,
  formatConfigIssues,
  type LoadConfigOptions,
  type LoadedConfig,
  loadConfig,
  parseConfigText,
  validateConfig,
} from './load.js';
export * from './schema.js';

import type { EgressProxyOptions } from './proxy.js';

/** The `[egress]` section as src/host/config's egressSchema parses it. */
export interface EgressConfigSection {
  allow?: string[];
  deny?: string[];
  ask?: boolean;
  allowAll?: boolean;
  testResolve?: Record<string, string>;
}

/**
 * Proxy options from the loaded config. `testResolve` is passed through as is: the proxy still
 * refuses it unless COWORK_VM_TEST_RESOLVE=1 (in `env`) or allowTestResolve is set, so a config
 * that slipped past the loader cannot open loopback on its own.
 */
export function egressOptionsFromConfig(
  section: EgressConfigSection | undefined,
): Pick<EgressProxyOptions, 'rules' | 'testResolve'> {
  return {
    rules: {
      allow: section?.allow ?? [],
      deny: section?.deny ?? [],
      ask: section?.ask ?? false,
      allowAll: section?.allowAll ?? false,
    },
    ...(section?.testResolve ? { testResolve: section.testResolve } : {}),
  };
}

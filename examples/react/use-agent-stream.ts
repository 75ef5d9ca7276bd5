/**
 * `useAgentStream` now ships in the SDK: `import { useAgentStream } from '@apix/sdk/react'`
 * (packages/sdk/src/react.ts; docs/streams.md#react). Re-exported here for the examples that import it.
 */
export { useAgentStream } from '../../packages/sdk/src/react.ts';
export type { AgentStreamOptions, AgentStreamState, AgentStreamView } from '../../packages/sdk/src/react.ts';
